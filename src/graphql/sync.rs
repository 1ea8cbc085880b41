//! Sync runs: start, cancel, read.

use crate::graphql::scalars::DateTime;
use async_graphql::{Context, Object, SimpleObject, ID};

use entity::sync_run;

use crate::access::Role;
use crate::graphql::guard::{actor, RoleGuard};
use crate::graphql::ids::{self, INTEGRATION, SYNC_RUN};
use crate::graphql::integrations::Integration;
use crate::graphql::loaders::{loader_error, loaders, required};
use crate::graphql::paging;
use crate::graphql::state;
use crate::sync::{self as domain, Mode, RunRequest, Trigger};

pub use entity::sync_run::{SyncMode, SyncStatus, SyncTrigger};

/// What a run did.
#[derive(SimpleObject)]
pub struct SyncCounts {
    /// Records received from the platform.
    pub fetched: i64,
    /// Local records created.
    pub created: i64,
    /// Local records changed.
    pub updated: i64,
    /// Local records deleted (gone from the platform, or of deselected items).
    pub deleted: i64,
    /// Records received that were already up to date.
    pub unchanged: i64,
    /// Bindings orphaned because their port disappeared.
    pub orphaned: i64,
    /// Active bindings whose port carries another customer on the platform.
    pub conflicts: i64,
    /// Records the platform listed that could not be read (see `warnings`): kept as they
    /// were locally, never taken for deleted ones.
    pub unreadable: i64,
    /// Local records deleted because their item was deselected (included in `deleted`).
    pub purged: i64,
}

/// Why a run failed.
#[derive(SimpleObject)]
pub struct SyncError {
    /// Stable code: `PLATFORM_UNAVAILABLE`, `PLATFORM_AUTH`, `MASS_DELETION_GUARD`,
    /// `INSTANCE_LOST`, `CANCELLED`, `INACTIVE_INTEGRATION`, `INTERNAL`, ...
    pub code: crate::graphql::scalars::ErrorCode,
    /// For a person.
    pub message: String,
}

/// Where a run is, as its row says.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum SyncRunPhase {
    /// Queued or starting.
    Starting,
    /// Deleting the records of deselected items.
    Purging,
    /// Listing boxes, poles and POPs.
    Elements,
    /// Listing splitters.
    Splitters,
    /// Listing ports.
    Ports,
    /// Deleting what the platform no longer has.
    Deleting,
    /// Ended (see `status`).
    Done,
}

impl SyncRunPhase {
    /// The phase of a run in `status` whose row names `step`.
    pub fn of(status: SyncStatus, step: Option<&str>) -> SyncRunPhase {
        if !SyncStatus::ACTIVE.contains(&status) {
            return SyncRunPhase::Done;
        }
        step.and_then(crate::graphql::scalars::enum_named)
            .unwrap_or(SyncRunPhase::Starting)
    }
}

/// What a run is listing.
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum SyncItem {
    /// Caixas de terminação óptica.
    Cto,
    /// Caixas de emenda óptica.
    Ceo,
    /// Points of presence.
    Pop,
    /// Poles.
    Pole,
    /// Splitters (every kind).
    Splitter,
    /// Ports of splitters.
    Port,
}

impl SyncItem {
    /// The item a run's row names, if one of these.
    pub fn parse(item: Option<&str>) -> Option<SyncItem> {
        crate::graphql::scalars::enum_named(item?)
    }
}

/// Where a running run is.
#[derive(SimpleObject)]
pub struct SyncPhase {
    /// The step it is at.
    pub phase: SyncRunPhase,
    /// The item being listed; null between listings.
    pub item: Option<SyncItem>,
    /// Records processed so far.
    pub processed: i64,
    /// Records the listings started so far announced.
    pub total: Option<i64>,
}

/// One sync run of an integration.
pub struct SyncRun(pub sync_run::Model);

/// One sync run of an integration.
#[Object]
impl SyncRun {
    /// Opaque id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(SYNC_RUN, self.0.id)
    }
    /// The integration synced.
    async fn integration(&self, ctx: &Context<'_>) -> async_graphql::Result<Integration> {
        let integration = loaders(ctx)?
            .integration
            .load_one(self.0.integration_id)
            .await
            .map_err(loader_error)?;
        required(integration, INTEGRATION, self.0.integration_id).map(Integration)
    }
    /// What the run fetches and deletes.
    async fn mode(&self) -> SyncMode {
        self.0.mode
    }
    /// Who started it.
    async fn trigger(&self) -> SyncTrigger {
        self.0.trigger
    }
    /// Where it is.
    async fn status(&self) -> SyncStatus {
        self.0.status
    }
    /// The box of an ELEMENT run.
    async fn element_fid(&self) -> Option<&str> {
        self.0.element_fid.as_deref()
    }
    /// True when a full sync was allowed to delete more than the mass-deletion share.
    async fn allow_mass_deletion(&self) -> bool {
        self.0.allow_mass_deletion
    }
    /// The schedule slot of a scheduled run.
    async fn scheduled_for(&self) -> Option<DateTime> {
        self.0.scheduled_for.map(DateTime)
    }
    /// When it started (runs start RUNNING: there is no queue).
    async fn started_at(&self) -> DateTime {
        DateTime(self.0.started_at.unwrap_or(self.0.created_at))
    }
    /// When it ended.
    async fn finished_at(&self) -> Option<DateTime> {
        self.0.finished_at.map(DateTime)
    }
    /// The cursor (platform clock) the run started from; null when it listed in full.
    async fn cursor_before(&self) -> Option<DateTime> {
        self.0.cursor_before.map(DateTime)
    }
    /// The cursor after a successful run: the platform clock at its start.
    async fn cursor_after(&self) -> Option<DateTime> {
        self.0.cursor_after.map(DateTime)
    }
    /// What it did so far.
    async fn counts(&self) -> SyncCounts {
        SyncCounts {
            fetched: self.0.fetched,
            created: self.0.created,
            updated: self.0.updated,
            deleted: self.0.deleted,
            unchanged: self.0.unchanged,
            orphaned: self.0.orphaned,
            conflicts: self.0.conflicts,
            unreadable: self.0.unreadable,
            purged: self.0.purged,
        }
    }
    /// What a person should know of the run, one line each: records that could not be read
    /// (feature, fid and field), deletions skipped because of them. At most 21 lines: the
    /// first 20, then one saying the rest is in the log.
    async fn warnings(&self) -> Vec<&str> {
        self.0
            .warnings
            .as_deref()
            .map(|w| w.lines().collect())
            .unwrap_or_default()
    }
    /// Where it is now.
    async fn progress(&self) -> SyncPhase {
        SyncPhase {
            phase: SyncRunPhase::of(self.0.status, self.0.phase.as_deref()),
            item: SyncItem::parse(self.0.current_item.as_deref()),
            processed: self.0.processed,
            total: self.0.total,
        }
    }
    /// Why it failed or was cancelled; null otherwise.
    async fn error(&self) -> Option<SyncError> {
        Some(SyncError {
            code: crate::graphql::scalars::ErrorCode::parse(self.0.error_code.as_deref()?),
            message: self.0.error_message.clone().unwrap_or_default(),
        })
    }
    /// When the instance running it last proved alive (for an ended run, its last beat).
    async fn heartbeat_at(&self) -> DateTime {
        DateTime(
            self.0
                .heartbeat_at
                .or(self.0.started_at)
                .unwrap_or(self.0.created_at),
        )
    }
}

crate::connection_type!(SyncRunConnection, SyncRunEdge, SyncRun, "sync runs");

/// Sync queries.
#[derive(Default)]
pub struct SyncQuery;

/// Sync queries.
#[Object]
impl SyncQuery {
    /// The runs of an integration, newest first.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::connection_cost(paging::Args::size(first, last), child_complexity, false)"
    )]
    pub(crate) async fn sync_runs(
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
    ) -> async_graphql::Result<SyncRunConnection> {
        let request = paging::request(
            "syncRuns",
            paging::Args {
                first,
                after,
                last,
                before,
            },
        )?;
        let id = ids::decode(INTEGRATION, &integration_id)?;
        let db = &state(ctx)?.db;
        crate::integrations::find(db, id).await?;
        let page = domain::page(db, id, request).await?;
        Ok(paging::connection("syncRuns", page, |r| r.id, SyncRun))
    }

    /// One run by id; null with a `NOT_FOUND` error when there is none.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::lookup_cost(child_complexity)"
    )]
    async fn sync_run(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the run.")] id: ID,
    ) -> async_graphql::Result<Option<SyncRun>> {
        let id = ids::decode(SYNC_RUN, &id)?;
        Ok(Some(SyncRun(domain::find(&state(ctx)?.db, id).await?)))
    }
}

/// Sync mutations.
#[derive(Default)]
pub struct SyncMutation;

/// Sync mutations.
#[Object]
impl SyncMutation {
    /// Starts a FULL or INCREMENTAL sync (OPERATOR) and returns at once with the RUNNING run;
    /// follow it with `syncRun`. One run per integration at a time: a second start is
    /// `SYNC_ALREADY_RUNNING` with the running run's id in `extensions.runId`. The first run of a
    /// project is always FULL.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn start_sync(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(desc = "FULL or INCREMENTAL (ELEMENT runs start with `syncElement`).")]
        mode: SyncMode,
        #[graphql(
            desc = "Let a FULL sync delete more than the mass-deletion share of the project.",
            default = false
        )]
        allow_mass_deletion: bool,
    ) -> async_graphql::Result<SyncRun> {
        let app = state(ctx)?;
        let id = ids::decode(INTEGRATION, &integration_id)?;
        if mode == Mode::Element {
            return Err(crate::Error::validation(
                "mode",
                "ELEMENT runs start with syncElement(integrationId, fid)",
            )
            .into());
        }
        let run = domain::start(
            app,
            actor(ctx)?,
            id,
            RunRequest {
                mode,
                trigger: Trigger::Manual,
                allow_mass_deletion,
                element_fid: None,
                scheduled_for: None,
            },
        )
        .await?;
        Ok(SyncRun(run))
    }

    /// Syncs one box by its platform fid, with its splitters and their ports (OPERATOR);
    /// returns at once with the run.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn sync_element(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(desc = "Platform fid of the box.")] fid: String,
    ) -> async_graphql::Result<SyncRun> {
        let app = state(ctx)?;
        let id = ids::decode(INTEGRATION, &integration_id)?;
        let run = domain::start(
            app,
            actor(ctx)?,
            id,
            RunRequest {
                mode: Mode::Element,
                trigger: Trigger::Manual,
                allow_mass_deletion: false,
                element_fid: Some(crate::text::identifier(
                    "fid",
                    &fid,
                    crate::text::MAX_FID_CHARS,
                )?),
                scheduled_for: None,
            },
        )
        .await?;
        Ok(SyncRun(run))
    }

    /// Asks a run to stop (OPERATOR). It stops at the next page and is recorded CANCELLED; the
    /// last good copy and the cursor stay as they were.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn cancel_sync(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the run.")] run_id: ID,
    ) -> async_graphql::Result<SyncRun> {
        let app = state(ctx)?;
        let id = ids::decode(SYNC_RUN, &run_id)?;
        Ok(SyncRun(domain::cancel(app, actor(ctx)?, id).await?))
    }
}
