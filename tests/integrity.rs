//! The binding and delivery invariants of docs/INTEGRITY.md under races, conflicts and failures:
//! one winner per race on a binding, platform customers who are not ours never written over,
//! deliveries in order per (integration, port), failures that end, retries of the current wish,
//! orphans that clear their old port. Both engines unless the scenario needs PostgreSQL's
//! concurrency; the two-process scenarios are in tests/delivery.rs, orphaning's races in tests/orphaning.rs.

mod common;

use common::bindings::*;
use common::world;
use common::{Engine, TestApp};
use mapping_gateway::graphql::ids;
use mapping_gateway::simulator::Faults;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

const REBIND: &str =
    "mutation($i: ID!, $p: ID!) { rebindBinding(id: $i, portId: $p) { id status } }";

/// Sends a mutation on a binding; returns `Ok(data)` or `Err(code)`.
async fn try_change(app: &TestApp, mutation: &str, vars: Value) -> Result<Value, String> {
    let (_, body) = app.post(Some(&app.admin_key), mutation, vars).await;
    match body["errors"][0]["extensions"]["code"].as_str() {
        Some(code) => Err(code.to_owned()),
        None => Ok(body["data"].clone()),
    }
}

fn op(name: &str) -> String {
    format!("mutation($i: ID!) {{ {name}(id: $i) {{ id status }} }}")
}

/// Waits (20 s at most) until the binding's pending delivery to `fid` was tried twice (so any
/// other delivery due with it had its turn); returns the binding's rows.
async fn tried_twice(
    app: &TestApp,
    id: &Value,
    fid: Option<&String>,
) -> Vec<entity::push_outbox::Model> {
    use entity::push_outbox::PushStatus;
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let rows = rows_of(app, id).await;
            let tried = |r: &&entity::push_outbox::Model| {
                r.status == PushStatus::Pending && r.port_fid.as_ref() == fid && r.attempts >= 2
            };
            if rows.iter().any(|r| tried(&r)) {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the delivery was tried twice within 20 s")
}

on_every_platform! {
    /// confirm + cancel of one PENDING binding, and release + rebind of one CONFIRMED binding,
    /// sent at once: exactly one of each pair wins, and the outbox agrees with the winner.
    async fn racing_changes_of_one_binding_have_one_winner(app: TestApp) {
        use entity::push_outbox::{PushAction, PushStatus};
        let w = synced_world(&app).await;
        let ports = free_service_ports(&app, 16).await;
        for (i, (port, _)) in ports.iter().take(6).enumerate() {
            let b = bind_port(&app, port, customer(&format!("41{i:04}"), CPF)).await;
            let vars = json!({ "i": b["id"] });
            let (confirm_op, cancel_op) = (op("confirmBinding"), op("cancelBinding"));
            let (confirm, cancel) = tokio::join!(
                try_change(&app, &confirm_op, vars.clone()),
                try_change(&app, &cancel_op, vars.clone())
            );
            assert!(confirm.is_ok() != cancel.is_ok(), "one winner: {confirm:?} {cancel:?}");
            for lost in [&confirm, &cancel] {
                if let Err(code) = lost {
                    assert!(code == "CONFLICT" || code == "VALIDATION", "{code}");
                }
            }
            let rows = rows_of(&app, &b["id"]).await;
            if cancel.is_ok() {
                assert!(rows.is_empty(), "a cancelled binding queued nothing: {rows:?}");
                assert_eq!(binding(&app, &b["id"]).await["status"], "CANCELLED");
            } else {
                assert_eq!(rows.len(), 1);
                assert_eq!(binding(&app, &b["id"]).await["status"], "CONFIRMED");
            }
        }
        for i in 0..4 {
            let (port, _) = &ports[6 + i];
            let (target, target_fid) = &ports[10 + i];
            let b = bind_port(&app, port, customer(&format!("42{i:04}"), CNPJ)).await;
            change(&app, "confirmBinding", &b["id"]).await;
            delivery(&app, &b["id"], "DELIVERED").await;
            let release_op = op("releaseBinding");
            let (release, rebind) = tokio::join!(
                try_change(&app, &release_op, json!({ "i": b["id"] })),
                try_change(&app, REBIND, json!({ "i": b["id"], "p": target }))
            );
            // Either one lost, or both went through one after the other (moved, then released).
            assert!(release.is_ok() || rebind.is_ok(), "{release:?} {rebind:?}");
            let now = binding(&app, &b["id"]).await;
            let rows = settled(&app, &b["id"]).await;
            let (old_fid, contract) = (ports[6 + i].1.as_str(), format!("42{i:04}"));
            if release.is_ok() {
                assert_eq!(now["status"], "RELEASED", "{now}");
                assert_eq!(platform_contract(&w, old_fid), None, "{rows:?}");
                assert_eq!(platform_contract(&w, target_fid), None, "{rows:?}");
                if rebind.is_err() {
                    assert!(!rows.iter().any(|r| r.action == PushAction::Push
                        && r.port_fid.as_deref() == Some(target_fid)), "{rows:?}");
                }
            } else {
                assert_eq!(now["status"], "CONFIRMED", "{now}");
                assert_eq!(now["port"]["id"], *target, "{now}");
                assert_eq!(platform_contract(&w, target_fid), Some(contract), "{rows:?}");
                assert_eq!(platform_contract(&w, old_fid), None, "{rows:?}");
                assert!(rows.iter().any(|r| r.status == PushStatus::Delivered
                    && r.port_fid.as_deref() == Some(target_fid)), "{rows:?}");
            }
        }
    }

    /// A customer of someone else on the port is never written over, however the gateway
    /// learns of it: recorded by a sync (by contract, or by document alone), or read from the
    /// platform right before the write.
    async fn a_platform_customer_in_conflict_is_never_written_over(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_service_ports(&app, 4).await;
        // 1. A sync records OTHER on a PENDING binding's port: the confirmation is refused.
        let b1 = bind_port(&app, &ports[0].0, customer("510001", CPF)).await;
        someone_else_on(&w, &ports[0].1, "OTHER-1").await;
        let mark = common::port_writes(&w.sim).len();
        world::succeeded(&app, &w.id, "INCREMENTAL").await;
        let seen = binding(&app, &b1["id"]).await;
        assert_eq!(seen["conflict"]["platformContract"], "OTHER-1", "{seen}");
        let refused = try_change(&app, &op("confirmBinding"), json!({ "i": b1["id"] })).await;
        assert_eq!(refused, Err("CONFLICT".to_owned()));
        assert_eq!(binding(&app, &b1["id"]).await["status"], "PENDING");

        // 2. A confirmed customer replaced on the platform by one with a document only: the
        // sync reports it by document; the release frees nothing.
        let b2 = bind_port(&app, &ports[1].0, customer("510002", CPF)).await;
        change(&app, "confirmBinding", &b2["id"]).await;
        delivery(&app, &b2["id"], "DELIVERED").await;
        w.save(
            "portaSplitter",
            w.store_fid("portaSplitter", &ports[1].1),
            &[("status", json!("OCUPADA")), ("contrato", json!(null)),
              ("documento", json!("11.222.333/0001-81")), ("nomeCliente", json!("Outra")),
              ("origem", json!(null))],
        );
        let mark2 = common::port_writes(&w.sim).len();
        world::succeeded(&app, &w.id, "FULL").await;
        let seen = binding(&app, &b2["id"]).await;
        assert!(seen["conflict"].is_object(), "a document alone is a conflict: {seen}");
        let released = change(&app, "releaseBinding", &b2["id"]).await;
        assert_eq!(released["status"], "RELEASED");
        assert!(our_writes_since(&w, &ports[1].1, mark2).is_empty(), "no removal over OTHER");
        assert_eq!(platform_document(&w, &ports[1].1).as_deref(), Some("11.222.333/0001-81"));

        // 3. OTHER arrives after the last sync on a CONFIRMED binding's port: the release's
        // removal reads the port first and leaves OTHER there.
        let b3 = bind_port(&app, &ports[2].0, customer("510003", CPF)).await;
        change(&app, "confirmBinding", &b3["id"]).await;
        delivery(&app, &b3["id"], "DELIVERED").await;
        someone_else_on(&w, &ports[2].1, "OTHER-3").await;
        let mark3 = common::port_writes(&w.sim).len();
        change(&app, "releaseBinding", &b3["id"]).await;
        let skipped = delivery(&app, &b3["id"], "SKIPPED").await;
        assert!(skipped["lastError"].as_str().unwrap().contains("OTHER-3"), "{skipped}");
        assert!(our_writes_since(&w, &ports[2].1, mark3).is_empty());
        assert_eq!(platform_contract(&w, &ports[2].1).as_deref(), Some("OTHER-3"));

        // 4. OTHER arrives after the last sync on a PENDING binding's port, which is then
        // confirmed: the round reads the port, records the conflict and holds the push.
        let b4 = bind_port(&app, &ports[3].0, customer("510004", CPF)).await;
        someone_else_on(&w, &ports[3].1, "OTHER-4").await;
        let mark4 = common::port_writes(&w.sim).len();
        change(&app, "confirmBinding", &b4["id"]).await;
        let held = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                let now = binding(&app, &b4["id"]).await;
                if now["conflict"].is_object() {
                    return now;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the conflict is recorded within 20 s");
        assert_eq!(held["pushStatus"], "PENDING", "held, not failed: {held}");
        assert!(held["lastError"].as_str().unwrap().contains("held"), "{held}");
        assert!(our_writes_since(&w, &ports[3].1, mark4).is_empty());
        assert_eq!(platform_contract(&w, &ports[3].1).as_deref(), Some("OTHER-4"));
        assert!(our_writes_since(&w, &ports[0].1, mark).is_empty());
    }

    /// Fids are per platform installation: a delivery backing off on one integration's port 69
    /// does not hold up another integration's port 69.
    async fn one_integration_s_stuck_delivery_never_blocks_another_s(app: TestApp) {
        let a = synced_world(&app).await;
        let b = synced_world(&app).await;
        let ports_a = free_service_ports(&app, 200).await;
        // The same generated network: pick a fid both integrations have.
        let (pa, pb, fid) = {
            let mut found = None;
            for (ida, fida) in &ports_a {
                let other = entity::port::Entity::find()
                    .filter(entity::port::Column::Fid.eq(fida.clone()))
                    .all(&app.state.db)
                    .await
                    .unwrap();
                if let Some(pb) = other.iter().find(|p| ids::encode(ids::PORT, p.id).0 != *ida) {
                    found = Some((ida.clone(), ids::encode(ids::PORT, pb.id).0, fida.clone()));
                    break;
                }
            }
            found.expect("a fid on both platforms")
        };
        a.sim.state.set_faults(Faults { error_rate: 1.0, ..Default::default() });
        let ba = bind_port(&app, &pa, customer("520001", CPF)).await;
        change(&app, "confirmBinding", &ba["id"]).await;
        tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while !binding(&app, &ba["id"]).await["lastError"].is_string() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("A's delivery failed once");
        let bb = bind_port(&app, &pb, customer("520002", CPF)).await;
        change(&app, "confirmBinding", &bb["id"]).await;
        delivery(&app, &bb["id"], "DELIVERED").await;
        assert_eq!(platform_contract(&b, &fid).as_deref(), Some("520002"));
        assert_eq!(binding(&app, &ba["id"]).await["pushStatus"], "PENDING");
    }

    /// P1 → P2 → P1 while deliveries fail, then a sync that sees our contract on P1: the older
    /// removal of P1 never lands after the newer push (it is superseded, and the sync settles a
    /// push only when nothing older of that port is pending). P1 ends with our customer.
    async fn a_stale_removal_never_lands_after_a_newer_push(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_service_ports(&app, 2).await;
        let b = bind_port(&app, &ports[0].0, customer("530001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;
        w.sim.state.set_faults(Faults { error_rate: 1.0, ..Default::default() });
        try_change(&app, REBIND, json!({ "i": b["id"], "p": ports[1].0 })).await.unwrap();
        try_change(&app, REBIND, json!({ "i": b["id"], "p": ports[0].0 })).await.unwrap();
        w.sim.state.set_faults(Faults::default());
        world::succeeded(&app, &w.id, "FULL").await;
        let rows = settled(&app, &b["id"]).await;
        assert_eq!(platform_contract(&w, &ports[0].1).as_deref(), Some("530001"), "{rows:?}");
        assert_eq!(platform_contract(&w, &ports[1].1), None, "{rows:?}");
        let now = binding(&app, &b["id"]).await;
        assert_eq!((now["status"].as_str(), now["port"]["id"].as_str()), (Some("CONFIRMED"), Some(ports[0].0.as_str())));
    }

    /// The sync read a port with our contract, and before it settled the page an older removal
    /// of that port was delivered (the race seen in the test above): the sync's read no longer
    /// says where the platform stands, so it leaves the newer push to the outbox. An older
    /// push of the same binding delivered meanwhile writes what the sync saw and does not stop
    /// it (tests/bindings.rs settles that way).
    async fn a_sync_never_settles_a_push_over_a_removal_delivered_after_its_read(app: TestApp) {
        use entity::push_outbox::{self, PushAction, PushStatus};
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        let w = synced_world(&app).await;
        let (port, fid) = free_service_ports(&app, 1).await.remove(0);
        let b = bind_port(&app, &port, customer("535001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;
        let integration_id = ids::decode(ids::INTEGRATION, &async_graphql::ID(w.id.clone())).unwrap();
        let row = |action, status, delivered_at, next_attempt_at| push_outbox::ActiveModel {
            binding_id: Set(db_id(&b["id"])),
            integration_id: Set(integration_id),
            action: Set(action),
            payload: Set(json!({ "contract": "535001", "document": CPF, "name": "Maria" })),
            status: Set(status),
            attempts: Set(1),
            last_error: Set(None),
            next_attempt_at: Set(next_attempt_at),
            created_at: Set(chrono::Utc::now()),
            delivered_at: Set(delivered_at),
            port_fid: Set(Some(fid.clone())),
            ..Default::default()
        };
        let now = chrono::Utc::now();
        // Delivered while the run is under way (stamped after its start).
        let landed = Some(now + chrono::Duration::minutes(1));
        row(PushAction::Remove, PushStatus::Delivered, landed, now).insert(&app.state.db).await.unwrap();
        let push = row(PushAction::Push, PushStatus::Pending, None, now + chrono::Duration::hours(1));
        let push = push.insert(&app.state.db).await.unwrap();
        assert_eq!(platform_contract(&w, &fid).as_deref(), Some("535001"));
        world::succeeded(&app, &w.id, "FULL").await;
        let after = push_outbox::Entity::find_by_id(push.id).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!(after.status, PushStatus::Pending, "{after:?}");
    }

    /// A customer's deliveries go out in the order they were made, across ports: the push to
    /// the port a customer moves to waits for the removal from the port they leave (a platform
    /// that keeps one client per customer, as OZmap does, refuses it meanwhile), whether the
    /// move is a rebind or a new binding of the same contract after a release.
    async fn a_customer_s_new_port_waits_for_the_removal_from_the_old(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_service_ports(&app, 3).await;
        let b = bind_port(&app, &ports[0].0, customer("545001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;

        w.sim.state.set_faults(Faults { error_rate: 1.0, ..Default::default() });
        try_change(&app, REBIND, json!({ "i": b["id"], "p": ports[1].0 })).await.unwrap();
        let rows = tried_twice(&app, &b["id"], Some(&ports[0].1)).await;
        let push = rows.iter().find(|r| r.port_fid.as_ref() == Some(&ports[1].1)).unwrap();
        assert_eq!((push.attempts, push.first_attempt_at), (0, None), "{rows:?}");
        w.sim.state.set_faults(Faults::default());
        settled(&app, &b["id"]).await;
        assert_eq!(platform_contract(&w, &ports[0].1), None);
        assert_eq!(platform_contract(&w, &ports[1].1).as_deref(), Some("545001"));

        w.sim.state.set_faults(Faults { error_rate: 1.0, ..Default::default() });
        change(&app, "releaseBinding", &b["id"]).await;
        let again = bind_port(&app, &ports[2].0, customer("545001", CPF)).await;
        change(&app, "confirmBinding", &again["id"]).await;
        tried_twice(&app, &b["id"], Some(&ports[1].1)).await;
        let push = rows_of(&app, &again["id"]).await;
        assert_eq!((push[0].attempts, push[0].first_attempt_at), (0, None), "{push:?}");
        w.sim.state.set_faults(Faults::default());
        delivery(&app, &again["id"], "DELIVERED").await;
        assert_eq!(platform_contract(&w, &ports[1].1), None);
        assert_eq!(platform_contract(&w, &ports[2].1).as_deref(), Some("545001"));
    }

    /// An ORPHANED binding released, or moved, clears its old port on the platform when the
    /// port still carries its customer there.
    async fn an_orphan_released_or_moved_clears_its_old_port(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_service_ports(&app, 3).await;
        let mut made = Vec::new();
        for (i, (port, _)) in ports.iter().take(2).enumerate() {
            let b = bind_port(&app, port, customer(&format!("54{i:04}"), CPF)).await;
            change(&app, "confirmBinding", &b["id"]).await;
            delivery(&app, &b["id"], "DELIVERED").await;
            made.push(b);
        }
        app.ok("mutation($i: ID!) { unlinkProject(integrationId: $i) { id } }", json!({ "i": w.id })).await;
        for b in &made {
            assert_eq!(binding(&app, &b["id"]).await["status"], "ORPHANED");
        }
        app.ok(
            "mutation($i: ID!, $r: String!) { setProject(integrationId: $i, input: { remoteId: $r }) { id } }",
            json!({ "i": w.id, "r": w.fid("projeto", w.project) }),
        )
        .await;
        world::succeeded(&app, &w.id, "FULL").await;
        let fresh = free_service_ports(&app, 1).await;
        change(&app, "releaseBinding", &made[0]["id"]).await;
        try_change(&app, REBIND, json!({ "i": made[1]["id"], "p": fresh[0].0 })).await.unwrap();
        for b in &made {
            settled(&app, &b["id"]).await;
        }
        assert_eq!(platform_contract(&w, &ports[0].1), None, "released orphan cleared");
        assert_eq!(platform_contract(&w, &ports[1].1), None, "moved orphan cleared");
        assert_eq!(platform_contract(&w, &fresh[0].1).as_deref(), Some("540001"));
    }

    /// Failures end: a persistent authentication refusal fails at once, transient failures give
    /// up after the horizon; retryPush queues the binding's current wish as a new delivery (a
    /// push for a CONFIRMED binding, a removal for a RELEASED one) and refuses other statuses.
    async fn failures_end_and_retries_queue_the_current_wish(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_service_ports(&app, 3).await;
        let update = "mutation($i: ID!, $p: String!) { updateIntegration(id: $i, input: { password: $p }) { id } }";
        app.ok(update, json!({ "i": w.id, "p": "wrong" })).await;
        let b = bind_port(&app, &ports[0].0, customer("550001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        let failed = delivery(&app, &b["id"], "FAILED").await;
        assert_eq!(failed["attempts"], 1, "{failed}");
        app.ok(update, json!({ "i": w.id, "p": "geosite" })).await;
        change(&app, "retryPush", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;
        use entity::push_outbox::PushStatus as S;
        let rows = rows_of(&app, &b["id"]).await;
        assert_eq!(rows.iter().map(|r| (r.status, r.attempts)).collect::<Vec<_>>(), vec![(S::Superseded, 1), (S::Delivered, 1)]);

        // A RELEASED binding whose removal failed: the retry is a removal, never the push.
        app.ok(update, json!({ "i": w.id, "p": "wrong" })).await;
        change(&app, "releaseBinding", &b["id"]).await;
        delivery(&app, &b["id"], "FAILED").await;
        app.ok(update, json!({ "i": w.id, "p": "geosite" })).await;
        change(&app, "retryPush", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;
        assert_eq!(platform_contract(&w, &ports[0].1), None);
        let code = try_change(&app, "mutation($i: ID!) { retryPush(bindingId: $i) { id } }", json!({ "i": b["id"] })).await;
        assert_eq!(code, Err("VALIDATION".to_owned()), "nothing failed to retry");

        // A cancelled binding has nothing to retry.
        let c = bind_port(&app, &ports[1].0, customer("550002", CPF)).await;
        change(&app, "cancelBinding", &c["id"]).await;
        let code = try_change(&app, "mutation($i: ID!) { retryPush(bindingId: $i) { id } }", json!({ "i": c["id"] })).await;
        assert_eq!(code, Err("VALIDATION".to_owned()));
    }
}
