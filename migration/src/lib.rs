//! Schema migrations of mapping-gateway, applied in order by [`Migrator`].
//!
//! `mapping-gateway serve` runs `Migrator::up` at start (unless `MIGRATE_ON_START=false`), so a
//! fresh database (SQLite or PostgreSQL) is ready without a separate step; `mapping-gateway
//! migrate` does the same from the command line, and every other command refuses a database with
//! pending migrations.

pub use sea_orm_migration::prelude::*;

mod m20261129_000001_access;
mod m20261129_000002_integrations;
mod m20261129_000003_plant;
mod m20261129_000004_bindings;
mod m20261129_000005_sync_runs;
mod m20261201_000006_short_key_prefix;
mod m20261201_000007_run_progress;
mod m20261201_000008_delivery;
mod m20261201_000009_unused_port_index;
mod m20261201_000010_port_keys_through_splitter;
mod m20261201_000011_fids_compare_bytes;
mod m20261201_000012_elements_in_id_order;
mod m20261203_000013_delivery_fencing;
mod m20261203_000014_sync_safety;
mod m20261205_000015_secrets_check;
mod m20261205_000016_key_lifecycle;
mod m20261206_000017_port_splitter_check;
mod m20261206_000018_splitters_by_kind;
mod m20261207_000019_room_for_updates;
mod m20261207_000020_port_moves_checked;

/// Every migration of the gateway, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_access::Migration),
            Box::new(m20261129_000002_integrations::Migration),
            Box::new(m20261129_000003_plant::Migration),
            Box::new(m20261129_000004_bindings::Migration),
            Box::new(m20261129_000005_sync_runs::Migration),
            Box::new(m20261201_000006_short_key_prefix::Migration),
            Box::new(m20261201_000007_run_progress::Migration),
            Box::new(m20261201_000008_delivery::Migration),
            Box::new(m20261201_000009_unused_port_index::Migration),
            Box::new(m20261201_000010_port_keys_through_splitter::Migration),
            Box::new(m20261201_000011_fids_compare_bytes::Migration),
            Box::new(m20261201_000012_elements_in_id_order::Migration),
            Box::new(m20261203_000013_delivery_fencing::Migration),
            Box::new(m20261203_000014_sync_safety::Migration),
            Box::new(m20261205_000015_secrets_check::Migration),
            Box::new(m20261205_000016_key_lifecycle::Migration),
            Box::new(m20261206_000017_port_splitter_check::Migration),
            Box::new(m20261206_000018_splitters_by_kind::Migration),
            Box::new(m20261207_000019_room_for_updates::Migration),
            Box::new(m20261207_000020_port_moves_checked::Migration),
        ]
    }
}

/// Creates a plain (non-unique) index; a short helper since most tables have a few.
pub(crate) fn index<T, C>(name: &str, table: T, cols: C) -> IndexCreateStatement
where
    T: IntoIden + 'static,
    C: IntoIterator,
    C::Item: IntoIndexColumn,
{
    let mut idx = Index::create();
    idx.name(name).table(table);
    for c in cols {
        idx.col(c);
    }
    idx.to_owned()
}

/// Runs `sql` on PostgreSQL only; a migration that SQLite needs nothing of.
pub(crate) async fn on_postgres(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
        manager.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}
