//! Delivery of bindings to the platform: the port each outbox row writes (so deliveries go out
//! in order per port), what a sync found on a port that disagrees with its binding, and how
//! many such conflicts a run found.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000008_delivery"
    }
}

#[derive(DeriveIden)]
enum PushOutbox {
    Table,
    PortFid,
}

#[derive(DeriveIden)]
enum Bindings {
    Table,
    ConflictContract,
    ConflictDocument,
    ConflictSeenAt,
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Conflicts,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PushOutbox::Table)
                    .add_column(ColumnDef::new(PushOutbox::PortFid).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "idx_push_outbox_port",
                PushOutbox::Table,
                [PushOutbox::PortFid],
            ))
            .await?;
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(Bindings::ConflictContract)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Bindings::ConflictDocument)
                .string()
                .null()
                .to_owned(),
            ColumnDef::new(Bindings::ConflictSeenAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Bindings::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(SyncRuns::Table)
                    .add_column(
                        ColumnDef::new(SyncRuns::Conflicts)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SyncRuns::Table)
                    .drop_column(SyncRuns::Conflicts)
                    .to_owned(),
            )
            .await?;
        for column in [
            Bindings::ConflictSeenAt,
            Bindings::ConflictDocument,
            Bindings::ConflictContract,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Bindings::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_push_outbox_port")
                    .table(PushOutbox::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(PushOutbox::Table)
                    .drop_column(PushOutbox::PortFid)
                    .to_owned(),
            )
            .await
    }
}
