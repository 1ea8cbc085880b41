//! One sync run of an integration.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub integration_id: i64,
    /// `FULL`, `INCREMENTAL` or `ELEMENT`.
    pub mode: String,
    /// `MANUAL` or `SCHEDULED`.
    pub trigger: String,
    /// `QUEUED`, `RUNNING`, `SUCCEEDED`, `FAILED` or `CANCELLED`.
    pub status: String,
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
}

impl ActiveModelBehavior for ActiveModel {}
