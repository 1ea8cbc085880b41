//! Requests held or refused on purpose: a test holds the requests of one method and path
//! prefix, sees them arrive, changes the platform meanwhile (a person editing it between the
//! gateway's read and its write), then lets them go; or has them refused (a platform that
//! rejects one kind of write) until it lifts the refusal. No timing is guessed: the test waits
//! for the arrival.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use super::SimState;

/// One hold: requests of `method` whose path starts with `prefix` (and whose body contains
/// `body`, when set) wait until it is released, or are refused with `refusal` until then.
pub struct Gate {
    method: axum::http::Method,
    prefix: String,
    body: Option<String>,
    refusal: Option<axum::http::StatusCode>,
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
        self.gate(method, prefix, None, None)
    }

    /// Holds requests of `method` under `prefix` whose body contains `body`, until the returned
    /// gate is released.
    pub fn hold_matching(&self, method: axum::http::Method, prefix: &str, body: &str) -> Arc<Gate> {
        self.gate(method, prefix, Some(body), None)
    }

    /// Refuses (422, "refused on purpose") requests of `method` under `prefix` whose body
    /// contains `body` (any body when `None`), until the returned gate is released.
    pub fn refuse(
        &self,
        method: axum::http::Method,
        prefix: &str,
        body: Option<&str>,
    ) -> Arc<Gate> {
        self.gate(
            method,
            prefix,
            body,
            Some(axum::http::StatusCode::UNPROCESSABLE_ENTITY),
        )
    }

    fn gate(
        &self,
        method: axum::http::Method,
        prefix: &str,
        body: Option<&str>,
        refusal: Option<axum::http::StatusCode>,
    ) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            method,
            prefix: prefix.to_owned(),
            body: body.map(str::to_owned),
            refusal,
            arrived: watch::Sender::new(0),
            open: watch::Sender::new(false),
        });
        let mut gates = self.gates.0.lock().unwrap();
        gates.retain(|g| !*g.open.borrow());
        gates.push(gate.clone());
        gate
    }
}

/// The middleware that holds or refuses matching requests.
pub(super) async fn held(
    State(state): State<Arc<SimState>>,
    request: Request,
    next: Next,
) -> Response {
    let candidates: Vec<Arc<Gate>> = state
        .gates
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|g| {
            !*g.open.borrow()
                && g.method == request.method()
                && request.uri().path().starts_with(&g.prefix)
        })
        .cloned()
        .collect();
    if candidates.is_empty() {
        return next.run(request).await;
    }
    // A gate that looks at the body reads it (bodies of the contract are small).
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let gate = candidates
        .into_iter()
        .find(|g| g.body.as_deref().is_none_or(|b| text.contains(b)));
    if let Some(gate) = gate {
        gate.arrived.send_modify(|n| *n += 1);
        if let Some(status) = gate.refusal {
            return (
                status,
                axum::Json(
                    serde_json::json!({ "success": false, "message": "refused on purpose" }),
                ),
            )
                .into_response();
        }
        let mut open = gate.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}
