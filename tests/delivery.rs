//! Deliveries across processes: a push confirmed while the platform is down survives a SIGKILL
//! of the gateway and is delivered once after the restart; two gateway processes on one
//! PostgreSQL deliver each push once.

mod common;

use common::served::{bind_and_confirm, deliveries, free_service_ports, linked_and_synced};
use common::{Engine, Process};
use mapping_gateway::config::DbConfig;
use mapping_gateway::simulator::{Faults, RunningSimulator, SimPlatform};
use serde_json::Value;

fn gateway(db: &DbConfig, admin: &str) -> (Process, String) {
    common::serve_on(db, admin, &[])
}

/// Waits (60 s at most) until every binding's delivery is DELIVERED.
async fn all_delivered(base: &str, admin: &str) -> Vec<Value> {
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let all = deliveries(base, admin).await;
            if all.iter().all(|b| b["pushStatus"] == "DELIVERED") {
                return all;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("every push delivered within 60 s")
}

/// Pushes (OCUPADA) the simulator received for a port.
fn pushes_to(sim: &RunningSimulator, fid: &str) -> usize {
    common::port_writes(sim)
        .iter()
        .filter(|w| w["status"] == "OCUPADA" && w["fid"] == fid)
        .count()
}

async fn a_push_survives_a_killed_gateway(engine: Engine, platform: SimPlatform) {
    let Some(db) = common::fresh_database(engine).await else {
        return;
    };
    let sim = common::simulator(mapping_gateway::simulator::SimConfig {
        platform,
        boxes: 20,
        seed: 51,
        ..Default::default()
    })
    .await;
    let admin = format!("mgw_{}", mapping_gateway::crypto::random_hex(16));
    let (mut first, base) = gateway(&db, &admin);
    let id = linked_and_synced(&base, &admin, &sim).await;
    let (port, fid) = free_service_ports(&base, &admin, &id).await.remove(0);
    // The platform is down when the binding is confirmed.
    sim.state.set_faults(Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let binding = bind_and_confirm(&base, &admin, &port, "770001").await;
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let all = deliveries(&base, &admin).await;
            let b = all.iter().find(|b| b["id"] == binding).unwrap();
            if b["lastError"].is_string() {
                assert_eq!(b["pushStatus"], "PENDING");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a failed attempt within 60 s");
    first.child.kill().unwrap(); // SIGKILL: nothing is cleaned up.
    first.child.wait().unwrap();
    assert_eq!(pushes_to(&sim, &fid), 0);

    sim.state.set_faults(Faults::default());
    let (_second, base) = gateway(&db, &admin);
    let done = all_delivered(&base, &admin).await;
    assert!(done[0]["attempts"].as_i64().unwrap() >= 2, "{done:?}");
    assert_eq!(pushes_to(&sim, &fid), 1, "delivered once in effect");
    if engine == Engine::Postgres {
        common::drop_database(&db.database_url);
    }
}

each_engine_and_platform!(a_push_survives_a_killed_gateway);

/// Two instances on one PostgreSQL: each of 20 pushes is written once.
async fn two_instances_deliver_each_push_once(platform: SimPlatform) {
    let Some((db, sim, admin)) = common::shared_postgres_on(platform, 60, 52).await else {
        return;
    };
    let (_a, base_a) = gateway(&db, &admin);
    let (_b, base_b) = gateway(&db, &admin);
    let id = linked_and_synced(&base_a, &admin, &sim).await;
    let ports = free_service_ports(&base_a, &admin, &id).await;
    assert!(ports.len() >= 20, "{} free ports", ports.len());
    // Slow platform calls, so that both instances find due deliveries at once.
    sim.state.set_faults(Faults {
        latency_ms: 20,
        ..Default::default()
    });
    for (i, (port, _)) in ports.iter().take(20).enumerate() {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        bind_and_confirm(base, &admin, port, &format!("66{i:04}")).await;
    }
    let done = all_delivered(&base_b, &admin).await;
    assert_eq!(done.len(), 20);
    for (_, fid) in ports.iter().take(20) {
        assert_eq!(pushes_to(&sim, fid), 1, "port {fid} written once");
    }
    common::drop_database(&db.database_url);
}

/// Two instances, a platform slower than the lease: the claimer renews its lease while the
/// write is in flight, so the other instance never takes the delivery over; each port is
/// written once and each delivery counts one attempt.
async fn a_lease_renewed_in_flight_keeps_a_slow_delivery_its_claimer_s(platform: SimPlatform) {
    let Some((db, sim, admin)) = common::shared_postgres_on(platform, 40, 53).await else {
        return;
    };
    let short = [("DELIVERY_LEASE_SECS", "3".to_owned())];
    let (_a, base_a) = common::serve_on(&db, &admin, &short);
    let (_b, base_b) = common::serve_on(&db, &admin, &short);
    let id = linked_and_synced(&base_a, &admin, &sim).await;
    let ports = free_service_ports(&base_a, &admin, &id).await;
    // A write longer than the lease: one call of 5 s on Geosite; on OZmap a push is four calls
    // (its port's splitter and property, the client by code, the property made).
    let latency_ms = match platform {
        SimPlatform::Geosite => 5_000,
        SimPlatform::Ozmap => 1_500,
    };
    sim.state.set_faults(Faults {
        latency_ms,
        ..Default::default()
    });
    for (i, (port, _)) in ports.iter().take(6).enumerate() {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        bind_and_confirm(base, &admin, port, &format!("67{i:04}")).await;
    }
    let done = all_delivered(&base_b, &admin).await;
    for b in &done {
        assert_eq!(b["attempts"], 1, "one attempt each: {done:?}");
    }
    for (_, fid) in ports.iter().take(6) {
        assert_eq!(pushes_to(&sim, fid), 1, "port {fid} written once");
    }
    common::drop_database(&db.database_url);
}

/// An instance killed while its delivery is in flight: another instance takes the delivery
/// over once the lease (15 s) ends, within 20 s of the death.
async fn a_killed_instance_s_delivery_resumes_within_20_s(platform: SimPlatform) {
    let Some((db, sim, admin)) = common::shared_postgres_on(platform, 20, 54).await else {
        return;
    };
    let (mut first, base) = gateway(&db, &admin);
    let (_second, base_b) = gateway(&db, &admin);
    let id = linked_and_synced(&base, &admin, &sim).await;
    let (port, fid) = free_service_ports(&base, &admin, &id).await.remove(0);
    // Writes hang long enough for the delivery to be in flight when the instance dies.
    sim.state.set_faults(Faults {
        latency_ms: 60_000,
        ..Default::default()
    });
    // Confirmed on the first instance, whose worker is woken at once (the second polls each
    // second): the first most likely holds the claim when it dies, and the second then waits
    // for the lease to end.
    bind_and_confirm(&base, &admin, &port, "680001").await;
    let calls = sim.state.calls();
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while sim.state.calls() == calls {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a platform call in flight within 20 s");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    sim.state.set_faults(Faults::default());
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if deliveries(&base_b, &admin)
                .await
                .iter()
                .all(|b| b["pushStatus"] == "DELIVERED")
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("delivered by the survivor within 20 s of the kill");
    assert!(pushes_to(&sim, &fid) >= 1);
    common::drop_database(&db.database_url);
}

/// Two instances whose clocks are 20 s apart, and a slow platform: each delivery is written once and counts one attempt, as leases and due
/// times are compared on the database's clock, not on either instance's.
async fn instances_whose_clocks_differ_write_each_push_once(platform: SimPlatform) {
    let Some((db, sim, admin)) = common::shared_postgres_on(platform, 40, 55).await else {
        return;
    };
    let (_a, base_a) = common::serve_on(&db, &admin, &[("CLOCK_OFFSET_SECS", "20".into())]);
    let (_b, base_b) = common::serve_on(&db, &admin, &[]);
    let id = linked_and_synced(&base_a, &admin, &sim).await;
    let ports = free_service_ports(&base_a, &admin, &id).await;
    // Each write takes a few seconds, so that both instances look while one holds a claim.
    sim.state.set_faults(Faults {
        latency_ms: match platform {
            SimPlatform::Geosite => 3_000,
            SimPlatform::Ozmap => 800,
        },
        ..Default::default()
    });
    for (i, (port, _)) in ports.iter().take(4).enumerate() {
        let base = if i % 2 == 0 { &base_a } else { &base_b };
        bind_and_confirm(base, &admin, port, &format!("69{i:04}")).await;
    }
    let done = all_delivered(&base_a, &admin).await;
    for b in &done {
        assert_eq!(b["attempts"], 1, "one attempt each: {done:?}");
    }
    for (_, fid) in ports.iter().take(4) {
        assert_eq!(pushes_to(&sim, fid), 1, "port {fid} written once");
    }
    common::drop_database(&db.database_url);
}

each_platform!(
    instances_whose_clocks_differ_write_each_push_once,
    two_instances_deliver_each_push_once,
    a_lease_renewed_in_flight_keeps_a_slow_delivery_its_claimer_s,
    a_killed_instance_s_delivery_resumes_within_20_s,
);
