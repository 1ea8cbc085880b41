//! Operations running at once: a key past its share (MAX_OPERATIONS_PER_KEY) gets 429, the
//! server past its limit (MAX_OPERATIONS_IN_FLIGHT) 503, both with `Retry-After`, over HTTP; a
//! socket's query gets an error; another key still gets in while one key is at its share. The
//! simulator holds the platform logins of `testIntegration`, so operations stay running for as
//! long as the test needs.

mod common;

use axum::http::Method;
use common::{Engine, TestApp};
use mapping_gateway::access::Role;
use mapping_gateway::config::Limits;
use serde_json::json;

const TEST: &str = "mutation($i: ID!) { testIntegration(id: $i) { ok } }";
const CHEAP: &str = "{ gateways { kind } }";

/// A cheap query's HTTP status, `extensions.code` and `Retry-After`.
async fn cheap(app: &TestApp, key: &str) -> (u16, Option<String>, bool) {
    let answer = reqwest::Client::new()
        .post(format!("{}/graphql", app.url))
        .bearer_auth(key)
        .json(&json!({ "query": CHEAP }))
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let retry_after = answer.headers().contains_key("retry-after");
    let body: serde_json::Value = answer.json().await.unwrap();
    let code = body["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned);
    (status, code, retry_after)
}

async fn operations_in_flight_are_shared_fairly(engine: Engine) {
    let limits = Limits {
        max_operations_in_flight: 2,
        max_operations_per_key: 1,
        ..Limits::default()
    };
    let Some(app) = TestApp::start_with(engine, limits).await else {
        return;
    };
    let (sim, id, _) = common::linked_simulator(&app, 5, 3).await;
    let other_admin = app.key(Role::Admin).await;
    let viewer = app.key(Role::Viewer).await;
    let gate = sim.state.hold(Method::POST, "/auth/generatetoken");
    let held = {
        let (url, key, id) = (app.url.clone(), app.admin_key.clone(), id.clone());
        tokio::spawn(async move { common::graphql_at(&url, &key, TEST, json!({ "i": id })).await })
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), gate.wait_for(1))
        .await
        .expect("the connection test reaches the platform");

    // The admin key runs its share: its next operation waits, then is refused 429.
    assert_eq!(
        cheap(&app, &app.admin_key).await,
        (429, Some("RATE_LIMITED".into()), true)
    );
    // Another key gets in.
    assert_eq!(cheap(&app, &viewer).await, (200, None, false));
    // Over a socket, the admin key's query is refused with an error for its id.
    let mut socket = common::connect(&app.ws_url(), common::TRANSPORT_WS).await;
    common::send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.admin_key) } })).await;
    assert_eq!(
        common::next_json(&mut socket).await["type"],
        "connection_ack"
    );
    common::send(
        &mut socket,
        json!({ "type": "subscribe", "id": "1", "payload": { "query": CHEAP } }),
    )
    .await;
    let refused = common::next_json(&mut socket).await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{refused}"
    );

    // A second admin key's connection test fills the server: a third key is refused 503.
    let also_held = {
        let (url, key, id) = (app.url.clone(), other_admin.clone(), id.clone());
        tokio::spawn(async move { common::graphql_at(&url, &key, TEST, json!({ "i": id })).await })
    };
    let full = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let answer = cheap(&app, &viewer).await;
            if answer.0 != 200 {
                return answer;
            }
        }
    })
    .await
    .expect("the server fills up");
    assert_eq!(full, (503, Some("OVERLOADED".into()), true));

    gate.release();
    held.await.unwrap();
    also_held.await.unwrap();
    assert_eq!(cheap(&app, &app.admin_key).await, (200, None, false));
}

each_engine!(operations_in_flight_are_shared_fairly);
