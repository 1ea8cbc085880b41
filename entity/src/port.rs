//! A synced splitter output port.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Deserialize)]
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
    pub status: PortStatus,
    pub customer_contract: Option<String>,
    pub customer_document: Option<String>,
    pub customer_name: Option<String>,
    pub remote_updated_at: Option<DateTimeUtc>,
    pub synced_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}

/// State of a port on the platform.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum PortStatus {
    /// Livre.
    #[sea_orm(string_value = "FREE")]
    Free,
    /// Ocupada.
    #[sea_orm(string_value = "OCCUPIED")]
    Occupied,
    /// Reservada.
    #[sea_orm(string_value = "RESERVED")]
    Reserved,
    /// Danificada.
    #[sea_orm(string_value = "DAMAGED")]
    Damaged,
}

crate::as_stored!(PortStatus);
