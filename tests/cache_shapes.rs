//! Shapes for client caches, through the public API: the ways back from a project and from
//! progress events to the objects a cache holds, an integration's own connections, page sizes
//! with their defaults and bounds, and validation errors that name their field.

mod common;

use common::world::synced;
use common::{Engine, Subscription, TestApp, TRANSPORT_WS};
use serde_json::{json, Value};

fn ids(connection: &Value) -> Vec<Value> {
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].clone())
        .collect()
}

on_both_engines! {
    /// `Integration.syncRuns`, `history` and `bindings` page as the root connections do;
    /// `Project.integration` leads back; `last` alone reads backward with `first`'s default in
    /// the schema.
    async fn an_integration_pages_its_own_lists_and_its_project_leads_back(app: TestApp) {
        let (_sim, id) = synced(&app, 3, &["SERVICE", "CTO"]).await;
        common::world::succeeded(&app, &id, "INCREMENTAL").await;
        let data = app.ok(
            "query($i: ID!) {
               integration(id: $i) {
                 id
                 project { integration { id } }
                 syncRuns(first: 1) { totalCount edges { node { id } } pageInfo { hasNextPage } }
                 history { totalCount edges { node { id } } }
                 bindings { totalCount }
                 older: syncRuns(last: 1) { edges { node { id } } }
               }
               syncRuns(integrationId: $i, first: 1) { totalCount edges { node { id } } }
               history(integrationId: $i) { totalCount edges { node { id } } }
               bindings(filter: { integrationId: $i }) { totalCount }
               first: syncRuns(integrationId: $i, last: 1) { edges { node { id } } }
             }",
            json!({ "i": id }),
        ).await;
        let own = &data["integration"];
        assert_eq!(own["project"]["integration"]["id"], json!(id));
        assert_eq!(own["syncRuns"]["totalCount"], 2);
        assert_eq!(own["syncRuns"]["pageInfo"]["hasNextPage"], true);
        assert_eq!(ids(&own["syncRuns"]), ids(&data["syncRuns"]));
        assert_eq!(ids(&own["history"]), ids(&data["history"]));
        assert_eq!(own["bindings"], data["bindings"]);
        // Newest first: the last edge is the first run, not the newest.
        assert_eq!(ids(&own["older"]), ids(&data["first"]));
        assert_ne!(ids(&own["older"]), ids(&own["syncRuns"]));
    }

    /// Progress events carry the run (the object a cache holds) and speak the run's phases.
    async fn progress_events_carry_the_run(app: TestApp) {
        let (_sim, id) = synced(&app, 3, &["SERVICE", "CTO"]).await;
        let run = common::world::start(&app, &id, "FULL", false).await;
        let run_id = run["id"].as_str().unwrap().to_owned();
        let mut sub = Subscription::start(
            &app.ws_url(),
            TRANSPORT_WS,
            &app.admin_key,
            "subscription($r: ID!) { syncProgress(runId: $r) { runId status runPhase run { id status progress { phase } } } }",
            json!({ "r": run_id }),
        )
        .await;
        let events = sub.collect().await;
        let last = &events.last().expect("events")["data"]["syncProgress"];
        assert_eq!(last["run"]["id"], json!(run_id), "{last}");
        assert_eq!(last["runPhase"], "DONE", "{last}");
        assert_eq!(last["run"]["status"], "SUCCEEDED", "{last}");
        assert_eq!(last["run"]["progress"]["phase"], "DONE", "{last}");
        for event in &events {
            let p = &event["data"]["syncProgress"];
            assert_eq!(p["runId"], p["run"]["id"], "{event}");
        }
    }

    /// Lists that can grow have a stated maximum, and validation errors name their field.
    async fn bounds_are_stated_and_errors_name_their_field(app: TestApp) {
        let (status, body) = app.post(Some(&app.admin_key), "{ integrations(first: 501) { id } }", json!({})).await;
        assert_eq!(status, 200, "{body}");
        let ext = &body["errors"][0]["extensions"];
        assert_eq!(ext["code"], "VALIDATION", "{body}");
        assert_eq!(ext["field"], "first");
        assert_eq!(ext["max"], json!(500), "{body}");
        for n in 0..3 {
            app.create_integration(&format!("Lista {n}"), "http://127.0.0.1:9").await;
        }
        let data = app.ok("{ integrations(first: 2) { name } all: integrations { name } }", json!({})).await;
        assert_eq!(data["integrations"].as_array().unwrap().len(), 2);
        assert_eq!(data["all"].as_array().unwrap().len(), 3);
        // A @oneOf input given two fields, and a wrong type deep in an input.
        let (_, body) = app.post(
            Some(&app.admin_key),
            r#"mutation { setProject(integrationId: "SW50ZWdyYXRpb246MQ", input: { newName: "a", remoteId: "b" }) { id } }"#,
            json!({}),
        ).await;
        assert_eq!(body["errors"][0]["extensions"]["field"], "input", "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("exactly one"), "{body}");
        let (_, body) = app.post(
            Some(&app.admin_key),
            "mutation { createIntegration(input: { name: 3 }) { id } }",
            json!({}),
        ).await;
        assert_eq!(body["errors"][0]["extensions"]["field"], "input.name", "{body}");
    }
}
