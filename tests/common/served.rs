//! A served gateway driven over HTTP as a client would: an integration linked and synced, its
//! free service ports, a customer bound and confirmed, the bindings with their deliveries.

use serde_json::{json, Value};

use super::{graphql_at, Subscription, TRANSPORT_WS};
use mapping_gateway::simulator::RunningSimulator;

/// Links an integration to the simulator's first project and syncs it in full; returns the
/// integration id.
pub async fn linked_and_synced(base: &str, admin: &str, sim: &RunningSimulator) -> String {
    let id = super::link_over_http(base, admin, sim).await;
    let run = graphql_at(
        base,
        admin,
        "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }",
        json!({ "i": id }),
    )
    .await["startSync"]["id"]
        .clone();
    let ws = format!("{}/graphql/ws", base.replacen("http://", "ws://", 1));
    let mut progress = Subscription::start(
        &ws,
        TRANSPORT_WS,
        admin,
        "subscription($r: ID!) { syncProgress(runId: $r) { status } }",
        json!({ "r": run }),
    )
    .await;
    let events = progress.collect().await;
    assert_eq!(
        events.last().unwrap()["data"]["syncProgress"]["status"],
        "SUCCEEDED"
    );
    id
}

/// Ids of FREE ports of service splitters, as the API lists them.
pub async fn free_service_ports(
    base: &str,
    admin: &str,
    integration: &str,
) -> Vec<(String, String)> {
    let page = graphql_at(
        base,
        admin,
        "query($i: ID!) { elements(integrationId: $i, first: 100) { edges { node { splitters { kind ports { id fid status binding { id } } } } } } }",
        json!({ "i": integration }),
    )
    .await;
    let mut free = Vec::new();
    for edge in page["elements"]["edges"].as_array().unwrap() {
        for splitter in edge["node"]["splitters"].as_array().unwrap() {
            if splitter["kind"] != "SERVICE" {
                continue;
            }
            for port in splitter["ports"].as_array().unwrap() {
                if port["status"] == "FREE" && port["binding"].is_null() {
                    free.push((
                        port["id"].as_str().unwrap().to_owned(),
                        port["fid"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    free
}

pub async fn bind_and_confirm(base: &str, admin: &str, port: &str, contract: &str) -> Value {
    let id = graphql_at(
        base,
        admin,
        "mutation($p: ID!, $c: BindingCustomerInput!) { bindPort(portId: $p, customer: $c) { id } }",
        json!({ "p": port, "c": { "document": "52998224725", "contract": contract, "name": "João Souza" } }),
    )
    .await["bindPort"]["id"]
        .clone();
    graphql_at(
        base,
        admin,
        "mutation($i: ID!) { confirmBinding(id: $i) { id } }",
        json!({ "i": id }),
    )
    .await;
    id
}

/// The bindings as the API lists them, with their delivery.
pub async fn deliveries(base: &str, admin: &str) -> Vec<Value> {
    graphql_at(
        base,
        admin,
        "{ bindings(first: 500) { edges { node { id pushStatus attempts lastError } } } }",
        json!({}),
    )
    .await["bindings"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// `/metrics` of a served gateway.
pub async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample `name{labels…}` (every pair given must be among its labels).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            let bare = series.split('{').next() == Some(name);
            bare && labels
                .iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// Starts a FULL sync of the integration; returns the run's id.
pub async fn start_full(base: &str, admin: &str, integration: &str) -> Value {
    graphql_at(
        base,
        admin,
        "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }",
        json!({ "i": integration }),
    )
    .await["startSync"]["id"]
        .clone()
}

/// Waits (60 s at most) until the run has this status; returns its status and error.
pub async fn wait_for_status(base: &str, admin: &str, run: &Value, status: &str) -> Value {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let now = graphql_at(
                base,
                admin,
                "query($r: ID!) { syncRun(id: $r) { status error { code message } } }",
                json!({ "r": run }),
            )
            .await["syncRun"]
                .clone();
            if now["status"] == status {
                return now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("run {run} {status} within 60 s"))
}
