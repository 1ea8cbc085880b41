//! Helpers of the binding suites: a synced world, free service ports, binding mutations and
//! waiting for a delivery, the simulator's writes to a port.

use mapping_gateway::graphql::ids;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use super::world::{self, World};
use super::TestApp;

pub const BINDING: &str = "id status customer { document contract name address plan }
    pushStatus attempts lastError confirmedAt releasedAt deliveredAt
    port { id fid } orphanedFrom { boxFid } conflict { platformContract }";

/// A valid CPF and CNPJ, formatted as people type them.
pub const CPF: &str = "529.982.247-25";
pub const CNPJ: &str = "11.222.333/0001-81";

pub fn customer(contract: &str, document: &str) -> Value {
    json!({ "document": document, "contract": contract, "name": "Maria da Silva",
            "address": "Rua das Flores, 10", "plan": "500 Mega" })
}

/// FREE ports of service splitters with no active binding, as (API id, platform fid).
pub async fn free_service_ports(app: &TestApp, n: usize) -> Vec<(String, String)> {
    let service: Vec<i64> = entity::splitter::Entity::find()
        .filter(entity::splitter::Column::Kind.eq(entity::splitter::SplitterKind::Service))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let ports = entity::port::Entity::find()
        .filter(entity::port::Column::SplitterId.is_in(service))
        .filter(entity::port::Column::Status.eq(entity::port::PortStatus::Free))
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(
        ports.len() >= n,
        "the network has {} free service ports",
        ports.len()
    );
    ports
        .into_iter()
        .take(n)
        .map(|p| (ids::encode(ids::PORT, p.id).0, p.fid))
        .collect()
}

/// FREE service ports as `free_service_ports`, each on a splitter of its own (taking a port off
/// OZmap takes its splitter's other ports with it).
pub async fn free_ports_apart(app: &TestApp, n: usize) -> Vec<(String, String)> {
    let all = free_service_ports(app, 1).await;
    assert!(!all.is_empty());
    let service: Vec<i64> = entity::splitter::Entity::find()
        .filter(entity::splitter::Column::Kind.eq(entity::splitter::SplitterKind::Service))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let ports = entity::port::Entity::find()
        .filter(entity::port::Column::SplitterId.is_in(service))
        .filter(entity::port::Column::Status.eq(entity::port::PortStatus::Free))
        .all(&app.state.db)
        .await
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    let apart: Vec<(String, String)> = ports
        .into_iter()
        .filter(|p| seen.insert(p.splitter_id))
        .take(n)
        .map(|p| (ids::encode(ids::PORT, p.id).0, p.fid))
        .collect();
    assert_eq!(apart.len(), n, "{n} service splitters with a free port");
    apart
}

pub async fn synced_world(app: &TestApp) -> World {
    let w = world::world(app, 30).await;
    world::succeeded(app, &w.id, "FULL").await;
    w
}

pub async fn bind_port(app: &TestApp, port: &str, customer: Value) -> Value {
    app.ok(
        &format!("mutation($p: ID!, $c: BindingCustomerInput!) {{ bindPort(portId: $p, customer: $c) {{ {BINDING} }} }}"),
        json!({ "p": port, "c": customer }),
    )
    .await["bindPort"]
        .clone()
}

pub async fn change(app: &TestApp, mutation: &str, id: &Value) -> Value {
    let arg = if mutation == "retryPush" {
        "bindingId"
    } else {
        "id"
    };
    app.ok(
        &format!("mutation($i: ID!) {{ {mutation}({arg}: $i) {{ {BINDING} }} }}"),
        json!({ "i": id }),
    )
    .await[mutation]
        .clone()
}

pub async fn binding(app: &TestApp, id: &Value) -> Value {
    let page = app
        .ok(
            &format!("{{ bindings(first: 100) {{ edges {{ node {{ {BINDING} }} }} }} }}"),
            json!({}),
        )
        .await;
    page["bindings"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .find(|n| n["id"] == *id)
        .expect("listed")
}

/// Waits (20 s at most) until the binding's latest delivery is `status`; returns the binding.
pub async fn delivery(app: &TestApp, id: &Value, status: &str) -> Value {
    let waited = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let b = binding(app, id).await;
            if b["pushStatus"] == status {
                return b;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    match waited {
        Ok(b) => b,
        Err(_) => panic!(
            "delivery {status} within 20 s; the binding is {}",
            binding(app, id).await
        ),
    }
}

/// The simulator's writes to one port, oldest first.
/// On OZmap, property writes read as port saves (see `port_writes`).
pub fn writes_to(w: &World, fid: &str) -> Vec<Value> {
    super::port_writes(&w.sim)
        .into_iter()
        .filter(|body| body["fid"] == fid)
        .collect()
}
