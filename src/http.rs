//! The HTTP surface: `/graphql` (POST operations, GET GraphiQL), `/graphql/ws`, `/healthz`,
//! `/readyz`.

use async_graphql::http::{GraphiQLSource, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql::Data;
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::body::Body;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

use crate::access::{self, Actor};
use crate::app::AppState;
use crate::config::Limits;
use crate::graphql::{self, AppSchema};
use crate::Error;

#[derive(Clone)]
struct Http {
    app: AppState,
    schema: AppSchema,
    max_body_bytes: usize,
    graphiql: bool,
}

/// The gateway's router.
pub fn router(app: AppState, limits: &Limits, graphiql: bool) -> Router {
    let schema = graphql::schema_builder(limits).data(app.clone()).finish();
    Router::new()
        .route("/graphql", get(graphiql_page).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        // The schema's own extension already turns resolver panics into errors; this layer is
        // the backstop for anything outside it.
        .layer(CatchPanicLayer::new())
        .with_state(Http {
            app,
            schema,
            max_body_bytes: limits.max_body_bytes,
            graphiql,
        })
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
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .header("Authorization", "Bearer PASTE-YOUR-API-KEY")
            .title("mapping-gateway")
            .finish(),
    )
    .into_response()
}

/// Resolves `Bearer <key>` to an actor; anything else is anonymous.
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

async fn graphql_post(State(http): State<Http>, headers: HeaderMap, body: Body) -> Response {
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
    // Read the body under the limit before anything else runs, whatever Content-Length says.
    let bytes = match axum::body::to_bytes(body, http.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds {} bytes", http.max_body_bytes),
                "VALIDATION",
                Some("bodySize"),
            )
        }
    };
    let request: async_graphql::Request = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("the body is not a GraphQL request: {e}"),
                "VALIDATION",
                None,
            )
        }
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let actor = match actor_from(&http.app, authorization).await {
        Ok(actor) => actor,
        Err(e) => {
            let gql: async_graphql::Error = e.into();
            return error_response(StatusCode::OK, gql.message, "INTERNAL", None);
        }
    };
    let request = match actor {
        Some(actor) => request.data(actor),
        None => request,
    };
    GraphQLResponse::from(http.schema.execute(request).await).into_response()
}

async fn graphql_ws(
    State(http): State<Http>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let app = http.app.clone();
            GraphQLWebSocket::new(socket, http.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    // The key travels in the connection_init payload, since browsers cannot set
                    // headers on a WebSocket.
                    let authorization = payload
                        .get("authorization")
                        .or_else(|| payload.get("Authorization"))
                        .and_then(|v| v.as_str());
                    match actor_from(&app, authorization).await {
                        Ok(Some(actor)) => {
                            let mut data = Data::default();
                            data.insert(actor);
                            Ok(data)
                        }
                        Ok(None) => Err(Error::Unauthenticated.into()),
                        Err(e) => Err(e.into()),
                    }
                })
                .serve()
        })
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
