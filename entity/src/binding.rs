//! A customer bound to a port; never deleted by a sync.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "bindings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub integration_id: i64,
    pub port_id: Option<i64>,
    /// `PENDING`, `CONFIRMED`, `RELEASED`, `CANCELLED` or `ORPHANED`.
    pub status: String,
    /// CPF or CNPJ, digits only.
    pub document: String,
    pub contract: String,
    pub name: String,
    pub address: Option<String>,
    pub plan: Option<String>,
    pub snapshot_box_fid: Option<String>,
    pub snapshot_box_name: Option<String>,
    pub snapshot_splitter_fid: Option<String>,
    pub snapshot_port_fid: Option<String>,
    pub snapshot_port_number: Option<i32>,
    pub conflict_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub confirmed_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    pub orphaned_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
