//! `syncProgress`: live progress of sync runs over WebSocket, from the domain's event bus.

use crate::graphql::scalars::DateTime;
use async_graphql::{Context, Enum, Object, Subscription, ID};
use futures::{Stream, StreamExt};

use crate::access::Role;
use crate::events::{self, Delivery, Filter};
use crate::graphql::guard::RoleGuard;
use crate::graphql::ids::{self, INTEGRATION, SYNC_RUN};
use crate::graphql::state;
use crate::Error;

use super::sync::{SyncMode, SyncRun, SyncRunPhase, SyncStatus};

/// Where a run is, as `syncProgress` tells it.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::events::Phase")]
pub enum SyncProgressPhase {
    /// Accepted, nothing listed yet.
    Starting,
    /// A listing has started; no page of it written yet.
    Listing,
    /// Pages of a listing are being written.
    Applying,
    /// Local records gone from the platform are being deleted.
    Deleting,
    /// The run ended (see `status`).
    Finished,
}

/// One event of a run: its state after a change.
pub struct SyncProgress(Delivery);

/// One event of a run: its state after a change.
#[Object]
impl SyncProgress {
    /// The run.
    async fn run_id(&self) -> ID {
        ids::encode(SYNC_RUN, self.0.progress.run_id)
    }
    /// Its integration.
    async fn integration_id(&self) -> ID {
        ids::encode(INTEGRATION, self.0.progress.integration_id)
    }
    /// Grows with every change of the run: events of one run arrive in this order, and a gap
    /// means states were coalesced (relayed from another instance) or skipped (`lagged`).
    async fn sequence(&self) -> i64 {
        self.0.progress.seq
    }
    /// True when this subscriber fell behind and missed events; this event is then the run's
    /// current state, read again from the database.
    async fn lagged(&self) -> bool {
        self.0.lagged
    }
    /// What the run fetches and deletes.
    async fn mode(&self) -> SyncMode {
        self.0.progress.mode
    }
    /// Running, or how it ended.
    async fn status(&self) -> SyncStatus {
        self.0.progress.status
    }
    /// Where it is, in the words of events only.
    #[graphql(
        deprecation = "Use `runPhase`, the vocabulary `SyncRun.progress.phase` shares. Removed in schema 2 (docs/SCHEMA.md)."
    )]
    async fn phase(&self) -> SyncProgressPhase {
        self.0.progress.phase.into()
    }
    /// Where it is, in the run's own words (`SyncRun.progress.phase`): the item being listed
    /// gives the listing's phase, `DONE` once it ended.
    async fn run_phase(&self) -> SyncRunPhase {
        SyncRunPhase::of(self.0.progress.status, self.0.progress.step.as_deref())
    }
    /// The run as it is now (the same object as `syncRun`, so a client cache updates it).
    async fn run(&self, ctx: &Context<'_>) -> async_graphql::Result<SyncRun> {
        let run = crate::sync::find(&state(ctx)?.db, self.0.progress.run_id).await?;
        Ok(SyncRun(run))
    }
    /// The item being listed (`CTO`, `SPLITTER`, `PORT`, ...).
    async fn item(&self) -> Option<super::sync::SyncItem> {
        super::sync::SyncItem::parse(self.0.progress.item.as_deref())
    }
    /// The page of the current listing last written (0 before its first).
    async fn page(&self) -> i64 {
        self.0.progress.page
    }
    /// Pages of the current listing, when the platform said how many records it holds.
    async fn pages(&self) -> Option<i64> {
        self.0.progress.pages
    }
    /// Records processed so far.
    async fn processed(&self) -> i64 {
        self.0.progress.processed
    }
    /// Records the listings started so far announced.
    async fn total(&self) -> Option<i64> {
        self.0.progress.total
    }
    /// Local records created.
    async fn created(&self) -> i64 {
        self.0.progress.created
    }
    /// Local records changed.
    async fn updated(&self) -> i64 {
        self.0.progress.updated
    }
    /// Local records deleted.
    async fn deleted(&self) -> i64 {
        self.0.progress.deleted
    }
    /// Records already up to date.
    async fn unchanged(&self) -> i64 {
        self.0.progress.unchanged
    }
    /// Bindings orphaned because their port disappeared.
    async fn orphaned(&self) -> i64 {
        self.0.progress.orphaned
    }
    /// For a person: where the run is, or why it ended as it did.
    async fn message(&self) -> Option<&str> {
        self.0.progress.message.as_deref()
    }
    /// When the run's state was written.
    async fn at(&self) -> DateTime {
        self.0.progress.at.into()
    }
}

/// Sync subscriptions.
#[derive(Default)]
pub struct ProgressSubscription;

/// Sync subscriptions.
#[Subscription]
impl ProgressSubscription {
    /// Live progress of sync runs (VIEWER). Give `runId` to follow one run: the stream starts
    /// with its current state and completes after its terminal event. Give `integrationId` to
    /// follow every run of an integration, across runs, starting with the runs active now. At
    /// least one is required; both narrow together.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn sync_progress(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this integration's runs.")] integration_id: Option<ID>,
        #[graphql(desc = "Only this run; the stream ends after its terminal event.")]
        run_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<SyncProgress>>> {
        let filter = Filter {
            integration_id: integration_id
                .map(|id| ids::decode(INTEGRATION, &id))
                .transpose()?,
            run_id: run_id.map(|id| ids::decode(SYNC_RUN, &id)).transpose()?,
        };
        if filter.integration_id.is_none() && filter.run_id.is_none() {
            return Err(Error::validation(
                "integrationId",
                "syncProgress needs integrationId, runId or both",
            )
            .into());
        }
        let app = state(ctx)?;
        // Unknown ids are NOT_FOUND now, not an endless empty stream.
        if let Some(run) = filter.run_id {
            crate::sync::find(&app.db, run).await?;
        }
        if let Some(integration) = filter.integration_id {
            crate::integrations::find(&app.db, integration).await?;
        }
        Ok(
            events::follow(app.db.clone(), app.events.clone(), filter).map(|delivery| {
                delivery
                    .map(SyncProgress)
                    .map_err(async_graphql::Error::from)
            }),
        )
    }
}
