//! What happens between a delivery's read of the platform and its write: a person who puts a
//! customer on the port meanwhile, a binding moved meanwhile, a push held for longer than its
//! horizon, and the retries that must reach every write the binding still wants. The
//! simulator holds the delivery's requests (`SimState::hold`) while the test plays the person,
//! so nothing depends on timing.

mod common;

use axum::http::Method;
use common::bindings::*;
use common::world;
use common::{Engine, TestApp};
use entity::push_outbox::{PushAction, PushStatus};
use mapping_gateway::simulator::SimPlatform;
use serde_json::{json, Value};

const REBIND: &str =
    "mutation($i: ID!, $p: ID!) { rebindBinding(id: $i, portId: $p) { id status } }";

/// A mutation's error code, or `None` when it succeeded.
async fn refusal_code(app: &TestApp, query: &str, vars: Value) -> Option<String> {
    let (_, body) = app.post(Some(&app.admin_key), query, vars).await;
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned)
}

on_both_engines! {
    /// OZmap reads the port right before it writes: a person who put PERSON-1 on the port
    /// after the round's own read is met there. The push is held with the conflict recorded
    /// (never SKIPPED for good), and goes out by itself once a sync finds the port free.
    async fn a_customer_met_at_write_time_holds_the_push_until_the_port_is_free(app: TestApp) {
        let app = app.on(SimPlatform::Ozmap);
        let w = synced_world(&app).await;
        let (port, fid) = free_service_ports(&app, 1).await.remove(0);
        let b = bind_port(&app, &port, customer("530001", CPF)).await;
        // The write's own read of the splitter (the round reads through the listing).
        let gate = w.sim.state.hold(Method::GET, "/api/v2/splitters/");
        change(&app, "confirmBinding", &b["id"]).await;
        tokio::time::timeout(std::time::Duration::from_secs(20), gate.wait_for(1))
            .await
            .expect("the write reads its port within 20 s");
        someone_else_on(&w, &fid, "PERSON-1").await;
        let mark = common::port_writes(&w.sim).len();
        gate.release();
        let held = until(&app, &b["id"], "the conflict recorded", |b| {
            b["conflict"]["platformContract"] == "PERSON-1"
        })
        .await;
        assert_eq!(held["pushStatus"], "PENDING", "held, not final: {held}");
        assert_eq!(held["status"], "CONFIRMED");
        let reason = held["lastError"].as_str().unwrap_or_default();
        assert!(reason.contains("held") && reason.contains("PERSON-1"), "{held}");
        assert!(our_writes_since(&w, &fid, mark).is_empty(), "PERSON-1 never written over");
        assert_eq!(platform_contract(&w, &fid).as_deref(), Some("PERSON-1"));

        // The person leaves; the next sync finds the port free and the push goes out.
        someone_else_off(&w, &fid);
        world::succeeded(&app, &w.id, "FULL").await;
        let done = delivery(&app, &b["id"], "DELIVERED").await;
        assert!(done["conflict"].is_null(), "{done}");
        assert_eq!(platform_contract(&w, &fid).as_deref(), Some("530001"));
    }
}

on_every_platform! {
    /// The round reads port A (someone else's on the platform) while the binding moves to free
    /// port B: the conflict read on A is not recorded on the binding, which is on B now, and
    /// the push to B goes out.
    async fn a_conflict_is_recorded_only_on_the_port_it_was_read_on(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_ports_apart(&app, 2).await;
        let b = bind_port(&app, &ports[0].0, customer("530002", CPF)).await;
        someone_else_on(&w, &ports[0].1, "PERSON-6").await;
        let gate = w.sim.state.hold(Method::GET, port_read_path(&w));
        change(&app, "confirmBinding", &b["id"]).await;
        tokio::time::timeout(std::time::Duration::from_secs(20), gate.wait_for(1))
            .await
            .expect("the round reads its ports within 20 s");
        let moved = app
            .ok(REBIND, json!({ "i": b["id"], "p": ports[1].0 }))
            .await;
        assert_eq!(moved["rebindBinding"]["status"], "CONFIRMED");
        gate.release();
        let done = delivery(&app, &b["id"], "DELIVERED").await;
        assert!(done["conflict"].is_null(), "no conflict of port A on port B: {done}");
        assert_eq!(done["port"]["fid"], ports[1].1);
        assert_eq!(platform_contract(&w, &ports[1].1).as_deref(), Some("530002"));
        assert_eq!(platform_contract(&w, &ports[0].1).as_deref(), Some("PERSON-6"));
    }
}

/// The latest delivery of a binding to a port.
fn latest_to<'a>(
    rows: &'a [entity::push_outbox::Model],
    fid: &str,
) -> &'a entity::push_outbox::Model {
    rows.iter()
        .rev()
        .find(|r| r.port_fid.as_deref() == Some(fid))
        .expect("a delivery to the port")
}

on_every_platform! {
    /// The platform refuses removals while a delivered binding moves: the old port's removal
    /// FAILS (on OZmap the push to the new port, which must take the client off our old
    /// property first, too). Once the refusal is lifted, one retryPush reaches them all, the
    /// removal first: the customer leaves the old port and is on the new one.
    async fn a_failed_removal_after_a_move_is_retried_before_the_push(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_ports_apart(&app, 2).await;
        let b = bind_port(&app, &ports[0].0, customer("530004", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;
        let refusal = match w.sim.platform {
            SimPlatform::Geosite => w.sim.state.refuse(Method::POST, "/portaSplitter/save", Some("LIVRE")),
            SimPlatform::Ozmap => w.sim.state.refuse(Method::DELETE, "/api/v2/properties/", None),
        };
        app.ok(REBIND, json!({ "i": b["id"], "p": ports[1].0 })).await;
        let rows = settled(&app, &b["id"]).await;
        let removal = latest_to(&rows, &ports[0].1);
        assert_eq!((removal.action, removal.status), (PushAction::Remove, PushStatus::Failed), "{rows:?}");
        assert!(refusal.arrived() >= 1);
        refusal.release();
        change(&app, "retryPush", &b["id"]).await;
        let rows = settled(&app, &b["id"]).await;
        assert_eq!(latest_to(&rows, &ports[0].1).status, PushStatus::Delivered, "{rows:?}");
        assert_eq!(latest_to(&rows, &ports[1].1).status, PushStatus::Delivered, "{rows:?}");
        assert_eq!(platform_contract(&w, &ports[0].1), None, "the customer left the old port");
        assert_eq!(platform_contract(&w, &ports[1].1).as_deref(), Some("530004"));
        let retry = "mutation($i: ID!) { retryPush(bindingId: $i) { id } }";
        assert_eq!(
            refusal_code(&app, retry, json!({ "i": b["id"] })).await.as_deref(),
            Some("VALIDATION"),
            "nothing failed is left"
        );
    }
}

on_every_platform! {
    /// A sync that sees our customer on a port does not settle a push to that port that a
    /// round has in flight: the push settles itself, so a removal queued meanwhile waits
    /// behind it and the customer of a binding released meanwhile leaves the port.
    async fn a_sync_leaves_a_push_in_flight_to_its_round(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_ports_apart(&app, 2).await;
        let (x, y) = (&ports[0], &ports[1]);
        let b = bind_port(&app, &x.0, customer("530005", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;
        // The move away cannot clear port X: X keeps the customer the binding comes back to.
        let refusal = match w.sim.platform {
            SimPlatform::Geosite => w.sim.state.refuse(Method::POST, "/portaSplitter/save", Some("LIVRE")),
            SimPlatform::Ozmap => w.sim.state.refuse(Method::DELETE, "/api/v2/properties/", None),
        };
        app.ok(REBIND, json!({ "i": b["id"], "p": y.0 })).await;
        settled(&app, &b["id"]).await;
        refusal.release();
        // Back to X: the push to X is held in flight at its first platform request.
        let gate = match w.sim.platform {
            SimPlatform::Geosite => w.sim.state.hold_matching(Method::POST, "/portaSplitter/save", "530005"),
            // Its read of X's splitter, right before the write.
            SimPlatform::Ozmap => {
                let splitter = x.1.split(':').next().unwrap();
                w.sim.state.hold(Method::GET, &format!("/api/v2/splitters/{splitter}"))
            }
        };
        app.ok(REBIND, json!({ "i": b["id"], "p": x.0 })).await;
        tokio::time::timeout(std::time::Duration::from_secs(20), gate.wait_for(1))
            .await
            .expect("the push to X is in flight within 20 s");
        assert_eq!(platform_contract(&w, &x.1).as_deref(), Some("530005"));
        world::succeeded(&app, &w.id, "FULL").await;
        let rows = rows_of(&app, &b["id"]).await;
        let push = latest_to(&rows, &x.1);
        assert_eq!(
            (push.action, push.status),
            (PushAction::Push, PushStatus::Pending),
            "the sync left the push in flight to its round: {rows:?}"
        );
        // Released while the push is in flight: the removal goes after it.
        change(&app, "releaseBinding", &b["id"]).await;
        gate.release();
        let rows = settled(&app, &b["id"]).await;
        assert_eq!(platform_contract(&w, &x.1), None, "{rows:?}");
        assert_eq!(platform_contract(&w, &y.1), None, "{rows:?}");
    }
}

/// A push held by another customer fails once its horizon has passed, with its reason; it
/// stays FAILED (retryPush is refused) while the conflict lasts, and is retried once a sync
/// finds the port free.
async fn a_push_held_past_its_horizon_fails_with_its_reason(engine: Engine, platform: SimPlatform) {
    let mut settings = common::test_settings();
    settings.delivery.give_up_after = std::time::Duration::from_secs(2);
    let Some(app) = TestApp::start_configured(engine, Default::default(), settings).await else {
        return;
    };
    let app = app.on(platform);
    let w = synced_world(&app).await;
    let (port, fid) = free_service_ports(&app, 1).await.remove(0);
    let b = bind_port(&app, &port, customer("530003", CPF)).await;
    // Arrives after the last sync: the round's read finds it.
    someone_else_on(&w, &fid, "PERSON-3").await;
    change(&app, "confirmBinding", &b["id"]).await;
    let failed = delivery(&app, &b["id"], "FAILED").await;
    let reason = failed["lastError"].as_str().unwrap_or_default();
    assert!(
        reason.contains("gave up") && reason.contains("PERSON-3"),
        "{failed}"
    );
    assert_eq!(
        failed["conflict"]["platformContract"], "PERSON-3",
        "{failed}"
    );
    let retry = "mutation($i: ID!) { retryPush(bindingId: $i) { id } }";
    assert_eq!(
        refusal_code(&app, retry, json!({ "i": b["id"] }))
            .await
            .as_deref(),
        Some("CONFLICT"),
        "not retried while the port carries PERSON-3"
    );
    someone_else_off(&w, &fid);
    world::succeeded(&app, &w.id, "FULL").await;
    assert_eq!(
        refusal_code(&app, retry, json!({ "i": b["id"] })).await,
        None
    );
    delivery(&app, &b["id"], "DELIVERED").await;
    assert_eq!(platform_contract(&w, &fid).as_deref(), Some("530003"));
}

each_engine_and_platform!(a_push_held_past_its_horizon_fails_with_its_reason);
