//! A bind made while a purge of a deselected kind is deciding what to delete: the purge asks
//! the platform about the splitters bound when it looked, so a bind landing on a doomed
//! splitter after that look would be orphaned on the strength of a question never asked. The
//! simulator holds the purge's question (`SimState::hold`) while the test binds.

mod common;

use axum::http::Method;
use common::bindings::*;
use common::world::{self, World};
use common::{Engine, TestApp};
use entity::splitter::SplitterKind;
use mapping_gateway::simulator::SimPlatform;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

const SELECT: &str = "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { id } }";

/// The path a purge's question about bound splitters goes to.
fn splitter_read_path(w: &World) -> &'static str {
    match w.sim.platform {
        SimPlatform::Geosite => "/splitter/list",
        SimPlatform::Ozmap => "/api/v2/splitters",
    }
}

/// The local splitter of a port (by the port's API id).
async fn splitter_of_port(app: &TestApp, port: &str) -> entity::splitter::Model {
    let id = mapping_gateway::graphql::ids::decode(
        mapping_gateway::graphql::ids::PORT,
        &async_graphql::ID(port.into()),
    )
    .unwrap();
    let port = entity::port::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the port");
    entity::splitter::Entity::find_by_id(port.splitter_id)
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("its splitter")
}

async fn status(app: &TestApp, b: &Value) -> String {
    binding(app, &b["id"]).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

on_every_platform! {
    /// A, a service splitter with a binding, became a distribution splitter on the platform
    /// and then a service splitter again while distribution splitters were deselected: the
    /// purge asks about A (bound) and keeps it. While it waits on that question a bind on
    /// another port of A is refused (its local kind is not SERVICE, so no bind can land on a
    /// splitter the purge is deciding about), a bind on a service splitter (never purged:
    /// SERVICE is locked on) goes through, and nothing is orphaned.
    async fn a_bind_during_the_purge_window_lands_only_where_no_purge_reaches(app: TestApp) {
        let w = world::world(&app, 30).await;
        app.ok(SELECT, json!({ "i": w.id, "items": ["SERVICE", "DISTRIBUTION", "CTO"] }))
            .await;
        world::succeeded(&app, &w.id, "FULL").await;
        let ports = free_ports_apart(&app, 2).await;
        let splitter = splitter_of_port(&app, &ports[0].0).await;
        let sibling = entity::port::Entity::find()
            .filter(entity::port::Column::SplitterId.eq(splitter.id))
            .filter(entity::port::Column::Fid.ne(ports[0].1.clone()))
            .one(&app.state.db)
            .await
            .unwrap()
            .expect("a second port on the splitter");
        let sibling = mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::PORT, sibling.id).0;
        let a = bind_port(&app, &ports[0].0, customer("540001", CPF)).await;
        let store_fid = w.store_fid("splitter", &splitter.fid);
        w.save("splitter", store_fid, &[("tipo", json!("Distribuição"))]);
        world::succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(local_kind(&app, &splitter.fid).await, Some(SplitterKind::Distribution));
        w.save("splitter", store_fid, &[("tipo", json!("Atendimento"))]);
        app.ok(SELECT, json!({ "i": w.id, "items": ["SERVICE", "CTO"] })).await;

        let gate = w.sim.state.hold(Method::GET, splitter_read_path(&w));
        let run = world::start(&app, &w.id, "INCREMENTAL", false).await;
        tokio::time::timeout(std::time::Duration::from_secs(20), gate.wait_for(1))
            .await
            .expect("the purge asks about the bound splitter within 20 s");
        let bind = "mutation($p: ID!, $c: BindingCustomerInput!) { bindPort(portId: $p, customer: $c) { id } }";
        let refused = app
            .error_code(Some(&app.admin_key), bind, json!({ "p": sibling, "c": customer("540002", CPF) }))
            .await;
        assert_eq!(refused, "VALIDATION", "no bind on a splitter the purge is deciding about");
        let b = bind_port(&app, &ports[1].0, customer("540003", CPF)).await;
        gate.release();
        let run = world::finished(&app, run["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert_eq!(run["counts"]["orphaned"], 0, "{run}");
        assert_eq!(local_kind(&app, &splitter.fid).await, Some(SplitterKind::Service), "kept");
        assert_eq!(status(&app, &a).await, "PENDING");
        assert_eq!(status(&app, &b).await, "PENDING");
    }
}

/// The local kind of a splitter, `None` when it is not stored.
async fn local_kind(app: &TestApp, fid: &str) -> Option<SplitterKind> {
    entity::splitter::Entity::find()
        .filter(entity::splitter::Column::Fid.eq(fid))
        .one(&app.state.db)
        .await
        .unwrap()
        .map(|s| s.kind)
}
