//! Reads by id (`port`, `splitter`) through the API: what the tree shows, what the last write
//! left (never an older snapshot), `NOT_FOUND` once the row is gone, on both engines. On an
//! SQLite file they are answered on the request's own thread by connections of their own
//! (`store::point`), which must keep no read open: the WAL still checkpoints to nothing after
//! them.

mod common;

use common::world::synced;
use common::{Engine, TestApp};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

const PORT: &str =
    "query($p: ID!) { port(id: $p) { id fid number status platformCustomer { contract document name } } }";

fn db_id(kind: &'static str, id: &Value) -> i64 {
    mapping_gateway::graphql::ids::decode(kind, &async_graphql::ID(id.as_str().unwrap().to_owned()))
        .unwrap()
}

on_both_engines! {
    async fn a_read_by_id_is_what_the_last_write_left(app: TestApp) {
        let (_sim, id) = synced(&app, 4, &["SERVICE", "CTO"]).await;
        let tree = app
            .ok(
                "query($i: ID!) { elements(integrationId: $i, first: 10) { edges { node { splitters { id fid kind ports { id fid number status platformCustomer { contract document name } } } } } } }",
                json!({ "i": id }),
            )
            .await;
        let mut ports = Vec::new();
        for edge in tree["elements"]["edges"].as_array().unwrap() {
            for splitter in edge["node"]["splitters"].as_array().unwrap() {
                let by_id = app
                    .ok("query($s: ID!) { splitter(id: $s) { id fid kind } }", json!({ "s": splitter["id"] }))
                    .await;
                assert_eq!(by_id["splitter"]["fid"], splitter["fid"]);
                assert_eq!(by_id["splitter"]["kind"], splitter["kind"]);
                for port in splitter["ports"].as_array().unwrap() {
                    let by_id = app.ok(PORT, json!({ "p": port["id"] })).await;
                    assert_eq!(&by_id["port"], port);
                    ports.push(port.clone());
                }
            }
        }
        assert!(ports.len() > 10, "{tree}");

        // Each write is seen by the next read of the same row.
        let port = &ports[0];
        let row = db_id(mapping_gateway::graphql::ids::PORT, &port["id"]);
        for (status, name) in [("DAMAGED", "Ana"), ("RESERVED", "Bia"), ("FREE", "Caio")] {
            app.state
                .db
                .execute_unprepared(&format!(
                    "UPDATE ports SET status = '{status}', customer_name = '{name}' WHERE id = {row}"
                ))
                .await
                .unwrap();
            let by_id = app.ok(PORT, json!({ "p": port["id"] })).await;
            assert_eq!(by_id["port"]["status"], status);
            assert_eq!(by_id["port"]["platformCustomer"]["name"], name);
        }

        // Gone: NOT_FOUND.
        app.state.db.execute_unprepared(&format!("DELETE FROM ports WHERE id = {row}")).await.unwrap();
        let (_, body) = app.post(Some(&app.admin_key), PORT, json!({ "p": port["id"] })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND", "{body}");
        assert_eq!(body["data"]["port"], Value::Null, "{body}");
    }

    async fn reads_by_id_beside_writes_hold_no_snapshot(app: TestApp) {
        let (_sim, id) = synced(&app, 2, &["SERVICE", "CTO"]).await;
        let tree = app
            .ok(
                "query($i: ID!) { elements(integrationId: $i, first: 1) { edges { node { splitters { ports { id } } } } } }",
                json!({ "i": id }),
            )
            .await;
        let port = tree["elements"]["edges"][0]["node"]["splitters"][0]["ports"][0]["id"].clone();
        let row = db_id(mapping_gateway::graphql::ids::PORT, &port);
        let first = app.ok(PORT, json!({ "p": port })).await["port"]["status"].as_str().unwrap().to_owned();
        // A writer flips the port between two states while readers read it: every answer is
        // the synced one or one of the two, and the last read after the last write sees it.
        let db = app.state.db.clone();
        let writer = tokio::spawn(async move {
            for i in 0..60 {
                let status = if i % 2 == 0 { "DAMAGED" } else { "RESERVED" };
                db.execute_unprepared(&format!("UPDATE ports SET status = '{status}' WHERE id = {row}"))
                    .await
                    .unwrap();
            }
        });
        let reads = (0..4).map(|_| {
            let app = &app;
            let port = port.clone();
            let first = first.clone();
            async move {
                for _ in 0..40 {
                    let by_id = app.ok(PORT, json!({ "p": port })).await;
                    let status = by_id["port"]["status"].as_str().unwrap().to_owned();
                    assert!([first.as_str(), "DAMAGED", "RESERVED"].contains(&status.as_str()), "{by_id}");
                }
            }
        });
        futures::future::join_all(reads).await;
        writer.await.unwrap();
        let by_id = app.ok(PORT, json!({ "p": port })).await;
        assert_eq!(by_id["port"]["status"], "RESERVED");

        if app.engine == Engine::Sqlite {
            // No reader keeps a snapshot open: a checkpoint moves the whole WAL into the file
            // and empties it (`busy` 0, no frame left), which an open read would prevent.
            let row = app
                .state
                .db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    "PRAGMA wal_checkpoint(TRUNCATE)",
                ))
                .await
                .unwrap()
                .unwrap();
            let busy: i32 = row.try_get_by_index(0).unwrap();
            let frames: i32 = row.try_get_by_index(1).unwrap();
            assert_eq!((busy, frames), (0, 0), "a point read left a snapshot open");
        }
    }
}
