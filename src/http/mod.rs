//! The HTTP surface: `/graphql` (operations over POST and GET, GraphiQL for a browser's GET:
//! [`operation`]), `/graphql/ws`, `/healthz`, `/readyz`, `/metrics`; CORS for the allowed
//! origins; and the connection loop that serves it ([`serve`]).
//!
//! An operation is authenticated before its body is parsed: anonymous requests and bad keys get
//! 401 without the document ever being parsed. Answers follow GraphQL over HTTP ([`media`]).

mod access_log;
mod deadline;
mod graphiql;
mod media;
mod operation;
mod peers;
mod serve;
mod ws;
mod ws_budget;

pub use serve::{serve, READ_AHEAD, UNSENT};

use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, ALL_WEBSOCKET_PROTOCOLS};
use axum::extract::{Extension, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::access::{self, Actor};
use crate::config::Limits;
use crate::graphql::extension::{Executed, QueriesOnly, METHOD_NOT_ALLOWED};
use crate::graphql::{self, AppSchema};
use crate::state::AppState;
use crate::Error;

/// What the handlers share, behind one `Arc`: axum clones the state for every request.
struct Http {
    app: AppState,
    schema: AppSchema,
    max_body_bytes: usize,
    max_batch: usize,
    /// Operations running at once, over requests and sockets.
    in_flight: Arc<crate::in_flight::InFlight>,
    body_timeout: Duration,
    request_timeout: Duration,
    ws: crate::config::WsLimits,
    ws_shared: ws::Shared,
    sockets: tokio_util::task::TaskTracker,
    graphiql: bool,
    base_path: Arc<str>,
    metrics_token: Option<Arc<str>>,
    /// `CORS_ALLOWED_ORIGINS`, which WebSocket upgrades are held to as well.
    origins: Arc<[String]>,
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
    /// Origins whose pages may call the API from a browser (`CORS_ALLOWED_ORIGINS`; `*`: any).
    pub cors_allowed_origins: Vec<String>,
    /// The pool operations over WebSockets use (see `db::connect_sockets`); `None` shares the
    /// state's.
    pub socket_db: Option<sea_orm::DatabaseConnection>,
    /// One log line per request and WebSocket operation (`ACCESS_LOG`).
    pub access_log: bool,
}

impl Default for Surface {
    fn default() -> Self {
        Surface {
            graphiql: true,
            base_path: String::new(),
            metrics_token: None,
            going_away: Default::default(),
            sockets: Default::default(),
            cors_allowed_origins: Vec::new(),
            socket_db: None,
            access_log: true,
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
    let in_flight = Arc::new(crate::in_flight::InFlight::new(
        limits.max_operations_in_flight,
        limits.max_operations_per_key,
    ));
    let mut routes = Router::new()
        .route("/graphql", get(operation::get).post(operation::post))
        .route("/graphiql/{version}/{name}", get(graphiql_asset))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // The schema's own extension already turns resolver panics into errors; this layer is
        // the backstop for anything outside it.
        .layer(CatchPanicLayer::new())
        .layer(cors(&surface.cors_allowed_origins))
        .with_state(Arc::new(Http {
            app,
            schema,
            max_body_bytes: limits.max_body_bytes,
            max_batch: limits.max_batch,
            in_flight: in_flight.clone(),
            body_timeout: limits.body_timeout(),
            request_timeout: limits.request_timeout(),
            ws: limits.ws(),
            ws_shared: ws::Shared {
                going_away: surface.going_away.clone(),
                per_key: Default::default(),
                in_flight,
                app: socket_app,
                access_log: surface.access_log,
            },
            sockets: surface.sockets.clone(),
            graphiql: surface.graphiql,
            base_path: Arc::from(surface.base_path.as_str()),
            metrics_token: surface
                .metrics_token
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(Arc::from),
            origins: Arc::from(surface.cors_allowed_origins.as_slice()),
        }));
    if surface.access_log {
        routes = routes.layer(axum::middleware::from_fn(access_log::layer));
    }
    if surface.base_path.is_empty() {
        routes
    } else {
        Router::new().nest(&surface.base_path, routes)
    }
}

/// Whether a WebSocket upgrade from a page of `origin` is let in: a page of the gateway itself
/// (the origin's host is the request's `Host`, as GraphiQL's), or of an origin
/// `CORS_ALLOWED_ORIGINS` allows. Clients that are not browsers send no `Origin` and are not
/// asked.
fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|o| o == "*" || o.trim_end_matches('/') == origin)
    {
        return true;
    }
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    // A proxy that passes `Host $host` (nginx) drops the port: the name alone then decides.
    let origin_name = origin_host
        .rsplit_once(':')
        .map_or(origin_host, |(name, _)| name);
    host.is_some_and(|h| {
        h.eq_ignore_ascii_case(origin_host)
            || (!h.contains(':') && h.eq_ignore_ascii_case(origin_name))
    })
}

/// Cross-origin access for browser pages of the allowed origins (none by default: a layer that
/// adds nothing). Preflights are answered for GET and POST with whatever headers the page asks
/// for (tracing headers such as `traceparent`, `sentry-trace` or `x-request-id`, Apollo's
/// `apollo-require-preflight` and operation-name headers), cached by the browser for an hour;
/// no credentials (the key travels in `Authorization`, which a page sets itself), so mirroring
/// the requested headers lets a page send nothing it could not send without them.
fn cors(origins: &[String]) -> CorsLayer {
    use axum::http::Method;
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
        .expose_headers([header::WWW_AUTHENTICATE])
        .max_age(Duration::from_secs(3600))
}

/// A GraphQL-shaped error response outside of execution (`application/json`).
fn error_response(
    status: StatusCode,
    message: String,
    code: &str,
    limit: Option<&str>,
) -> Response {
    media::Media::Json.error(status, message, code, limit)
}

async fn graphiql_asset(
    State(http): State<Arc<Http>>,
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

async fn graphql_ws(
    State(http): State<Arc<Http>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
    slot: Option<Extension<serve::ConnectionSlot>>,
) -> Response {
    let slot = slot.map(|Extension(slot)| slot);
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("?");
        let host = headers
            .get("x-forwarded-host")
            .or_else(|| headers.get(header::HOST))
            .and_then(|h| h.to_str().ok());
        if !origin_allowed(origin, host, &http.origins) {
            return error_response(
                StatusCode::FORBIDDEN,
                format!(
                    "pages of {} may not open this socket (CORS_ALLOWED_ORIGINS)",
                    crate::text::plain(&origin.chars().take(100).collect::<String>())
                ),
                "FORBIDDEN",
                None,
            );
        }
    }
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
async fn metrics(State(http): State<Arc<Http>>, headers: HeaderMap) -> Response {
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
    let metrics = crate::metrics::get();
    if metrics.health_due() {
        metrics.set_ready(crate::db::ready(&http.app.db).await);
        match crate::store::health::exported(&http.app.db).await {
            Ok(all) => metrics.set_health(&all),
            // The scrape still answers, with the gauges as last read; `/readyz` tells the rest.
            Err(e) => tracing::warn!(error = %e.for_log(), "could not read health for /metrics"),
        }
    }
    let body = metrics.render();
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response()
}

async fn readyz(State(http): State<Arc<Http>>) -> Response {
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
