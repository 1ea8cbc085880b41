//! A synced splitter output port.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ports")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub integration_id: i64,
    pub project_id: i64,
    pub splitter_id: i64,
    pub fid: String,
    /// The fid as a number, when it is one (listing order).
    pub fid_num: Option<i64>,
    pub number: i32,
    /// `FREE`, `OCCUPIED`, `RESERVED` or `DAMAGED`.
    pub status: String,
    pub customer_contract: Option<String>,
    pub customer_document: Option<String>,
    pub customer_name: Option<String>,
    pub remote_updated_at: Option<DateTimeUtc>,
    pub synced_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
