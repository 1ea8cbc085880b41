//! The history of an integration.

use crate::graphql::scalars::DateTime;
use async_graphql::{Context, Json, Object, ID};

use entity::history_entry;

use crate::access::Role;
use crate::graphql::guard::RoleGuard;
use crate::graphql::ids::{self, HISTORY_ENTRY, INTEGRATION};
use crate::graphql::paging;
use crate::graphql::state;

/// One change or run in an integration's history.
pub struct HistoryEntry(pub history_entry::Model);

/// What a history entry records.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::history::Action")]
pub enum HistoryAction {
    /// `createIntegration`.
    IntegrationCreated,
    /// `updateIntegration` (a new password shows as `hasPassword`, never its value).
    IntegrationUpdated,
    /// `setIntegrationActive(active: true)`.
    IntegrationActivated,
    /// `setIntegrationActive(active: false)`.
    IntegrationDeactivated,
    /// `testIntegration`, with its outcome.
    IntegrationTested,
    /// `deleteIntegration`: the integration and its data are gone, this history stays.
    IntegrationDeleted,
    /// `setProject`.
    ProjectLinked,
    /// `unlinkProject`.
    ProjectUnlinked,
    /// `setElementSelection`.
    SelectionChanged,
    /// A sync run began.
    SyncStarted,
    /// A sync run ended well.
    SyncSucceeded,
    /// A sync run failed (the last good copy is intact).
    SyncFailed,
    /// A sync run was cancelled.
    SyncCancelled,
    /// `bindPort`.
    BindingCreated,
    /// `confirmBinding`.
    BindingConfirmed,
    /// `cancelBinding`.
    BindingCancelled,
    /// `releaseBinding`.
    BindingReleased,
    /// `rebindBinding`.
    BindingRebound,
    /// A sync found the binding's port gone.
    BindingOrphaned,
    /// `retryPush`.
    BindingRetried,
}

crate::connection_type!(
    HistoryEntryConnection,
    HistoryEntryEdge,
    HistoryEntry,
    "history entries"
);

impl HistoryEntry {
    /// A snapshot as the caller may read it: a binding's personal data masked for a key
    /// without `personalData`.
    fn shown(&self, ctx: &Context<'_>, mut value: serde_json::Value) -> serde_json::Value {
        if self.0.action.starts_with("binding.") && !crate::graphql::guard::personal_data(ctx) {
            crate::access::personal::snapshot(&mut value);
        }
        value
    }
}

/// One change or run in an integration's history.
#[Object]
impl HistoryEntry {
    /// Opaque id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(HISTORY_ENTRY, self.0.id)
    }
    /// What happened.
    async fn action(&self) -> async_graphql::Result<HistoryAction> {
        crate::history::Action::parse(&self.0.action)
            .map(Into::into)
            .ok_or_else(|| {
                crate::Error::Internal(anyhow::anyhow!(
                    "unknown history action {:?}",
                    self.0.action
                ))
                .into()
            })
    }
    /// One line for a person.
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    /// Who did it: the API key's name, or `scheduler`/`system`.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// The state before the change, without secrets (a binding's document, name and
    /// address masked for a key without `personalData`).
    async fn before(&self, ctx: &Context<'_>) -> Option<Json<serde_json::Value>> {
        self.0.before.clone().map(|v| Json(self.shown(ctx, v)))
    }
    /// The state after the change, without secrets (masked as `before`).
    async fn after(&self, ctx: &Context<'_>) -> Option<Json<serde_json::Value>> {
        self.0.after.clone().map(|v| Json(self.shown(ctx, v)))
    }
    /// When it happened.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

/// History queries.
#[derive(Default)]
pub struct HistoryQuery;

/// History queries.
#[Object]
impl HistoryQuery {
    /// The history of an integration, newest first. A deleted integration's history stays
    /// readable, its deletion the newest entry.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::connection_cost(paging::Args::size(first, last), child_complexity, false)"
    )]
    pub(crate) async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(
            desc = "Page size, at most 500; left out when reading backward with `last`.",
            default = 50
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(
            desc = "Page size reading backward: the last edges before `before` (or of \
                          the list), at most 500."
        )]
        last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page (with `last`).")]
        before: Option<String>,
    ) -> async_graphql::Result<HistoryEntryConnection> {
        let request = paging::request(
            "history",
            paging::Args {
                first,
                after,
                last,
                before,
            },
        )?;
        let id = ids::decode(INTEGRATION, &integration_id)?;
        let db = &state(ctx)?.db;
        if let Err(missing) = crate::integrations::find(db, id).await {
            if !crate::history::exists(db, id).await? {
                return Err(missing.into());
            }
        }
        let page = crate::history::page(db, id, request).await?;
        Ok(paging::connection("history", page, |e| e.id, HistoryEntry))
    }
}
