//! A queued write to the platform for a binding.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "push_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub binding_id: i64,
    pub integration_id: i64,
    pub action: PushAction,
    pub payload: Json,
    pub status: PushStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub delivered_at: Option<DateTimeUtc>,
    /// The platform fid of the port it writes; deliveries go out in order per port.
    pub port_fid: Option<String>,
}

impl ActiveModelBehavior for ActiveModel {}

/// What a delivery writes on the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum PushAction {
    /// The customer (status OCUPADA).
    #[sea_orm(string_value = "PUSH")]
    Push,
    /// No customer (status LIVRE, customer fields cleared).
    #[sea_orm(string_value = "REMOVE")]
    Remove,
}

/// Where a delivery is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum PushStatus {
    /// Waiting for its turn or for its next attempt.
    #[sea_orm(string_value = "PENDING")]
    Pending,
    /// Written on the platform.
    #[sea_orm(string_value = "DELIVERED")]
    Delivered,
    /// Refused by the platform (see `lastError`); `retryPush` queues it again.
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

crate::as_stored!(PushAction, PushStatus);
