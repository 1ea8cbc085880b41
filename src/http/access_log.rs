//! The access log: one line per HTTP request and per WebSocket operation, at INFO under the
//! target `mapping_gateway::access` (on by default; `ACCESS_LOG=false` turns it off). A line
//! names the method, the path (never the query string, which may carry a GET operation's
//! variables), the status, the time taken, the API key's id, the GraphQL operation's name, its
//! first root field and outcome code; never variables, documents or answers.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// What the GraphQL handler learnt about a request, left on its response for the log line.
#[derive(Clone, Debug, Default)]
pub struct Note {
    /// The API key's id, once known.
    pub key: Option<i64>,
    /// The operation's name as the client wrote it (of the first operation of a batch).
    pub operation: Option<String>,
    /// Its first root field, as the metrics label it (`elements`, `bindPort`).
    pub field: Option<String>,
    /// `ok`, or the first error's code.
    pub code: Option<String>,
}

/// The middleware that writes one line per HTTP request.
pub async fn layer(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let version = request.version();
    let response = next.run(request).await;
    let note = response
        .extensions()
        .get::<Note>()
        .cloned()
        .unwrap_or_default();
    tracing::info!(
        target: "mapping_gateway::access",
        method = %method,
        path = %path,
        version = ?version,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        key = note.key,
        operation = note.operation.as_deref(),
        field = note.field.as_deref(),
        code = note.code.as_deref(),
        "request"
    );
    response
}

/// The line of one WebSocket operation, written when it ends (`complete` from either side, or
/// the socket closed under it).
pub fn operation_ended(
    key: Option<i64>,
    id: &str,
    operation: Option<&str>,
    started: Instant,
    ended: &str,
) {
    tracing::info!(
        target: "mapping_gateway::access",
        method = "WS",
        path = "/graphql/ws",
        id,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        key,
        operation,
        ended,
        "operation"
    );
}
