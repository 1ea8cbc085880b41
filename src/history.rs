//! The history of every change and run of an integration.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, QueryFilter};
use serde_json::Value;

use entity::history_entry;

use crate::access::Actor;
use crate::store::paging::{Page, PageRequest};
use crate::Result;

/// What an entry records; stored as its dotted name ([`Action::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    IntegrationCreated,
    IntegrationUpdated,
    IntegrationActivated,
    IntegrationDeactivated,
    IntegrationTested,
    IntegrationDeleted,
    ProjectLinked,
    ProjectUnlinked,
    SelectionChanged,
    SyncStarted,
    SyncSucceeded,
    SyncFailed,
    SyncCancelled,
    BindingCreated,
    BindingConfirmed,
    BindingCancelled,
    BindingReleased,
    BindingRebound,
    BindingOrphaned,
    BindingRetried,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 20] = [
        Action::IntegrationCreated,
        Action::IntegrationUpdated,
        Action::IntegrationActivated,
        Action::IntegrationDeactivated,
        Action::IntegrationTested,
        Action::IntegrationDeleted,
        Action::ProjectLinked,
        Action::ProjectUnlinked,
        Action::SelectionChanged,
        Action::SyncStarted,
        Action::SyncSucceeded,
        Action::SyncFailed,
        Action::SyncCancelled,
        Action::BindingCreated,
        Action::BindingConfirmed,
        Action::BindingCancelled,
        Action::BindingReleased,
        Action::BindingRebound,
        Action::BindingOrphaned,
        Action::BindingRetried,
    ];

    /// The stored name: `integration.created`, `sync.succeeded`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Action::IntegrationCreated => "integration.created",
            Action::IntegrationUpdated => "integration.updated",
            Action::IntegrationActivated => "integration.activated",
            Action::IntegrationDeactivated => "integration.deactivated",
            Action::IntegrationTested => "integration.tested",
            Action::IntegrationDeleted => "integration.deleted",
            Action::ProjectLinked => "project.linked",
            Action::ProjectUnlinked => "project.unlinked",
            Action::SelectionChanged => "selection.changed",
            Action::SyncStarted => "sync.started",
            Action::SyncSucceeded => "sync.succeeded",
            Action::SyncFailed => "sync.failed",
            Action::SyncCancelled => "sync.cancelled",
            Action::BindingCreated => "binding.created",
            Action::BindingConfirmed => "binding.confirmed",
            Action::BindingCancelled => "binding.cancelled",
            Action::BindingReleased => "binding.released",
            Action::BindingRebound => "binding.rebound",
            Action::BindingOrphaned => "binding.orphaned",
            Action::BindingRetried => "binding.retried",
        }
    }

    /// The action of a stored name.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// How a run that ended with `status` is recorded (`None` while it runs).
    pub fn sync_ended(status: entity::sync_run::SyncStatus) -> Option<Action> {
        use entity::sync_run::SyncStatus;
        match status {
            SyncStatus::Succeeded => Some(Action::SyncSucceeded),
            SyncStatus::Failed => Some(Action::SyncFailed),
            SyncStatus::Cancelled => Some(Action::SyncCancelled),
            SyncStatus::Queued | SyncStatus::Running => None,
        }
    }
}

/// Appends one entry. `before`/`after` must already be free of secrets.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    integration_id: Option<i64>,
    actor: &Actor,
    action: Action,
    summary: impl Into<String>,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    history_entry::ActiveModel {
        integration_id: Set(integration_id),
        api_key_id: Set(actor.key_id),
        actor: Set(actor.name.clone()),
        action: Set(action.as_str().to_owned()),
        summary: Set(summary.into()),
        before: Set(before),
        after: Set(after),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// One page of an integration's history, newest first.
pub async fn page<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    request: PageRequest,
) -> Result<Page<history_entry::Model>> {
    let select = <history_entry::Entity as sea_orm::EntityTrait>::find()
        .filter(history_entry::Column::IntegrationId.eq(integration_id));
    crate::store::paging::newest_first(db, select, history_entry::Column::Id, request).await
}

/// Whether an integration (deleted or not) has any history.
pub async fn exists<C: ConnectionTrait>(db: &C, integration_id: i64) -> Result<bool> {
    use sea_orm::PaginatorTrait;
    Ok(<history_entry::Entity as sea_orm::EntityTrait>::find()
        .filter(history_entry::Column::IntegrationId.eq(integration_id))
        .count(db)
        .await?
        > 0)
}
