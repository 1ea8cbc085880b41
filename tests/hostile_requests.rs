//! Attacks on the request surface, driven over HTTP and shown refused: operation bombs (with and
//! without a key, while the server keeps answering), request errors, anonymous introspection,
//! and the depth, complexity and body limits.

mod common;

use std::time::Duration;

use common::{fragment_bomb, Engine, TestApp, ACCEPT};
use mapping_gateway::access::Role;
use mapping_gateway::config::Limits;
use serde_json::json;

async fn history_count(app: &TestApp) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    entity::history_entry::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap()
}

fn integration_input(name: &str) -> serde_json::Value {
    json!({ "input": {
        "name": name, "gateway": "GEOSITE", "apiUrl": "https://geo.example/api/",
        "username": "integracao", "password": "pw",
    }})
}

/// The bombs of the hostile-input review.
fn bombs() -> Vec<(&'static str, String)> {
    let inline = format!("{{ {} }}", "...{ __typename } ".repeat(10_000));
    let aliases = format!(
        "{{ {} }}",
        (0..2000)
            .map(|i| format!("a{i}: integrations {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    vec![
        ("10-level fragment bomb", fragment_bomb(10, 10)),
        ("7-level fragment bomb", fragment_bomb(7, 10)),
        ("10,000 inline fragments", inline),
        ("2,000 aliases of a list", aliases),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_bombs_are_refused_by_size_before_validation() {
    let app = TestApp::start_with(
        Engine::Sqlite,
        Limits {
            max_body_bytes: 1024 * 1024,
            ..Limits::default()
        },
    )
    .await
    .unwrap();
    for (what, query) in bombs() {
        let body = json!({ "query": query }).to_string();
        let (status, answer) = app.post_body(Some(&app.admin_key), body.clone()).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "VALIDATION",
            "{what}"
        );
        assert_eq!(
            answer["errors"][0]["extensions"]["limit"], "nodes",
            "{what}"
        );
        // Without a key nothing is even parsed.
        let (status, answer) = app.post_body(None, body.clone()).await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(answer["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        let (status, _) = app
            .post_body(Some("mgw_00000000000000000000000000000000"), body)
            .await;
        assert_eq!(status, 401, "{what}: a bad key is refused like no key");
    }
    // A refused mutation bomb leaves nothing behind.
    let id = app.create_integration("Alvo", "https://x.example").await;
    let before = history_count(&app).await;
    let mutation = format!(
        "mutation {{ {} }}",
        (0..1500)
            .map(|i| format!(
                "a{i}: setIntegrationActive(id: \"{id}\", active: {}) {{ id }}",
                i % 2 == 0
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (status, answer) = app
        .post_body(
            Some(&app.admin_key),
            json!({ "query": mutation }).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["limit"], "nodes");
    assert_eq!(history_count(&app).await, before, "no refused mutation ran");
    // The limit is a setting: an operation under it runs.
    app.ok(
        "{ a: integrations { id } b: integrations { name } }",
        json!({}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_answering_while_bombs_arrive() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    let bomb = json!({ "query": fragment_bomb(10, 10) }).to_string();
    let mut attackers = Vec::new();
    for round in 0..8 {
        let (client, url) = (app.client.clone(), app.url.clone());
        let (bomb, key) = (
            bomb.clone(),
            (round % 2 == 0).then(|| app.admin_key.clone()),
        );
        attackers.push(tokio::spawn(async move {
            for _ in 0..10 {
                let mut request = client
                    .post(format!("{url}/graphql"))
                    .header("content-type", "application/json")
                    .header("accept", ACCEPT)
                    .body(bomb.clone());
                if let Some(key) = &key {
                    request = request.bearer_auth(key);
                }
                let status = request.send().await.unwrap().status().as_u16();
                assert!(status == 400 || status == 401, "{status}");
            }
        }));
    }
    for _ in 0..20 {
        let health = tokio::time::timeout(
            Duration::from_secs(5),
            app.client.get(format!("{}/healthz", app.url)).send(),
        )
        .await
        .expect("/healthz answers while bombs arrive")
        .unwrap();
        assert_eq!(health.status(), 200);
    }
    for attacker in attackers {
        attacker.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_carry_codes_and_4xx() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    let key = app.admin_key.clone();
    let cases = [
        json!({ "query": "query A { gateways { kind } } query B { integrations { id } }" }),
        json!({ "query": "query A { gateways { kind } } query B { integrations { id } }", "operationName": "C" }),
        json!({ "query": "{ gateways { kind } }", "operationName": "Nope" }),
        json!({ "query": "{ gateways { kind " }),
        json!({ "query": "{ nothingHere }" }),
        json!({ "query": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }" }),
    ];
    for case in cases {
        let (status, body) = app.post_body(Some(&key), case.to_string()).await;
        assert_eq!(status, 400, "{case}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "VALIDATION",
            "{case}: {body}"
        );
    }
    for raw in [
        "null",
        "[]",
        "\"x\"",
        "{\"query\": 1}",
        "{",
        "",
        "{\"variables\": {}}",
    ] {
        let (status, body) = app.post_body(Some(&key), raw.to_owned()).await;
        assert_eq!(status, 400, "{raw}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "VALIDATION",
            "{raw}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            !message.contains("struct"),
            "internal type named: {message}"
        );
    }
    // The one operation of two named by operationName runs.
    let (status, body) = app.post_body(
        Some(&key),
        json!({ "query": "query A { gateways { kind } } query B { integrations { id } }", "operationName": "A" }).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["gateways"][0]["kind"], "GEOSITE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_needs_a_key_but_graphiql_loads_without_one() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    let q = "{ __schema { queryType { name } types { name } } }";
    let (status, body) = app.post(None, q, json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert!(body.get("data").is_none(), "{body}");
    let viewer = app.key(Role::Viewer).await;
    let data = app.ok_as(&viewer, q, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
    let page = app
        .client
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}

/// Limits are checked before anything runs: the refused mutation leaves no trace.
async fn limits_reject_before_running(engine: Engine) {
    let limits = Limits {
        max_depth: 2,
        max_complexity: 12,
        max_body_bytes: 2048,
        ..Limits::default()
    };
    let Some(app) = TestApp::start_with(engine, limits).await else {
        return;
    };
    let deep = "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { schedule { cron } } }";
    let (_, body) = app
        .post(Some(&app.admin_key), deep, integration_input("deep"))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["limit"], "depth", "{body}");

    let complex = "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) {
        id name gateway apiUrl username hasPassword key active createdAt updatedAt a: id b: name c: key } }";
    let (_, body) = app
        .post(Some(&app.admin_key), complex, integration_input("complex"))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["limit"], "complexity",
        "{body}"
    );

    let big = integration_input(&"n".repeat(4096));
    let (status, body) = app
        .post(
            Some(&app.admin_key),
            "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }",
            big,
        )
        .await;
    assert_eq!(status, 413);
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
    assert_eq!(body["errors"][0]["extensions"]["limit"], "bodySize");

    use sea_orm::{EntityTrait, PaginatorTrait};
    let integrations = entity::integration::Entity::find()
        .count(&app.state.db)
        .await
        .unwrap();
    assert_eq!(integrations, 0, "no refused operation ran");
    assert_eq!(history_count(&app).await, 0);
}

each_engine!(limits_reject_before_running);

/// One argument repeated thousands of times made an error answer a thousand times the request;
/// repeated errors are folded into one with a count, and the answer stays a few KB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_errors_are_folded_into_a_small_answer() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    let arguments = vec!["first: 1"; 5_000].join(", ");
    let query = format!("{{ integrations({arguments}) {{ id }} }}");
    let (status, body) = app
        .post_body(Some(&app.admin_key), json!({ "query": query }).to_string())
        .await;
    assert_eq!(status, 400, "{body}");
    let size = body.to_string().len();
    assert!(size < 8 * 1024, "an answer of {size} bytes");
    let errors = body["errors"].as_array().unwrap();
    assert!(errors.len() <= 21, "{} errors listed", errors.len());
    let repeated: u64 = errors
        .iter()
        .filter_map(|e| e["extensions"]["repeated"].as_u64())
        .sum();
    assert!(repeated >= 4_999, "{body}");
    assert!(
        errors
            .iter()
            .all(|e| e["extensions"]["code"] == "VALIDATION"),
        "{body}"
    );
}

/// Text arguments are bounded before any work: a search of 101 characters is refused, naming
/// the argument and its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_over_its_length_is_refused() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    let id = app
        .create_integration("Busca", "https://busca.example")
        .await;
    let query = "query($i: ID!, $s: String) { elements(integrationId: $i, filter: { search: $s }) { totalCount } }";
    let (_, body) = app
        .post(
            Some(&app.admin_key),
            query,
            json!({ "i": id, "s": "a".repeat(101) }),
        )
        .await;
    let ext = &body["errors"][0]["extensions"];
    assert_eq!(
        (
            ext["code"].as_str(),
            ext["field"].as_str(),
            ext["max"].as_f64()
        ),
        (Some("VALIDATION"), Some("search"), Some(100.0)),
        "{body}"
    );
    let fine = app
        .ok(query, json!({ "i": id, "s": "a".repeat(100) }))
        .await;
    assert_eq!(fine["elements"]["totalCount"], 0);
}

/// The cost counts database work: a `freePorts` search costs a search plus its radius, a search
/// by name the scan it makes, a root lookup its statement; so 500 aliased searches at the 5 km
/// maximum, or 100 aliased name searches, are refused before they run, while one, 200 at the
/// default 200 m, or 100 lookups by fid, pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_and_lookups_cost_their_database_work() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    let id = app.create_integration("Raio", "https://raio.example").await;
    let aliased = |n: usize, field: &str| {
        let fields: Vec<String> = (0..n).map(|i| format!("f{i}: {field}")).collect();
        format!("{{ {} }}", fields.join(" "))
    };
    let searches = |n: usize, radius: u32| {
        aliased(n, &format!("freePorts(integrationId: \"{id}\", latitude: -3.7, longitude: -38.5, radiusMeters: {radius}, first: 1) {{ distanceMeters }}"))
    };
    let by_name = |n: usize| {
        aliased(n, &format!("elements(integrationId: \"{id}\", first: 1, filter: {{ search: \"CTO\" }}) {{ totalCount }}"))
    };
    let by_fid = |n: usize| {
        aliased(
            n,
            &format!("elementByFid(integrationId: \"{id}\", fid: \"1\") {{ name }}"),
        )
    };
    for query in [searches(500, 5000), by_name(100)] {
        let (status, body) = app
            .post_body(Some(&app.admin_key), json!({ "query": query }).to_string())
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["limit"], "complexity",
            "{body}"
        );
    }
    for query in [searches(1, 5000), searches(200, 200), by_name(1)] {
        let (status, body) = app
            .post_body(Some(&app.admin_key), json!({ "query": query }).to_string())
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["errors"].is_null(), "{body}");
    }
    // Admitted, and answered (NOT_FOUND each: nothing is synced).
    let (status, body) = app
        .post_body(
            Some(&app.admin_key),
            json!({ "query": by_fid(100) }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cost = body["extensions"]["cost"].as_u64().unwrap();
    assert!((100 * 200..250_000).contains(&cost), "{cost}");
}

/// An operation introspects the schema once: 140 aliases of `__schema` (cost 980, about
/// 375 times that in work) are refused before they run, spread through fragments too; the
/// one introspection GraphiQL and code generators send runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_introspected_once_per_operation() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    let schema = "__schema { types { name fields { name args { name } } } }";
    let aliases: String = (0..140).map(|i| format!("s{i}: {schema} ")).collect();
    let spread = format!("{{ ...A ...B }} fragment A on Query {{ a: {schema} }} fragment B on Query {{ b: {schema} }}");
    for query in [format!("{{ {aliases} }}"), spread] {
        let (status, answer) = app.post(Some(&app.admin_key), &query, json!({})).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["limit"], "introspection",
            "{answer}"
        );
    }
    let once = app.ok(&format!("{{ {schema} }}"), json!({})).await;
    assert!(once["__schema"]["types"].as_array().unwrap().len() > 10);
}
