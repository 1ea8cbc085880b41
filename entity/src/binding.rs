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
    pub status: BindingStatus,
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
    /// What a sync found on the port when it disagrees with this binding.
    pub conflict_contract: Option<String>,
    pub conflict_document: Option<String>,
    pub conflict_seen_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}

/// Where a binding is in its life.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum BindingStatus {
    /// Created; holds the port; not yet pushed.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Confirmed; pushed (or being pushed) to the platform.
    #[sea_orm(string_value = "CONFIRMED")]
    Confirmed,
    /// Released after confirmation; the port was freed on the platform.
    #[sea_orm(string_value = "RELEASED")]
    Released,
    /// Cancelled before confirmation.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    /// Its port, splitter or box disappeared; see `snapshot`, then rebind or release.
    #[sea_orm(string_value = "ORPHANED")]
    Orphaned,
}

impl BindingStatus {
    /// The statuses that hold a port.
    pub const ACTIVE: [BindingStatus; 2] = [BindingStatus::Pending, BindingStatus::Confirmed];
}

crate::as_stored!(BindingStatus);
