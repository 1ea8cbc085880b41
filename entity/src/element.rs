//! A synced box or point (CTO, CEO, POP, POLE).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "elements")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub integration_id: i64,
    pub project_id: i64,
    pub item: crate::element_item::ElementItem,
    pub fid: String,
    /// The fid as a number, when it is one (listing order).
    pub fid_num: Option<i64>,
    pub name: String,
    /// The name without accents, lowercased (Unicode): what searches compare against.
    pub name_folded: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub remote_updated_at: Option<DateTimeUtc>,
    pub synced_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
