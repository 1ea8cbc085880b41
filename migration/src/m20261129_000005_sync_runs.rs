//! Sync runs. Two database rules carry the concurrency design:
//! - a partial unique index allows one QUEUED or RUNNING run per integration, so a second start
//!   fails on insert whatever instance it comes from;
//! - `(integration_id, scheduled_for)` is unique, so instances claim a scheduled slot with
//!   `INSERT ... ON CONFLICT DO NOTHING` and exactly one wins. Manual runs leave it NULL, and NULLs
//!   never collide on either engine.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000002_integrations::Integrations;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncRuns::Table)
                    .col(big_pk_auto(SyncRuns::Id))
                    .col(big_integer(SyncRuns::IntegrationId))
                    .col(string(SyncRuns::Mode))
                    .col(string(SyncRuns::Trigger))
                    .col(string(SyncRuns::Status))
                    .col(string_null(SyncRuns::ElementFid))
                    .col(boolean(SyncRuns::AllowMassDeletion))
                    .col(timestamp_with_time_zone_null(SyncRuns::ScheduledFor))
                    .col(timestamp_with_time_zone_null(SyncRuns::CursorBefore))
                    .col(timestamp_with_time_zone_null(SyncRuns::CursorAfter))
                    .col(string_null(SyncRuns::Phase))
                    .col(string_null(SyncRuns::CurrentItem))
                    .col(big_integer(SyncRuns::Processed))
                    .col(big_integer_null(SyncRuns::Total))
                    .col(big_integer(SyncRuns::Fetched))
                    .col(big_integer(SyncRuns::Created))
                    .col(big_integer(SyncRuns::Updated))
                    .col(big_integer(SyncRuns::Deleted))
                    .col(big_integer(SyncRuns::Unchanged))
                    .col(big_integer(SyncRuns::Orphaned))
                    .col(string_null(SyncRuns::ErrorCode))
                    .col(text_null(SyncRuns::ErrorMessage))
                    .col(string_null(SyncRuns::InstanceId))
                    .col(timestamp_with_time_zone_null(SyncRuns::HeartbeatAt))
                    .col(timestamp_with_time_zone(SyncRuns::CreatedAt))
                    .col(timestamp_with_time_zone_null(SyncRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(SyncRuns::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SyncRuns::Table, SyncRuns::IntegrationId)
                            .to(Integrations::Table, Integrations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                crate::index(
                    "uq_sync_runs_scheduled_slot",
                    SyncRuns::Table,
                    [SyncRuns::IntegrationId, SyncRuns::ScheduledFor],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX uq_sync_runs_one_active ON sync_runs (integration_id) \
                 WHERE status IN ('QUEUED', 'RUNNING')",
            )
            .await?;
        manager
            .create_index(crate::index(
                "idx_sync_runs_integration",
                SyncRuns::Table,
                [SyncRuns::IntegrationId, SyncRuns::Id],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncRuns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Id,
    IntegrationId,
    Mode,
    Trigger,
    Status,
    ElementFid,
    AllowMassDeletion,
    ScheduledFor,
    CursorBefore,
    CursorAfter,
    Phase,
    CurrentItem,
    Processed,
    Total,
    Fetched,
    Created,
    Updated,
    Deleted,
    Unchanged,
    Orphaned,
    ErrorCode,
    ErrorMessage,
    InstanceId,
    HeartbeatAt,
    CreatedAt,
    StartedAt,
    FinishedAt,
}
