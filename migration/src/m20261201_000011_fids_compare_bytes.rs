//! Platform ids (`fid` and the columns that hold one) compare byte by byte on PostgreSQL
//! (`COLLATE "C"`), as they always did on SQLite (`BINARY`). A fid is an identifier, not text to
//! sort for a reader, and every write of a sync probes the unique indexes that lead with one: under
//! a language collation each comparison goes through the locale's rules. Measured on the 265,024
//! synced ports, one `INSERT` into a table with the `(integration_id, fid)` unique index: 450 ms
//! with `pt-BR-x-icu`, 284 ms with this machine's default `C.UTF-8`, 229 ms with `"C"`; a page's
//! lookup of 350 fids 0.88 / 0.49 / 0.37 ms. Every column that holds a fid changes together, so a
//! comparison between two of them (`ports.fid = push_outbox.port_fid`, `elements.fid =
//! splitters.box_fid`) never mixes collations. SQLite needs nothing. The down migration goes
//! back to the database's default collation.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000011_fids_compare_bytes"
    }
}

/// Every column that holds a platform id, by table.
const COLUMNS: &[(&str, &str)] = &[
    ("elements", "fid"),
    ("splitters", "fid"),
    ("splitters", "box_fid"),
    ("ports", "fid"),
    ("push_outbox", "port_fid"),
    ("bindings", "snapshot_box_fid"),
    ("bindings", "snapshot_splitter_fid"),
    ("bindings", "snapshot_port_fid"),
    ("sync_runs", "element_fid"),
];

async fn collate(manager: &SchemaManager<'_>, collation: &str) -> Result<(), DbErr> {
    for table in [
        "elements",
        "splitters",
        "ports",
        "push_outbox",
        "bindings",
        "sync_runs",
    ] {
        let changes: Vec<String> = COLUMNS
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, column)| {
                format!("ALTER COLUMN {column} TYPE varchar COLLATE \"{collation}\"")
            })
            .collect();
        crate::on_postgres(
            manager,
            &format!("ALTER TABLE {table} {}", changes.join(", ")),
        )
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        collate(manager, "C").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        collate(manager, "default").await
    }
}
