//! The signal that wakes the outbox's worker when something is queued. Apart from the worker so
//! that the shared state can hold it without depending on the worker (which uses the state).

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
