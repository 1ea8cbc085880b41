//! Live progress of sync runs: a sequence number that grows with every change of a run's row
//! (subscribers order and deduplicate events by it, on any instance), and the page of the
//! listing being walked.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000007_run_progress"
    }
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Seq,
    Page,
    Pages,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(SyncRuns::Seq)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(SyncRuns::Page)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(SyncRuns::Pages)
                .big_integer()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncRuns::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [SyncRuns::Pages, SyncRuns::Page, SyncRuns::Seq] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncRuns::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
