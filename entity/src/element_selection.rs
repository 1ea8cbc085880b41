//! A selected element item of an integration, with its sync cursor.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "element_selections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub integration_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub item: crate::element_item::ElementItem,
    /// Platform clock at the start of the last successful listing; `None` means list in full.
    pub cursor: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
