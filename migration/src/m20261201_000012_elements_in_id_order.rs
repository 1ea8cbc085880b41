//! Adds `idx_elements_integration_id` (`integration_id, id`): an integration's elements are paged
//! in id order (`elements`, `Project.elements`), and no index led with the integration and then
//! the id, so every page read the integration's whole element list and sorted it (SQLite planned
//! it through `idx_elements_lat_lng` and a temporary B-tree). Measured on 20,000 elements: a page
//! of 500 after a cursor took 5.9 ms without it and 0.1 ms with it. Its down migration drops it.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000012_elements_in_id_order"
    }
}

#[derive(DeriveIden)]
enum Elements {
    Table,
    IntegrationId,
    Id,
}

const NAME: &str = "idx_elements_integration_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(crate::index(
                NAME,
                Elements::Table,
                [Elements::IntegrationId, Elements::Id],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(NAME).table(Elements::Table).to_owned())
            .await
    }
}
