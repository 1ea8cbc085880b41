//! A value that proves which master key the stored secrets are sealed with.
//!
//! - `gateway_secrets`: one row per named secret of the gateway itself; `master_key_check` holds a
//!   known text sealed with the master key, written at the first start and re-sealed by
//!   `rotate-master-key`. Start-up opens it: a wrong `MASTER_KEY` stops the process at once
//!   instead of failing every sync.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000015_secrets_check"
    }
}

#[derive(DeriveIden)]
enum GatewaySecrets {
    Table,
    Name,
    Sealed,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GatewaySecrets::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(GatewaySecrets::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(GatewaySecrets::Sealed).binary().not_null())
                    .col(
                        ColumnDef::new(GatewaySecrets::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GatewaySecrets::Table).to_owned())
            .await
    }
}
