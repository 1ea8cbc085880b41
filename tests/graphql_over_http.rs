//! GraphQL over HTTP, as the spec's audit (`graphql-http`'s server audits) checks it, ported
//! rule by rule (their ids in the comments) and sent with a key, as every request here needs
//! one; then what the audit does not cover: GET with persisted queries, batches, `Vary`, 406.
//!
//! Where this server follows the current spec text over an older audit rule:
//! - invalid parameters and a body that is not JSON answer 400 under `application/json` too
//!   (the spec's examples; older audits asked 200 with `errors`: 3715, 9FEx, FB9x, F05x, 368x,
//!   D477, F5AF). Document parse and validation failures answer 200 under `application/json`
//!   (572B, FDE2) and 400 under `application/graphql-response+json` (556A, 74FF).

mod common;

use common::*;
use mapping_gateway::access::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const GR: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

struct Answer {
    status: u16,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn media(&self) -> &str {
        self.content_type.split(';').next().unwrap_or_default()
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.bytes().await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).expect("82A3: answers are UTF-8");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

/// A POST with the key; `accept` and `content_type` as given (`None`: no header).
async fn post(
    app: &TestApp,
    accept: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.url))
        .bearer_auth(&app.admin_key);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    answer(request.body(body.to_owned()).send().await.unwrap()).await
}

async fn post_json(app: &TestApp, accept: &str, body: Value) -> Answer {
    post(app, Some(accept), Some(JSON), &body.to_string()).await
}

/// A GET with the key and these URL parameters.
async fn get(app: &TestApp, accept: Option<&str>, params: &[(&str, &str)]) -> Answer {
    let mut request = app
        .client
        .get(format!("{}/graphql", app.url))
        .query(params)
        .bearer_auth(&app.admin_key);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    answer(request.send().await.unwrap()).await
}

/// A mutation that leaves a trace: a new integration of this name.
fn create(name: &str) -> String {
    format!(
        "mutation {{ createIntegration(input: {{ name: \"{name}\", gateway: GEOSITE, \
         apiUrl: \"https://geo.example/api/\", username: \"u\", password: \"p\" }}) {{ name }} }}"
    )
}

async fn names(app: &TestApp) -> Vec<String> {
    app.ok("{ integrations { name } }", json!({})).await["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

fn ok(a: &Answer, what: &str) {
    assert_eq!(a.status, 200, "{what}: {}", a.body);
    assert!(a.body.get("errors").is_none(), "{what}: {}", a.body);
    assert_eq!(a.body["data"]["__typename"], "Query", "{what}: {}", a.body);
}

on_both_engines! {
    async fn media_types_follow_accept(app: TestApp) {
        let typename = json!({ "query": "{ __typename }" });
        // 22EB, 4655, 47DE
        for (accept, media) in [(GR, GR), (JSON, JSON), ("*/*", JSON), (ACCEPT, GR)] {
            let a = post_json(&app, accept, typename.clone()).await;
            ok(&a, accept);
            assert_eq!(a.media(), media, "{accept}");
            assert!(a.content_type.contains("charset=utf-8"), "{}", a.content_type);
        }
        // 80D8: no Accept at all.
        let a = get(&app, None, &[("query", "{ __typename }")]).await;
        ok(&a, "GET without Accept");
        assert_eq!(a.media(), JSON);
        let a = post(&app, None, Some(JSON), &typename.to_string()).await;
        assert_eq!(a.media(), JSON);
        // BF61, 78D5; and only UTF-8.
        ok(&post(&app, Some(GR), Some("application/json; charset=utf-8"), &typename.to_string()).await, "BF61");
        let latin = post(&app, Some(GR), Some("application/json; charset=iso-8859-1"), &typename.to_string()).await;
        assert_eq!(latin.status, 415, "{}", latin.body);
        // Nothing acceptable: 406.
        let a = post(&app, Some("text/plain"), Some(JSON), &typename.to_string()).await;
        assert_eq!(a.status, 406, "{}", a.body);
    }

    async fn requests_over_post_and_get(app: TestApp) {
        // 2C94, 03D4, 5A70
        ok(&post_json(&app, GR, json!({ "query": "{ __typename }" })).await, "POST");
        let a = get(&app, Some(GR), &[("query", "{ __typename }")]).await;
        ok(&a, "GET");
        assert_eq!(a.headers["vary"], "Accept");
        // 9C48: no mutation over GET, whatever Accept says; nothing ran.
        for accept in [GR, JSON] {
            let a = get(&app, Some(accept), &[("query", &create("x"))]).await;
            assert_eq!(a.status, 405, "{}", a.body);
            assert_eq!(a.headers["allow"], "POST");
            assert_eq!(a.body["errors"][0]["extensions"]["code"], "METHOD_NOT_ALLOWED");
            assert!(a.body.get("data").is_none());
        }
        assert_eq!(names(&app).await, Vec::<String>::new(), "the mutation did not run");
        // A named query beside a mutation: the query may run over GET.
        let doc = format!("query Q {{ __typename }} {}", create("y").replacen("mutation", "mutation M", 1));
        let doc = doc.as_str();
        ok(&get(&app, Some(GR), &[("query", doc), ("operationName", "Q")]).await, "query of two");
        assert_eq!(get(&app, Some(GR), &[("query", doc), ("operationName", "M")]).await.status, 405);
        // 9ABE: no Content-Type. 7267: no body.
        let a = post(&app, Some(GR), None, "{\"query\":\"{ __typename }\"}").await;
        assert!((400..500).contains(&a.status), "{}", a.status);
        for accept in [GR, JSON] {
            let a = post(&app, Some(accept), Some(JSON), "").await;
            assert_eq!(a.status, 400, "{}", a.body);
            assert!(a.body["errors"].is_array());
        }
    }

    async fn parameters_are_checked(app: TestApp) {
        let q = "{ __typename }";
        let invalid = [json!({ "obj": "ect" }), json!(0), json!(false), json!(["array"])];
        for accept in [GR, JSON] {
            // 6610: no query. 4F5x: a query that is not a string.
            let a = post_json(&app, accept, json!({ "notquery": q })).await;
            assert_eq!(a.status, 400, "{accept}: {}", a.body);
            assert!(a.body["errors"].is_array() && a.body.get("data").is_none(), "{}", a.body);
            for bad in &invalid {
                let a = post_json(&app, accept, json!({ "query": bad })).await;
                assert_eq!(a.status, 400, "{accept} query {bad}: {}", a.body);
                assert_eq!(a.body["errors"][0]["extensions"]["code"], "VALIDATION");
            }
            // E3Ex: operationName not a string. 69Bx: variables not a map. 904x: extensions.
            for bad in &invalid {
                let a = post_json(&app, accept, json!({ "query": q, "operationName": bad })).await;
                assert_eq!(a.status, 400, "{accept} operationName {bad}");
            }
            for bad in [json!("string"), json!(0), json!(false), json!(["array"])] {
                for field in ["variables", "extensions"] {
                    let a = post_json(&app, accept, json!({ "query": q, field: bad })).await;
                    assert_eq!(a.status, 400, "{accept} {field} {bad}: {}", a.body);
                }
            }
            // 34A2, 13EE, 8161, B8B3: strings. 94Bx, 022x: nulls. 2EA1, 28B9, 428F, 1B7A: maps.
            ok(&post_json(&app, accept, json!({ "query": q })).await, "string query");
            ok(&post_json(&app, accept, json!({ "query": "query Query { __typename }", "operationName": "Query" })).await, "operationName");
            for field in ["variables", "operationName", "extensions"] {
                ok(&post_json(&app, accept, json!({ "query": q, field: null })).await, field);
            }
            ok(&post_json(&app, accept, json!({ "query": q, "extensions": { "some": "value" } })).await, "extensions map");
            let typed = "query Type($name: String!) { __typename __type(name: $name) { name } }";
            let a = post_json(&app, accept, json!({ "query": typed, "variables": { "name": "sometype" } })).await;
            assert_eq!((a.status, a.body.get("errors")), (200, None), "{}", a.body);
            // D6D5, 6A70: variables as JSON text in a GET.
            let a = get(&app, Some(accept), &[("query", typed), ("variables", "{\"name\":\"sometype\"}")]).await;
            assert_eq!((a.status, a.body.get("errors")), (200, None), "{}", a.body);
            let a = get(&app, Some(accept), &[("query", typed), ("variables", "{not json")]).await;
            assert_eq!(a.status, 400, "{}", a.body);
        }
    }

    async fn request_errors_take_the_status_of_the_media_type(app: TestApp) {
        // D477/2163: not JSON, 400 under both.
        for accept in [GR, JSON] {
            let a = post(&app, Some(accept), Some(JSON), "{ \"not a JSON").await;
            assert_eq!(a.status, 400, "{accept}");
            assert_eq!(a.media(), accept);
        }
        let cases = [
            ("parse", json!({ "query": "{" })),
            ("validation", json!({ "query": "{ 8f31403dfe404bccbb0e835f2629c6a7 }" })),
            ("a missing variable", json!({ "query": "query($i: ID!) { integration(id: $i) { id } }" })),
            ("a persisted query of an unknown version", json!({ "query": "{ __typename }", "extensions": { "persistedQuery": { "version": 2 } } })),
            ("an unknown operation name", json!({ "query": "query A { __typename }", "operationName": "B" })),
        ];
        for (what, body) in cases {
            // 556A, 74FF, 5E5B, D586: 400 and no data under graphql-response+json.
            let a = post_json(&app, GR, body.clone()).await;
            assert_eq!(a.status, 400, "{what}: {}", a.body);
            assert!(a.body.get("data").is_none(), "{what}: {}", a.body);
            assert_eq!(a.body["errors"][0]["extensions"]["code"], "VALIDATION", "{what}: {}", a.body);
            // 572B, FDE2: 200 under application/json, still without data.
            let a = post_json(&app, JSON, body).await;
            assert_eq!(a.status, 200, "{what}: {}", a.body);
            assert!(a.body.get("data").is_none() && a.body["errors"].is_array(), "{what}: {}", a.body);
        }
        let a = post_json(&app, GR, json!({ "query": "query($i: ID!) { integration(id: $i) { id } }" })).await;
        assert!(a.body["errors"][0]["message"].as_str().unwrap().contains("$i"), "{}", a.body);
        // An operation that ran answers 200 even with a field error.
        let a = post_json(&app, GR, json!({ "query": "{ integration(id: \"nope\") { id } }" })).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body["errors"].is_array() && a.body.get("data").is_some(), "{}", a.body);
        // BC58: not permitted.
        let anonymous = app.client.post(format!("{}/graphql", app.url)).header("content-type", JSON)
            .header("accept", GR).body("{\"query\":\"{ __typename }\"}").send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
    }

    async fn persisted_queries_run_over_get(app: TestApp) {
        // A text of its own: the store is per process and per key id, and both engines' first
        // keys have id 1 when their tests share a process (`cargo test`).
        let query = format!("query {} {{ integrations {{ id name }} }}", unique("Names_"));
        let query = query.as_str();
        let hash = hex::encode(Sha256::digest(query.as_bytes()));
        let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } }).to_string();
        // Unknown yet: the client is told to send the text.
        let a = get(&app, Some(GR), &[("extensions", &extensions)]).await;
        assert_eq!(a.body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_FOUND", "{}", a.body);
        // Registered by a GET carrying both, as Apollo's link does.
        let a = get(&app, Some(GR), &[("query", query), ("extensions", &extensions)]).await;
        assert_eq!((a.status, a.body.get("errors")), (200, None), "{}", a.body);
        let a = get(&app, Some(GR), &[("extensions", &extensions)]).await;
        assert_eq!((a.status, a.body.get("errors")), (200, None), "{}", a.body);
        assert!(a.body["data"]["integrations"].is_array());
    }

    async fn batches_run_in_order_within_their_limit(app: TestApp) {
        let batch = json!([
            { "query": create("batched") },
            { "query": "{ integrations { name } }" },
            { "query": "{ nope }" },
        ]);
        let a = post_json(&app, ACCEPT, batch).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let answers = a.body.as_array().expect("an array of answers");
        assert_eq!(answers.len(), 3);
        assert_eq!(answers[0]["data"]["createIntegration"]["name"], "batched", "{}", answers[0]);
        assert_eq!(answers[1]["data"]["integrations"][0]["name"], "batched", "in order: {}", answers[1]);
        assert_eq!(answers[2]["errors"][0]["extensions"]["code"], "VALIDATION");
        assert!(answers[2].get("data").is_none());
        // Over the limit, empty, or holding something that is not a request: 400, nothing ran.
        let eleven: Vec<Value> = (0..11).map(|i| json!({ "query": create(&format!("b{i}")) })).collect();
        let a = post_json(&app, ACCEPT, Value::Array(eleven)).await;
        assert_eq!(a.status, 400, "{}", a.body);
        assert_eq!(a.body["errors"][0]["extensions"]["limit"], "batch");
        assert_eq!(names(&app).await, ["batched"]);
        assert_eq!(post_json(&app, ACCEPT, json!([])).await.status, 400);
        assert_eq!(post_json(&app, ACCEPT, json!([{ "query": "{ __typename }" }, 3])).await.status, 400);
    }
}

/// The kind of a field's type as introspection tells it: `NON_NULL ENUM`, `SCALAR`, ...
fn kind(field: &Value) -> String {
    let ty = &field["type"];
    match ty["kind"].as_str() {
        Some("NON_NULL") => format!("NON_NULL {}", ty["ofType"]["kind"].as_str().unwrap()),
        other => other.unwrap().to_owned(),
    }
}

on_both_engines! {
    /// A non-null root field that fails nulls `data` (its nearest nullable parent is the root),
    /// as the spec's "Handling Field Errors" says, whatever else the operation selected; a
    /// nullable one is null beside the rest.
    async fn a_failed_lookup_is_null_beside_the_rest_and_a_failed_non_null_field_nulls_data(app: TestApp) {
        // Lookups are nullable: a miss is null, with its error, and the rest of data stays.
        for (query, path) in [
            (r#"{ gateways { kind } binding(id: "QmluZGluZzo5OTk5OQ") { id } }"#, "binding"),
            (r#"{ gateways { kind } integration(id: "garbage") { id } }"#, "integration"),
            (r#"{ gateways { kind } syncRun(id: "U3luY1J1bjo5OTk5OQ") { id } }"#, "syncRun"),
        ] {
            let (status, body) = app.post(Some(&app.admin_key), query, json!({})).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["data"]["gateways"][0]["kind"], "GEOSITE", "{body}");
            assert!(body["data"].as_object().unwrap().contains_key(path), "{body}");
            assert!(body["data"][path].is_null(), "{body}");
            assert_eq!(body["errors"][0]["path"], json!([path]), "{body}");
            assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND");
        }
        let (_, body) = app.post(Some(&app.admin_key), r#"{ integration(id: "garbage") { id } }"#, json!({})).await;
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("malformed"), "{body}");
        // A non-null root field that fails nulls all of data (its nearest nullable parent).
        let viewer = app.key(Role::Viewer).await;
        let (_, body) = app.post(Some(&viewer), "{ gateways { kind } apiKeys { id } }", json!({})).await;
        assert!(body["data"].is_null(), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
        assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
        // Nothing failed: the data is there.
        let (_, body) = app
            .post(Some(&app.admin_key), r#"{ gateways { kind } node(id: "QmluZGluZzo5OTk5OQ") { id } }"#, json!({}))
            .await;
        assert_eq!(body["data"]["gateways"][0]["kind"], "GEOSITE", "{body}");
        assert!(body["data"]["node"].is_null(), "{body}");
    }
}

on_both_engines! {
    /// An answer's keys come in the query's order, root fields included, though the fields that
    /// read the database finish after the others.
    async fn keys_come_in_the_query_s_order(app: TestApp) {
        let query = "{ integrations { name id } apiKeys { name id role } gateways { kind } \
                     first: integrations { id } }";
        let text = app
            .client
            .post(format!("{}/graphql", app.url))
            .bearer_auth(&app.admin_key)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {text}"));
        assert!(at("integrations") < at("apiKeys") && at("apiKeys") < at("gateways") && at("gateways") < at("first"), "{text}");
        let key = &text[text.find("\"apiKeys\":[{").unwrap()..];
        assert!(key.find("\"name\"").unwrap() < key.find("\"id\"").unwrap(), "{text}");
        assert!(key.find("\"id\"").unwrap() < key.find("\"role\"").unwrap(), "{text}");
    }
}

on_both_engines! {
    /// Types say what the data is: non-null where a value is always there, enums for codes,
    /// the root types named as clients expect, and a specified date-time scalar.
    async fn the_schema_says_what_the_data_is(app: TestApp) {
        let data = app.ok(
            "{ __schema { description queryType { name } mutationType { name } subscriptionType { name } \
               types { name enumValues(includeDeprecated: true) { name isDeprecated deprecationReason } \
                 fields(includeDeprecated: true) { name isDeprecated deprecationReason \
                   args { name description defaultValue } type { kind ofType { kind } } } } } \
               dateTime: __type(name: \"DateTime\") { description specifiedByURL } }",
            json!({}),
        ).await;
        let schema = &data["__schema"];
        assert_eq!(
            (&schema["queryType"]["name"], &schema["mutationType"]["name"], &schema["subscriptionType"]["name"]),
            (&json!("Query"), &json!("Mutation"), &json!("Subscription"))
        );
        let field = |ty: &str, name: &str| -> Value {
            let t = schema["types"].as_array().unwrap().iter().find(|t| t["name"] == ty).unwrap_or_else(|| panic!("{ty}"));
            t["fields"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("{ty}.{name}")).clone()
        };
        for (ty, name, expected) in [
            ("SyncRun", "status", "NON_NULL ENUM"),
            ("SyncRun", "mode", "NON_NULL ENUM"),
            ("SyncRun", "trigger", "NON_NULL ENUM"),
            ("Binding", "status", "NON_NULL ENUM"),
            ("Integration", "gateway", "NON_NULL ENUM"),
            ("Element", "item", "NON_NULL ENUM"),
            ("SyncPhase", "phase", "NON_NULL ENUM"),
            ("SyncPhase", "item", "ENUM"),
            ("SyncError", "code", "NON_NULL ENUM"),
            ("IntegrationTest", "code", "ENUM"),
            ("HistoryEntry", "action", "NON_NULL ENUM"),
            ("SyncProgress", "item", "ENUM"),
            ("SyncProgress", "runPhase", "NON_NULL ENUM"),
            ("SyncProgress", "run", "NON_NULL OBJECT"),
            ("Element", "project", "NON_NULL OBJECT"),
            ("Port", "splitter", "NON_NULL OBJECT"),
            ("SyncRun", "integration", "NON_NULL OBJECT"),
            ("SyncRun", "startedAt", "NON_NULL SCALAR"),
            ("SyncRun", "heartbeatAt", "NON_NULL SCALAR"),
            ("Project", "integration", "NON_NULL OBJECT"),
            ("Integration", "syncRuns", "NON_NULL OBJECT"),
            ("Integration", "history", "NON_NULL OBJECT"),
            ("Integration", "bindings", "NON_NULL OBJECT"),
            // Lookups that can miss are nullable.
            ("Query", "binding", "OBJECT"),
            ("Query", "element", "OBJECT"),
            ("Query", "elementByFid", "OBJECT"),
            ("Query", "splitter", "OBJECT"),
            ("Query", "port", "OBJECT"),
            ("Query", "integration", "OBJECT"),
            ("Query", "syncRun", "OBJECT"),
            ("Query", "node", "INTERFACE"),
        ] {
            assert_eq!(kind(&field(ty, name)), expected, "{ty}.{name}");
        }
        let undescribed: Vec<String> = schema["types"].as_array().unwrap().iter()
            .filter(|t| !t["name"].as_str().unwrap().starts_with("__"))
            .flat_map(|t| t["fields"].as_array().cloned().unwrap_or_default().into_iter().map(move |f| (t["name"].clone(), f)))
            .flat_map(|(t, f)| f["args"].as_array().unwrap().iter()
                .filter(|a| a["description"].as_str().unwrap_or_default().is_empty())
                .map(|a| format!("{}.{}({})", t.as_str().unwrap(), f["name"].as_str().unwrap(), a["name"].as_str().unwrap()))
                .collect::<Vec<_>>())
            .collect();
        assert!(undescribed.is_empty(), "arguments without a description: {undescribed:?}");
        // The schema says what it is; what is deprecated says why and until when.
        assert!(schema["description"].as_str().unwrap().starts_with("mapping-gateway: "), "{}", schema["description"]);
        for (ty, name) in [("SyncProgress", "phase"), ("Binding", "document"), ("Binding", "orphanedFrom")] {
            let f = field(ty, name);
            assert_eq!(f["isDeprecated"], true, "{ty}.{name}");
            assert!(f["deprecationReason"].as_str().unwrap().contains("docs/SCHEMA.md"), "{ty}.{name}");
        }
        let status = schema["types"].as_array().unwrap().iter().find(|t| t["name"] == "SyncStatus").unwrap();
        let queued = status["enumValues"].as_array().unwrap().iter().find(|v| v["name"] == "QUEUED").unwrap();
        assert_eq!(queued["isDeprecated"], true);
        // Page sizes have their default in the schema, where generated clients read it.
        for (ty, name) in [("Query", "elements"), ("Query", "bindings"), ("Query", "syncRuns"), ("Query", "history"), ("Integration", "syncRuns")] {
            let first = field(ty, name)["args"].as_array().unwrap().iter().find(|a| a["name"] == "first").unwrap().clone();
            assert_eq!(first["defaultValue"], "50", "{ty}.{name}");
        }
        let first = field("Query", "integrations")["args"].as_array().unwrap().iter().find(|a| a["name"] == "first").unwrap().clone();
        assert_eq!(first["defaultValue"], "100");
        assert_eq!(data["dateTime"]["specifiedByURL"], "https://datatracker.ietf.org/doc/html/rfc3339");
        assert!(data["dateTime"]["description"].as_str().unwrap().contains("RFC 3339"));
    }
}
