//! `deleteIntegration`: refused while anything of the integration is live (active, bindings,
//! deliveries, a run), then everything of it gone in one transaction but its history, which
//! stays readable with the deletion as its newest entry.

mod common;

use common::bindings::*;
use common::*;
use mapping_gateway::access::Role;
use serde_json::{json, Value};

const DELETE: &str = "mutation($i: ID!) { deleteIntegration(id: $i) { id name } }";
const ACTIVE: &str =
    "mutation($i: ID!, $a: Boolean!) { setIntegrationActive(id: $i, active: $a) { active } }";

/// The error of a mutation: (code, message).
async fn refused(app: &TestApp, key: &str, query: &str, vars: Value) -> (String, String) {
    let (_, body) = app.post(Some(key), query, vars).await;
    let e = &body["errors"][0];
    (
        e["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        e["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Rows of an integration left in a table.
async fn rows(app: &TestApp, table: &str, id: i64) -> i64 {
    use sea_orm::ConnectionTrait;
    let row = app
        .state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.state.db.get_database_backend(),
            format!("SELECT count(*) AS n FROM {table} WHERE integration_id = {id}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

on_both_engines! {
    async fn an_integration_is_deleted_only_when_nothing_of_it_is_live(app: TestApp) {
        let w = synced_world(&app).await;
        let number = mapping_gateway::ids::decode_tagged("Integration", w.id.as_str()).unwrap();
        let ports = free_service_ports(&app, 2).await;
        let kept = bind_port(&app, &ports[0].0, customer("550001", CPF)).await;
        change(&app, "confirmBinding", &kept["id"]).await;
        delivery(&app, &kept["id"], "DELIVERED").await;
        let pending = bind_port(&app, &ports[1].0, customer("550002", CNPJ)).await;
        let vars = json!({ "i": w.id });

        for role in [Role::Viewer, Role::Operator] {
            let key = app.key(role).await;
            assert_eq!(refused(&app, &key, DELETE, vars.clone()).await.0, "FORBIDDEN");
        }
        let (code, message) = refused(&app, &app.admin_key, DELETE, vars.clone()).await;
        assert_eq!(code, "CONFLICT");
        assert!(message.contains("active"), "{message}");

        // Customers leave the platform while the integration is active.
        change(&app, "releaseBinding", &kept["id"]).await;
        let rows_after = settled(&app, &kept["id"]).await;
        assert!(rows_after.iter().all(|r| r.status == entity::push_outbox::PushStatus::Delivered));
        app.ok(ACTIVE, json!({ "i": w.id, "a": false })).await;
        let (code, message) = refused(&app, &app.admin_key, DELETE, vars.clone()).await;
        assert_eq!(code, "CONFLICT");
        assert!(message.contains("PENDING or CONFIRMED binding"), "{message}");
        change(&app, "cancelBinding", &pending["id"]).await;

        let deleted = app.ok(DELETE, vars.clone()).await["deleteIntegration"].clone();
        assert_eq!(deleted["id"], w.id);
        // Gone: the integration, its copy, runs, selection, bindings and deliveries.
        let (code, _) = refused(&app, &app.admin_key, "query($i: ID!) { integration(id: $i) { id } }", vars.clone()).await;
        assert_eq!(code, "NOT_FOUND");
        assert_eq!(rows(&app, "elements", number).await, 0);
        assert_eq!(rows(&app, "splitters", number).await, 0);
        assert_eq!(rows(&app, "ports", number).await, 0);
        assert_eq!(rows(&app, "bindings", number).await, 0);
        assert_eq!(rows(&app, "push_outbox", number).await, 0);
        assert_eq!(rows(&app, "sync_runs", number).await, 0);
        assert_eq!(rows(&app, "element_selections", number).await, 0);
        assert_eq!(rows(&app, "projects", number).await, 0);
        // Its history stays, the deletion first.
        let history = app
            .ok("query($i: ID!) { history(integrationId: $i, first: 100) { edges { node { action summary before } } } }", vars.clone())
            .await;
        let entries = history["history"]["edges"].as_array().unwrap();
        assert_eq!(entries[0]["node"]["action"], "INTEGRATION_DELETED", "{history}");
        assert!(entries[0]["node"]["summary"].as_str().unwrap().contains(deleted["name"].as_str().unwrap()));
        assert!(entries.iter().any(|e| e["node"]["action"] == "BINDING_RELEASED"));
        // Deleting again: nothing to delete.
        assert_eq!(refused(&app, &app.admin_key, DELETE, vars.clone()).await.0, "NOT_FOUND");
        // Its name is free again.
        app.create_integration(deleted["name"].as_str().unwrap(), &w.sim.url).await;
    }

    /// A delivery that FAILED (a customer the platform may still show) keeps the integration.
    async fn a_failed_delivery_keeps_the_integration(app: TestApp) {
        let w = synced_world(&app).await;
        let (port, _) = free_service_ports(&app, 1).await.remove(0);
        let b = bind_port(&app, &port, customer("550003", CPF)).await;
        let refusal = w.sim.state.refuse(axum::http::Method::POST, "/portaSplitter/save", None);
        change(&app, "confirmBinding", &b["id"]).await;
        delivery(&app, &b["id"], "FAILED").await;
        refusal.release();
        change(&app, "releaseBinding", &b["id"]).await;
        app.ok(ACTIVE, json!({ "i": w.id, "a": false })).await;
        let (code, message) = refused(&app, &app.admin_key, DELETE, json!({ "i": w.id })).await;
        assert_eq!(code, "CONFLICT");
        assert!(message.contains("PENDING or FAILED"), "{message}");
        app.ok("query($i: ID!) { integration(id: $i) { id } }", json!({ "i": w.id })).await;
    }
}
