//! The runs this instance executes: one background task and one cancellation token each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The runs this instance executes: their cancellation tokens and tasks.
#[derive(Default)]
pub struct Runner {
    tokens: Mutex<HashMap<i64, CancellationToken>>,
    tasks: TaskTracker,
    /// Woken each time a run's task ends ([`Runner::idle_of`], [`Runner::idle`]).
    ended: Notify,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

impl Runner {
    /// Runs `task` for run `run_id` in the background, cancellable through the token it is
    /// given; the run stops counting as in progress when the task ends.
    pub fn spawn<F, Fut>(self: &Arc<Self>, run_id: i64, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let token = CancellationToken::new();
        self.tokens.lock().unwrap().insert(run_id, token.clone());
        let running = task(token);
        let runner = self.clone();
        self.tasks.spawn(async move {
            running.await;
            runner.tokens.lock().unwrap().remove(&run_id);
            runner.ended.notify_waiters();
        });
    }

    /// Asks a run of this instance to stop; false when this instance does not run it.
    pub fn cancel(&self, run_id: i64) -> bool {
        match self.tokens.lock().unwrap().get(&run_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Cancels every run of this instance and waits (up to `grace`) for them to record it.
    pub async fn shutdown(&self, grace: Duration) {
        for token in self.tokens.lock().unwrap().values() {
            token.cancel();
        }
        self.tasks.close();
        let _ = tokio::time::timeout(grace, self.tasks.wait()).await;
    }

    /// Waits until this instance's task of the run is done.
    pub async fn idle_of(&self, run_id: i64) {
        self.until(|tokens| !tokens.contains_key(&run_id)).await;
    }

    /// Waits until no run of this instance is in progress (tests, benchmarks).
    pub async fn idle(&self) {
        self.until(HashMap::is_empty).await;
    }

    /// Waits until `done` holds of the runs in progress, woken as each run's task ends: no
    /// polling interval adds to the wait.
    async fn until(&self, done: impl Fn(&HashMap<i64, CancellationToken>) -> bool) {
        loop {
            // Registered before the check, so an end between the check and the wait wakes it.
            let mut ended = std::pin::pin!(self.ended.notified());
            ended.as_mut().enable();
            if done(&self.tokens.lock().unwrap()) {
                return;
            }
            ended.await;
        }
    }
}
