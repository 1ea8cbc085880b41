//! Subscriptions are priced by their selection, paid on every event: one over 200 fields
//! (fragments expanded) is refused with limit "subscription"; a key's live subscriptions sum
//! to at most 20,000 fields (RATE_LIMITED past it), and a completed one gives its weight back.

mod common;

use common::*;
use mapping_gateway::config::Limits;
use mapping_gateway::graphql::live_cost::live_nodes;
use serde_json::json;

/// A `bindingEvents` subscription selecting `fields` fields in all (the root field included).
fn subscription(id: &str, integration: &str, fields: usize) -> serde_json::Value {
    let aliases: String = (1..fields).map(|n| format!("f{n}: __typename ")).collect();
    json!({ "type": "subscribe", "id": id, "payload": {
        "query": format!("subscription($i: ID!) {{ bindingEvents(integrationId: $i) {{ {aliases} }} }}"),
        "variables": { "i": integration } } })
}

async fn socket(app: &TestApp) -> Socket {
    let mut socket = connect(&app.ws_url(), TRANSPORT_WS).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.admin_key) } })).await;
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_priced_by_their_selection() {
    let app = TestApp::start_with(
        Engine::Sqlite,
        Limits {
            max_operations_per_socket: 200,
            ..Limits::default()
        },
    )
    .await
    .unwrap();
    let integration = app
        .create_integration("Precificada", "https://precificada.example")
        .await;
    let mut socket = socket(&app).await;
    send(&mut socket, subscription("big", &integration, 900)).await;
    let refused = next_json(&mut socket).await;
    assert_eq!(refused["id"], "big");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["limit"], "subscription",
        "{refused}"
    );
    assert_eq!(next_json(&mut socket).await["type"], "complete");

    // 100 of 200 fields fill the key's 20,000; the 101st is refused.
    let key = mapping_gateway::access::authenticate(&app.state.db, &app.admin_key)
        .await
        .unwrap()
        .unwrap()
        .key_id;
    let live_reaches = |nodes: u64| async move {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while live_nodes(key) != nodes {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("live weight {} instead of {nodes}", live_nodes(key)))
    };
    for n in 0..100 {
        send(
            &mut socket,
            subscription(&format!("s{n}"), &integration, 200),
        )
        .await;
    }
    live_reaches(20_000).await;
    send(&mut socket, subscription("one-more", &integration, 200)).await;
    let full = next_json(&mut socket).await;
    assert_eq!(full["id"], "one-more");
    assert_eq!(
        full["payload"]["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{full}"
    );
    assert_eq!(next_json(&mut socket).await["type"], "complete");
    // A completed one gives its weight back, and a new one takes it.
    send(&mut socket, json!({ "type": "complete", "id": "s0" })).await;
    live_reaches(19_800).await;
    send(&mut socket, subscription("again", &integration, 200)).await;
    live_reaches(20_000).await;
    // The socket closing gives back all of it.
    drop(socket);
    live_reaches(0).await;
}
