//! A synced splitter.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Deserialize)]
#[sea_orm(table_name = "splitters")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub integration_id: i64,
    pub project_id: i64,
    pub fid: String,
    /// The fid as a number, when it is one (listing order).
    pub fid_num: Option<i64>,
    pub name: String,
    pub kind: SplitterKind,
    /// As the platform says it, e.g. `1:16`.
    pub ratio: String,
    pub port_count: i32,
    pub box_fid: Option<String>,
    pub element_id: Option<i64>,
    pub remote_updated_at: Option<DateTimeUtc>,
    pub synced_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}

/// What a splitter is for.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum SplitterKind {
    /// Splitter de atendimento: customers are bound to its ports.
    #[sea_orm(string_value = "SERVICE")]
    Service,
    /// Splitter de distribuição.
    #[sea_orm(string_value = "DISTRIBUTION")]
    Distribution,
}

crate::as_stored!(SplitterKind);
