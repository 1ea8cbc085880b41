//! Property tests of the request surface: random bodies and random GraphQL documents, with and
//! without a key, never get a 5xx or a panic, and every error they get carries a code, also
//! while clients that never read and a subscription flood hold on beside them. Bounded (a few
//! hundred cases each) so that CI stays short; `PROPTEST_CASES` raises it locally.

mod common;

use common::{Engine, TestApp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

/// Pieces GraphQL documents are made of, hostile ones included.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    "...",
    "on",
    "fragment",
    "query",
    "mutation",
    "subscription",
    "F",
    "G",
    "Query",
    "Mutation",
    "integrations",
    "gateways",
    "kind",
    "id",
    "name",
    "__typename",
    "__schema",
    "__type(name: \"Integration\")",
    "types",
    "elements(integrationId: \"x\", first: 501)",
    "history(integrationId: $id, after: \"%%\")",
    "integration(id: \"SW50ZWdyYXRpb246MQ\")",
    "edges",
    "node",
    "pageInfo",
    "$id",
    "$id: ID!",
    "@skip(if: true)",
    "@include(if: $id)",
    "@deprecated",
    "\"\\u0000\"",
    "\"\\\\\"",
    "1e999",
    "-0",
    "null",
    "true",
    "\"'; DROP TABLE elements; --\"",
    "a:",
    "b:",
    ",",
    "#",
    "\n",
    "=",
    "setIntegrationActive(id: \"x\", active: false)",
    "\u{202E}",
    "\"\u{1b}[31m\"",
];

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|t| t.join(" "))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request body: raw bytes, any JSON, or a request-shaped object with a random document.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (
            document(),
            prop::option::of(json_value()),
            prop::option::of("[A-Za-z]{0,6}")
        )
            .prop_map(|(query, variables, operation)| {
                let mut request = serde_json::json!({ "query": query });
                if let Some(v) = variables {
                    request["variables"] = v;
                }
                if let Some(op) = operation {
                    request["operationName"] = Value::String(op);
                }
                request.to_string().into_bytes()
            }),
    ]
}

fn check(status: u16, text: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "status {status}: {text}");
    let answer: Value = serde_json::from_str(text)
        .map_err(|_| TestCaseError::fail(format!("not JSON ({status}): {text}")))?;
    if let Some(errors) = answer.get("errors") {
        for error in errors.as_array().into_iter().flatten() {
            prop_assert!(
                error["extensions"]["code"].is_string(),
                "an error without a code: {error}"
            );
        }
    }
    Ok(())
}

/// Runs `cases` random requests against `app` (from `runtime`), each checked by [`check`].
fn random_requests(runtime: &tokio::runtime::Runtime, app: &TestApp, cases: u32) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(body(), any::<bool>()), |(body, with_key)| {
            let (status, text) = runtime.block_on(async {
                let mut request = app
                    .client
                    .post(format!("{}/graphql", app.url))
                    .header("content-type", "application/json")
                    .timeout(std::time::Duration::from_secs(20))
                    .body(body);
                if with_key {
                    request = request.bearer_auth(&app.admin_key);
                }
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            });
            check(status, &text)
        })
        .unwrap();
    // The server is still fine afterwards.
    let health = runtime
        .block_on(app.client.get(format!("{}/healthz", app.url)).send())
        .unwrap();
    assert_eq!(health.status(), 200);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn random_requests_get_coded_errors_and_no_5xx() {
    let runtime = runtime();
    let app = runtime.block_on(TestApp::start(Engine::Sqlite)).unwrap();
    random_requests(&runtime, &app, 300);
}

/// The same, while beside them clients pipeline requests through a small receive buffer and
/// never read the answers, and one WebSocket floods subscribes without end (reading what it
/// is told, so only its budget stops it).
#[test]
fn random_requests_are_answered_beside_slow_readers_and_a_subscription_flood() {
    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    let runtime = runtime();
    let app = runtime.block_on(TestApp::start(Engine::Sqlite)).unwrap();
    let hostile = runtime.block_on(async {
        let (sim, integration, _) = common::linked_simulator(&app, 5, 7).await;
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let stream = common::never_reading(app.addr).await;
            let request = format!(
                "POST /graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 27\r\n\r\n\
                 {{\"query\":\"{{ __typename }}\"}}",
                app.admin_key
            )
            .repeat(1000);
            tasks.push(tokio::spawn(async move {
                let (_never_read, mut write) = stream.into_split();
                while write.write_all(request.as_bytes()).await.is_ok() {}
                std::future::pending::<()>().await;
            }));
        }
        let mut socket = common::connect(&app.ws_url(), common::TRANSPORT_WS).await;
        common::send(
            &mut socket,
            serde_json::json!({ "type": "connection_init",
                "payload": { "authorization": format!("Bearer {}", app.admin_key) } }),
        )
        .await;
        let (mut sink, mut stream) = socket.split();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = sent.clone();
        tasks.push(tokio::spawn(async move {
            while stream.next().await.is_some() {}
        }));
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let subscribe = serde_json::json!({ "type": "subscribe", "id": n.to_string(),
                    "payload": { "query": "subscription($i: ID!) { bindingEvents(integrationId: $i) { __typename } }",
                                 "variables": { "i": integration } } });
                let message = tokio_tungstenite::tungstenite::Message::Text(subscribe.to_string().into());
                if sink.send(message).await.is_err() {
                    break;
                }
                counted.store(n + 1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
        (sim, tasks, sent)
    });
    random_requests(&runtime, &app, 100);
    let (_sim, tasks, sent) = hostile;
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("{sent} subscribes sent during the cases");
    assert!(sent > 1_000, "the flood ran ({sent} subscribes)");
    for task in tasks {
        assert!(!task.is_finished(), "a hostile client was stopped early");
        task.abort();
    }
}
