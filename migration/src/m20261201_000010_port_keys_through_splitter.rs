//! Drops, on PostgreSQL, the foreign keys from `ports` to `integrations` and `projects`. A port
//! always has its splitter (`ports.splitter_id` stays a foreign key, `ON DELETE CASCADE`), and
//! the splitter has both of those keys with cascades of its own, so deleting an integration or
//! a project still deletes its ports, through their splitters; the sync writes a port's
//! `integration_id` and `project_id` from the same run as its splitter's. Each foreign key is a
//! trigger fired for every row written: at 20,000 boxes (265,000 ports) the two cost about
//! 1.5 s of every full sync (docs/BENCHMARKS.md). SQLite cannot drop a constraint without
//! rebuilding the table, and its checks are plain index lookups: nothing changes there. The down
//! migration puts both keys back.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000010_port_keys_through_splitter"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres(
            manager,
            "ALTER TABLE ports DROP CONSTRAINT IF EXISTS ports_integration_id_fkey, \
             DROP CONSTRAINT IF EXISTS ports_project_id_fkey",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres(
            manager,
            "ALTER TABLE ports \
             ADD CONSTRAINT ports_integration_id_fkey FOREIGN KEY (integration_id) \
               REFERENCES integrations(id) ON DELETE CASCADE, \
             ADD CONSTRAINT ports_project_id_fkey FOREIGN KEY (project_id) \
               REFERENCES projects(id) ON DELETE CASCADE",
        )
        .await
    }
}
