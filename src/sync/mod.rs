//! Sync runs: starting (manual or scheduled), cancelling, heartbeats, and their records.
//!
//! One run per integration at a time is the database's rule (a partial unique index on active
//! runs), so a second start fails on insert whatever instance it comes from. A run proceeds in a
//! background task; its row carries progress, counts and the outcome.

pub mod engine;
pub mod runner;
mod runs;
pub mod scheduler;
pub mod settings;

pub use runner::Runner;
pub use runs::*;
pub use settings::SyncSettings;

use chrono::{DateTime, Utc};

/// What a run fetches and deletes (DESIGN section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every record of the selected items; deletes what the platform no longer has.
    Full,
    /// Records changed since the cursor (minus the overlap); deletes deselected items only.
    Incremental,
    /// One box with its splitters and ports.
    Element,
}

impl Mode {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "FULL",
            Mode::Incremental => "INCREMENTAL",
            Mode::Element => "ELEMENT",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Mode::Full, Mode::Incremental, Mode::Element]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Who started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A caller of `startSync`/`syncElement`.
    Manual,
    /// The schedule.
    Scheduled,
}

impl Trigger {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "MANUAL",
            Trigger::Scheduled => "SCHEDULED",
        }
    }
}

/// Run statuses as stored.
pub mod status {
    /// Waiting to start.
    pub const QUEUED: &str = "QUEUED";
    /// In progress.
    pub const RUNNING: &str = "RUNNING";
    /// Finished; the cursor moved.
    pub const SUCCEEDED: &str = "SUCCEEDED";
    /// Stopped by an error; the last good copy is intact.
    pub const FAILED: &str = "FAILED";
    /// Stopped on request or at shutdown.
    pub const CANCELLED: &str = "CANCELLED";
}

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
