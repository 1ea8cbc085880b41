//! PostgreSQL: orphaning (a sync or an unlink deleting ports) racing a release and a bind of
//! the same port; each race is staged with two transactions and waited out on
//! `pg_stat_activity`, never on a sleep.

mod common;

use common::bindings::*;
use common::{Engine, TestApp};
use mapping_gateway::graphql::ids;
use mapping_gateway::simulator::SimPlatform;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::{json, Value};

/// Waits (10 s at most) until some backend of the database waits on a lock.
async fn a_backend_waits_on_a_lock(db: &sea_orm::DatabaseConnection) {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
                ))
                .await
                .unwrap()
                .unwrap();
            if row.try_get::<i64>("", "n").unwrap() > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a lock wait within 10 s");
}

/// PostgreSQL: orphaning never overwrites a release that committed while it waited, and a bind
/// racing the deletion of its port ends refused, never active on a deleted port.
async fn orphaning_races_releases_and_binds_on_postgres(platform: SimPlatform) {
    use mapping_gateway::store::bindings::{orphan_bindings, PortScope};
    let Some(app) = TestApp::start(Engine::Postgres)
        .await
        .map(|a| a.on(platform))
    else {
        return;
    };
    let _w = synced_world(&app).await;
    let ports = free_service_ports(&app, 2).await;
    let port_db_id = |id: &str| ids::decode(ids::PORT, &async_graphql::ID(id.into())).unwrap();
    let b = bind_port(&app, &ports[0].0, customer("570001", CPF)).await;
    change(&app, "confirmBinding", &b["id"]).await;

    // A release holds the binding's row; the orphaning waits for it, then finds it RELEASED.
    let release = app.state.db.begin().await.unwrap();
    release
        .execute_unprepared(&format!(
            "UPDATE bindings SET status = 'RELEASED' WHERE id = {}",
            db_id(&b["id"])
        ))
        .await
        .unwrap();
    let db = app.state.db.clone();
    let doomed = port_db_id(&ports[0].0);
    let orphaning = tokio::spawn(async move {
        let txn = db.begin().await.unwrap();
        let ids = orphan_bindings(&txn, &PortScope::Ports(vec![doomed]))
            .await
            .unwrap();
        txn.commit().await.unwrap();
        ids
    });
    a_backend_waits_on_a_lock(&app.state.db).await;
    release.commit().await.unwrap();
    assert!(
        orphaning.await.unwrap().is_empty(),
        "nothing left to orphan"
    );
    assert_eq!(binding(&app, &b["id"]).await["status"], "RELEASED");

    // A sync deleting a port holds it; a bind of it waits, then finds it gone.
    let sync = app.state.db.begin().await.unwrap();
    let doomed = port_db_id(&ports[1].0);
    orphan_bindings(&sync, &PortScope::Ports(vec![doomed]))
        .await
        .unwrap();
    let bind = {
        let (url, key, port) = (app.url.clone(), app.admin_key.clone(), ports[1].0.clone());
        tokio::spawn(async move {
            let body: Value = reqwest::Client::new()
                .post(format!("{url}/graphql"))
                .bearer_auth(key)
                .json(&json!({
                    "query": "mutation($p: ID!, $c: BindingCustomerInput!) { bindPort(portId: $p, customer: $c) { id } }",
                    "variables": { "p": port, "c": customer("570002", CPF) },
                }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body
        })
    };
    a_backend_waits_on_a_lock(&app.state.db).await;
    mapping_gateway::store::plant::delete_ids(&sync, "ports", &[doomed])
        .await
        .unwrap();
    sync.commit().await.unwrap();
    let answer = bind.await.unwrap();
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{answer}"
    );
    let stray = entity::binding::Entity::find()
        .filter(entity::binding::Column::PortId.is_null())
        .filter(entity::binding::Column::Status.is_in(entity::binding::BindingStatus::ACTIVE))
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(
        stray.is_empty(),
        "no active binding without a port: {stray:?}"
    );
}

each_platform!(orphaning_races_releases_and_binds_on_postgres);
