//! An incremental run writes the ports that stay on their slot in one statement that finds and
//! updates them (`sync::engine::in_place`); the rest (renumbered, moved, new) go the general way
//! in the same page. Either way the local copy ends as the platform has it, the counts say what
//! changed, and the bindings of the ports written are reconciled.

mod common;

use common::bindings::*;
use common::world::*;
use common::{Engine, TestApp};
use entity::port::PortStatus;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

/// The local ports of one splitter with at least `n` of them, by number.
async fn ports_of_a_splitter(app: &TestApp, n: usize) -> Vec<entity::port::Model> {
    let all = entity::port::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    let mut by_splitter: std::collections::BTreeMap<i64, Vec<entity::port::Model>> =
        Default::default();
    for p in all {
        by_splitter.entry(p.splitter_id).or_default().push(p);
    }
    let mut ports = by_splitter
        .into_values()
        .find(|ports| ports.len() >= n)
        .expect("a splitter with the ports");
    ports.sort_by_key(|p| p.number);
    ports
}

async fn local_port(app: &TestApp, fid: &str) -> entity::port::Model {
    entity::port::Entity::find()
        .filter(entity::port::Column::Fid.eq(fid))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the port is in the copy")
}

on_both_engines! {
    async fn ports_on_their_slot_are_written_in_place_and_the_others_moved(app: TestApp) {
        let w = world(&app, 20).await;
        succeeded(&app, &w.id, "FULL").await;
        let ports = ports_of_a_splitter(&app, 3).await;
        let (stays, swap_a, swap_b) = (&ports[0], &ports[1], &ports[2]);
        let other = entity::port::Entity::find()
            .filter(entity::port::Column::SplitterId.ne(stays.splitter_id))
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap();
        // A customer on one port, another port's status, and two ports trading numbers.
        w.save(
            "portaSplitter",
            w.store_fid("portaSplitter", &stays.fid),
            &[("status", json!("OCUPADA")), ("contrato", json!("771001")), ("documento", json!("52998224725")), ("nomeCliente", json!("Ana Souza"))],
        );
        w.save("portaSplitter", w.store_fid("portaSplitter", &other.fid), &[("status", json!("DANIFICADA"))]);
        w.save("portaSplitter", w.store_fid("portaSplitter", &swap_a.fid), &[("numero", json!(swap_b.number))]);
        w.save("portaSplitter", w.store_fid("portaSplitter", &swap_b.fid), &[("numero", json!(swap_a.number))]);

        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(run["counts"]["updated"], 4, "{run}");
        assert_eq!(run["counts"]["created"], 0, "{run}");
        let now = local_port(&app, &stays.fid).await;
        assert_eq!(now.id, stays.id, "written where it stands");
        assert_eq!((now.splitter_id, now.number), (stays.splitter_id, stays.number));
        assert_eq!(now.status, PortStatus::Occupied);
        assert_eq!(now.customer_contract.as_deref(), Some("771001"));
        assert_eq!(now.customer_name.as_deref(), Some("Ana Souza"));
        assert_ne!(now.remote_updated_at, stays.remote_updated_at);
        assert_eq!(local_port(&app, &other.fid).await.status, PortStatus::Damaged);
        assert_eq!(local_port(&app, &swap_a.fid).await.number, swap_b.number);
        assert_eq!(local_port(&app, &swap_b.fid).await.number, swap_a.number);

        // Listed again with nothing new (the cursor's overlap), nothing is rewritten.
        let again = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(again["counts"]["updated"], 0, "{again}");
        assert!(again["counts"]["unchanged"].as_u64().unwrap() >= 4, "relisted: {again}");
        assert_eq!(local_port(&app, &stays.fid).await, now);
    }
}

on_every_platform! {
    async fn an_incremental_run_reconciles_the_bindings_of_ports_written_in_place(app: TestApp) {
        let w = synced_world(&app).await;
        let (port, fid) = free_service_ports(&app, 1).await.remove(0);
        let b = bind_port(&app, &port, customer("330001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;
        let store_fid = w.store_fid("portaSplitter", &fid);
        // Someone else's customer on the port, on the platform: a conflict.
        w.save("portaSplitter", store_fid, &[("status", json!("OCUPADA")), ("contrato", json!("OTHER-9")), ("documento", json!("11222333000181")), ("nomeCliente", json!("Outro"))]);
        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(run["counts"]["conflicts"], 1, "{run}");
        let seen = binding(&app, &b["id"]).await;
        assert_eq!(seen["status"], "CONFIRMED", "the binding stands");
        assert_eq!(seen["conflict"]["platformContract"], "OTHER-9", "{seen}");
        // The binding's customer back on the platform: the conflict clears.
        w.save("portaSplitter", store_fid, &[("status", json!("OCUPADA")), ("contrato", json!("330001")), ("documento", json!("52998224725")), ("nomeCliente", json!("Maria da Silva"))]);
        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(run["counts"]["conflicts"], 0, "{run}");
        let seen = binding(&app, &b["id"]).await;
        assert!(seen["conflict"].is_null(), "{seen}");
    }
}

on_both_engines! {
    async fn a_changed_port_of_a_splitter_not_selected_stays_out_of_an_incremental_run(app: TestApp) {
        let w = world(&app, 20).await;
        succeeded(&app, &w.id, "FULL").await;
        // Distribution splitters are not selected by default: their ports are not kept.
        let distribution: Vec<serde_json::Value> =
            fids(&w.sim, "splitter", w.project, |r| r[4] != json!("Atendimento"))
                .into_iter()
                .map(|f| json!(f))
                .collect();
        let outside = pick(&w.sim, "portaSplitter", w.project, |r| distribution.contains(&r[1]));
        let inside = service_port(&w.sim, w.project);
        let (outside_fid, inside_fid) = (w.fid("portaSplitter", outside), w.fid("portaSplitter", inside));
        assert!(!entity_exists_port(&app, &outside_fid).await, "a distribution port is not kept");
        w.save("portaSplitter", outside, &[("status", json!("OCUPADA")), ("contrato", json!("880001"))]);
        w.save("portaSplitter", inside, &[("status", json!("DANIFICADA"))]);

        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert!(run["counts"]["fetched"].as_u64().unwrap() >= 2, "both listed: {run}");
        assert_eq!(run["counts"]["updated"], 1, "{run}");
        assert_eq!(run["counts"]["created"], 0, "{run}");
        assert!(!entity_exists_port(&app, &outside_fid).await, "still not kept");
        assert_eq!(local_port(&app, &inside_fid).await.status, PortStatus::Damaged);
    }
}
