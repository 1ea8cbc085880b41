//! The signal that wakes the outbox's worker when something is queued, and the worker's
//! tunables. Apart from the worker so that the shared state can hold them without depending on
//! the worker (which uses the state).

use std::time::Duration;

use tokio::sync::Notify;

/// Wakes the worker of the push outbox.
#[derive(Debug, Default)]
pub struct Outbox {
    pub(super) wake: Notify,
}

impl Outbox {
    /// Asks the worker to look now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Tunables of delivery.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// How long a claim holds a delivery without renewal; renewed every third of it while the
    /// delivery is in flight, so a live instance keeps it and a dead one's comes back this soon.
    pub lease: Duration,
    /// A delivery that keeps failing for this long after its first attempt is FAILED.
    pub give_up_after: Duration,
}

/// The default lease: a dead instance's deliveries resume within 15 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// The default give-up horizon: 24 hours.
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            lease: DEFAULT_LEASE,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
        }
    }
}
