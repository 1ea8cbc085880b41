//! Requests held on purpose: a test holds the requests of one method and path prefix, sees
//! them arrive, changes the platform meanwhile (a person editing it between the gateway's read
//! and its write), then lets them go. No timing is guessed: the test waits for the arrival.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::watch;

use super::SimState;

/// One hold: requests of `method` whose path starts with `prefix` wait until it is released.
pub struct Gate {
    method: axum::http::Method,
    prefix: String,
    arrived: watch::Sender<u32>,
    open: watch::Sender<bool>,
}

impl Gate {
    /// Requests held so far (released ones included).
    pub fn arrived(&self) -> u32 {
        *self.arrived.borrow()
    }

    /// Waits until `n` requests have arrived.
    pub async fn wait_for(&self, n: u32) {
        let mut seen = self.arrived.subscribe();
        let _ = seen.wait_for(|count| *count >= n).await;
    }

    /// Lets every held request, and every later one, through.
    pub fn release(&self) {
        self.open.send_replace(true);
    }
}

/// The holds in place.
#[derive(Default)]
pub struct Gates(Mutex<Vec<Arc<Gate>>>);

impl SimState {
    /// Holds requests of `method` under `prefix` until the returned gate is released.
    pub fn hold(&self, method: axum::http::Method, prefix: &str) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            method,
            prefix: prefix.to_owned(),
            arrived: watch::Sender::new(0),
            open: watch::Sender::new(false),
        });
        let mut gates = self.gates.0.lock().unwrap();
        gates.retain(|g| !*g.open.borrow());
        gates.push(gate.clone());
        gate
    }
}

/// The middleware that holds matching requests.
pub(super) async fn held(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    let gate = state
        .gates
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|g| {
            !*g.open.borrow()
                && g.method == request.method()
                && request.uri().path().starts_with(&g.prefix)
        })
        .cloned();
    if let Some(gate) = gate {
        let mut open = gate.open.subscribe();
        gate.arrived.send_modify(|n| *n += 1);
        let _ = open.wait_for(|open| *open).await;
    }
    next.run(request).await
}
