//! Customer bindings and the push outbox.
//!
//! A binding is never deleted by a sync: when its port goes away `port_id` becomes NULL, the
//! status `ORPHANED`, and the `snapshot_*` columns keep where it was. "At most one active binding
//! per port and per contract" is enforced by partial unique indexes, which SQLite and PostgreSQL
//! both support with the same syntax.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000002_integrations::Integrations;
use crate::m20261129_000003_plant::Ports;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Bindings::Table)
                    .col(big_pk_auto(Bindings::Id))
                    .col(big_integer(Bindings::IntegrationId))
                    .col(big_integer_null(Bindings::PortId))
                    .col(string(Bindings::Status))
                    .col(string(Bindings::Document))
                    .col(string(Bindings::Contract))
                    .col(string(Bindings::Name))
                    .col(string_null(Bindings::Address))
                    .col(string_null(Bindings::Plan))
                    .col(string_null(Bindings::SnapshotBoxFid))
                    .col(string_null(Bindings::SnapshotBoxName))
                    .col(string_null(Bindings::SnapshotSplitterFid))
                    .col(string_null(Bindings::SnapshotPortFid))
                    .col(integer_null(Bindings::SnapshotPortNumber))
                    .col(string_null(Bindings::ConflictReason))
                    .col(timestamp_with_time_zone(Bindings::CreatedAt))
                    .col(timestamp_with_time_zone(Bindings::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Bindings::ConfirmedAt))
                    .col(timestamp_with_time_zone_null(Bindings::ClosedAt))
                    .col(timestamp_with_time_zone_null(Bindings::OrphanedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bindings::Table, Bindings::IntegrationId)
                            .to(Integrations::Table, Integrations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    // The sync orphans bindings before it deletes ports; SET NULL is the safety
                    // net that keeps the binding row if a port row goes away some other way.
                    .foreign_key(
                        ForeignKey::create()
                            .from(Bindings::Table, Bindings::PortId)
                            .to(Ports::Table, Ports::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_bindings_active_port ON bindings (port_id) \
             WHERE status IN ('PENDING', 'CONFIRMED')",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX uq_bindings_active_contract ON bindings (integration_id, contract) \
             WHERE status IN ('PENDING', 'CONFIRMED', 'ORPHANED')",
        )
        .await?;
        manager
            .create_index(crate::index(
                "idx_bindings_document",
                Bindings::Table,
                [Bindings::Document],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PushOutbox::Table)
                    .col(big_pk_auto(PushOutbox::Id))
                    .col(big_integer(PushOutbox::BindingId))
                    .col(big_integer(PushOutbox::IntegrationId))
                    .col(string(PushOutbox::Action))
                    .col(json(PushOutbox::Payload))
                    .col(string(PushOutbox::Status))
                    .col(integer(PushOutbox::Attempts))
                    .col(text_null(PushOutbox::LastError))
                    .col(timestamp_with_time_zone(PushOutbox::NextAttemptAt))
                    .col(timestamp_with_time_zone(PushOutbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(PushOutbox::DeliveredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PushOutbox::Table, PushOutbox::BindingId)
                            .to(Bindings::Table, Bindings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(PushOutbox::Table, PushOutbox::IntegrationId)
                            .to(Integrations::Table, Integrations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "idx_push_outbox_due",
                PushOutbox::Table,
                [PushOutbox::Status, PushOutbox::NextAttemptAt],
            ))
            .await?;
        manager
            .create_index(crate::index(
                "idx_push_outbox_binding",
                PushOutbox::Table,
                [PushOutbox::BindingId],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PushOutbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Bindings::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Bindings {
    Table,
    Id,
    IntegrationId,
    PortId,
    Status,
    Document,
    Contract,
    Name,
    Address,
    Plan,
    SnapshotBoxFid,
    SnapshotBoxName,
    SnapshotSplitterFid,
    SnapshotPortFid,
    SnapshotPortNumber,
    ConflictReason,
    CreatedAt,
    UpdatedAt,
    ConfirmedAt,
    ClosedAt,
    OrphanedAt,
}

#[derive(DeriveIden)]
enum PushOutbox {
    Table,
    Id,
    BindingId,
    IntegrationId,
    Action,
    Payload,
    Status,
    Attempts,
    LastError,
    NextAttemptAt,
    CreatedAt,
    DeliveredAt,
}
