//! OZmap listings against servers that differ from the simulator's defaults the way real ones
//! may: a `nextUrl` that drops `populate`, a `connections.id` filter ignored. Each sync must
//! bring every customer exactly as the platform has them, or say it could not.

mod common;

use std::collections::HashMap;

use common::bindings::*;
use common::world;
use common::{Engine, TestApp};
use mapping_gateway::simulator::{Faults, SimPlatform};
use sea_orm::EntityTrait;

/// Every local port of the world's integration against the platform's contract on it; returns
/// how many ports carry a customer.
async fn customers_agree(app: &TestApp, w: &world::World) -> usize {
    let local: HashMap<String, Option<String>> = entity::port::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.fid, p.customer_contract))
        .collect();
    assert!(local.len() > 100, "{} ports synced", local.len());
    let mut customers = 0;
    for (fid, contract) in &local {
        assert_eq!(
            contract.as_deref(),
            platform_contract(w, fid).as_deref(),
            "port {fid}"
        );
        customers += contract.is_some() as usize;
    }
    customers
}

/// A gateway whose OZmap listings page by 16: a page of splitters (2) carries more properties
/// than a page of properties, so their listing runs to several pages.
async fn small_pages(engine: Engine) -> Option<TestApp> {
    let mut settings = common::test_settings();
    settings.platform.page_size = 16;
    Some(
        TestApp::start_configured(engine, Default::default(), settings)
            .await?
            .on(SimPlatform::Ozmap),
    )
}

/// A server whose `nextUrl` does not repeat `populate`: the client puts its own `limit` and
/// `populate` on every page, so no customer arrives as a bare id and none is lost.
async fn a_next_url_without_populate_loses_no_customer(engine: Engine) {
    let Some(app) = small_pages(engine).await else {
        return;
    };
    let w = world::world(&app, 30).await;
    w.sim.state.set_faults(Faults {
        next_url_without_populate: true,
        ..Default::default()
    });
    world::succeeded(&app, &w.id, "FULL").await;
    assert!(
        customers_agree(&app, &w).await > 40,
        "customers on many pages"
    );
}

/// A server that ignores `populate` altogether: every client named by id is read by id.
async fn clients_named_by_id_only_are_read_by_id(engine: Engine) {
    let Some(app) = small_pages(engine).await else {
        return;
    };
    let w = world::world(&app, 30).await;
    w.sim.state.set_faults(Faults {
        populate_ignored: true,
        ..Default::default()
    });
    world::succeeded(&app, &w.id, "FULL").await;
    assert!(customers_agree(&app, &w).await > 40);
}

each_engine!(
    a_next_url_without_populate_loses_no_customer,
    clients_named_by_id_only_are_read_by_id
);

/// What a server that does not apply the `connections.id` filter (`faults`) answers: those
/// properties not connected to the splitters asked for are not taken for theirs, every port's
/// customer is the platform's, and a push reads its port the same way and goes out on it.
async fn without_the_connections_filter(app: TestApp, faults: Faults) {
    let app = app.on(SimPlatform::Ozmap);
    let w = world::world(&app, 30).await;
    w.sim.state.set_faults(faults);
    world::succeeded(&app, &w.id, "FULL").await;
    assert!(customers_agree(&app, &w).await > 40);
    let (port, fid) = free_service_ports(&app, 1).await.remove(0);
    let b = bind_port(&app, &port, customer("540001", CPF)).await;
    change(&app, "confirmBinding", &b["id"]).await;
    delivery(&app, &b["id"], "DELIVERED").await;
    assert_eq!(platform_contract(&w, &fid).as_deref(), Some("540001"));
}

on_both_engines! {
    /// A server that ignores the filter answers every property.
    async fn a_platform_ignoring_the_connections_filter_misplaces_no_customer(app: TestApp) {
        let faults = Faults { ignore_connections_filter: true, ..Default::default() };
        without_the_connections_filter(app, faults).await;
    }

    /// A server that refuses the filter (400): the client lists properties by box instead.
    async fn a_platform_refusing_the_connections_filter_is_read_by_box(app: TestApp) {
        let faults = Faults { refuse_connections_filter: true, ..Default::default() };
        without_the_connections_filter(app, faults).await;
    }
}

on_both_engines! {
    /// A run's listings go out in parallel; they share one login (single flight), as an
    /// installation that allows one session per user requires. An expired token is renewed
    /// once for all of them too.
    async fn a_run_logs_in_once(app: TestApp) {
        let app = app.on(SimPlatform::Ozmap);
        let w = world::world(&app, 30).await;
        let before = w.sim.state.logins();
        world::succeeded(&app, &w.id, "FULL").await;
        assert_eq!(w.sim.state.logins() - before, 1, "one login for the run");
        // Tokens that stop working after a few calls: each expiry costs one login, not one per
        // listing that met it.
        w.sim.state.set_faults(Faults {
            expire_tokens_after_calls: Some(25),
            ..Default::default()
        });
        let before = (w.sim.state.logins(), w.sim.state.calls());
        world::succeeded(&app, &w.id, "FULL").await;
        let logins = w.sim.state.logins() - before.0;
        let calls = w.sim.state.calls() - before.1;
        assert!(logins >= 1, "expired tokens renewed");
        assert!(
            logins <= calls / 25 + 1,
            "{logins} logins for {calls} calls with tokens of 25 calls"
        );
    }
}
