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
    /// The round that holds the delivery while it is in flight; settling checks it.
    pub claim_token: Option<String>,
    /// When it was first attempted: the give-up horizon counts from here.
    pub first_attempt_at: Option<DateTimeUtc>,
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
    /// Refused by the platform, or given up (see `lastError`); `retryPush` queues the binding's
    /// current state again.
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Replaced by a newer delivery of the same binding and port before it went out (or retried).
    #[sea_orm(string_value = "SUPERSEDED")]
    Superseded,
    /// Not written, as nothing of ours was there to write over: a removal of a port that no
    /// longer carries this customer on the platform (`lastError` says what it carries).
    #[sea_orm(string_value = "SKIPPED")]
    Skipped,
}

crate::as_stored!(PushAction, PushStatus);
