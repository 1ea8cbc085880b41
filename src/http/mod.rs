//! The HTTP surface: `/graphql` (POST operations, GET GraphiQL), `/graphql/ws`, `/healthz`,
//! `/readyz`, `/metrics`; and the connection loop that serves it ([`serve`]).
//!
//! An operation is authenticated before its body is parsed: anonymous requests and bad keys get
//! 401 without the document ever being parsed. Request errors (a body that is not a GraphQL
//! request, a document over the limits, an ambiguous or unknown operation name) answer 400 with
//! `extensions.code`.

mod deadline;
mod graphiql;
mod serve;
mod ws;
mod ws_budget;

pub use serve::{serve, READ_AHEAD, UNSENT};

use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_axum::GraphQLResponse;
use axum::body::Body;
use axum::extract::{Extension, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

use crate::access::{self, Actor};
use crate::config::Limits;
use crate::graphql::{self, AppSchema};
use crate::state::AppState;
use crate::Error;

#[derive(Clone)]
struct Http {
    app: AppState,
    schema: AppSchema,
    max_body_bytes: usize,
    body_timeout: Duration,
    request_timeout: Duration,
    ws: crate::config::WsLimits,
    ws_shared: ws::Shared,
    sockets: tokio_util::task::TaskTracker,
    graphiql: bool,
    base_path: Arc<str>,
    metrics_token: Option<Arc<str>>,
}

/// What the router serves besides the API.
#[derive(Clone, Debug)]
pub struct Surface {
    /// GraphiQL at `GET /graphql`.
    pub graphiql: bool,
    /// The path prefix clients reach the gateway under (`BASE_PATH`: empty, or `/a/b`); every
    /// route is served below it.
    pub base_path: String,
    /// The bearer token `/metrics` asks for; open without one.
    pub metrics_token: Option<String>,
    /// Cancelled when the server shuts down: open WebSockets then close with 1001.
    pub going_away: tokio_util::sync::CancellationToken,
    /// Open WebSockets, so that a shutdown can wait for their close frames.
    pub sockets: tokio_util::task::TaskTracker,
    /// The pool operations over WebSockets use (see `db::connect_sockets`); `None` shares the
    /// state's.
    pub socket_db: Option<sea_orm::DatabaseConnection>,
}

impl Default for Surface {
    fn default() -> Self {
        Surface {
            graphiql: true,
            base_path: String::new(),
            metrics_token: None,
            going_away: Default::default(),
            sockets: Default::default(),
            socket_db: None,
        }
    }
}

/// The gateway's router.
pub fn router(app: AppState, limits: &Limits, surface: &Surface) -> Router {
    let schema = graphql::schema_builder(limits).data(app.clone()).finish();
    let socket_app = surface
        .socket_db
        .clone()
        .map(|db| AppState { db, ..app.clone() });
    let routes = Router::new()
        .route("/graphql", get(graphiql_page).post(graphql_post))
        .route("/graphiql/{version}/{name}", get(graphiql_asset))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // The schema's own extension already turns resolver panics into errors; this layer is
        // the backstop for anything outside it.
        .layer(CatchPanicLayer::new())
        .with_state(Http {
            app,
            schema,
            max_body_bytes: limits.max_body_bytes,
            body_timeout: limits.body_timeout(),
            request_timeout: limits.request_timeout(),
            ws: limits.ws(),
            ws_shared: ws::Shared {
                going_away: surface.going_away.clone(),
                per_key: Default::default(),
                app: socket_app,
            },
            sockets: surface.sockets.clone(),
            graphiql: surface.graphiql,
            base_path: Arc::from(surface.base_path.as_str()),
            metrics_token: surface
                .metrics_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(Arc::from),
        });
    if surface.base_path.is_empty() {
        routes
    } else {
        Router::new().nest(&surface.base_path, routes)
    }
}

/// A GraphQL-shaped error response outside of execution.
fn error_response(
    status: StatusCode,
    message: String,
    code: &str,
    limit: Option<&str>,
) -> Response {
    let mut extensions = json!({ "code": code });
    if let Some(limit) = limit {
        extensions["limit"] = json!(limit);
    }
    (
        status,
        Json(json!({ "errors": [{ "message": message, "extensions": extensions }] })),
    )
        .into_response()
}

async fn graphiql_page(State(http): State<Http>) -> Response {
    if !http.graphiql {
        return (StatusCode::NOT_FOUND, "GraphiQL is turned off").into_response();
    }
    graphiql::page(&http.base_path)
}

async fn graphiql_asset(
    State(http): State<Http>,
    path: axum::extract::Path<(String, String)>,
) -> Response {
    if !http.graphiql {
        return (StatusCode::NOT_FOUND, "GraphiQL is turned off").into_response();
    }
    graphiql::asset(path).await
}

/// Resolves `Bearer <key>` to an actor; anything else (no key, an unknown or revoked one) is
/// `None`.
async fn actor_from(app: &AppState, authorization: Option<&str>) -> Result<Option<Actor>, Error> {
    let Some(secret) = authorization.and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::trim)
    }) else {
        return Ok(None);
    };
    access::authenticate(&app.db, secret).await
}

/// What an HTTP request was, for the metrics: its operation name and outcome code.
#[derive(Default)]
struct Seen {
    operation: Option<String>,
    code: Option<String>,
}

async fn graphql_post(State(http): State<Http>, headers: HeaderMap, body: Body) -> Response {
    let started = std::time::Instant::now();
    let mut seen = Seen::default();
    let response = graphql_request(&http, headers, body, &mut seen).await;
    let code = seen.code.unwrap_or_else(|| {
        match response.status() {
            StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
            s if s.is_server_error() => "INTERNAL",
            s if s.is_client_error() => "VALIDATION",
            _ => "ok",
        }
        .to_owned()
    });
    let metrics = crate::metrics::get();
    let operation = metrics.operation_label(seen.operation.as_deref());
    metrics
        .http_requests
        .with_label_values(&["graphql", operation.as_str(), code.as_str()])
        .inc();
    metrics
        .http_latency
        .with_label_values(&["graphql", operation.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn graphql_request(http: &Http, headers: HeaderMap, body: Body, seen: &mut Seen) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/graphql-response+json")
        });
    if !is_json {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send operations as POST with Content-Type: application/json".into(),
            "VALIDATION",
            None,
        );
    }
    // Who is asking comes first: nothing of an anonymous request is parsed.
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let actor = match actor_from(&http.app, authorization).await {
        Ok(Some(actor)) => actor,
        Ok(None) => {
            // The body is read (bounded, never parsed) so that the client, which may still be
            // sending it, gets the answer rather than a reset connection.
            let drained = tokio::time::timeout(
                http.body_timeout,
                axum::body::to_bytes(body, http.max_body_bytes),
            )
            .await;
            let mut response = error_response(
                StatusCode::UNAUTHORIZED,
                Error::Unauthenticated.message(),
                Error::Unauthenticated.code(),
                None,
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("header value"),
            );
            if !matches!(drained, Ok(Ok(_))) {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, "close".parse().expect("header value"));
            }
            return response;
        }
        Err(e) => {
            let gql: async_graphql::Error = e.into();
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                gql.message,
                "INTERNAL",
                None,
            );
        }
    };
    // Read the body under the limits before anything else runs, whatever Content-Length says.
    let bytes = match tokio::time::timeout(
        http.body_timeout,
        axum::body::to_bytes(body, http.max_body_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds {} bytes", http.max_body_bytes),
                "VALIDATION",
                Some("bodySize"),
            )
        }
        Err(_) => {
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    http.body_timeout.as_secs()
                ),
                "VALIDATION",
                Some("bodyTimeout"),
            )
        }
    };
    let request: async_graphql::Request = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(e) => {
            // serde's own message names internal types; say what is expected instead.
            let at = if e.line() > 0 {
                format!(" (line {}, column {})", e.line(), e.column())
            } else {
                String::new()
            };
            return error_response(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not a GraphQL request: expected a JSON object with a \"query\" \
                     string and optional \"operationName\" and \"variables\"{at}"
                ),
                "VALIDATION",
                None,
            );
        }
    };
    let executed = Arc::new(crate::graphql::extension::Executed::default());
    let key_id = actor.key_id;
    let request = request.data(actor).data(executed.clone());
    // Log lines of the operation carry its name (recorded once the document is read) and the
    // key's id as fields.
    let span = tracing::info_span!(
        "graphql",
        operation = tracing::field::Empty,
        key_id = tracing::field::Empty
    );
    if let Some(id) = key_id {
        span.record("key_id", id);
    }
    let response = match tokio::time::timeout(
        http.request_timeout,
        tracing::Instrument::instrument(http.schema.execute(request), span),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                limit_secs = http.request_timeout.as_secs(),
                "an operation ran out of time"
            );
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the operation did not finish within {} s",
                    http.request_timeout.as_secs()
                ),
                "INTERNAL",
                Some("requestTimeout"),
            );
        }
    };
    seen.operation = executed.operation().map(str::to_owned);
    seen.code = Some(
        response
            .errors
            .first()
            .and_then(|e| e.extensions.as_ref()?.get("code").cloned())
            .and_then(|code| match code {
                async_graphql::Value::String(code) => Some(code),
                _ => None,
            })
            .unwrap_or_else(|| "ok".to_owned()),
    );
    // Refused before it ran (parse, limits, validation, operation name): a bad request.
    let status = if !executed.get() && response.is_err() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, GraphQLResponse::from(response)).into_response()
}

async fn graphql_ws(
    State(http): State<Http>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
    slot: Option<Extension<serve::ConnectionSlot>>,
) -> Response {
    let slot = slot.map(|Extension(slot)| slot);
    // The first protocol offered that is one of the two GraphQL ones.
    let Some(protocol) = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        })
    else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws or graphql-ws subprotocol".into(),
            "VALIDATION",
            None,
        );
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        // Frames and messages are bounded like request bodies, also before authentication.
        .max_message_size(http.max_body_bytes)
        .max_frame_size(http.max_body_bytes)
        // tungstenite's defaults give every socket a 128 KiB read buffer and let writes gather
        // up to 128 KiB: with 100 subscribers that measured 136 KiB of memory per socket. A
        // socket here sends small messages and each `send` flushes anyway, so it reads in 8 KiB
        // steps (larger messages still arrive, in several reads) and writes at once.
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let open = http.sockets.token();
            async move {
                ws::serve(
                    socket,
                    http.schema.clone(),
                    http.app.clone(),
                    protocol,
                    http.ws,
                    http.ws_shared.clone(),
                    slot,
                )
                .await;
                drop(open);
            }
        })
}

/// The Prometheus exposition; with `METRICS_TOKEN` set, only for `Authorization: Bearer <it>`.
async fn metrics(State(http): State<Http>, headers: HeaderMap) -> Response {
    if let Some(token) = &http.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compared as digests, so the time taken says nothing about the token.
        use sha2::Digest;
        if sha2::Sha256::digest(given.as_bytes()) != sha2::Sha256::digest(token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need the METRICS_TOKEN bearer token",
            )
                .into_response();
        }
    }
    let body = crate::metrics::get().render();
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response()
}

async fn readyz(State(http): State<Http>) -> Response {
    if crate::db::ready(&http.app.db).await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable or migrations pending",
        )
            .into_response()
    }
}
