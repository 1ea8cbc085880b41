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

/// Waits (20 s at most) until the binding satisfies `done`; returns it.
pub async fn until(app: &TestApp, id: &Value, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let waited = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let b = binding(app, id).await;
            if done(&b) {
                return b;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    match waited {
        Ok(b) => b,
        Err(_) => panic!(
            "{what} within 20 s; the binding is {}",
            binding(app, id).await
        ),
    }
}

/// Waits (20 s at most) until the binding's latest delivery is `status`; returns the binding.
pub async fn delivery(app: &TestApp, id: &Value, status: &str) -> Value {
    until(app, id, &format!("delivery {status}"), |b| {
        b["pushStatus"] == status
    })
    .await
}

/// Waits (20 s at most) until no delivery of the binding is PENDING; returns its rows.
pub async fn settled(app: &TestApp, id: &Value) -> Vec<entity::push_outbox::Model> {
    use entity::push_outbox::PushStatus;
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let rows = rows_of(app, id).await;
            if rows.iter().all(|r| r.status != PushStatus::Pending) {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every delivery settled within 20 s")
}

/// The simulator's writes to one port, oldest first.
/// On OZmap, property writes read as port saves (see `port_writes`).
pub fn writes_to(w: &World, fid: &str) -> Vec<Value> {
    super::port_writes(&w.sim)
        .into_iter()
        .filter(|body| body["fid"] == fid)
        .collect()
}

/// A column of a port as the platform has it now (numbers as text).
pub fn platform_field(w: &World, fid: &str, column: &str) -> Option<String> {
    let store = w.sim.state.store.read().unwrap();
    let t = &store.tables["portaSplitter"];
    let c = t.col(column).unwrap();
    let row = t.rows.get(&w.store_fid("portaSplitter", fid))?;
    row[c]
        .as_str()
        .map(str::to_owned)
        .or_else(|| row[c].as_i64().map(|n| n.to_string()))
}

/// The customer contract the platform has on a port now.
pub fn platform_contract(w: &World, fid: &str) -> Option<String> {
    platform_field(w, fid, "contrato")
}

pub fn platform_document(w: &World, fid: &str) -> Option<String> {
    platform_field(w, fid, "documento")
}

/// Someone else puts a customer on a port, on the platform itself.
pub async fn someone_else_on(w: &World, fid: &str, contract: &str) {
    w.save(
        "portaSplitter",
        w.store_fid("portaSplitter", fid),
        &[
            ("status", json!("OCUPADA")),
            ("contrato", json!(contract)),
            ("documento", json!("11222333000181")),
            ("nomeCliente", json!("Outro Provedor")),
            ("origem", json!("someone-else")),
        ],
    );
}

/// Writes by the gateway to a port since `from` (a count of `port_writes`); edits by someone
/// else are made on the platform's records, not written through its API.
pub fn our_writes_since(w: &World, fid: &str, from: usize) -> Vec<Value> {
    super::port_writes(&w.sim)
        .into_iter()
        .skip(from)
        .filter(|r| r["fid"] == fid)
        .collect()
}

/// The person's customer leaves a port, on the platform itself.
pub fn someone_else_off(w: &World, fid: &str) {
    w.save(
        "portaSplitter",
        w.store_fid("portaSplitter", fid),
        &[
            ("status", json!("LIVRE")),
            ("contrato", json!(null)),
            ("documento", json!(null)),
            ("nomeCliente", json!(null)),
            ("origem", json!(null)),
        ],
    );
}

/// The path prefix of the request a delivery round reads its ports with, on the platform the
/// world runs on: Geosite lists ports, OZmap lists their splitters.
pub fn port_read_path(w: &World) -> &'static str {
    match w.sim.platform {
        mapping_gateway::simulator::SimPlatform::Geosite => "/portaSplitter/list",
        mapping_gateway::simulator::SimPlatform::Ozmap => "/api/v2/splitters",
    }
}

/// A binding's database id from its API id.
pub fn db_id(id: &Value) -> i64 {
    ids::decode(
        ids::BINDING,
        &async_graphql::ID(id.as_str().unwrap().into()),
    )
    .unwrap()
}

/// The outbox rows of a binding, oldest first.
pub async fn rows_of(app: &TestApp, id: &Value) -> Vec<entity::push_outbox::Model> {
    entity::push_outbox::Entity::find()
        .filter(entity::push_outbox::Column::BindingId.eq(db_id(id)))
        .all(&app.state.db)
        .await
        .unwrap()
}
