//! Runs controlled from any instance: a cancel sent to an instance that does not execute the
//! run stops it, a killed instance's run is taken over within 30 s, and a run another instance
//! marked failed writes nothing more and keeps that status.

mod common;

use std::time::Duration;

use common::world::*;
use common::{graphql_at, post_at, serve_on, shared_postgres_on};
use common::{Engine, TestApp};
use entity::sync_run::{self, SyncStatus};
use mapping_gateway::simulator::Faults;
use mapping_gateway::simulator::SimPlatform;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

on_every_platform! {
    /// Deactivating an integration cancels its running sync, and the run says why.
    async fn deactivating_an_integration_cancels_its_run(app: TestApp) {
        let w = world(&app, 40).await;
        let (run, _) = slow_run(&app, &w, 150).await;
        let q = "mutation($i: ID!) { setIntegrationActive(id: $i, active: false) { active } }";
        app.ok(q, json!({ "i": w.id })).await;
        let ended = finished(&app, &run).await;
        assert_eq!(ended["status"], "CANCELLED", "{ended}");
        let message = ended["error"]["message"].as_str().unwrap();
        assert!(message.contains("deactivated"), "{ended}");
    }

    /// Another instance marked the run failed (its heartbeats stopped reaching the database):
    /// the run writes nothing more, its end does not overwrite FAILED, and a new run can start.
    async fn a_run_marked_failed_elsewhere_stops_writing_and_keeps_its_status(app: TestApp) {
        let w = world(&app, 40).await;
        let (_, run_id) = slow_run(&app, &w, 150).await;
        sync_run::Entity::update_many()
            .col_expr(sync_run::Column::Status, sea_orm::sea_query::Expr::value(SyncStatus::Failed))
            .col_expr(sync_run::Column::ErrorCode, sea_orm::sea_query::Expr::value("INSTANCE_LOST"))
            .filter(sync_run::Column::Id.eq(run_id))
            .exec(&app.state.db)
            .await
            .unwrap();
        let marked = sync_run::Entity::find_by_id(run_id).one(&app.state.db).await.unwrap().unwrap();
        let after = succeeded(&app, &w.id, "FULL").await;
        assert_eq!(after["status"], "SUCCEEDED");
        tokio::time::timeout(Duration::from_secs(30), app.state.runner.idle_of(run_id))
            .await
            .expect("the fenced run stops");
        let row = sync_run::Entity::find_by_id(run_id).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!((row.status, row.error_code.as_deref()), (SyncStatus::Failed, Some("INSTANCE_LOST")));
        assert_eq!((row.fetched, row.seq, row.finished_at), (marked.fetched, marked.seq, marked.finished_at), "nothing written after the mark");
    }
}

/// `cancelSync` sent to the instance that does not execute the run: the executing instance
/// hears it through the bus and stops; the answer is the ended run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_any_instance_stops_the_run() {
    let Some(app) = TestApp::start(Engine::Postgres).await else {
        return;
    };
    let other = app.beside().await;
    let w = world(&app, 40).await;
    let (run, _) = slow_run(&app, &w, 150).await;
    let cancelled = other
        .ok(
            "mutation($r: ID!) { cancelSync(runId: $r) { status error { code } } }",
            json!({ "r": run }),
        )
        .await;
    assert_eq!(
        cancelled["cancelSync"],
        json!({ "status": "CANCELLED", "error": { "code": "CANCELLED" } })
    );
}

const START: &str = "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }";

/// Starts a run on `base` as soon as no live run holds the integration (30 s at most);
/// returns its id.
async fn start_when_free(base: &str, admin: &str, id: &str) -> serde_json::Value {
    let taken = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let body = post_at(base, admin, START, json!({ "i": id })).await;
            if body.get("errors").is_none() {
                return body;
            }
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "SYNC_ALREADY_RUNNING",
                "{body}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("a run starts within 30 s of the kill");
    let run = taken["data"]["startSync"]["id"].clone();
    assert!(run.is_string(), "{taken}");
    run
}

/// Waits until the simulator has answered more calls than `calls` (a listing in flight).
async fn a_call_after(sim: &mapping_gateway::simulator::RunningSimulator, calls: u64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while sim.state.calls() == calls {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a listing in flight");
}

/// A run's status and error code, as `base` tells them.
async fn run_end(base: &str, admin: &str, run: &serde_json::Value) -> serde_json::Value {
    graphql_at(
        base,
        admin,
        "query($r: ID!) { syncRun(id: $r) { status error { code } } }",
        json!({ "r": run }),
    )
    .await["syncRun"]
        .clone()
}

/// A gateway killed mid-run: the survivor can start a run of the integration within 30 s,
/// and the dead run is marked INSTANCE_LOST.
async fn a_killed_instance_s_run_is_taken_over_within_30_s(platform: SimPlatform) {
    let Some((db, sim, admin)) = shared_postgres_on(platform, 20, 61).await else {
        return;
    };
    let (mut first, base) = serve_on(&db, &admin, &[]);
    let (_second, base_b) = serve_on(&db, &admin, &[]);
    let id = common::link_over_http(&base, &admin, &sim).await;
    sim.state.set_faults(Faults {
        latency_ms: 60_000,
        ..Default::default()
    });
    let calls = sim.state.calls();
    let run = graphql_at(&base, &admin, START, json!({ "i": id })).await["startSync"]["id"].clone();
    a_call_after(&sim, calls).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    sim.state.set_faults(Faults::default());
    start_when_free(&base_b, &admin, &id).await;
    assert_eq!(
        run_end(&base_b, &admin, &run).await,
        json!({ "status": "FAILED", "error": { "code": "INSTANCE_LOST" } })
    );
    common::drop_database(&db.database_url);
}

/// The instance that took a dead instance's run over is itself killed mid-run: a third one
/// takes over again; both dead runs end INSTANCE_LOST (none stays RUNNING) and the third
/// run completes.
async fn a_takeover_killed_in_its_turn_is_taken_over_again(platform: SimPlatform) {
    let Some((db, sim, admin)) = shared_postgres_on(platform, 20, 62).await else {
        return;
    };
    let (mut first, base) = serve_on(&db, &admin, &[]);
    let (mut second, base_b) = serve_on(&db, &admin, &[]);
    let (_third, base_c) = serve_on(&db, &admin, &[]);
    let id = common::link_over_http(&base, &admin, &sim).await;
    sim.state.set_faults(Faults {
        latency_ms: 60_000,
        ..Default::default()
    });
    let calls = sim.state.calls();
    let dead =
        graphql_at(&base, &admin, START, json!({ "i": id })).await["startSync"]["id"].clone();
    a_call_after(&sim, calls).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    // The platform stays slow: the takeover is itself mid-listing when it is killed.
    let calls = sim.state.calls();
    let taken = start_when_free(&base_b, &admin, &id).await;
    a_call_after(&sim, calls).await;
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    sim.state.set_faults(Faults::default());
    let last = start_when_free(&base_c, &admin, &id).await;
    let lost = json!({ "status": "FAILED", "error": { "code": "INSTANCE_LOST" } });
    assert_eq!(run_end(&base_c, &admin, &dead).await, lost);
    assert_eq!(run_end(&base_c, &admin, &taken).await, lost);
    tokio::time::timeout(Duration::from_secs(60), async {
        while run_end(&base_c, &admin, &last).await["status"] != "SUCCEEDED" {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the third instance's run completes");
    common::drop_database(&db.database_url);
}

/// The LISTEN connections are killed while a run goes on: each instance notices, listens
/// again, re-reads what changed meanwhile, and a subscriber on the instance that does not run
/// the sync still gets its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_the_end_of_a_run_across_a_lost_listen_connection() {
    use sea_orm::ConnectionTrait;
    let Some(app) = TestApp::start(Engine::Postgres).await else {
        return;
    };
    let other = app.beside().await;
    let w = world(&app, 40).await;
    let (run, _) = slow_run(&app, &w, 150).await;
    let mut progress = common::Subscription::start(
        &other.ws_url(),
        common::TRANSPORT_WS,
        &other.admin_key,
        "subscription($r: ID!) { syncProgress(runId: $r) { status phase } }",
        json!({ "r": run }),
    )
    .await;
    let killed = app
        .state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'listen%' AND pid <> pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert!(killed >= 2, "both instances listen ({killed} killed)");
    w.sim.state.set_faults(Faults::default());
    let events = tokio::time::timeout(Duration::from_secs(60), progress.collect())
        .await
        .expect("the subscription ends with the run");
    assert_eq!(
        events.last().unwrap()["data"]["syncProgress"]["status"],
        "SUCCEEDED",
        "{events:?}"
    );
    tokio::time::timeout(Duration::from_secs(30), async {
        while !common::captured_logs().contains("re-read after a reconnect") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the lost connection is noticed and what changed meanwhile re-read");
}

each_platform!(
    a_killed_instance_s_run_is_taken_over_within_30_s,
    a_takeover_killed_in_its_turn_is_taken_over_again
);
