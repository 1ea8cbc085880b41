//! Keys used to keep their first 12 characters beside their digest: 32 of their 128 bits, handed
//! to whoever reads the table. Only 8 characters (`mgw_` and 16 bits) are kept from now on, and
//! the longer prefixes already stored are cut down to that.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000006_short_key_prefix"
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Prefix,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let cut = Query::update()
            .table(ApiKeys::Table)
            .value(
                ApiKeys::Prefix,
                Func::cust("SUBSTR")
                    .arg(Expr::col(ApiKeys::Prefix))
                    .arg(1)
                    .arg(8),
            )
            .to_owned();
        manager.exec_stmt(cut).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The cut characters are gone for good; going down keeps the short prefixes, which the
        // earlier code displays just as well.
        Ok(())
    }
}
