//! Property tests of the request surface: random bodies and random GraphQL documents, with and
//! without a key, never get a 5xx or a panic, and every error they get carries a code. Bounded
//! (a few hundred cases each) so that CI stays short; `PROPTEST_CASES` raises it locally.

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
    "QueryRoot",
    "MutationRoot",
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

#[test]
fn random_requests_get_coded_errors_and_no_5xx() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(TestApp::start(Engine::Sqlite)).unwrap();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
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
