//! How many operations run at once: a global limit, and a share of it per API key, taken by
//! every HTTP request (one permit per operation of a batch, held until its answer is
//! serialized) and every query or mutation over a WebSocket. An operation that finds no room
//! waits up to [`WAIT`]; then it is refused (HTTP 429 when the key's share is spent, 503 when the
//! server's is, both with `Retry-After`; an error for its id on a socket). Memory then grows
//! with the limit, not with what clients send at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long an operation waits for room before it is refused.
pub const WAIT: Duration = Duration::from_secs(2);

/// The limits, shared by every request and socket of the server.
pub struct InFlight {
    global: Arc<Semaphore>,
    per_key: Mutex<HashMap<i64, Arc<Semaphore>>>,
    key_share: usize,
    global_size: usize,
}

/// What a socket's operations run under: the server's limits and the socket's key. Put in a
/// WebSocket connection's data, it makes the GraphQL extension take a permit for each query or
/// mutation the socket runs (HTTP requests take theirs before they run).
#[derive(Clone)]
pub struct SocketGate {
    pub in_flight: Arc<InFlight>,
    pub key: Option<i64>,
}

/// Room to run `n` operations; released when dropped.
pub struct Permit {
    _global: OwnedSemaphorePermit,
    _key: Option<OwnedSemaphorePermit>,
}

/// Why there was no room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Busy {
    /// The key runs its share already (429).
    Key,
    /// The server runs its limit already (503).
    Server,
}

impl Busy {
    /// The refusal, for a person.
    pub fn message(self) -> String {
        match self {
            Busy::Key => "this API key has as many operations running as it may \
                          (MAX_OPERATIONS_PER_KEY): retry after the others end"
                .into(),
            Busy::Server => "the gateway runs as many operations as it may \
                             (MAX_OPERATIONS_IN_FLIGHT): retry shortly"
                .into(),
        }
    }

    /// The `extensions.code` of the refusal.
    pub fn code(self) -> &'static str {
        match self {
            Busy::Key => "RATE_LIMITED",
            Busy::Server => "OVERLOADED",
        }
    }
}

impl Default for InFlight {
    /// The default limits (`config::Limits`).
    fn default() -> Self {
        let limits = crate::config::Limits::default();
        InFlight::new(
            limits.max_operations_in_flight,
            limits.max_operations_per_key,
        )
    }
}

impl InFlight {
    pub fn new(global: usize, key_share: usize) -> Self {
        let global = global.max(1);
        InFlight {
            global: Arc::new(Semaphore::new(global)),
            per_key: Mutex::default(),
            key_share: key_share.clamp(1, global),
            global_size: global,
        }
    }

    /// Room for `n` operations of `key` (at most the key's share), waiting up to [`WAIT`].
    pub async fn acquire(&self, key: Option<i64>, n: usize) -> Result<Permit, Busy> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let key_permit = match key {
            Some(id) => {
                let n = n.clamp(1, self.key_share) as u32;
                let semaphore = self
                    .per_key
                    .lock()
                    .expect("operations per key")
                    .entry(id)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.key_share)))
                    .clone();
                match tokio::time::timeout_at(deadline, semaphore.acquire_many_owned(n)).await {
                    Ok(Ok(permit)) => Some(permit),
                    _ => return Err(Busy::Key),
                }
            }
            None => None,
        };
        let n = n.clamp(1, self.global_size) as u32;
        match tokio::time::timeout_at(deadline, self.global.clone().acquire_many_owned(n)).await {
            Ok(Ok(global)) => Ok(Permit {
                _global: global,
                _key: key_permit,
            }),
            _ => Err(Busy::Server),
        }
    }
}
