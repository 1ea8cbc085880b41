//! Random interleavings of binding changes, retries, syncs and a platform that other people
//! write to, sent to two gateway instances on one database (their clocks 20 s apart) while the platform is slow and
//! sometimes fails; then, once every delivery has settled, the invariants of docs/INTEGRITY.md
//! are checked against the database and the simulator's own records and write log.
//!
//! `INTERLEAVINGS` (default 200) sets the number of steps, `INTERLEAVINGS_SEED` replays a run
//! (the seed is printed).

mod common;

use std::collections::{HashMap, HashSet};

use common::bindings::*;
use common::world;
use common::{Engine, TestApp};
use entity::binding::BindingStatus;
use entity::push_outbox::PushStatus;
use mapping_gateway::graphql::ids;
use mapping_gateway::simulator::{Faults, SimPlatform};
use rand::{Rng, SeedableRng};
use sea_orm::EntityTrait;
use serde_json::{json, Value};

/// One request to one instance; an answer with a code other than the expected refusals fails.
async fn send(app: &TestApp, query: &str, vars: Value) -> Option<Value> {
    let (status, body) = app.post(Some(&app.admin_key), query, vars).await;
    assert_eq!(status, 200, "{body}");
    match body["errors"][0]["extensions"]["code"].as_str() {
        None => Some(body["data"].clone()),
        Some("CONFLICT" | "VALIDATION" | "NOT_FOUND" | "SYNC_ALREADY_RUNNING") => None,
        Some(other) => panic!("unexpected {other}: {body}"),
    }
}

async fn interleavings(engine: Engine, platform: SimPlatform) {
    let Some(a) = TestApp::start(engine).await.map(|a| a.on(platform)) else {
        return;
    };
    // The second instance's clock is 20 s ahead: leases and due times must not care.
    let b = a.beside_at(chrono::Duration::seconds(20)).await;
    let apps = [&a, &b];
    let w = synced_world(&a).await;
    let ports = free_service_ports(&a, 24).await;
    let steps: usize = std::env::var("INTERLEAVINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("INTERLEAVINGS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("INTERLEAVINGS_SEED={seed} ({engine:?}, {platform:?}, {steps} steps)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    w.sim.state.set_faults(Faults {
        latency_ms: 15,
        error_rate: 0.15,
        ..Default::default()
    });
    let mut bindings: Vec<Value> = Vec::new();
    let mut contracts = 0u32;
    // Customers other people put on ports, by port fid.
    let mut others: HashMap<String, String> = HashMap::new();
    for step in 0..steps {
        if rng.gen_ratio(1, 30) {
            // Someone else takes a port in the platform itself (alone in its step: what is in
            // flight may still land, as nothing can make a platform write conditional).
            let pending: HashSet<String> = entity::push_outbox::Entity::find()
                .all(&a.state.db)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.status == PushStatus::Pending)
                .filter_map(|r| r.port_fid)
                .collect();
            let (_, fid) = &ports[rng.gen_range(0..ports.len())];
            if !pending.contains(fid) && !others.contains_key(fid) {
                let contract = format!("OUTRO-{step}");
                // Someone else edits the port on the platform itself.
                w.save(
                    "portaSplitter",
                    w.store_fid("portaSplitter", fid),
                    &[
                        ("status", json!("OCUPADA")),
                        ("contrato", json!(contract)),
                        ("documento", json!("11222333000181")),
                        ("nomeCliente", json!("Outro")),
                        ("origem", json!("someone-else")),
                    ],
                );
                others.insert(fid.clone(), contract);
            }
            continue;
        }
        let mut requests = Vec::new();
        for _ in 0..rng.gen_range(1..=4) {
            let app = apps[rng.gen_range(0..2)];
            let pick = |rng: &mut rand::rngs::StdRng| {
                (!bindings.is_empty()).then(|| bindings[rng.gen_range(0..bindings.len())].clone())
            };
            let (query, vars) = match rng.gen_range(0..10) {
                0..=2 => {
                    contracts += 1;
                    let (port, _) = &ports[rng.gen_range(0..ports.len())];
                    ("mutation($p: ID!, $c: BindingCustomerInput!) { bindPort(portId: $p, customer: $c) { id } }".to_owned(),
                     json!({ "p": port, "c": customer(&format!("9{contracts:05}"), CPF) }))
                }
                3..=4 => match pick(&mut rng) {
                    Some(id) => (
                        "mutation($i: ID!) { confirmBinding(id: $i) { id } }".to_owned(),
                        json!({ "i": id }),
                    ),
                    None => continue,
                },
                5 => match pick(&mut rng) {
                    Some(id) => (
                        "mutation($i: ID!) { cancelBinding(id: $i) { id } }".to_owned(),
                        json!({ "i": id }),
                    ),
                    None => continue,
                },
                6 => match pick(&mut rng) {
                    Some(id) => (
                        "mutation($i: ID!) { releaseBinding(id: $i) { id } }".to_owned(),
                        json!({ "i": id }),
                    ),
                    None => continue,
                },
                7 => match pick(&mut rng) {
                    Some(id) => {
                        let (port, _) = &ports[rng.gen_range(0..ports.len())];
                        ("mutation($i: ID!, $p: ID!) { rebindBinding(id: $i, portId: $p) { id } }".to_owned(), json!({ "i": id, "p": port }))
                    }
                    None => continue,
                },
                8 => match pick(&mut rng) {
                    Some(id) => (
                        "mutation($i: ID!) { retryPush(bindingId: $i) { id } }".to_owned(),
                        json!({ "i": id }),
                    ),
                    None => continue,
                },
                _ => (
                    "mutation($i: ID!) { startSync(integrationId: $i, mode: INCREMENTAL) { id } }"
                        .to_owned(),
                    json!({ "i": w.id }),
                ),
            };
            requests.push(async move { send(app, &query, vars).await });
        }
        for data in futures::future::join_all(requests)
            .await
            .into_iter()
            .flatten()
        {
            if let Some(id) = data.get("bindPort").and_then(|b| b.get("id")) {
                bindings.push(id.clone());
            }
        }
    }

    // Quiet: a healthy platform, a full sync that sees every port, then every delivery settled
    // but those held by a recorded conflict.
    w.sim.state.set_faults(Faults::default());
    let runs =
        "query($i: ID!) { syncRuns(integrationId: $i, first: 1) { edges { node { id status } } } }";
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        loop {
            let last =
                a.ok(runs, json!({ "i": w.id })).await["syncRuns"]["edges"][0]["node"].clone();
            if last["status"] != "RUNNING" && last["status"] != "QUEUED" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the last run ended");
    world::succeeded(&a, &w.id, "FULL").await;
    let (rows, all) = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        loop {
            let rows = entity::push_outbox::Entity::find()
                .all(&a.state.db)
                .await
                .unwrap();
            let all = entity::binding::Entity::find()
                .all(&a.state.db)
                .await
                .unwrap();
            // Only a push held on a recorded conflict may stay pending: a removal of a
            // binding that once met a conflict is not held, and is waited for.
            let held: HashSet<i64> = all
                .iter()
                .filter(|b| b.conflict_seen_at.is_some())
                .map(|b| b.id)
                .collect();
            let is_held = |r: &entity::push_outbox::Model| {
                held.contains(&r.binding_id)
                    && r.action == entity::push_outbox::PushAction::Push
                    && r.last_error
                        .as_deref()
                        .is_some_and(|e| e.starts_with("held:"))
            };
            if rows
                .iter()
                .all(|r| r.status != PushStatus::Pending || is_held(r))
            {
                return (rows, all);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "every delivery settled within 120 s; pending: {:?}",
            pending_now(&a)
        )
    });

    // 1. At most one active binding per port and per contract.
    let active: Vec<_> = all
        .iter()
        .filter(|b| BindingStatus::ACTIVE.contains(&b.status))
        .collect();
    let per_port: HashSet<_> = active.iter().map(|b| b.port_id).collect();
    assert_eq!(per_port.len(), active.len(), "one active binding per port");
    let per_contract: HashSet<_> = active.iter().map(|b| &b.contract).collect();
    assert_eq!(
        per_contract.len(),
        active.len(),
        "one active binding per contract"
    );

    // What the platform has now, by port fid, and the local ports' fids.
    let contracts_now: Vec<(i64, Option<String>)> = {
        let store = w.sim.state.store.read().unwrap();
        let t = &store.tables["portaSplitter"];
        let c = t.col("contrato").unwrap();
        t.rows
            .iter()
            .map(|(fid, r)| (*fid, r[c].as_str().map(str::to_owned)))
            .collect()
    };
    let platform: HashMap<String, Option<String>> = contracts_now
        .into_iter()
        .map(|(fid, contract)| (w.fid("portaSplitter", fid), contract))
        .collect();
    let fid_of: HashMap<i64, String> = entity::port::Entity::find()
        .all(&a.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.fid))
        .collect();
    for b in &all {
        let shown: Vec<&String> = platform
            .iter()
            .filter(|(_, c)| c.as_deref() == Some(b.contract.as_str()))
            .map(|(fid, _)| fid)
            .collect();
        match b.status {
            // 2. A CONFIRMED binding's port shows its contract, or a recorded conflict.
            BindingStatus::Confirmed => {
                let fid = &fid_of[&b.port_id.unwrap()];
                if b.conflict_seen_at.is_none() {
                    assert_eq!(shown, vec![fid], "binding {} (seed {seed}): {b:?}", b.id);
                } else {
                    assert!(
                        others.contains_key(fid),
                        "a conflict only with someone else: {b:?}"
                    );
                }
            }
            // 3. A released, cancelled or still pending binding is on no platform port.
            _ => assert!(
                shown.is_empty(),
                "binding {} {} still on {shown:?} (seed {seed}); {b:?}; its deliveries: {:#?}; \
                 writes: {:#?}",
                b.id,
                b.status,
                rows.iter()
                    .filter(|r| r.binding_id == b.id)
                    .collect::<Vec<_>>(),
                common::port_writes(&w.sim)
                    .into_iter()
                    .filter(|v| {
                        v.to_string().contains(&b.contract)
                            || shown.iter().any(|f| v.to_string().contains(f.as_str()))
                    })
                    .collect::<Vec<_>>()
            ),
        }
    }
    // 4. Nobody else's customer was overwritten or cleared.
    for (fid, contract) in &others {
        assert_eq!(
            platform[fid].as_ref(),
            Some(contract),
            "port {fid} (seed {seed})"
        );
    }
    // 5. Each delivered row is one write of ours; nothing else of ours was written.
    let ours = common::port_writes(&w.sim).len();
    let delivered = rows
        .iter()
        .filter(|r| r.status == PushStatus::Delivered)
        .count();
    // (A sync may settle a push without a write when the platform already shows it.)
    assert!(
        ours <= delivered,
        "{ours} writes for {delivered} deliveries (seed {seed})"
    );
    println!(
        "{} bindings, {} deliveries ({} delivered), {} ports taken by others",
        all.len(),
        rows.len(),
        delivered,
        others.len()
    );
    let _ = ids::PORT;
}

each_engine_and_platform!(interleavings);

/// The deliveries still pending, with their last errors (what a timeout reports).
fn pending_now(a: &TestApp) -> Vec<String> {
    let db = a.state.db.clone();
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            entity::push_outbox::Entity::find()
                .all(&db)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.status == PushStatus::Pending)
                .map(|r| {
                    format!(
                        "{} {:?} {:?} {} {:?}",
                        r.binding_id, r.action, r.port_fid, r.attempts, r.last_error
                    )
                })
                .collect()
        })
    })
    .join()
    .unwrap()
}
