//! GraphQL operations over HTTP: `POST /graphql` with one operation, or a batch of at most
//! `MAX_BATCH` as a JSON array (run one after the other, answered as an array in order), and
//! `GET /graphql?query=&variables=&operationName=&extensions=` for queries only (a mutation or
//! subscription there is answered 405 with `Allow: POST`). Answers follow [`super::media`].
//!
//! Who is asking comes first: an anonymous request gets 401 before its body or parameters are
//! parsed. The body is read under the size and time limits whatever `Content-Length` says.

use std::sync::Arc;

use async_graphql::Variables;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};

use super::media::{self, Media};
use super::Http;
use super::{Executed, QueriesOnly, METHOD_NOT_ALLOWED};
use crate::access::Actor;
use crate::Error;

/// What an HTTP request was, for the metrics: its operation name and outcome code.
#[derive(Default)]
struct Seen {
    operation: Option<String>,
    name: Option<String>,
    code: Option<String>,
    key: Option<i64>,
}

/// How the operations of a request arrive.
enum Input {
    /// A POST body (one request object, or an array of them).
    Body(Body),
    /// The query string of a GET.
    Url(Option<String>),
}

pub(super) async fn post(
    State(http): State<Arc<Http>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    counted(&http, &headers, Input::Body(body)).await
}

/// `GET /graphql`: GraphiQL for a browser asking for a page (when it is served), else the
/// query in the URL.
pub(super) async fn get(
    State(http): State<Arc<Http>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if http.graphiql && media::wants_html(&headers) {
        return super::graphiql::page(&http.base_path);
    }
    let mut response = counted(&http, &headers, Input::Url(query)).await;
    // The same URL answers a page or JSON by `Accept`: caches must key on it.
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// Serves a request and counts it in the metrics by operation and outcome.
async fn counted(http: &Http, headers: &HeaderMap, input: Input) -> Response {
    let started = std::time::Instant::now();
    let mut seen = Seen::default();
    let response = serve(http, headers, input, &mut seen).await;
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
    let mut response = response;
    response.extensions_mut().insert(super::access_log::Note {
        key: seen.key,
        operation: seen.name,
        field: Some(operation),
        code: Some(code),
    });
    response
}

async fn serve(http: &Http, headers: &HeaderMap, input: Input, seen: &mut Seen) -> Response {
    let Some(media) = media::negotiate(headers) else {
        return Media::Json.error(
            StatusCode::NOT_ACCEPTABLE,
            "answers are application/graphql-response+json or application/json (UTF-8): accept \
             one of them"
                .into(),
            "VALIDATION",
            None,
        );
    };
    if let Input::Body(_) = input {
        if let Err(message) = json_content(headers) {
            return media.error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message.into(),
                "VALIDATION",
                None,
            );
        }
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let actor = match super::actor_from(&http.app, authorization).await {
        Ok(Some(actor)) => {
            seen.key = actor.key_id;
            actor
        }
        Ok(None) => return unauthenticated(http, media, input).await,
        Err(e) => {
            let gql: async_graphql::Error = e.into();
            return media.error(
                StatusCode::SERVICE_UNAVAILABLE,
                gql.message,
                "INTERNAL",
                None,
            );
        }
    };
    let (parsed, queries_only) = match input {
        Input::Body(body) => match read_body(http, body, media).await {
            Ok(bytes) => (
                serde_json::from_slice::<Value>(&bytes).map_err(|e| not_json(&e)),
                false,
            ),
            Err(response) => return response,
        },
        Input::Url(query) => (from_url(query.as_deref().unwrap_or_default()), true),
    };
    let (requests, batch) = match parsed.and_then(|value| requests_of(value, http.max_batch)) {
        Ok(requests) => requests,
        Err(Malformed { message, limit }) => {
            return media.error(StatusCode::BAD_REQUEST, message, "VALIDATION", limit)
        }
    };
    // Room for every operation of the request, held until the answer is written.
    let _permit = match http.in_flight.acquire(actor.key_id, requests.len()).await {
        Ok(permit) => permit,
        Err(busy) => {
            // Counted under its own code, so an operator sees refusals for lack of room.
            seen.code = Some(busy.code().to_owned());
            return busy_answer(media, busy);
        }
    };
    let executed = match tokio::time::timeout(
        http.request_timeout,
        run_all(http, requests, &actor, queries_only),
    )
    .await
    {
        Ok(executed) => executed,
        Err(_) => {
            tracing::warn!(
                limit_secs = http.request_timeout.as_secs(),
                "an operation ran out of time"
            );
            return media.error(
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
    let first = &executed[0];
    seen.operation = first.0.operation().map(str::to_owned);
    seen.name = first.0.name().map(str::to_owned);
    seen.code = Some(code_of(&first.1).unwrap_or("ok").to_owned());
    if batch {
        let answers: Vec<Answer> = executed.iter().map(|(e, r)| body_of(e, r)).collect();
        return media.answer(StatusCode::OK, &answers);
    }
    let (outcome, response) = &executed[0];
    let body = body_of(outcome, response);
    if outcome.get() || response.errors.is_empty() {
        return media.answer(StatusCode::OK, &body);
    }
    if code_of(response) == Some(METHOD_NOT_ALLOWED) {
        let mut answer = media.answer(StatusCode::METHOD_NOT_ALLOWED, &body);
        answer
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return answer;
    }
    media.answer(media.refused(), &body)
}

/// A request refused for lack of room: 429 when its key's share is spent, 503 when the
/// server's limit is, both with `Retry-After`.
fn busy_answer(media: Media, busy: crate::in_flight::Busy) -> Response {
    use crate::in_flight::Busy;
    let status = match busy {
        Busy::Key => StatusCode::TOO_MANY_REQUESTS,
        Busy::Server => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut answer = media.error(status, busy.message(), busy.code(), None);
    answer
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    answer
}

/// Operations sent as JSON with no charset or UTF-8.
fn json_content(headers: &HeaderMap) -> Result<(), &'static str> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if essence != "application/json" && essence != "application/graphql-response+json" {
        return Err("send operations as POST with Content-Type: application/json");
    }
    let utf8 = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if !utf8 {
        return Err("operations are read as UTF-8: send charset=utf-8 or no charset");
    }
    Ok(())
}

/// 401 to an anonymous request. A body is read (bounded, never parsed) so that the client,
/// which may still be sending it, gets the answer rather than a reset connection.
async fn unauthenticated(http: &Http, media: Media, input: Input) -> Response {
    let drained = match input {
        Input::Body(body) => matches!(
            tokio::time::timeout(
                http.body_timeout,
                axum::body::to_bytes(body, http.max_body_bytes)
            )
            .await,
            Ok(Ok(_))
        ),
        Input::Url(_) => true,
    };
    let mut response = media.error(
        StatusCode::UNAUTHORIZED,
        Error::Unauthenticated.message(),
        Error::Unauthenticated.code(),
        None,
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The body, read under the size and time limits.
async fn read_body(http: &Http, body: Body, media: Media) -> Result<axum::body::Bytes, Response> {
    match tokio::time::timeout(
        http.body_timeout,
        axum::body::to_bytes(body, http.max_body_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(media.error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds {} bytes", http.max_body_bytes),
            "VALIDATION",
            Some("bodySize"),
        )),
        Err(_) => Err(media.error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                http.body_timeout.as_secs()
            ),
            "VALIDATION",
            Some("bodyTimeout"),
        )),
    }
}

/// A request that is not a GraphQL request at all (answered 400 whatever the media type).
struct Malformed {
    message: String,
    limit: Option<&'static str>,
}

impl Malformed {
    fn new(message: impl Into<String>) -> Self {
        Malformed {
            message: message.into(),
            limit: None,
        }
    }
}

fn not_json(e: &serde_json::Error) -> Malformed {
    // serde's own message names internal types; say what is expected instead.
    let at = if e.line() > 0 {
        format!(" (line {}, column {})", e.line(), e.column())
    } else {
        String::new()
    };
    Malformed::new(format!(
        "the body is not a GraphQL request: expected a JSON object with a \"query\" string and \
         optional \"operationName\", \"variables\" and \"extensions\"{at}"
    ))
}

/// The parameters of a GET as the JSON object a POST would carry: `variables` and
/// `extensions` are JSON texts.
fn from_url(query: &str) -> Result<Value, Malformed> {
    let mut object = Map::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = match &*name {
            "query" | "operationName" => Value::String(value.into_owned()),
            "variables" | "extensions" => serde_json::from_str(&value).map_err(|_| {
                Malformed::new(format!("the {name} parameter is not a JSON object"))
            })?,
            _ => continue,
        };
        if object.insert(name.into_owned(), value).is_some() {
            return Err(Malformed::new("a parameter is given twice"));
        }
    }
    Ok(Value::Object(object))
}

/// The operations of one request object, or of a batch (an array of at most `max_batch`);
/// true for a batch.
fn requests_of(
    value: Value,
    max_batch: usize,
) -> Result<(Vec<async_graphql::Request>, bool), Malformed> {
    match value {
        Value::Array(items) if items.is_empty() => Err(Malformed::new("the batch is empty")),
        Value::Array(items) if items.len() > max_batch => Err(Malformed {
            message: format!(
                "the batch has {} operations; the limit is {max_batch} (MAX_BATCH)",
                items.len()
            ),
            limit: Some("batch"),
        }),
        Value::Array(items) => Ok((
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    request_of(item).map_err(|e| Malformed {
                        message: format!("operation {i} of the batch: {}", e.message),
                        ..e
                    })
                })
                .collect::<Result<_, _>>()?,
            true,
        )),
        value => request_of(value).map(|request| (vec![request], false)),
    }
}

/// A request object's parameters, checked: `query` a string (absent only with a persisted
/// query's hash), `operationName` a string, `variables` and `extensions` objects; each may be
/// null.
fn request_of(value: Value) -> Result<async_graphql::Request, Malformed> {
    let Value::Object(mut object) = value else {
        return Err(Malformed::new(
            "the body is not a GraphQL request: expected a JSON object with a \"query\" string",
        ));
    };
    let query = match object.remove("query") {
        Some(Value::String(query)) => Some(query),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Malformed::new("query must be a string")),
    };
    let operation_name = match object.remove("operationName") {
        Some(Value::String(name)) => Some(name),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Malformed::new("operationName must be a string")),
    };
    let variables = match object.remove("variables") {
        Some(Value::Object(v)) => Some(v),
        None | Some(Value::Null) => None,
        Some(_) => return Err(Malformed::new("variables must be an object")),
    };
    let extensions = match object.remove("extensions") {
        Some(Value::Object(e)) => e,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(Malformed::new("extensions must be an object")),
    };
    if query.is_none() && !extensions.contains_key("persistedQuery") {
        return Err(Malformed::new(
            "the request has no query: send the operation's text in \"query\"",
        ));
    }
    let mut request = async_graphql::Request::new(query.unwrap_or_default());
    if let Some(name) = operation_name {
        request = request.operation_name(name);
    }
    if let Some(variables) = variables {
        request = request.variables(Variables::from_json(Value::Object(variables)));
    }
    for (name, value) in extensions {
        let value = async_graphql::Value::from_json(value)
            .map_err(|_| Malformed::new("extensions must be JSON values"))?;
        request.extensions.insert(name, value);
    }
    Ok(request)
}

/// Runs the operations one after the other, each with its own record of whether it ran.
async fn run_all(
    http: &Http,
    requests: Vec<async_graphql::Request>,
    actor: &Actor,
    queries_only: bool,
) -> Vec<(Arc<Executed>, async_graphql::Response)> {
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        let executed = Arc::new(Executed::default());
        let mut request = request.data(actor.clone()).data(executed.clone());
        if queries_only {
            request = request.data(QueriesOnly);
        }
        // Log lines of the operation carry its name (recorded once the document is read) and
        // the key's id as fields.
        let span = tracing::info_span!(
            "graphql",
            operation = tracing::field::Empty,
            key_id = tracing::field::Empty
        );
        if let Some(id) = actor.key_id {
            span.record("key_id", id);
        }
        let response = tracing::Instrument::instrument(http.schema.execute(request), span).await;
        answers.push((executed, response));
    }
    answers
}

/// An answer as it is written: without `data` when the operation never ran (its `data` is
/// null then, and a GraphQL response has no `data` entry when nothing ran).
#[derive(serde::Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

fn body_of<'a>(executed: &Executed, response: &'a async_graphql::Response) -> Answer<'a> {
    Answer {
        data: executed.get().then_some(&response.data),
        errors: &response.errors,
        extensions: &response.extensions,
    }
}

fn code_of(response: &async_graphql::Response) -> Option<&str> {
    match response.errors.first()?.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code.as_str()),
        _ => None,
    }
}
