//! The sync engine end to end: every row of the DESIGN section 3 table and every safety rule,
//! over HTTP against the simulator, on SQLite and PostgreSQL.

mod common;

use entity::binding::BindingStatus;
use entity::port::PortStatus;
use entity::sync_run::{SyncMode, SyncStatus, SyncTrigger};

use std::time::Duration;

use chrono::Utc;
use common::{Engine, TestApp};
use mapping_gateway::geosite::{Feature, GeositeClient};
use mapping_gateway::simulator::{FailListPage, Faults, RunningSimulator};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::{json, Value};

const RUN_FIELDS: &str = "id status mode trigger cursorBefore cursorAfter elementFid
    counts { fetched created updated deleted unchanged orphaned } error { code message }";

struct World {
    sim: RunningSimulator,
    geo: GeositeClient,
    id: String,
    project: i64,
}

async fn world(app: &TestApp, boxes: usize) -> World {
    let (sim, id, project) = common::linked_simulator(app, boxes, 11).await;
    let geo = GeositeClient::new(
        &sim.url,
        "integracao",
        "geosite",
        mapping_gateway::geosite::ClientOptions {
            network: common::loopback_allowed(),
            ..Default::default()
        },
    )
    .unwrap();
    World {
        sim,
        geo,
        id,
        project,
    }
}

async fn start(app: &TestApp, id: &str, mode: &str, allow: bool) -> Value {
    app.ok(
        &format!("mutation($i: ID!, $m: SyncMode!, $a: Boolean!) {{ startSync(integrationId: $i, mode: $m, allowMassDeletion: $a) {{ {RUN_FIELDS} }} }}"),
        json!({ "i": id, "m": mode, "a": allow }),
    )
    .await["startSync"]
        .clone()
}

/// Waits until the run has ended; returns it.
async fn finished(app: &TestApp, run_id: &str) -> Value {
    app.wait_run(run_id, RUN_FIELDS).await
}

async fn sync(app: &TestApp, id: &str, mode: &str) -> Value {
    let run = start(app, id, mode, false).await;
    finished(app, run["id"].as_str().unwrap()).await
}

async fn succeeded(app: &TestApp, id: &str, mode: &str) -> Value {
    let run = sync(app, id, mode).await;
    if run["status"] != "SUCCEEDED" {
        let logs = common::captured_logs();
        let failures: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
        panic!("{run}\n{}", failures.join("\n"));
    }
    run
}

/// Local rows of a table.
async fn local(app: &TestApp, table: &str) -> u64 {
    mapping_gateway::store::plant::count(&app.state.db, table, "1 = 1")
        .await
        .unwrap()
}

/// What the simulator holds for a project: (CTOs, service splitters, their ports).
fn expected(sim: &RunningSimulator, project: i64) -> (u64, u64, u64) {
    let store = sim.state.store.read().unwrap();
    let ctos = store.tables["cto"]
        .rows
        .values()
        .filter(|r| r[2] == json!(project))
        .count();
    let splitters = &store.tables["splitter"];
    let service: Vec<i64> = splitters
        .rows
        .values()
        .filter(|r| r[2] == json!(project) && r[4] == json!("Atendimento"))
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    let ports = store.tables["portaSplitter"]
        .rows
        .values()
        .filter(|r| r[1].as_i64().is_some_and(|s| service.contains(&s)))
        .count();
    (ctos as u64, service.len() as u64, ports as u64)
}

async fn cursors(app: &TestApp) -> Vec<Option<chrono::DateTime<Utc>>> {
    entity::element_selection::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.cursor)
        .collect()
}

/// A platform record's fid from the simulator: the first row of `feature` in the project
/// matching `pick`.
fn pick(sim: &RunningSimulator, feature: &str, project: i64, f: impl Fn(&[Value]) -> bool) -> i64 {
    let store = sim.state.store.read().unwrap();
    let t = &store.tables[feature];
    let c = t.col("fidProjeto").unwrap();
    t.rows
        .values()
        .find(|r| r[c] == json!(project) && f(r))
        .map(|r| r[0].as_i64().unwrap())
        .unwrap()
}

fn service_port(sim: &RunningSimulator, project: i64) -> i64 {
    let service: Vec<i64> = {
        let store = sim.state.store.read().unwrap();
        store.tables["splitter"]
            .rows
            .values()
            .filter(|r| r[2] == json!(project) && r[4] == json!("Atendimento"))
            .map(|r| r[0].as_i64().unwrap())
            .collect()
    };
    pick(sim, "portaSplitter", project, |r| {
        r[1].as_i64().is_some_and(|s| service.contains(&s))
    })
}

on_both_engines! {
    async fn the_first_run_is_full_and_copies_the_selection(app: TestApp) {
        let w = world(&app, 30).await;
        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(run["mode"], "FULL", "the first run of a project is always full");
        assert_eq!(run["trigger"], "MANUAL");
        assert!(run["cursorBefore"].is_null() && run["cursorAfter"].is_string());
        let (ctos, splitters, ports) = expected(&w.sim, w.project);
        assert_eq!(local(&app, "elements").await, ctos);
        assert_eq!(local(&app, "splitters").await, splitters);
        assert_eq!(local(&app, "ports").await, ports);
        assert_eq!(run["counts"]["created"].as_u64().unwrap(), ctos + splitters + ports);
        assert_eq!(run["counts"]["deleted"], 0);
        assert!(cursors(&app).await.iter().all(|c| c.is_some()));
        // Splitters are linked to their boxes.
        let linked = entity::splitter::Entity::find()
            .filter(entity::splitter::Column::ElementId.is_not_null())
            .count(&app.state.db)
            .await
            .unwrap();
        assert!(linked > 0);
        // A second full run changes nothing.
        let again = succeeded(&app, &w.id, "FULL").await;
        assert_eq!(again["counts"]["created"], 0);
        assert_eq!(again["counts"]["updated"], 0);
        assert_eq!(again["counts"]["deleted"], 0);
        assert_eq!(again["counts"]["unchanged"].as_u64().unwrap(), ctos + splitters + ports);
        let history = app
            .ok("query($i: ID!) { history(integrationId: $i, first: 10) { edges { node { action } } } }", json!({ "i": w.id }))
            .await;
        let actions: Vec<&str> = history["history"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["action"].as_str().unwrap()).collect();
        assert_eq!(&actions[..5], ["sync.succeeded", "sync.started", "sync.succeeded", "sync.started", "project.linked"]);
    }

    async fn incremental_brings_updates_but_not_deletions_and_full_removes_them(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let port = service_port(&w.sim, w.project);
        let cto = pick(&w.sim, "cto", w.project, |_| true);
        w.geo.save(Feature::Port, &json!({ "fid": port, "status": "DANIFICADA" })).await.unwrap();
        w.geo.save(Feature::Cto, &json!({ "fid": cto, "nome": "CTO-RENOMEADA" })).await.unwrap();
        let gone = {
            let service_ports: Vec<i64> = {
                let store = w.sim.state.store.read().unwrap();
                store.tables["portaSplitter"].rows.keys().copied().collect()
            };
            let mut found = None;
            for fid in service_ports.into_iter().rev() {
                if fid != port && entity_exists_port(&app, fid).await {
                    found = Some(fid);
                    break;
                }
            }
            found.unwrap()
        };
        w.geo.delete(Feature::Port, &gone.to_string()).await.unwrap();
        let ports_before = local(&app, "ports").await;

        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(run["mode"], "INCREMENTAL");
        assert!(run["cursorBefore"].is_string());
        assert_eq!(run["counts"]["updated"], 2, "{run}");
        assert_eq!(run["counts"]["deleted"], 0);
        let p = entity::port::Entity::find().filter(entity::port::Column::Fid.eq(port.to_string())).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!(p.status, PortStatus::Damaged);
        let e = entity::element::Entity::find().filter(entity::element::Column::Fid.eq(cto.to_string())).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!(e.name, "CTO-RENOMEADA");
        assert_eq!(local(&app, "ports").await, ports_before, "incremental never deletes");

        let full = succeeded(&app, &w.id, "FULL").await;
        assert_eq!(full["counts"]["deleted"], 1, "{full}");
        assert_eq!(local(&app, "ports").await, ports_before - 1);
        assert!(!entity_exists_port(&app, gone).await);
    }

    async fn element_sync_refreshes_one_box_and_removes_it_when_gone(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        // A box with a service splitter.
        let (box_fid, splitter_fid) = {
            let store = w.sim.state.store.read().unwrap();
            let s = store.tables["splitter"].rows.values()
                .find(|r| r[2] == json!(w.project) && r[4] == json!("Atendimento")
                    && store.tables["cto"].rows.contains_key(&r[3].as_i64().unwrap()))
                .unwrap();
            (s[3].as_i64().unwrap(), s[0].as_i64().unwrap())
        };
        let port = pick(&w.sim, "portaSplitter", w.project, |r| r[1] == json!(splitter_fid));
        w.geo.save(Feature::Port, &json!({ "fid": port, "status": "RESERVADA", "contrato": null })).await.unwrap();
        let q = format!("mutation($i: ID!, $f: String!) {{ syncElement(integrationId: $i, fid: $f) {{ {RUN_FIELDS} }} }}");
        let run = app.ok(&q, json!({ "i": w.id, "f": box_fid.to_string() })).await["syncElement"].clone();
        assert_eq!(run["mode"], "ELEMENT");
        assert_eq!(run["elementFid"], box_fid.to_string());
        let run = finished(&app, run["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert_eq!(run["counts"]["updated"], 1, "{run}");
        let p = entity::port::Entity::find().filter(entity::port::Column::Fid.eq(port.to_string())).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!(p.status, PortStatus::Reserved);

        // The box and its splitter go away on the platform: the element sync removes both.
        w.geo.delete(Feature::Splitter, &splitter_fid.to_string()).await.unwrap();
        w.geo.delete(Feature::Cto, &box_fid.to_string()).await.unwrap();
        let run = app.ok(&q, json!({ "i": w.id, "f": box_fid.to_string() })).await["syncElement"].clone();
        let run = finished(&app, run["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert!(run["counts"]["deleted"].as_i64().unwrap() >= 2, "{run}");
        let gone_box = entity::element::Entity::find().filter(entity::element::Column::Fid.eq(box_fid.to_string())).count(&app.state.db).await.unwrap();
        let gone_splitter = entity::splitter::Entity::find().filter(entity::splitter::Column::Fid.eq(splitter_fid.to_string())).count(&app.state.db).await.unwrap();
        assert_eq!((gone_box, gone_splitter), (0, 0));
        assert!(!entity_exists_port(&app, port).await);
    }

    async fn selection_changes_list_new_items_in_full_and_purge_removed_ones(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let set = "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { elementSelection } }";
        let data = app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "DISTRIBUTION", "CTO", "CEO"] })).await;
        assert_eq!(data["setElementSelection"]["elementSelection"], json!(["SERVICE", "DISTRIBUTION", "CTO", "CEO"]));
        let ceos = entity::element::Entity::find().filter(entity::element::Column::Item.eq("CEO"));
        assert_eq!(ceos.clone().count(&app.state.db).await.unwrap(), 0);
        // An incremental run lists the new items in full.
        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(run["mode"], "INCREMENTAL");
        let store_ceos = {
            let store = w.sim.state.store.read().unwrap();
            store.tables["caixaEmenda"].rows.values().filter(|r| r[2] == json!(w.project)).count() as u64
        };
        assert!(store_ceos > 0);
        assert_eq!(ceos.clone().count(&app.state.db).await.unwrap(), store_ceos);
        let distribution = entity::splitter::Entity::find().filter(entity::splitter::Column::Kind.eq("DISTRIBUTION"));
        assert!(distribution.clone().count(&app.state.db).await.unwrap() > 0);

        // Deselecting purges on the next run, whatever its mode, and the run says how many.
        app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "CTO"] })).await;
        let dist_rows = distribution.clone().count(&app.state.db).await.unwrap();
        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert!(run["counts"]["deleted"].as_u64().unwrap() >= store_ceos + dist_rows, "{run}");
        assert_eq!(ceos.count(&app.state.db).await.unwrap(), 0);
        assert_eq!(distribution.count(&app.state.db).await.unwrap(), 0);
        let (ctos, splitters, ports) = expected(&w.sim, w.project);
        assert_eq!((local(&app, "elements").await, local(&app, "splitters").await, local(&app, "ports").await), (ctos, splitters, ports));

        // Invalid selections are refused, naming the rule.
        let (_, body) = app.post(Some(&app.admin_key), set, json!({ "i": w.id, "items": ["DISTRIBUTION", "CTO"] })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_SELECTION");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("SERVICE is locked on"));
        let (_, body) = app.post(Some(&app.admin_key), set, json!({ "i": w.id, "items": ["SERVICE", "POP"] })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_SELECTION");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("Caixa Óptica"));
    }

    async fn the_mass_deletion_guard_stops_and_allow_mass_deletion_proceeds(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let cursor = cursors(&app).await;
        let before = local(&app, "ports").await;
        {
            // Most ports vanish from the platform at once.
            let mut store = w.sim.state.store.write().unwrap();
            let table = store.tables.get_mut("portaSplitter").unwrap();
            let keys: Vec<i64> = table.rows.keys().copied().collect();
            for k in keys.iter().take(keys.len() * 9 / 10) {
                table.rows.remove(k);
            }
        }
        let run = sync(&app, &w.id, "FULL").await;
        assert_eq!(run["status"], "FAILED");
        assert_eq!(run["error"]["code"], "MASS_DELETION_GUARD", "{run}");
        assert_eq!(local(&app, "ports").await, before, "nothing deleted");
        assert_eq!(cursors(&app).await, cursor, "the cursor did not move");

        let run = start(&app, &w.id, "FULL", true).await;
        let run = finished(&app, run["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert!(run["counts"]["deleted"].as_u64().unwrap() > before / 2);
        assert_eq!(local(&app, "ports").await, expected(&w.sim, w.project).2);
    }

    async fn a_failure_mid_listing_leaves_data_and_cursor_intact(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let cursor = cursors(&app).await;
        let port = service_port(&w.sim, w.project);
        w.geo.delete(Feature::Port, &port.to_string()).await.unwrap();
        let before = (local(&app, "elements").await, local(&app, "splitters").await, local(&app, "ports").await);
        w.sim.state.set_faults(Faults {
            fail_list_page: Some(FailListPage { feature: Some("portaSplitter".into()), page: 3 }),
            ..Default::default()
        });
        let run = sync(&app, &w.id, "FULL").await;
        assert_eq!(run["status"], "FAILED");
        assert_eq!(run["error"]["code"], "PLATFORM_UNAVAILABLE", "{run}");
        assert!(run["cursorAfter"].is_null());
        assert_eq!((local(&app, "elements").await, local(&app, "splitters").await, local(&app, "ports").await), before);
        assert!(entity_exists_port(&app, port).await, "no deletion after an incomplete listing");
        assert_eq!(cursors(&app).await, cursor);
        w.sim.state.set_faults(Faults::default());
        let run = succeeded(&app, &w.id, "FULL").await;
        assert_eq!(run["counts"]["deleted"], 1);
    }

    async fn a_token_expiring_mid_sync_is_survived(app: TestApp) {
        let w = world(&app, 30).await;
        w.sim.state.set_faults(Faults { expire_tokens_after_calls: Some(4), ..Default::default() });
        let run = succeeded(&app, &w.id, "FULL").await;
        assert!(run["counts"]["created"].as_u64().unwrap() > 0);
        assert!(w.sim.state.refreshes() >= 2);
    }

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
        let port_fid = service_port(&w.sim, w.project);
        let port = entity::port::Entity::find().filter(entity::port::Column::Fid.eq(port_fid.to_string())).one(&app.state.db).await.unwrap().unwrap();
        let splitter = entity::splitter::Entity::find_by_id(port.splitter_id).one(&app.state.db).await.unwrap().unwrap();
        let binding = bind(&app, port.integration_id, Some(port.id), "777001", "CONFIRMED").await;
        w.geo.delete(Feature::Port, &port_fid.to_string()).await.unwrap();
        let run = succeeded(&app, &w.id, "FULL").await;
        assert_eq!(run["counts"]["orphaned"], 1, "{run}");
        let b = entity::binding::Entity::find_by_id(binding).one(&app.state.db).await.unwrap().expect("never deleted");
        assert_eq!(b.status, BindingStatus::Orphaned);
        assert_eq!(b.port_id, None);
        assert_eq!(b.snapshot_port_fid.as_deref(), Some(port_fid.to_string().as_str()));
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

    async fn projects_are_linked_created_and_guarded(app: TestApp) {
        let w = world(&app, 10).await;
        let set = "mutation($i: ID!, $input: SetProjectInput!) { setProject(integrationId: $i, input: $input) { remoteId name createdRemotely } }";
        let (_, body) = app.post(Some(&app.admin_key), set, json!({ "i": w.id, "input": { "remoteId": "2" } })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "CONFLICT");
        app.ok("mutation($i: ID!) { unlinkProject(integrationId: $i) { id } }", json!({ "i": w.id })).await;
        let (_, body) = app.post(Some(&app.admin_key), set, json!({ "i": w.id, "input": { "remoteId": "99999" } })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
        let created = app.ok(set, json!({ "i": w.id, "input": { "newName": "Projeto Gateway" } })).await;
        assert_eq!(created["setProject"]["name"], "Projeto Gateway");
        assert_eq!(created["setProject"]["createdRemotely"], true);
        let write = w.sim.state.writes().into_iter().find(|w| w.feature == "projeto").unwrap();
        assert_eq!(write.body["nome"], "Projeto Gateway");
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

    async fn a_run_whose_instance_died_is_marked_failed(app: TestApp) {
        let w = world(&app, 10).await;
        let integration_id = mapping_gateway::graphql::ids::decode(
            mapping_gateway::graphql::ids::INTEGRATION,
            &async_graphql::ID(w.id.clone()),
        )
        .unwrap();
        let long_ago = Utc::now() - chrono::Duration::minutes(30);
        let dead = entity::sync_run::ActiveModel {
            integration_id: Set(integration_id),
            mode: Set(SyncMode::Full),
            trigger: Set(SyncTrigger::Manual),
            status: Set(SyncStatus::Running),
            allow_mass_deletion: Set(false),
            processed: Set(0), fetched: Set(0), created: Set(0), updated: Set(0),
            deleted: Set(0), unchanged: Set(0), orphaned: Set(0),
            instance_id: Set(Some("dead-instance".into())),
            heartbeat_at: Set(Some(long_ago)),
            created_at: Set(long_ago),
            started_at: Set(Some(long_ago)),
            ..Default::default()
        }
        .insert(&app.state.db)
        .await
        .unwrap();
        // While it looks alive to the database, new runs are refused.
        let (_, body) = app.post(Some(&app.admin_key), "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }", json!({ "i": w.id })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "SYNC_ALREADY_RUNNING");
        // A schedule whose last slot is years away, so that this tick only sweeps (a daily slot
        // within the catch-up hour would claim a run of its own).
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

async fn entity_exists_port(app: &TestApp, fid: i64) -> bool {
    entity::port::Entity::find()
        .filter(entity::port::Column::Fid.eq(fid.to_string()))
        .count(&app.state.db)
        .await
        .unwrap()
        > 0
}

async fn bind(
    app: &TestApp,
    integration_id: i64,
    port_id: Option<i64>,
    contract: &str,
    status: &str,
) -> i64 {
    common::insert_binding(
        app,
        integration_id,
        port_id,
        contract,
        "52998224725",
        status,
    )
    .await
}

/// Two ports of one splitter swap numbers on the platform, and are listed on different pages;
/// then a port takes the number of one the platform deleted. While each sync runs, a reader
/// polls the local copy: no port ever shows a negative (parked) number, and each ends on the
/// platform's number.
async fn renumbered_ports_never_show_half_applied(engine: Engine) {
    let mut settings = common::test_settings();
    // One record a page, and time between pages, so that a half-applied page would be seen.
    settings.geosite.page_size = 1;
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
        latency_ms: 20,
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
            polls > 10,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renumbered_ports_never_show_half_applied_sqlite() {
    renumbered_ports_never_show_half_applied(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renumbered_ports_never_show_half_applied_postgres() {
    renumbered_ports_never_show_half_applied(Engine::Postgres).await;
}
