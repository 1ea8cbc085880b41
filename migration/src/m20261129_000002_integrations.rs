//! Integrations with mapping platforms, their one project, the element selection and the
//! history of every change.
//!
//! The platform password is stored as AES-GCM ciphertext (nonce prepended) in
//! `password_ciphertext`; the row id is the associated data, so a ciphertext copied to another row
//! does not decrypt.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261129_000001_access::ApiKeys;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Integrations::Table)
                    .col(big_pk_auto(Integrations::Id))
                    .col(string_uniq(Integrations::Name))
                    .col(string(Integrations::Gateway))
                    .col(string(Integrations::ApiUrl))
                    .col(string(Integrations::Username))
                    .col(blob_null(Integrations::PasswordCiphertext))
                    .col(string_uniq(Integrations::Key))
                    .col(boolean(Integrations::Active))
                    .col(string(Integrations::ScheduleCron))
                    .col(string(Integrations::ScheduleTimezone))
                    .col(timestamp_with_time_zone(Integrations::CreatedAt))
                    .col(timestamp_with_time_zone(Integrations::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        // One project per integration: the unique key on integration_id says so.
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(big_pk_auto(Projects::Id))
                    .col(big_integer_uniq(Projects::IntegrationId))
                    .col(string(Projects::RemoteId))
                    .col(string(Projects::Name))
                    .col(boolean(Projects::CreatedRemotely))
                    .col(timestamp_with_time_zone(Projects::LinkedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Projects::Table, Projects::IntegrationId)
                            .to(Integrations::Table, Integrations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // The selected items of an integration. `cursor` is the platform clock at the start of
        // the last successful listing of that item; NULL means the next run lists it in full.
        manager
            .create_table(
                Table::create()
                    .table(ElementSelections::Table)
                    .col(big_integer(ElementSelections::IntegrationId))
                    .col(string(ElementSelections::Item))
                    .col(timestamp_with_time_zone_null(ElementSelections::Cursor))
                    .primary_key(
                        Index::create()
                            .col(ElementSelections::IntegrationId)
                            .col(ElementSelections::Item),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ElementSelections::Table, ElementSelections::IntegrationId)
                            .to(Integrations::Table, Integrations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(HistoryEntries::Table)
                    .col(big_pk_auto(HistoryEntries::Id))
                    .col(big_integer_null(HistoryEntries::IntegrationId))
                    .col(big_integer_null(HistoryEntries::ApiKeyId))
                    .col(string(HistoryEntries::Actor))
                    .col(string(HistoryEntries::Action))
                    .col(text(HistoryEntries::Summary))
                    .col(json_null(HistoryEntries::Before))
                    .col(json_null(HistoryEntries::After))
                    .col(timestamp_with_time_zone(HistoryEntries::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(HistoryEntries::Table, HistoryEntries::IntegrationId)
                            .to(Integrations::Table, Integrations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(HistoryEntries::Table, HistoryEntries::ApiKeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(crate::index(
                "idx_history_integration",
                HistoryEntries::Table,
                [HistoryEntries::IntegrationId, HistoryEntries::Id],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            HistoryEntries::Table.into_iden(),
            ElementSelections::Table.into_iden(),
            Projects::Table.into_iden(),
            Integrations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub enum Integrations {
    Table,
    Id,
    Name,
    Gateway,
    ApiUrl,
    Username,
    PasswordCiphertext,
    Key,
    Active,
    ScheduleCron,
    ScheduleTimezone,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
pub enum Projects {
    Table,
    Id,
    IntegrationId,
    RemoteId,
    Name,
    CreatedRemotely,
    LinkedAt,
}

#[derive(DeriveIden)]
enum ElementSelections {
    Table,
    IntegrationId,
    Item,
    Cursor,
}

#[derive(DeriveIden)]
enum HistoryEntries {
    Table,
    Id,
    IntegrationId,
    ApiKeyId,
    Actor,
    Action,
    Summary,
    Before,
    After,
    CreatedAt,
}
