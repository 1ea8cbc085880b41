//! Fenced deliveries: `claim_token` names the round that holds a delivery (settling checks it,
//! so a claimer whose lease was taken over cannot overwrite the new claimer's outcome), and
//! `first_attempt_at` starts the horizon after which a delivery that keeps failing is given up.
//! Due deliveries are grouped by `(integration_id, port_fid)`: fids are per platform installation,
//! so the index that served the grouping by `port_fid` alone is replaced.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000013_delivery_fencing"
    }
}

#[derive(DeriveIden)]
enum PushOutbox {
    Table,
    ClaimToken,
    FirstAttemptAt,
    IntegrationId,
    PortFid,
}

const OLD: &str = "idx_push_outbox_port";
const NEW: &str = "idx_push_outbox_integration_port";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(PushOutbox::ClaimToken)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(PushOutbox::FirstAttemptAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(PushOutbox::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_index(Index::drop().name(OLD).table(PushOutbox::Table).to_owned())
            .await?;
        manager
            .create_index(crate::index(
                NEW,
                PushOutbox::Table,
                [PushOutbox::IntegrationId, PushOutbox::PortFid],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NEW).table(PushOutbox::Table).to_owned())
            .await?;
        manager
            .create_index(crate::index(OLD, PushOutbox::Table, [PushOutbox::PortFid]))
            .await?;
        for column in [PushOutbox::ClaimToken, PushOutbox::FirstAttemptAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(PushOutbox::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
