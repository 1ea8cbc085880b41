//! One change or run in the history of an integration.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "history_entries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub integration_id: Option<i64>,
    pub api_key_id: Option<i64>,
    /// Who did it: a key name, `scheduler` or `system`.
    pub actor: String,
    pub action: String,
    pub summary: String,
    pub before: Option<Json>,
    pub after: Option<Json>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
