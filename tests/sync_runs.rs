//! Sync runs end to end: one at a time and cancel, orphaned bindings, projects, the schedule
//! across instances, dead instances (on both platforms), and renumbered ports never seen
//! half-applied (Geosite's: an OZmap port cannot be renumbered); on SQLite and PostgreSQL.

mod common;

use entity::binding::BindingStatus;
use entity::sync_run::{SyncMode, SyncStatus, SyncTrigger};

use std::time::Duration;

use chrono::Utc;
use common::world::*;
use common::{Engine, TestApp};
use mapping_gateway::geosite::Feature;
use mapping_gateway::simulator::Faults;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::{json, Value};

on_every_platform! {
    async fn one_run_at_a_time_and_cancel(app: TestApp) {
        let w = world(&app, 30).await;
        w.sim.state.set_faults(Faults { latency_ms: 150, ..Default::default() });
        let first = start(&app, &w.id, "FULL", false).await;
        assert_eq!(first["status"], "RUNNING");
        let (_, body) = app
            .post(Some(&app.admin_key), "mutation($i: ID!) { startSync(integrationId: $i, mode: INCREMENTAL) { id } }", json!({ "i": w.id }))
            .await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "SYNC_ALREADY_RUNNING");
        assert_eq!(body["errors"][0]["extensions"]["runId"], first["id"]);
        let operator = app.key(mapping_gateway::access::Role::Operator).await;
        let cancelled = app
            .ok_as(&operator, "mutation($r: ID!) { cancelSync(runId: $r) { id } }", json!({ "r": first["id"] }))
            .await;
        assert_eq!(cancelled["cancelSync"]["id"], first["id"]);
        let run = finished(&app, first["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "CANCELLED");
        assert_eq!(run["error"]["code"], "CANCELLED");
        assert!(cursors(&app).await.iter().all(|c| c.is_none()), "a cancelled run moves no cursor");
        // Once it ended, a new run may start.
        w.sim.state.set_faults(Faults::default());
        succeeded(&app, &w.id, "FULL").await;
        // A viewer may not start one.
        let viewer = app.key(mapping_gateway::access::Role::Viewer).await;
        let (_, body) = app
            .post(Some(&viewer), "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }", json!({ "i": w.id }))
            .await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    }

    async fn a_binding_whose_port_disappears_is_orphaned_with_its_snapshot(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let port_fid = w.fid("portaSplitter", service_port(&w.sim, w.project));
        let port = entity::port::Entity::find().filter(entity::port::Column::Fid.eq(port_fid.clone())).one(&app.state.db).await.unwrap().unwrap();
        let splitter = entity::splitter::Entity::find_by_id(port.splitter_id).one(&app.state.db).await.unwrap().unwrap();
        let binding = bind(&app, port.integration_id, Some(port.id), "777001", "CONFIRMED").await;
        w.delete_port(&port_fid);
        let run = succeeded(&app, &w.id, "FULL").await;
        assert_eq!(run["counts"]["orphaned"], 1, "{run}");
        let b = entity::binding::Entity::find_by_id(binding).one(&app.state.db).await.unwrap().expect("never deleted");
        assert_eq!(b.status, BindingStatus::Orphaned);
        assert_eq!(b.port_id, None);
        assert_eq!(b.snapshot_port_fid.as_deref(), Some(port_fid.as_str()));
        assert_eq!(b.snapshot_port_number, Some(port.number));
        assert_eq!(b.snapshot_splitter_fid.as_deref(), Some(splitter.fid.as_str()));
        assert_eq!(b.snapshot_box_fid, splitter.box_fid);
        assert!(b.snapshot_box_name.is_some() || splitter.element_id.is_none());

        // Unlinking the project deletes the copy; bindings survive as ORPHANED.
        let other = entity::port::Entity::find().one(&app.state.db).await.unwrap().unwrap();
        let second = bind(&app, other.integration_id, Some(other.id), "777002", "PENDING").await;
        let data = app.ok("mutation($i: ID!) { unlinkProject(integrationId: $i) { project { id } } }", json!({ "i": w.id })).await;
        assert_eq!(data["unlinkProject"]["project"], Value::Null);
        assert_eq!((local(&app, "elements").await, local(&app, "splitters").await, local(&app, "ports").await), (0, 0, 0));
        let b = entity::binding::Entity::find_by_id(second).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!((b.status, b.port_id), (BindingStatus::Orphaned, None));
        assert_eq!(entity::binding::Entity::find().count(&app.state.db).await.unwrap(), 2);
        // With no project, syncs are refused until one is set again.
        let (_, body) = app.post(Some(&app.admin_key), "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }", json!({ "i": w.id })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "CONFLICT");
    }

    /// On PostgreSQL ports have no foreign key of their own to their project or integration
    /// (migration 000010): the database's cascades still reach them through their splitters.
    async fn deleting_a_project_row_cascades_to_its_ports(app: TestApp) {
        use sea_orm::ConnectionTrait;
        let w = world(&app, 10).await;
        succeeded(&app, &w.id, "FULL").await;
        assert!(local(&app, "ports").await > 0);
        let project = entity::project::Entity::find().one(&app.state.db).await.unwrap().unwrap();
        app.state.db.execute_unprepared(&format!("DELETE FROM projects WHERE id = {}", project.id)).await.unwrap();
        assert_eq!((local(&app, "elements").await, local(&app, "splitters").await, local(&app, "ports").await), (0, 0, 0));
    }

    async fn projects_are_linked_created_and_guarded(app: TestApp) {
        let w = world(&app, 10).await;
        let set = "mutation($i: ID!, $input: SetProjectInput!) { setProject(integrationId: $i, input: $input) { remoteId name createdRemotely } }";
        let (_, body) = app.post(Some(&app.admin_key), set, json!({ "i": w.id, "input": { "remoteId": w.fid("projeto", w.sim.state.summary.projects[1]) } })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "CONFLICT");
        app.ok("mutation($i: ID!) { unlinkProject(integrationId: $i) { id } }", json!({ "i": w.id })).await;
        let (_, body) = app.post(Some(&app.admin_key), set, json!({ "i": w.id, "input": { "remoteId": "99999" } })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
        let created = app.ok(set, json!({ "i": w.id, "input": { "newName": "Projeto Gateway" } })).await;
        assert_eq!(created["setProject"]["name"], "Projeto Gateway");
        assert_eq!(created["setProject"]["createdRemotely"], true);
        let write = w.sim.state.writes().into_iter().find(|w| ["projeto", "projects"].contains(&w.feature.as_str())).unwrap();
        assert_eq!(write.body.get("nome").or(write.body.get("name")), Some(&json!("Projeto Gateway")));
        let data = app.ok("query($i: ID!) { integration(id: $i) { project { remoteId name } } }", json!({ "i": w.id })).await;
        assert_eq!(data["integration"]["project"]["name"], "Projeto Gateway");
        // Both at once is refused by the schema.
        let (_, body) = app.post(Some(&app.admin_key), set, json!({ "i": w.id, "input": { "remoteId": "1", "newName": "x" } })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
        // An inactive integration does not sync.
        app.ok("mutation($i: ID!) { setIntegrationActive(id: $i, active: false) { active } }", json!({ "i": w.id })).await;
        let (_, body) = app.post(Some(&app.admin_key), "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }", json!({ "i": w.id })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "INACTIVE_INTEGRATION");
        let catalog = app.ok("{ elementCatalog { key required items { key locked default } } }", json!({})).await;
        assert_eq!(catalog["elementCatalog"][0]["key"], "SPLITTER");
        assert_eq!(catalog["elementCatalog"][0]["items"][0], json!({ "key": "SERVICE", "locked": true, "default": true }));
        assert_eq!(catalog["elementCatalog"][2]["required"], false);
    }

    async fn the_schedule_claims_each_slot_once(app: TestApp) {
        use chrono::TimeZone;
        let w = world(&app, 10).await;
        // A second instance sharing the database.
        let mut other_settings = common::test_settings();
        other_settings.sync.instance_id = "other-instance".into();
        let other = mapping_gateway::server::open_with(&app.db_config, other_settings).await.unwrap();
        // Saturday 2026-11-28 04:00 in São Paulo is 07:00 UTC.
        let saturday = Utc.with_ymd_and_hms(2026, 11, 28, 7, 5, 0).unwrap();
        let mine = mapping_gateway::sync::scheduler::tick(&app.state, saturday).await.unwrap();
        let theirs = mapping_gateway::sync::scheduler::tick(&other, saturday).await.unwrap();
        assert_eq!(mine.len() + theirs.len(), 1, "exactly one instance claims the slot");
        let run = mine.into_iter().chain(theirs).next().unwrap();
        assert_eq!(run.mode, SyncMode::Full);
        assert_eq!(run.scheduled_for, Some(Utc.with_ymd_and_hms(2026, 11, 28, 7, 0, 0).unwrap()));
        let id = mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::SYNC_RUN, run.id);
        let done = finished(&app, id.as_str()).await;
        assert_eq!(done["trigger"], "SCHEDULED");
        // The same slot is never claimed twice, even after the run ended.
        assert!(mapping_gateway::sync::scheduler::tick(&app.state, saturday + chrono::Duration::minutes(1)).await.unwrap().is_empty());
        // Tuesday's slot is incremental.
        let tuesday = Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 30).unwrap();
        let runs = mapping_gateway::sync::scheduler::tick(&app.state, tuesday).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].mode, SyncMode::Incremental);
        let id = mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::SYNC_RUN, runs[0].id);
        assert_eq!(finished(&app, id.as_str()).await["status"], "SUCCEEDED");
        // A slot long past is not run late; an inactive integration is never scheduled.
        assert!(mapping_gateway::sync::scheduler::tick(&app.state, tuesday + chrono::Duration::hours(5)).await.unwrap().is_empty());
        app.ok("mutation($i: ID!) { setIntegrationActive(id: $i, active: false) { active } }", json!({ "i": w.id })).await;
        let wednesday = Utc.with_ymd_and_hms(2026, 12, 2, 7, 0, 30).unwrap();
        assert!(mapping_gateway::sync::scheduler::tick(&app.state, wednesday).await.unwrap().is_empty());
    }

    async fn a_slot_missed_beyond_the_catch_up_is_told_once(app: TestApp) {
        use chrono::TimeZone;
        use mapping_gateway::sync::scheduler::{tick_with, Missed};
        let w = world(&app, 10).await;
        // An instance whose catch-up window is ten minutes (SYNC_CATCH_UP=10m).
        let mut settings = common::test_settings();
        settings.sync.catch_up = std::time::Duration::from_secs(600);
        settings.sync.instance_id = "late-instance".into();
        let late = mapping_gateway::server::open_with(&app.db_config, settings).await.unwrap();
        // Thursday 2026-12-03 04:00 in São Paulo is 07:00 UTC; the instance looks at 07:20.
        let thursday = Utc.with_ymd_and_hms(2026, 12, 3, 7, 0, 0).unwrap();
        let mut missed = Missed::default();
        for minutes in [20, 21, 50] {
            let at = thursday + chrono::Duration::minutes(minutes);
            assert!(tick_with(&late, at, &mut missed).await.unwrap().is_empty(), "not run late");
        }
        let db_id = mapping_gateway::server::integration_from_api_id(&w.id).unwrap();
        assert_eq!(missed.told(), &[(db_id, thursday)], "told once, not on every tick");
        let metrics = mapping_gateway::metrics::get().render();
        let line = format!("mgw_sync_slots_missed_total{{integration=\"{}\"}} ", w.id);
        assert!(metrics.lines().any(|l| l.starts_with(&line)), "{metrics}");
        assert!(common::captured_logs().contains("a scheduled sync was missed"));
        // Friday's slot seen five minutes late is inside the window: it runs, and is not missed.
        let friday = thursday + chrono::Duration::days(1) + chrono::Duration::minutes(5);
        let runs = tick_with(&late, friday, &mut missed).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(missed.told().len(), 1);
        // Followed through the instance that runs it: on SQLite each state has its own bus.
        let done = mapping_gateway::sync::follow_to_end(&late, runs[0].id, |_| {}).await.unwrap();
        assert_eq!(done.status, SyncStatus::Succeeded);
        // A slot that ran is never told missed, however late it is looked at.
        let later = friday + chrono::Duration::hours(3);
        let mut fresh = Missed::default();
        assert!(tick_with(&late, later, &mut fresh).await.unwrap().is_empty());
        assert!(fresh.told().is_empty(), "{:?}", fresh.told());
    }

    async fn a_run_whose_instance_died_is_marked_failed(app: TestApp) {
        let w = world(&app, 10).await;
        let integration_id = mapping_gateway::graphql::ids::decode(
            mapping_gateway::graphql::ids::INTEGRATION,
            &async_graphql::ID(w.id.clone()),
        )
        .unwrap();
        let long_ago = Utc::now() - chrono::Duration::minutes(30);
        let dead = |heartbeat: chrono::DateTime<Utc>| entity::sync_run::ActiveModel {
            integration_id: Set(integration_id),
            mode: Set(SyncMode::Full),
            trigger: Set(SyncTrigger::Manual),
            status: Set(SyncStatus::Running),
            allow_mass_deletion: Set(false),
            processed: Set(0), fetched: Set(0), created: Set(0), updated: Set(0),
            deleted: Set(0), unchanged: Set(0), orphaned: Set(0),
            instance_id: Set(Some("dead-instance".into())),
            heartbeat_at: Set(Some(heartbeat)),
            created_at: Set(long_ago),
            started_at: Set(Some(long_ago)),
            ..Default::default()
        };
        let alive = dead(Utc::now()).insert(&app.state.db).await.unwrap();
        // While it looks alive to the database, new runs are refused.
        let (_, body) = app.post(Some(&app.admin_key), "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }", json!({ "i": w.id })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "SYNC_ALREADY_RUNNING");
        // Once its heartbeats are older than `stale_after`, a new run takes over at once.
        entity::sync_run::Entity::update_many()
            .col_expr(entity::sync_run::Column::HeartbeatAt, sea_orm::sea_query::Expr::value(long_ago))
            .filter(entity::sync_run::Column::Id.eq(alive.id))
            .exec(&app.state.db)
            .await
            .unwrap();
        succeeded(&app, &w.id, "FULL").await;
        let row = entity::sync_run::Entity::find_by_id(alive.id).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!((row.status, row.error_code.as_deref()), (SyncStatus::Failed, Some("INSTANCE_LOST")));

        // The scheduler's tick sweeps too. A schedule whose last slot is years away, so that
        // this tick only sweeps (a daily slot within the catch-up hour would claim a run).
        let dead = dead(long_ago).insert(&app.state.db).await.unwrap();
        app.ok(
            "mutation($i: ID!) { updateIntegration(id: $i, input: { schedule: { cron: \"0 4 29 2 *\", timezone: \"UTC\" } }) { id } }",
            json!({ "i": w.id }),
        )
        .await;
        mapping_gateway::sync::scheduler::tick(&app.state, Utc::now()).await.unwrap();
        let row = entity::sync_run::Entity::find_by_id(dead.id).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!(row.status, SyncStatus::Failed);
        assert_eq!(row.error_code.as_deref(), Some("INSTANCE_LOST"));
        succeeded(&app, &w.id, "FULL").await;
    }

}

/// Two ports of one splitter swap numbers on the platform, and are listed on different pages;
/// then a port takes the number of one the platform deleted. While each sync runs, a reader
/// polls the local copy: no port ever shows a negative (parked) number, and each ends on the
/// platform's number.
async fn renumbered_ports_never_show_half_applied(engine: Engine) {
    let mut settings = common::test_settings();
    // One record a page, and time between pages, so that a half-applied page would be seen.
    settings.platform.page_size = 1;
    let Some(app) =
        TestApp::start_configured(engine, mapping_gateway::config::Limits::default(), settings)
            .await
    else {
        return;
    };
    let w = world(&app, 3).await;
    succeeded(&app, &w.id, "FULL").await;
    let ports_of = |splitter: i64| -> Vec<(i64, i64)> {
        let store = w.sim.state.store.read().unwrap();
        let t = &store.tables["portaSplitter"];
        let (s, n) = (t.col("fidSplitter").unwrap(), t.col("numero").unwrap());
        let mut v: Vec<(i64, i64)> = t
            .rows
            .values()
            .filter(|r| r[s] == json!(splitter))
            .map(|r| (r[0].as_i64().unwrap(), r[n].as_i64().unwrap()))
            .collect();
        v.sort();
        v
    };
    let splitter = pick(&w.sim, "splitter", w.project, |r| {
        r[4] == json!("Atendimento")
    });
    let ports = ports_of(splitter);
    let ((a, a_number), (b, b_number), (c, _)) = (ports[0], ports[1], ports[2]);
    w.geo
        .save(Feature::Port, &json!({ "fid": a, "numero": b_number }))
        .await
        .unwrap();
    w.geo
        .save(Feature::Port, &json!({ "fid": b, "numero": a_number }))
        .await
        .unwrap();
    let number_of = |fid: i64| {
        let db = app.state.db.clone();
        async move {
            entity::port::Entity::find()
                .filter(entity::port::Column::Fid.eq(fid.to_string()))
                .one(&db)
                .await
                .unwrap()
                .map(|p| p.number)
        }
    };
    w.sim.state.set_faults(mapping_gateway::simulator::Faults {
        latency_ms: 40,
        ..Default::default()
    });
    for (mode, expect) in [
        (
            "INCREMENTAL",
            vec![(a, Some(b_number as i32)), (b, Some(a_number as i32))],
        ),
        // c takes a's number and a is deleted on the platform: c waits for the deletion.
        ("FULL", vec![(c, Some(b_number as i32)), (a, None)]),
    ] {
        if mode == "FULL" {
            w.geo.delete(Feature::Port, &a.to_string()).await.unwrap();
            w.geo
                .save(Feature::Port, &json!({ "fid": c, "numero": b_number }))
                .await
                .unwrap();
        }
        let run = start(&app, &w.id, mode, false).await;
        let run_id = run["id"].as_str().unwrap().to_owned();
        let mut polls = 0;
        let done = tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let parked = entity::port::Entity::find()
                    .filter(entity::port::Column::Number.lte(0))
                    .count(&app.state.db)
                    .await
                    .unwrap();
                assert_eq!(
                    parked, 0,
                    "a reader saw a parked port during the {mode} sync"
                );
                polls += 1;
                let row = entity::sync_run::Entity::find_by_id(
                    mapping_gateway::graphql::ids::decode(
                        mapping_gateway::graphql::ids::SYNC_RUN,
                        &async_graphql::ID(run_id.clone()),
                    )
                    .unwrap(),
                )
                .one(&app.state.db)
                .await
                .unwrap()
                .unwrap();
                if !SyncStatus::ACTIVE.contains(&row.status) {
                    return row;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the run ends");
        assert_eq!(
            done.status,
            SyncStatus::Succeeded,
            "{:?}",
            done.error_message
        );
        assert!(
            polls >= 3,
            "the reader polled while the run went on ({polls})"
        );
        for (fid, number) in expect {
            assert_eq!(
                number_of(fid).await,
                number,
                "port {fid} after the {mode} sync"
            );
        }
    }
}

each_engine!(renumbered_ports_never_show_half_applied);
