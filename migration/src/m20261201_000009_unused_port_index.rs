//! Drops `idx_ports_remote_updated`: no query filters or orders ports by their platform change
//! time (incremental listings ask the platform, not the database), and every port a sync writes
//! paid for that index. Its down migration puts it back.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000009_unused_port_index"
    }
}

#[derive(DeriveIden)]
enum Ports {
    Table,
    IntegrationId,
    RemoteUpdatedAt,
}

const NAME: &str = "idx_ports_remote_updated";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(Ports::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(crate::index(
                NAME,
                Ports::Table,
                [Ports::IntegrationId, Ports::RemoteUpdatedAt],
            ))
            .await
    }
}
