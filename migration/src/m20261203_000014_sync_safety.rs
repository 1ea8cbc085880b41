//! A sync that says what it could not read and what a deselection removed, a cancel any
//! instance can ask for, and a search that folds the same on both engines.
//!
//! - `sync_runs.unreadable`: records the platform listed that the client could not read (never
//!   taken for deleted ones); `sync_runs.purged`: rows removed because their item was
//!   deselected (asked for, so not behind the mass-deletion guard); `sync_runs.warnings`: what a
//!   person should know of a run that went on (one line each).
//! - `sync_runs.cancel_requested`: set by `cancelSync` on any instance; the executing instance
//!   reads it with its heartbeat.
//! - `elements.name_folded`: the name without accents, lowercased as Unicode; searches compare
//!   against it, so SQLite (whose `LOWER` folds ASCII only) and PostgreSQL answer alike. Rows
//!   written before this column are filled in by the gateway at start-up.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261203_000014_sync_safety"
    }
}

#[derive(DeriveIden)]
enum SyncRuns {
    Table,
    Unreadable,
    Purged,
    Warnings,
    CancelRequested,
}

#[derive(DeriveIden)]
enum Elements {
    Table,
    NameFolded,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(SyncRuns::Unreadable)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(SyncRuns::Purged)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(SyncRuns::Warnings).text().null().to_owned(),
            ColumnDef::new(SyncRuns::CancelRequested)
                .boolean()
                .not_null()
                .default(false)
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
        manager
            .alter_table(
                Table::alter()
                    .table(Elements::Table)
                    .add_column(ColumnDef::new(Elements::NameFolded).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Elements::Table)
                    .drop_column(Elements::NameFolded)
                    .to_owned(),
            )
            .await?;
        for column in [
            SyncRuns::Unreadable,
            SyncRuns::Purged,
            SyncRuns::Warnings,
            SyncRuns::CancelRequested,
        ] {
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
