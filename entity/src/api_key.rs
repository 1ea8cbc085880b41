//! An API key: only its SHA-256 digest is stored.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    /// `ADMIN`, `OPERATOR` or `VIEWER`.
    pub role: String,
    /// The first characters of the key, enough to tell keys apart.
    pub prefix: String,
    #[sea_orm(unique)]
    pub hash: String,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    /// Past this time the key is refused like an unknown one; never when NULL.
    pub expires_at: Option<DateTimeUtc>,
    /// Whether the key reads customers' documents and names (LGPD); masked when not.
    pub personal_data: bool,
}

impl ActiveModelBehavior for ActiveModel {}
