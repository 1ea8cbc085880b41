//! The synced copy of the plant: elements (boxes and points), splitters and their ports.
//!
//! Every row carries its platform `fid` as text (platforms differ in id types) and is unique per
//! integration, so a sync can upsert by `(integration, fid)` idempotently. `fid_num` is the fid as
//! a number when it is one: listings arrive in fid order, and a full sync finds what the platform
//! deleted by comparing each page with the local rows in the same fid range, so it needs no
//! in-memory set of everything it saw. Rows hang off the project: unlinking the project cascades
//! to the whole copy.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000002_integrations::{Integrations, Projects};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Foreign keys shared by the three plant tables.
fn owned_by_project<T: IntoIden + Copy + 'static>(
    table: T,
    integration_col: T,
    project_col: T,
) -> [ForeignKeyCreateStatement; 2] {
    [
        ForeignKey::create()
            .from(table, integration_col)
            .to(Integrations::Table, Integrations::Id)
            .on_delete(ForeignKeyAction::Cascade)
            .to_owned(),
        ForeignKey::create()
            .from(table, project_col)
            .to(Projects::Table, Projects::Id)
            .on_delete(ForeignKeyAction::Cascade)
            .to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let [fk_int, fk_proj] = owned_by_project(
            Elements::Table,
            Elements::IntegrationId,
            Elements::ProjectId,
        );
        manager
            .create_table(
                Table::create()
                    .table(Elements::Table)
                    .col(big_pk_auto(Elements::Id))
                    .col(big_integer(Elements::IntegrationId))
                    .col(big_integer(Elements::ProjectId))
                    .col(string(Elements::Item))
                    .col(string(Elements::Fid))
                    .col(big_integer_null(Elements::FidNum))
                    .col(string(Elements::Name))
                    .col(double_null(Elements::Latitude))
                    .col(double_null(Elements::Longitude))
                    .col(timestamp_with_time_zone_null(Elements::RemoteUpdatedAt))
                    .col(timestamp_with_time_zone(Elements::SyncedAt))
                    .foreign_key(&mut fk_int.clone())
                    .foreign_key(&mut fk_proj.clone())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                crate::index(
                    "uq_elements_integration_item_fid",
                    Elements::Table,
                    [Elements::IntegrationId, Elements::Item, Elements::Fid],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "idx_elements_project_fid_num",
                Elements::Table,
                [Elements::ProjectId, Elements::FidNum],
            ))
            .await?;
        // The bounding-box pre-filter of nearest-port searches reads this index: equality on the
        // integration, then a range on latitude, longitude checked from the index itself.
        manager
            .create_index(crate::index(
                "idx_elements_lat_lng",
                Elements::Table,
                [
                    Elements::IntegrationId,
                    Elements::Latitude,
                    Elements::Longitude,
                ],
            ))
            .await?;
        manager
            .create_index(crate::index(
                "idx_elements_remote_updated",
                Elements::Table,
                [Elements::IntegrationId, Elements::RemoteUpdatedAt],
            ))
            .await?;

        let [fk_int, fk_proj] = owned_by_project(
            Splitters::Table,
            Splitters::IntegrationId,
            Splitters::ProjectId,
        );
        manager
            .create_table(
                Table::create()
                    .table(Splitters::Table)
                    .col(big_pk_auto(Splitters::Id))
                    .col(big_integer(Splitters::IntegrationId))
                    .col(big_integer(Splitters::ProjectId))
                    .col(string(Splitters::Fid))
                    .col(big_integer_null(Splitters::FidNum))
                    .col(string(Splitters::Name))
                    .col(string(Splitters::Kind))
                    .col(string(Splitters::Ratio))
                    .col(integer(Splitters::PortCount))
                    // The housing box may be outside the selection: its fid is always kept, the
                    // local element id only when the box is synced.
                    .col(string_null(Splitters::BoxFid))
                    .col(big_integer_null(Splitters::ElementId))
                    .col(timestamp_with_time_zone_null(Splitters::RemoteUpdatedAt))
                    .col(timestamp_with_time_zone(Splitters::SyncedAt))
                    .foreign_key(&mut fk_int.clone())
                    .foreign_key(&mut fk_proj.clone())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Splitters::Table, Splitters::ElementId)
                            .to(Elements::Table, Elements::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                crate::index(
                    "uq_splitters_integration_fid",
                    Splitters::Table,
                    [Splitters::IntegrationId, Splitters::Fid],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "idx_splitters_project_fid_num",
                Splitters::Table,
                [Splitters::ProjectId, Splitters::FidNum],
            ))
            .await?;
        manager
            .create_index(crate::index(
                "idx_splitters_element",
                Splitters::Table,
                [Splitters::ElementId],
            ))
            .await?;
        manager
            .create_index(crate::index(
                "idx_splitters_box_fid",
                Splitters::Table,
                [Splitters::IntegrationId, Splitters::BoxFid],
            ))
            .await?;

        let [fk_int, fk_proj] =
            owned_by_project(Ports::Table, Ports::IntegrationId, Ports::ProjectId);
        manager
            .create_table(
                Table::create()
                    .table(Ports::Table)
                    .col(big_pk_auto(Ports::Id))
                    .col(big_integer(Ports::IntegrationId))
                    .col(big_integer(Ports::ProjectId))
                    .col(big_integer(Ports::SplitterId))
                    .col(string(Ports::Fid))
                    .col(big_integer_null(Ports::FidNum))
                    .col(integer(Ports::Number))
                    .col(string(Ports::Status))
                    .col(string_null(Ports::CustomerContract))
                    .col(string_null(Ports::CustomerDocument))
                    .col(string_null(Ports::CustomerName))
                    .col(timestamp_with_time_zone_null(Ports::RemoteUpdatedAt))
                    .col(timestamp_with_time_zone(Ports::SyncedAt))
                    .foreign_key(&mut fk_int.clone())
                    .foreign_key(&mut fk_proj.clone())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Ports::Table, Ports::SplitterId)
                            .to(Splitters::Table, Splitters::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                crate::index(
                    "uq_ports_integration_fid",
                    Ports::Table,
                    [Ports::IntegrationId, Ports::Fid],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                crate::index(
                    "uq_ports_splitter_number",
                    Ports::Table,
                    [Ports::SplitterId, Ports::Number],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "idx_ports_project_fid_num",
                Ports::Table,
                [Ports::ProjectId, Ports::FidNum],
            ))
            .await?;
        manager
            .create_index(crate::index(
                "idx_ports_remote_updated",
                Ports::Table,
                [Ports::IntegrationId, Ports::RemoteUpdatedAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Ports::Table.into_iden(),
            Splitters::Table.into_iden(),
            Elements::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Elements {
    Table,
    Id,
    FidNum,
    IntegrationId,
    ProjectId,
    Item,
    Fid,
    Name,
    Latitude,
    Longitude,
    RemoteUpdatedAt,
    SyncedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Splitters {
    Table,
    Id,
    FidNum,
    IntegrationId,
    ProjectId,
    Fid,
    Name,
    Kind,
    Ratio,
    PortCount,
    BoxFid,
    ElementId,
    RemoteUpdatedAt,
    SyncedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Ports {
    Table,
    Id,
    FidNum,
    IntegrationId,
    ProjectId,
    SplitterId,
    Fid,
    Number,
    Status,
    CustomerContract,
    CustomerDocument,
    CustomerName,
    RemoteUpdatedAt,
    SyncedAt,
}
