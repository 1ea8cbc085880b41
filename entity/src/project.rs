//! The one project of an integration.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub integration_id: i64,
    pub remote_id: String,
    pub name: String,
    pub created_remotely: bool,
    pub linked_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
