//! Sync runs: starting (manual or scheduled), cancelling, heartbeats, and their records.
//!
//! One run per integration at a time is the database's rule (a partial unique index on active
//! runs), so a second start fails on insert whatever instance it comes from. A run proceeds in a
//! background task; its row carries progress, counts and the outcome.

pub mod engine;
mod liveness;
pub mod runner;
mod runs;
pub mod scheduler;
pub mod settings;

pub use liveness::{sweep_forever, sweep_stale};
pub use runner::Runner;
pub use runs::*;
pub use settings::SyncSettings;

use chrono::{DateTime, Utc};

/// What a run fetches and deletes (docs/DESIGN.md section 3), who started it, and where it is.
pub use entity::sync_run::{SyncMode as Mode, SyncStatus, SyncTrigger as Trigger};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// Mode.
    pub mode: Mode,
    /// Who asked.
    pub trigger: Trigger,
    /// Let a full sync delete more than the mass-deletion share.
    pub allow_mass_deletion: bool,
    /// The box of an ELEMENT run.
    pub element_fid: Option<String>,
    /// The slot of a scheduled run.
    pub scheduled_for: Option<DateTime<Utc>>,
}
