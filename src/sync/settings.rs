//! Tunables of the sync engine and the scheduler; their defaults are the documented ones.

use std::time::Duration;

/// Subtracted from an incremental run's cursor to absorb clock skew.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(5 * 60);
/// Share of a project's records a full sync may delete without `allowMassDeletion`.
pub const DEFAULT_MASS_DELETION_SHARE: f64 = 0.5;

/// Least time between two progress events of a run within one listing (phase changes, the
/// first page of a listing and the end always go out). Every event is executed once per
/// subscriber: with 1,000 subscribers of a 100 s PostgreSQL sync, 500 ms (203 events each)
/// made the sync 7.0% slower; see docs/BENCHMARKS.md.
pub const DEFAULT_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Platform requests a run may have in flight: its listings are fetched concurrently, each a
/// few pages ahead of the writes (`engine::ahead`). The platform's 429s are still obeyed, per
/// request.
pub const DEFAULT_REQUESTS_IN_FLIGHT: usize = 4;

/// How often a running run proves it is alive (and reads whether a cancel was asked for):
/// a cancel sent to any instance stops the run within this (the event bus is faster still).
pub const DEFAULT_HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A run silent this long is marked failed by any instance, freeing its integration: a killed
/// instance's integration is usable again within this and one sweep (docs/ARCHITECTURE.md,
/// "Runs across instances").
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(15);

/// How often every instance looks for runs whose instance died: a lost run ends
/// `INSTANCE_LOST` within [`DEFAULT_STALE_AFTER`] and this.
pub const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Longest a run may take, start to end: past it the run stops, FAILED, with the copy as the
/// pages written so far left it (nothing is deleted on a listing that did not end). A platform
/// that answers forever (an endless `nextUrl` chain, pages that never end) cannot hold an
/// integration's run, and its memory, for longer.
pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(4 * 3600);

/// Tunables of the sync engine and scheduler.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// Subtracted from the cursor to absorb clock skew.
    pub overlap: Duration,
    /// A full sync that would delete more than this share of the project's records stops.
    pub mass_deletion_share: f64,
    /// How often a running run proves it is alive.
    pub heartbeat_every: Duration,
    /// A running run silent for this long is marked failed.
    pub stale_after: Duration,
    /// How often the scheduler looks for due slots.
    pub tick_every: Duration,
    /// How often each instance looks for runs whose instance died.
    pub sweep_every: Duration,
    /// A due slot older than this is skipped rather than run late.
    pub catch_up: Duration,
    /// Cron (5 fields) of new integrations.
    pub default_cron: String,
    /// Time zone of new integrations.
    pub default_timezone: String,
    /// Name of this instance, stored on the runs it executes.
    pub instance_id: String,
    /// Run events a subscriber may fall behind by before it is told it lagged.
    pub event_buffer: usize,
    /// Least time between two progress events of a run within one listing (phase changes, the
    /// first page of each listing and the end always go out).
    pub progress_every: Duration,
    /// Platform requests a run may have in flight at once (at least 1).
    pub requests_in_flight: usize,
    /// Longest a run may take.
    pub time_budget: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            overlap: DEFAULT_OVERLAP,
            mass_deletion_share: DEFAULT_MASS_DELETION_SHARE,
            heartbeat_every: DEFAULT_HEARTBEAT_EVERY,
            stale_after: DEFAULT_STALE_AFTER,
            tick_every: Duration::from_secs(30),
            sweep_every: DEFAULT_SWEEP_EVERY,
            catch_up: Duration::from_secs(3600),
            default_cron: crate::schedule::DEFAULT_CRON.into(),
            default_timezone: crate::schedule::DEFAULT_TIMEZONE.into(),
            instance_id: format!("gw-{}", crate::crypto::random_hex(4)),
            event_buffer: crate::events::BUFFER,
            progress_every: DEFAULT_PROGRESS_EVERY,
            requests_in_flight: DEFAULT_REQUESTS_IN_FLIGHT,
            time_budget: DEFAULT_TIME_BUDGET,
        }
    }
}
