//! What one WebSocket, and one API key over all its sockets, may have live at once, and how
//! fast a socket may open operations. The socket's reader asks [`Budget::admit`] about every
//! client message before async-graphql sees it; the writer tells [`Budget::sent`] about every
//! `complete`, so ended operations free their place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_graphql::http::WebSocketProtocols;

use crate::config::WsLimits;

/// Operations a socket may open at once (or `max_operations`, when larger)...
const BURST: f64 = 100.0;
/// ...and per second once those are spent.
const REFILL_PER_SECOND: f64 = 20.0;

/// Live operations of each API key over this instance's sockets.
#[derive(Default)]
pub struct PerKey(Mutex<HashMap<i64, usize>>);

/// The longest operation id a socket takes: a client's ids are counters or UUIDs, and each live
/// one is kept until its operation ends.
pub const MAX_ID_BYTES: usize = 128;

/// Why an operation was held back.
pub enum Refusal {
    /// A message whose operation id is over [`MAX_ID_BYTES`]: the socket closes with 4400.
    LongId,
    /// A subscribe id that is live already (graphql-transport-ws closes with 4409).
    Reused(String),
    /// An operation over a budget: refused with an `error` message for its id.
    OverBudget { id: String, why: String },
}

/// The type and id of a protocol message, and the operation's name, read without the rest of
/// its payload's structure.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    #[serde(default)]
    payload: Option<PayloadHead>,
}

#[derive(serde::Deserialize)]
struct PayloadHead {
    #[serde(rename = "operationName", default)]
    operation_name: Option<String>,
}

/// A live operation: when it started and its name, for the access log.
struct Live {
    started: Instant,
    operation: Option<String>,
}

/// One socket's live operations and its rate of new ones.
pub struct Budget {
    ids: Mutex<HashMap<String, Live>>,
    key: OnceLock<i64>,
    per_key: Arc<PerKey>,
    limits: WsLimits,
    protocol: WebSocketProtocols,
    /// Operations the socket may still open now, and when that was last worked out.
    tokens: Mutex<(f64, Instant)>,
    /// One access-log line per operation.
    access_log: bool,
}

impl Budget {
    pub fn new(
        per_key: Arc<PerKey>,
        limits: WsLimits,
        protocol: WebSocketProtocols,
        access_log: bool,
    ) -> Self {
        Budget {
            access_log,
            ids: Mutex::default(),
            key: OnceLock::new(),
            per_key,
            limits,
            protocol,
            tokens: Mutex::new((Self::burst(&limits), Instant::now())),
        }
    }

    fn burst(limits: &WsLimits) -> f64 {
        BURST.max(limits.max_operations as f64)
    }

    /// The socket's key, once its handshake named one.
    pub fn set_key(&self, key: i64) {
        let _ = self.key.set(key);
    }

    /// Decides on one client message: `Ok(())` passes it on.
    pub fn admit(&self, bytes: &[u8]) -> Result<(), Refusal> {
        let Ok(head) = serde_json::from_slice::<Head>(bytes) else {
            return Ok(());
        };
        let Some(id) = head.id else { return Ok(()) };
        if id.len() > MAX_ID_BYTES {
            return Err(Refusal::LongId);
        }
        match head.kind.as_str() {
            "subscribe" | "start" => {
                let operation = head.payload.and_then(|p| p.operation_name);
                self.open(id, operation)
            }
            "complete" | "stop" => {
                self.forget(&id, "stopped by the client");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn open(&self, id: String, operation: Option<String>) -> Result<(), Refusal> {
        let mut ids = self.ids.lock().expect("live operations");
        if ids.contains_key(&id) {
            return Err(match self.protocol {
                WebSocketProtocols::GraphQLWS => Refusal::Reused(id),
                // The legacy protocol has no code for it: refused like one too many.
                WebSocketProtocols::SubscriptionsTransportWS => Refusal::OverBudget {
                    id,
                    why: "an operation with this id is live on this socket".into(),
                },
            });
        }
        let max = self.limits.max_operations;
        if ids.len() >= max {
            return Err(Refusal::OverBudget {
                id,
                why: format!(
                    "too many operations on this socket (at most {max}): complete one first"
                ),
            });
        }
        {
            let mut tokens = self.tokens.lock().expect("operation rate");
            let now = Instant::now();
            let refilled =
                tokens.0 + now.duration_since(tokens.1).as_secs_f64() * REFILL_PER_SECOND;
            let burst = Self::burst(&self.limits);
            *tokens = (refilled.min(burst), now);
            if tokens.0 < 1.0 {
                return Err(Refusal::OverBudget {
                    id,
                    why: format!(
                        "operations opened too fast on this socket (at most {REFILL_PER_SECOND} a \
                         second after the first {burst}): try again shortly"
                    ),
                });
            }
            tokens.0 -= 1.0;
        }
        if let Some(key) = self.key.get() {
            let mut per_key = self.per_key.0.lock().expect("operations per key");
            let live = per_key.entry(*key).or_default();
            let cap = self.limits.max_subscriptions_per_key;
            if *live >= cap {
                return Err(Refusal::OverBudget {
                    id,
                    why: format!(
                        "too many live operations for this API key (at most {cap} over all its \
                         sockets): complete some first"
                    ),
                });
            }
            *live += 1;
        }
        // A client's name, for the log: a GraphQL name is letters, digits and `_`; bounded.
        let operation = operation
            .filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .map(|name| name.chars().take(100).collect());
        ids.insert(
            id,
            Live {
                started: Instant::now(),
                operation,
            },
        );
        Ok(())
    }

    /// Frees the place of an operation that ended.
    fn forget(&self, id: &str, ended: &str) {
        let removed = self.ids.lock().expect("live operations").remove(id);
        if let Some(live) = removed {
            self.release(1);
            self.log(id, &live, ended);
        }
    }

    fn log(&self, id: &str, live: &Live, ended: &str) {
        if self.access_log {
            super::access_log::operation_ended(
                self.key.get().copied(),
                id,
                live.operation.as_deref(),
                live.started,
                ended,
            );
        }
    }

    fn release(&self, n: usize) {
        if let Some(key) = self.key.get() {
            let mut per_key = self.per_key.0.lock().expect("operations per key");
            if let Some(live) = per_key.get_mut(key) {
                *live = live.saturating_sub(n);
                if *live == 0 {
                    per_key.remove(key);
                }
            }
        }
    }

    /// Forgets an operation the server completed.
    pub fn sent(&self, text: &str) {
        // A `complete` is a few dozen bytes; `next` messages are not parsed again.
        if text.len() <= 512 && text.contains(r#""complete""#) {
            if let Ok(Head {
                kind, id: Some(id), ..
            }) = serde_json::from_str::<Head>(text)
            {
                if kind == "complete" {
                    self.forget(&id, "complete");
                }
            }
        }
    }
}

impl Drop for Budget {
    /// The socket ended: its operations leave its key's count.
    fn drop(&mut self) {
        let ended: Vec<(String, Live)> = self
            .ids
            .lock()
            .map(|mut ids| ids.drain().collect())
            .unwrap_or_default();
        self.release(ended.len());
        for (id, live) in &ended {
            self.log(id, live, "socket closed");
        }
    }
}
