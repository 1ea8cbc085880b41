//! The sync modes end to end: every row of the docs/DESIGN.md section 3 table and its safety rules
//! (first run, incremental and full, one box, selection changes, the mass-deletion guard, failures
//! and expiring tokens), over HTTP against the simulator, on SQLite and PostgreSQL.

mod common;

use entity::port::PortStatus;

use common::world::*;
use common::{Engine, TestApp};
use mapping_gateway::simulator::{FailListPage, Faults};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

on_every_platform! {
    /// Ids made of digits only that are no plain decimal number (OZmap's object ids) are not
    /// fid ranges: a changed-since listing in change order, not id order, is synced.
    async fn an_incremental_sync_takes_records_in_change_order(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let ctos: Vec<i64> = {
            let store = w.sim.state.store.read().unwrap();
            let t = &store.tables["cto"];
            let c = t.col("fidProjeto").unwrap();
            t.rows.iter().filter(|(_, r)| r[c] == json!(w.project)).map(|(f, _)| *f).collect()
        };
        let ctos: Vec<i64> = ctos.into_iter().filter(|f| w.fid("cto", *f).bytes().all(|b| b.is_ascii_digit())).collect();
        assert!(ctos.len() >= 3, "{ctos:?}");
        // The higher the id, the earlier the change.
        let now = chrono::Utc::now();
        w.sim.state.edit(|store| {
            let t = store.tables.get_mut("cto").unwrap();
            let (name, changed) = (t.col("nome").unwrap(), t.col("dataAlteracao").unwrap());
            for (k, fid) in ctos.iter().rev().enumerate() {
                let row = t.rows.get_mut(fid).unwrap();
                row[name] = json!(format!("CTO-NOVA-{k}"));
                let at = now + chrono::Duration::milliseconds(k as i64 * 10);
                row[changed] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            }
        });
        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(run["counts"]["updated"].as_u64().unwrap(), ctos.len() as u64, "{run}");
    }

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
        assert_eq!(&actions[..5], ["SYNC_SUCCEEDED", "SYNC_STARTED", "SYNC_SUCCEEDED", "SYNC_STARTED", "PROJECT_LINKED"]);
    }

    async fn incremental_brings_updates_but_not_deletions_and_full_removes_them(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let port = service_port(&w.sim, w.project);
        let port_fid = w.fid("portaSplitter", port);
        let cto = pick(&w.sim, "cto", w.project, |_| true);
        w.save("portaSplitter", port, &[("status", json!("RESERVADA")), ("contrato", json!(null)), ("documento", json!(null)), ("nomeCliente", json!(null))]);
        w.save("cto", cto, &[("nome", json!("CTO-RENOMEADA"))]);
        // A port of another splitter, still in the local copy, leaves the platform.
        let port_splitter = field(&w.sim, "portaSplitter", port, "fidSplitter");
        let gone = {
            let candidates: Vec<i64> = {
                let store = w.sim.state.store.read().unwrap();
                let t = &store.tables["portaSplitter"];
                let c = t.col("fidSplitter").unwrap();
                t.rows.iter().filter(|(_, r)| r[c] != port_splitter).map(|(f, _)| *f).collect()
            };
            let mut found = None;
            for fid in candidates.into_iter().rev() {
                if entity_exists_port(&app, &w.fid("portaSplitter", fid)).await {
                    found = Some(w.fid("portaSplitter", fid));
                    break;
                }
            }
            found.unwrap()
        };
        let gone_records = w.gone_with_port(&gone);
        w.delete_port(&gone);
        let ports_before = local(&app, "ports").await;

        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(run["mode"], "INCREMENTAL");
        assert!(run["cursorBefore"].is_string());
        assert_eq!(run["counts"]["updated"].as_u64().unwrap(), 2 + w.with_port_edit(), "{run}");
        assert_eq!(run["counts"]["deleted"], 0);
        let p = entity::port::Entity::find().filter(entity::port::Column::Fid.eq(port_fid)).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!(p.status, PortStatus::Reserved);
        let e = entity::element::Entity::find().filter(entity::element::Column::Fid.eq(w.fid("cto", cto))).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!(e.name, "CTO-RENOMEADA");
        assert_eq!(local(&app, "ports").await, ports_before, "incremental never deletes");

        let full = succeeded(&app, &w.id, "FULL").await;
        assert_eq!(full["counts"]["deleted"].as_u64().unwrap(), gone_records, "{full}");
        // The port alone (Geosite), or its splitter's every port (OZmap: records less the splitter).
        let ports_gone = if gone_records == 1 { 1 } else { gone_records - 1 };
        assert_eq!(local(&app, "ports").await, ports_before - ports_gone);
        assert!(!entity_exists_port(&app, &gone).await);
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
        w.save("portaSplitter", port, &[("status", json!("RESERVADA")), ("contrato", json!(null)), ("documento", json!(null)), ("nomeCliente", json!(null))]);
        let q = format!("mutation($i: ID!, $f: String!) {{ syncElement(integrationId: $i, fid: $f) {{ {RUN_FIELDS} }} }}");
        let run = app.ok(&q, json!({ "i": w.id, "f": w.fid("cto", box_fid) })).await["syncElement"].clone();
        assert_eq!(run["mode"], "ELEMENT");
        assert_eq!(run["elementFid"], w.fid("cto", box_fid));
        let run = finished(&app, run["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert_eq!(run["counts"]["updated"].as_u64().unwrap(), 1 + w.with_port_edit(), "{run}");
        let p = entity::port::Entity::find().filter(entity::port::Column::Fid.eq(w.fid("portaSplitter", port))).one(&app.state.db).await.unwrap().unwrap();
        assert_eq!(p.status, PortStatus::Reserved);

        // The box and its splitter go away on the platform: the element sync removes both.
        let port_fid = w.fid("portaSplitter", port);
        w.delete("splitter", splitter_fid);
        w.delete("cto", box_fid);
        let run = app.ok(&q, json!({ "i": w.id, "f": w.fid("cto", box_fid) })).await["syncElement"].clone();
        let run = finished(&app, run["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert!(run["counts"]["deleted"].as_i64().unwrap() >= 2, "{run}");
        let gone_box = entity::element::Entity::find().filter(entity::element::Column::Fid.eq(w.fid("cto", box_fid))).count(&app.state.db).await.unwrap();
        let gone_splitter = entity::splitter::Entity::find().filter(entity::splitter::Column::Fid.eq(w.fid("splitter", splitter_fid))).count(&app.state.db).await.unwrap();
        assert_eq!((gone_box, gone_splitter), (0, 0));
        assert!(!entity_exists_port(&app, &port_fid).await);
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

    /// An item selected while a run is listing has no cursor after that run: the next
    /// incremental run lists it in full.
    async fn an_item_selected_during_a_run_is_listed_in_full_next(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        // Selected once the run has read the selection and fetched a page.
        let (run, _) = slow_run(&app, &w, 40).await;
        let set = "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { elementSelection } }";
        app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "CTO", "CEO"] })).await;
        let now = app.ok("query($r: ID!) { syncRun(id: $r) { status } }", json!({ "r": run })).await;
        assert_eq!(now["syncRun"]["status"], "RUNNING", "selected while the run lists");
        let ended = finished(&app, &run).await;
        assert_eq!(ended["status"], "SUCCEEDED", "{ended}");
        assert!(cursors(&app).await.iter().any(Option::is_none), "the new item has no cursor");
        w.sim.state.set_faults(Faults::default());
        succeeded(&app, &w.id, "INCREMENTAL").await;
        let store_ceos = {
            let store = w.sim.state.store.read().unwrap();
            store.tables["caixaEmenda"].rows.values().filter(|r| r[2] == json!(w.project)).count() as u64
        };
        let ceos = entity::element::Entity::find().filter(entity::element::Column::Item.eq("CEO"));
        assert!(store_ceos > 0);
        assert_eq!(ceos.count(&app.state.db).await.unwrap(), store_ceos);
    }

    async fn the_mass_deletion_guard_stops_and_allow_mass_deletion_proceeds(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let cursor = cursors(&app).await;
        let before = local(&app, "ports").await;
        // Most splitters vanish from the platform at once, with their ports.
        w.sim.state.edit(|store| {
            let splitters: Vec<i64> = store.tables["splitter"].rows.keys().copied().collect();
            let gone: std::collections::HashSet<i64> = splitters.iter().take(splitters.len() * 9 / 10).copied().collect();
            store.tables.get_mut("splitter").unwrap().rows.retain(|k, _| !gone.contains(k));
            let ports = store.tables.get_mut("portaSplitter").unwrap();
            let c = ports.col("fidSplitter").unwrap();
            ports.rows.retain(|_, r| !r[c].as_i64().is_some_and(|s| gone.contains(&s)));
        });
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
        let port = w.fid("portaSplitter", service_port(&w.sim, w.project));
        let gone_records = w.gone_with_port(&port);
        w.delete_port(&port);
        let before = (local(&app, "elements").await, local(&app, "splitters").await, local(&app, "ports").await);
        let (feature, page) = w.ports_listing();
        w.sim.state.set_faults(Faults {
            fail_list_page: Some(FailListPage { feature: Some(feature.into()), page }),
            ..Default::default()
        });
        let run = sync(&app, &w.id, "FULL").await;
        assert_eq!(run["status"], "FAILED");
        assert_eq!(run["error"]["code"], "PLATFORM_UNAVAILABLE", "{run}");
        assert!(run["cursorAfter"].is_null());
        assert_eq!((local(&app, "elements").await, local(&app, "splitters").await, local(&app, "ports").await), before);
        assert!(entity_exists_port(&app, &port).await, "no deletion after an incomplete listing");
        assert_eq!(cursors(&app).await, cursor);
        w.sim.state.set_faults(Faults::default());
        let run = succeeded(&app, &w.id, "FULL").await;
        assert_eq!(run["counts"]["deleted"].as_u64().unwrap(), gone_records);
    }

    async fn a_token_expiring_mid_sync_is_survived(app: TestApp) {
        let w = world(&app, 30).await;
        // Tokens last 12 calls, three times the requests a run has in flight at once (4, and
        // OZmap's ports read ahead): the requests waiting on one renewal retry with the fresh
        // token together, and by the contract a fresh token refused is final. With 4 calls,
        // OZmap's waiters could use the token up before the last of them retried.
        w.sim.state.set_faults(Faults { expire_tokens_after_calls: Some(12), ..Default::default() });
        let run = succeeded(&app, &w.id, "FULL").await;
        assert!(run["counts"]["created"].as_u64().unwrap() > 0);
        // Renewed: Geosite refreshes its token, OZmap logs in again (a run makes over 24 calls).
        assert!(w.sim.state.refreshes() + w.sim.state.logins() >= 3);
    }

}

on_both_engines! {
    /// Splitters synced before their boxes (the boxes' item selected later, the splitters'
    /// listing incremental) are linked to them by the run that brings the boxes. Geosite's
    /// network puts distribution splitters in CEOs; the OZmap simulator's splitters name no CEO.
    async fn splitters_are_linked_to_boxes_synced_after_them(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let set = "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { elementSelection } }";
        // Distribution splitters stand in CEOs: synced first, without their boxes.
        app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "DISTRIBUTION", "CTO"] })).await;
        succeeded(&app, &w.id, "INCREMENTAL").await;
        app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "DISTRIBUTION", "CTO", "CEO"] })).await;
        let run = succeeded(&app, &w.id, "INCREMENTAL").await;
        assert!(run["counts"]["created"].as_u64().unwrap() > 0, "{run}");
        let count = |sql: &'static str| {
            let db = app.state.db.clone();
            async move {
                use sea_orm::ConnectionTrait;
                let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
                row.try_get_by_index::<i64>(0).unwrap()
            }
        };
        assert!(count("SELECT count(*) FROM splitters s JOIN elements e ON e.id = s.element_id WHERE e.item = 'CEO'").await > 0);
        assert_eq!(count("SELECT count(*) FROM splitters s WHERE s.element_id IS NULL AND EXISTS (SELECT 1 FROM elements e WHERE e.fid = s.box_fid AND e.item IN ('CTO', 'CEO'))").await, 0);
    }
}
