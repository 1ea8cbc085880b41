//! The event bus: what happens to sync runs, told to whoever follows them, on this instance and,
//! on PostgreSQL, on every other instance (see [`relay`]).
//!
//! The bus carries snapshots of a run's row (`Progress`), each with the row's sequence number,
//! which grows with every write of the row. Publishing never waits: the `broadcast` channels of
//! the event's run, integration and of all runs ([`routes`]), each with a bounded buffer, take
//! the event (so an event wakes only the subscribers that want it), and a subscriber that falls behind loses the oldest events
//! rather than slowing the sync or growing memory; [`follow`] then tells it so (`lagged`) and
//! re-reads the current state from the database. The terminal state is in the row, so it is
//! never lost: whoever reads the row after the last write sees it.

mod bindings;
pub mod relay;
mod routes;

pub use bindings::{binding_events, BindingEvent};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use tokio::sync::broadcast;

use entity::sync_run::{self, SyncMode, SyncStatus};

use crate::Result;

/// Events of its route (run, integration or all) a subscriber may fall behind by before it is
/// told it lagged. Each is one `Arc`, so a route's buffer costs 16 bytes a slot whatever the
/// number of its subscribers.
pub const BUFFER: usize = 4096;

/// Where a run is, as subscribers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Accepted, nothing listed yet.
    Starting,
    /// A listing has started; no page of it written yet.
    Listing,
    /// Pages of a listing are being written.
    Applying,
    /// Local records gone from the platform are being deleted.
    Deleting,
    /// The run ended (see its status).
    Finished,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Starting => "STARTING",
            Phase::Listing => "LISTING",
            Phase::Applying => "APPLYING",
            Phase::Deleting => "DELETING",
            Phase::Finished => "FINISHED",
        })
    }
}

/// A run's state at one point of its life: a snapshot of its row.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// The run.
    pub run_id: i64,
    /// Its integration.
    pub integration_id: i64,
    /// Grows with every change of the run; events of a run are delivered in this order.
    pub seq: i64,
    /// Full, incremental or one box.
    pub mode: SyncMode,
    /// Queued, running or how it ended.
    pub status: SyncStatus,
    /// Where it is.
    pub phase: Phase,
    /// The row's own phase (`ELEMENTS`, `PORTS`, `DELETING`, ...), as `SyncRun` tells it.
    pub step: Option<String>,
    /// The item being listed (`CTO`, `SPLITTER`, `PORT`, ...).
    pub item: Option<String>,
    /// The page of the current listing last written (0 before the first).
    pub page: i64,
    /// Pages of the current listing, when known.
    pub pages: Option<i64>,
    /// Records processed so far.
    pub processed: i64,
    /// Records the listings started so far announced.
    pub total: Option<i64>,
    /// Local records created.
    pub created: i64,
    /// Local records changed.
    pub updated: i64,
    /// Local records deleted.
    pub deleted: i64,
    /// Records already up to date.
    pub unchanged: i64,
    /// Bindings orphaned.
    pub orphaned: i64,
    /// For a person: where the run is, or why it ended as it did.
    pub message: Option<String>,
    /// When the row was last written.
    pub at: DateTime<Utc>,
}

impl Progress {
    /// The snapshot of a run's row.
    pub fn of_run(row: &sync_run::Model) -> Progress {
        let phase = if !SyncStatus::ACTIVE.contains(&row.status) {
            Phase::Finished
        } else {
            match row.phase.as_deref() {
                Some("PURGING" | "DELETING") => Phase::Deleting,
                Some("ELEMENTS" | "SPLITTERS" | "PORTS") if row.page > 0 => Phase::Applying,
                Some("ELEMENTS" | "SPLITTERS" | "PORTS") => Phase::Listing,
                _ => Phase::Starting,
            }
        };
        let message = match (phase, &row.error_message) {
            (_, Some(m)) => Some(m.clone()),
            (Phase::Finished, None) => Some(format!("{}", row.status).to_lowercase()),
            (Phase::Applying, None) => Some(match (row.current_item.as_deref(), row.pages) {
                (Some(item), Some(pages)) => format!("{item}: page {} of {pages}", row.page),
                (Some(item), None) => format!("{item}: page {}", row.page),
                _ => format!("page {}", row.page),
            }),
            (Phase::Listing, None) => row.current_item.as_ref().map(|i| format!("listing {i}")),
            (Phase::Deleting, None) => Some("deleting records gone from the platform".into()),
            (Phase::Starting, None) => None,
        };
        Progress {
            run_id: row.id,
            integration_id: row.integration_id,
            seq: row.seq,
            mode: row.mode,
            status: row.status,
            phase,
            step: row.phase.clone(),
            item: row.current_item.clone(),
            page: row.page,
            pages: row.pages,
            processed: row.processed,
            total: row.total,
            created: row.created,
            updated: row.updated,
            deleted: row.deleted,
            unchanged: row.unchanged,
            orphaned: row.orphaned,
            message,
            at: row
                .heartbeat_at
                .into_iter()
                .chain(row.finished_at)
                .chain(row.started_at)
                .max()
                .unwrap_or(row.created_at),
        }
    }

    /// True once the run has ended: nothing follows.
    pub fn is_terminal(&self) -> bool {
        self.phase == Phase::Finished
    }
}

/// What the bus says of API keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// This key (by id) was revoked or given another role.
    One(i64),
    /// Changes may have been missed (the connection that hears other instances was lost):
    /// any key may have changed.
    Any,
}

/// The in-process bus. One per instance, held in the state.
pub struct Bus {
    /// Run events, by run and by integration (see [`routes`]).
    runs: routes::Routes,
    bindings: broadcast::Sender<Arc<BindingEvent>>,
    /// Ids of API keys revoked or given another role, told by any instance (see
    /// [`relay::announce_key`]).
    keys: broadcast::Sender<KeyChange>,
    /// Ids of runs whose cancel was asked for, on any instance (PostgreSQL) or this one: the
    /// executing instance's heartbeat stops the run at once.
    cancels: broadcast::Sender<i64>,
    /// The last sequence number published per active run, so that an event relayed from another
    /// instance, or read late, never goes out after a newer one.
    last: Mutex<HashMap<i64, i64>>,
    /// Events subscribers lost by falling behind.
    dropped: AtomicU64,
    /// Where events also go to other instances (PostgreSQL), when set.
    outbound: Mutex<Option<relay::Outbound>>,
    /// Run subscriptions past their first read of the current state: from then on they see
    /// every event.
    following: AtomicU64,
}

/// Counts a run subscription in [`Bus::subscribers`] while it lives.
struct Following(Arc<Bus>);

impl Drop for Following {
    fn drop(&mut self) {
        self.0.following.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("routes", &self.runs.len())
            .finish_non_exhaustive()
    }
}

impl Default for Bus {
    fn default() -> Self {
        Bus::with_capacity(BUFFER)
    }
}

impl Bus {
    /// A bus whose subscribers may each fall `capacity` events behind.
    pub fn with_capacity(capacity: usize) -> Self {
        Bus {
            runs: routes::Routes::new(capacity),
            bindings: broadcast::channel(capacity.max(1)).0,
            keys: broadcast::channel(256).0,
            cancels: broadcast::channel(256).0,
            last: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
            outbound: Mutex::new(None),
            following: AtomicU64::new(0),
        }
    }

    /// Publishes the state of a run's row just written; never waits. Older or repeated states
    /// (by sequence number) are ignored.
    pub fn publish_run(&self, row: &sync_run::Model) {
        if self.deliver(Progress::of_run(row)) {
            if let Some(outbound) = &*self.outbound.lock().expect("bus lock") {
                outbound.send(relay::Note::Run(row.id, row.seq));
            }
        }
    }

    /// Delivers to this instance's subscribers; false when the event is not newer than the
    /// last one of its run.
    pub(crate) fn deliver(&self, progress: Progress) -> bool {
        {
            let mut last = self.last.lock().expect("bus lock");
            match last.get(&progress.run_id) {
                Some(seen) if *seen >= progress.seq => return false,
                _ => {}
            }
            // Ended runs stay in the map so that a late relay of an older state is still
            // dropped; the map is emptied when it gets large, which only forgets ended runs'
            // numbers for good once nothing relays them any more.
            if last.len() >= 10_000 {
                last.retain(|_, _| false);
            }
            last.insert(progress.run_id, progress.seq);
        }
        crate::metrics::get().events_published.inc();
        // No subscriber is not an error: nobody is following.
        self.runs.send(progress);
        true
    }

    /// Publishes a binding's state after a change of it or of its delivery (read with
    /// [`BindingEvent::read`] after the change committed); never waits.
    pub fn publish_binding(&self, event: BindingEvent) {
        let id = event.binding_id;
        self.deliver_binding(event);
        if let Some(outbound) = &*self.outbound.lock().expect("bus lock") {
            outbound.send(relay::Note::Binding(id));
        }
    }

    pub(crate) fn deliver_binding(&self, event: BindingEvent) {
        crate::metrics::get().events_published.inc();
        let _ = self.bindings.send(Arc::new(event));
    }

    /// Tells this instance's key holders that a key changed (revoked or given another role).
    pub(crate) fn deliver_key(&self, change: KeyChange) {
        let _ = self.keys.send(change);
    }

    /// Keys changed from now on, on any instance (PostgreSQL) or this one. A receiver that
    /// falls behind gets `Lagged`: it should then take it as [`KeyChange::Any`].
    pub fn key_changes(&self) -> broadcast::Receiver<KeyChange> {
        self.keys.subscribe()
    }

    /// Asks whichever instance executes the run to stop it (this one, or another through the
    /// relay on PostgreSQL).
    pub fn request_cancel(&self, run_id: i64) {
        self.deliver_cancel(run_id);
        if let Some(outbound) = &*self.outbound.lock().expect("bus lock") {
            outbound.send(relay::Note::Cancel(run_id));
        }
    }

    pub(crate) fn deliver_cancel(&self, run_id: i64) {
        let _ = self.cancels.send(run_id);
    }

    /// Runs whose cancel is asked for from now on. A receiver that falls behind gets `Lagged`
    /// and should read the stored request (`sync_runs.cancel_requested`).
    pub fn cancels(&self) -> broadcast::Receiver<i64> {
        self.cancels.subscribe()
    }

    /// Sends this instance's events to other instances too.
    pub(crate) fn set_outbound(&self, outbound: relay::Outbound) {
        *self.outbound.lock().expect("bus lock") = Some(outbound);
    }

    /// Events subscribers lost by falling behind, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Open subscriptions: of runs once they have read the current state (a run that starts
    /// after that is seen from its first event), and of bindings.
    pub fn subscribers(&self) -> usize {
        self.following.load(Ordering::Relaxed) as usize + self.bindings.receiver_count()
    }
}

/// Which runs a subscriber follows: one run, the runs of one integration, or both narrowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    /// Only this integration's runs.
    pub integration_id: Option<i64>,
    /// Only this run; the stream ends after its terminal event.
    pub run_id: Option<i64>,
}

impl Filter {
    fn admits(&self, p: &Progress) -> bool {
        self.integration_id.is_none_or(|i| i == p.integration_id)
            && self.run_id.is_none_or(|r| r == p.run_id)
    }
}

/// One item of a subscription.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The run's state.
    pub progress: Arc<Progress>,
    /// True when the subscriber fell behind and events were skipped before this one (which is
    /// then read from the database).
    pub lagged: bool,
}

/// The current state of the runs a filter names: the run, or the active runs of the integration.
/// `following` are runs the subscriber saw active, read again whatever their status so that a
/// subscriber that lagged still gets their end.
async fn current(
    db: &DatabaseConnection,
    filter: Filter,
    following: Vec<i64>,
) -> Result<Vec<sync_run::Model>> {
    use sea_orm::Condition;
    let mut select = sync_run::Entity::find();
    if let Some(run) = filter.run_id {
        select = select.filter(sync_run::Column::Id.eq(run));
    } else {
        select = select.filter(
            Condition::any()
                .add(sync_run::Column::Status.is_in(SyncStatus::ACTIVE))
                .add(sync_run::Column::Id.is_in(following)),
        );
    }
    if let Some(integration) = filter.integration_id {
        select = select.filter(sync_run::Column::IntegrationId.eq(integration));
    }
    Ok(select.order_by_asc(sync_run::Column::Id).all(db).await?)
}

/// Follows runs: first their current state read from the database (a joining or reconnecting
/// subscriber starts from there), then every newer event, in order per run. A stream narrowed
/// to one run ends after its terminal event; one for an integration goes on across runs.
pub fn follow(
    db: DatabaseConnection,
    bus: Arc<Bus>,
    filter: Filter,
) -> BoxStream<'static, Result<Delivery>> {
    Box::pin(async_stream::try_stream! {
        let metrics = crate::metrics::get();
        let _open = metrics.subscriptions.guard();
        // Subscribe before reading, so that nothing between the read and the first event is lost.
        let mut receiver = bus.runs.subscribe(filter);
        // Per run: the last sequence number delivered, and whether that was its end.
        let mut seen: HashMap<i64, (i64, bool)> = HashMap::new();
        let mut lagged = false;
        let mut counted: Option<Following> = None;
        'outer: loop {
            let following: Vec<i64> =
                seen.iter().filter(|(_, (_, ended))| !ended).map(|(id, _)| *id).collect();
            for row in current(&db, filter, following).await? {
                let progress = Progress::of_run(&row);
                if seen.get(&row.id).is_some_and(|(s, _)| *s >= progress.seq) {
                    continue;
                }
                let terminal = progress.is_terminal();
                seen.insert(row.id, (progress.seq, terminal));
                yield Delivery { progress: Arc::new(progress), lagged };
                lagged = false;
                if terminal && filter.run_id.is_some() {
                    break 'outer;
                }
            }
            if counted.is_none() {
                bus.following.fetch_add(1, Ordering::Relaxed);
                counted = Some(Following(bus.clone()));
            }
            loop {
                match receiver.recv().await {
                    Ok(progress) => {
                        if !filter.admits(&progress)
                            || seen
                                .get(&progress.run_id)
                                .is_some_and(|(s, _)| *s >= progress.seq)
                        {
                            continue;
                        }
                        let terminal = progress.is_terminal();
                        seen.insert(progress.run_id, (progress.seq, terminal));
                        yield Delivery { progress, lagged: false };
                        if terminal && filter.run_id.is_some() {
                            break 'outer;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        bus.dropped.fetch_add(n, Ordering::Relaxed);
                        metrics.events_dropped.inc_by(n);
                        lagged = true;
                        // Re-read the current state, then go on with the live events.
                        continue 'outer;
                    }
                    Err(broadcast::error::RecvError::Closed) => break 'outer,
                }
            }
        }
    })
}
