//! An integration with a mapping platform.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "integrations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    /// The platform kind, e.g. `GEOSITE`.
    pub gateway: String,
    pub api_url: String,
    pub username: String,
    /// AES-GCM nonce followed by ciphertext; the row id is the associated data.
    pub password_ciphertext: Option<Vec<u8>>,
    /// Public identifier sent as `origem` with every push.
    #[sea_orm(unique)]
    pub key: String,
    pub active: bool,
    pub schedule_cron: String,
    pub schedule_timezone: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
