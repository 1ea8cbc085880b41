//! One sync run of an integration.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub integration_id: i64,
    pub mode: SyncMode,
    pub trigger: SyncTrigger,
    pub status: SyncStatus,
    pub element_fid: Option<String>,
    pub allow_mass_deletion: bool,
    pub scheduled_for: Option<DateTimeUtc>,
    pub cursor_before: Option<DateTimeUtc>,
    pub cursor_after: Option<DateTimeUtc>,
    pub phase: Option<String>,
    pub current_item: Option<String>,
    pub processed: i64,
    pub total: Option<i64>,
    pub fetched: i64,
    pub created: i64,
    pub updated: i64,
    pub deleted: i64,
    pub unchanged: i64,
    pub orphaned: i64,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub instance_id: Option<String>,
    pub heartbeat_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// Grows with every change of the row: the order of its progress events.
    pub seq: i64,
    /// The page of the current listing last written (0 before its first).
    pub page: i64,
    /// Pages the current listing has, when the platform said how many records it holds.
    pub pages: Option<i64>,
    /// Active bindings whose port carries another customer on the platform, as this run found.
    pub conflicts: i64,
    /// Records listed that the client could not read; never taken for deleted ones.
    pub unreadable: i64,
    /// Rows removed because their item was deselected.
    pub purged: i64,
    /// What a person should know of the run, one line each.
    pub warnings: Option<String>,
    /// Set by `cancelSync` on any instance; the executing instance stops when it reads it.
    pub cancel_requested: bool,
}

impl ActiveModelBehavior for ActiveModel {}

/// What a sync fetches and deletes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum SyncMode {
    /// Every record of the selected items; also deletes what the platform no longer has.
    #[sea_orm(string_value = "FULL")]
    Full,
    /// Records changed since the last successful run (with an overlap); deletes only records of
    /// deselected items.
    #[sea_orm(string_value = "INCREMENTAL")]
    Incremental,
    /// One box with its splitters and their ports (see `syncElement`).
    #[sea_orm(string_value = "ELEMENT")]
    Element,
}

/// Who started a run.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum SyncTrigger {
    /// `startSync` or `syncElement`.
    #[sea_orm(string_value = "MANUAL")]
    Manual,
    /// The schedule.
    #[sea_orm(string_value = "SCHEDULED")]
    Scheduled,
}

/// Where a run is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum SyncStatus {
    /// Never produced: a run is RUNNING from the moment it is accepted.
    #[sea_orm(string_value = "QUEUED")]
    #[graphql(
        deprecation = "Never produced: runs start RUNNING (there is no queue). Removed in schema 2 (docs/SCHEMA.md)."
    )]
    Queued,
    /// In progress.
    #[sea_orm(string_value = "RUNNING")]
    Running,
    /// Finished; the cursor moved.
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    /// Stopped by an error; the last good copy is intact.
    #[sea_orm(string_value = "FAILED")]
    Failed,
    /// Stopped on request or at shutdown; the last good copy is intact.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

impl SyncStatus {
    /// The statuses of a run that holds its integration (one at a time).
    pub const ACTIVE: [SyncStatus; 2] = [SyncStatus::Queued, SyncStatus::Running];
}

crate::as_stored!(SyncMode, SyncTrigger, SyncStatus);
