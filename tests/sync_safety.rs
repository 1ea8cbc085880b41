//! A sync deletes only what the platform deleted: unreadable records are kept and reported,
//! moves are updates, the mass-deletion guard protects every path and level, and an
//! INCREMENTAL run brings the ports of splitters it creates. Over HTTP against the simulator,
//! on SQLite and PostgreSQL.

mod common;

use common::world::*;
use common::{Engine, TestApp};
use entity::binding::BindingStatus;
use mapping_gateway::geosite::Feature;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

const RUN: &str = "id status mode counts { fetched created updated deleted orphaned unreadable purged } warnings error { code message }";

async fn run_sync(app: &TestApp, id: &str, mode: &str, allow: bool) -> serde_json::Value {
    let started = start(app, id, mode, allow).await;
    app.wait_run(started["id"].as_str().unwrap(), RUN).await
}

async fn sync_element(app: &TestApp, id: &str, fid: i64) -> serde_json::Value {
    let q = "mutation($i: ID!, $f: String!) { syncElement(integrationId: $i, fid: $f) { id } }";
    let started = app.ok(q, json!({ "i": id, "f": fid.to_string() })).await;
    app.wait_run(started["syncElement"]["id"].as_str().unwrap(), RUN)
        .await
}

async fn ports_of_splitter(app: &TestApp, splitter_fid: i64) -> u64 {
    let s = splitter_of(app, splitter_fid).await.unwrap();
    entity::port::Entity::find()
        .filter(entity::port::Column::SplitterId.eq(s.id))
        .count(&app.state.db)
        .await
        .unwrap()
}

fn service(sim: &mapping_gateway::simulator::RunningSimulator, project: i64) -> Vec<i64> {
    fids(sim, "splitter", project, |r| r[4] == json!("Atendimento"))
}

on_both_engines! {
    /// A port without `numero`, a splitter without `tipo` and a box without a readable fid:
    /// none is deleted, the run says how many records it could not read and which, and a box
    /// really deleted meanwhile waits for a listing the gateway can read in full.
    async fn an_unreadable_record_is_never_taken_for_a_deleted_one(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let port = service_port(&w.sim, w.project);
        let port_id = port_of(&app, port).await.unwrap().id;
        let binding = bind(&app, db_id(&w.id), Some(port_id), "9983103", "CONFIRMED").await;
        let port_splitter = field(&w.sim, "portaSplitter", port, "fidSplitter").as_i64().unwrap();
        let splitter = service(&w.sim, w.project).into_iter().find(|s| *s != port_splitter).unwrap();
        let splitter_ports = ports_of_splitter(&app, splitter).await;
        assert!(splitter_ports > 0);
        let ctos = fids(&w.sim, "cto", w.project, |_| true);
        let (broken_box, gone_box) = (ctos[0], ctos[1]);
        set_field(&w.sim, "portaSplitter", port, "numero", json!(null));
        set_field(&w.sim, "splitter", splitter, "tipo", json!(null));
        set_field(&w.sim, "cto", broken_box, "fid", json!(broken_box as f64 + 0.5));
        w.geo.delete(Feature::Cto, &gone_box.to_string()).await.unwrap();

        let full = run_sync(&app, &w.id, "FULL", false).await;
        assert_eq!(full["status"], "SUCCEEDED", "{full}");
        assert_eq!(full["counts"]["unreadable"], 3, "{full}");
        assert_eq!(full["counts"]["orphaned"], 0, "{full}");
        assert_eq!(full["counts"]["deleted"], 0, "{full}");
        let warnings = full["warnings"].to_string();
        assert!(warnings.contains(&format!("portaSplitter fid {port}: unreadable numero")), "{warnings}");
        assert!(warnings.contains(&format!("splitter fid {splitter}: unreadable tipo")), "{warnings}");
        assert!(warnings.contains("cto without a readable fid"), "{warnings}");
        assert!(warnings.contains("nothing of elements was deleted"), "{warnings}");
        assert_eq!(port_of(&app, port).await.unwrap().id, port_id, "the port is kept");
        assert_eq!(binding_row(&app, binding).await.status, BindingStatus::Confirmed);
        assert_eq!(ports_of_splitter(&app, splitter).await, splitter_ports, "the splitter and its ports are kept");
        let local_box = |fid: i64| entity::element::Entity::find().filter(entity::element::Column::Fid.eq(fid.to_string())).count(&app.state.db);
        assert_eq!(local_box(gone_box).await.unwrap(), 1, "no box deleted from a listing with an unreadable fid");

        // Once the platform's records read again, the deleted box goes and nothing else.
        set_field(&w.sim, "portaSplitter", port, "numero", json!(1));
        set_field(&w.sim, "splitter", splitter, "tipo", json!("Atendimento"));
        set_field(&w.sim, "cto", broken_box, "fid", json!(broken_box));
        let full = run_sync(&app, &w.id, "FULL", false).await;
        assert_eq!(full["status"], "SUCCEEDED", "{full}");
        assert_eq!((full["counts"]["unreadable"].as_i64(), full["counts"]["deleted"].as_i64()), (Some(0), Some(1)), "{full}");
        assert_eq!(full["warnings"], json!([]));
        assert_eq!(local_box(gone_box).await.unwrap(), 0);
        assert_eq!(binding_row(&app, binding).await.status, BindingStatus::Confirmed);
    }

    /// A splitter moved to another box, and a port moved to another splitter: an element
    /// sync of the old box updates both in place, keeping ids and bindings.
    async fn moves_are_updates_in_an_element_sync(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let ctos = fids(&w.sim, "cto", w.project, |_| true);
        let in_cto = |s: &i64| field(&w.sim, "splitter", *s, "fidCaixa").as_i64().is_some_and(|b| ctos.contains(&b));
        let splitters: Vec<i64> = service(&w.sim, w.project).into_iter().filter(in_cto).collect();
        let (moved, other) = (splitters[0], splitters[1]);
        let old_box = field(&w.sim, "splitter", moved, "fidCaixa").as_i64().unwrap();
        let new_box = *ctos.iter().find(|b| **b != old_box).unwrap();
        let ports = fids(&w.sim, "portaSplitter", w.project, |r| r[1] == json!(moved));
        let before = splitter_of(&app, moved).await.unwrap();
        let port_ids = {
            let mut ids = Vec::new();
            for p in &ports { ids.push(port_of(&app, *p).await.unwrap().id); }
            ids
        };
        let binding = bind(&app, db_id(&w.id), Some(port_ids[0]), "9983103", "CONFIRMED").await;
        w.geo.save(Feature::Splitter, &json!({ "fid": moved, "fidCaixa": new_box })).await.unwrap();

        let element = sync_element(&app, &w.id, old_box).await;
        assert_eq!(element["status"], "SUCCEEDED", "{element}");
        assert_eq!((element["counts"]["deleted"].as_i64(), element["counts"]["orphaned"].as_i64()), (Some(0), Some(0)), "{element}");
        let after = splitter_of(&app, moved).await.unwrap();
        assert_eq!(after.id, before.id, "the splitter keeps its id");
        assert_eq!(after.box_fid.as_deref(), Some(new_box.to_string().as_str()));
        assert_eq!(ports_of_splitter(&app, moved).await, ports.len() as u64, "every port is kept");
        assert_eq!(binding_row(&app, binding).await.status, BindingStatus::Confirmed);

        // A port moved to another splitter (under another box), on a free number there.
        let target_ports = fids(&w.sim, "portaSplitter", w.project, |r| r[1] == json!(other));
        let number = 1 + target_ports.iter().map(|p| field(&w.sim, "portaSplitter", *p, "numero").as_i64().unwrap()).max().unwrap();
        let port = ports[1];
        w.geo.save(Feature::Port, &json!({ "fid": port, "fidSplitter": other, "numero": number })).await.unwrap();
        let element = sync_element(&app, &w.id, new_box).await;
        assert_eq!(element["status"], "SUCCEEDED", "{element}");
        assert_eq!(element["counts"]["deleted"], 0, "{element}");
        let moved_port = port_of(&app, port).await.unwrap();
        assert_eq!(moved_port.id, port_ids[1], "the port keeps its id");
        assert_eq!((moved_port.splitter_id, moved_port.number), (splitter_of(&app, other).await.unwrap().id, number as i32));
    }

    /// A port moved to a splitter the copy does not have: an element sync of its old box drops
    /// it when that splitter's kind is not selected (it left the plant), and brings the
    /// splitter in and moves the port there, binding kept, once the selection takes the kind.
    async fn a_port_moved_to_a_splitter_the_copy_lacks_is_moved_not_orphaned(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let ctos = fids(&w.sim, "cto", w.project, |_| true);
        let in_cto = |s: &i64| field(&w.sim, "splitter", *s, "fidCaixa").as_i64().is_some_and(|b| ctos.contains(&b));
        let from = *service(&w.sim, w.project).iter().find(|s| in_cto(s)).unwrap();
        let old_box = field(&w.sim, "splitter", from, "fidCaixa").as_i64().unwrap();
        let ports = fids(&w.sim, "portaSplitter", w.project, |r| r[1] == json!(from));
        let (left, kept) = (ports[0], ports[1]);
        let to = *fids(&w.sim, "splitter", w.project, |r| r[4] != json!("Atendimento")).first().unwrap();
        assert!(splitter_of(&app, to).await.is_none(), "distribution splitters are not selected");
        let top = fids(&w.sim, "portaSplitter", w.project, |r| r[1] == json!(to)).iter().map(|p| field(&w.sim, "portaSplitter", *p, "numero").as_i64().unwrap()).max().unwrap_or(0);
        let bound = |fid: i64| {
            let app = &app;
            let id = w.id.clone();
            async move { bind(app, db_id(&id), Some(port_of(app, fid).await.unwrap().id), &format!("99{fid}"), "CONFIRMED").await }
        };
        let (left_binding, kept_binding) = (bound(left).await, bound(kept).await);
        let kept_id = port_of(&app, kept).await.unwrap().id;

        w.geo.save(Feature::Port, &json!({ "fid": left, "fidSplitter": to, "numero": top + 1 })).await.unwrap();
        let element = sync_element(&app, &w.id, old_box).await;
        assert_eq!(element["status"], "SUCCEEDED", "{element}");
        assert_eq!(element["counts"]["orphaned"], 1, "{element}");
        assert_eq!(binding_row(&app, left_binding).await.status, BindingStatus::Orphaned);
        assert!(splitter_of(&app, to).await.is_none(), "an unselected splitter is not brought in");

        app.ok(
            "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { id } }",
            json!({ "i": w.id, "items": ["SERVICE", "DISTRIBUTION", "CTO"] }),
        )
        .await;
        w.geo.save(Feature::Port, &json!({ "fid": kept, "fidSplitter": to, "numero": top + 2 })).await.unwrap();
        let element = sync_element(&app, &w.id, old_box).await;
        assert_eq!(element["status"], "SUCCEEDED", "{element}");
        assert_eq!((element["counts"]["deleted"].as_i64(), element["counts"]["orphaned"].as_i64()), (Some(0), Some(0)), "{element}");
        let moved = port_of(&app, kept).await.unwrap();
        assert_eq!((moved.id, moved.splitter_id, moved.number), (kept_id, splitter_of(&app, to).await.unwrap().id, top as i32 + 2));
        assert_eq!(binding_row(&app, kept_binding).await.status, BindingStatus::Confirmed);
    }

    /// INCREMENTAL with an item newly selected lists it in full: its deletions are guarded.
    async fn the_guard_holds_in_an_incremental_run_that_lists_in_full(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let before = local(&app, "ports").await;
        w.sim.state.edit(|store| {
            let table = store.tables.get_mut("portaSplitter").unwrap();
            let keys: Vec<i64> = table.rows.keys().copied().collect();
            for k in keys.iter().take(keys.len() * 9 / 10) {
                table.rows.remove(k);
            }
        });
        let full = run_sync(&app, &w.id, "FULL", false).await;
        assert_eq!(full["error"]["code"], "MASS_DELETION_GUARD", "{full}");
        app.ok(
            "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { id } }",
            json!({ "i": w.id, "items": ["SERVICE", "DISTRIBUTION", "CTO"] }),
        )
        .await;
        let incremental = run_sync(&app, &w.id, "INCREMENTAL", false).await;
        assert_eq!(incremental["status"], "FAILED", "{incremental}");
        assert_eq!(incremental["error"]["code"], "MASS_DELETION_GUARD", "{incremental}");
        let message = incremental["error"]["message"].as_str().unwrap();
        assert!(message.contains("ports") && message.contains("over the 50% threshold"), "{message}");
        assert_eq!(local(&app, "ports").await, before, "nothing deleted");
    }

    /// A splitter that becomes a service splitter in an INCREMENTAL run brings every port.
    async fn a_splitter_that_becomes_service_brings_its_ports(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let distribution = fids(&w.sim, "splitter", w.project, |r| r[4] != json!("Atendimento"));
        let splitter = *distribution
            .iter()
            .find(|s| !fids(&w.sim, "portaSplitter", w.project, |r| r[1] == json!(**s)).is_empty())
            .unwrap();
        let platform_ports = fids(&w.sim, "portaSplitter", w.project, |r| r[1] == json!(splitter)).len() as u64;
        assert!(splitter_of(&app, splitter).await.is_none());
        w.geo.save(Feature::Splitter, &json!({ "fid": splitter, "tipo": "Atendimento" })).await.unwrap();
        let incremental = run_sync(&app, &w.id, "INCREMENTAL", false).await;
        assert_eq!((incremental["status"].as_str(), incremental["mode"].as_str()), (Some("SUCCEEDED"), Some("INCREMENTAL")), "{incremental}");
        assert_eq!(ports_of_splitter(&app, splitter).await, platform_ports);
    }
}

// The guard, deselection and search, on both platforms' listings. The cases above edit
// Geosite's records field by field: a port moved to another splitter, or ports gone while their
// splitter stays, have no OZmap equivalent (an OZmap port is an output of its splitter).
on_every_platform! {
    /// Every CTO gone is refused on the boxes' own level, however many ports the project has.
    async fn the_guard_measures_each_level_on_its_own(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let boxes = local(&app, "elements").await;
        w.sim.state.edit(|store| store.tables.get_mut("cto").unwrap().rows.clear());
        let full = run_sync(&app, &w.id, "FULL", false).await;
        assert_eq!(full["error"]["code"], "MASS_DELETION_GUARD", "{full}");
        let message = full["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("{boxes} of the project's {boxes} boxes and points (100%")), "{message}");
        assert_eq!(local(&app, "elements").await, boxes);
    }

    /// A splitter gone with its ports counts its ports once: 45% of the ports is not over 50%.
    async fn ports_of_a_doomed_splitter_are_counted_once(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let all = service(&w.sim, w.project);
        let gone: Vec<i64> = all.iter().copied().take(all.len() * 45 / 100).collect();
        let ports_gone = w.sim.state.edit(|store| {
            for s in &gone {
                store.tables.get_mut("splitter").unwrap().rows.remove(s);
            }
            let ports = store.tables.get_mut("portaSplitter").unwrap();
            let doomed: Vec<i64> = ports.rows.iter().filter(|(_, r)| gone.contains(&r[1].as_i64().unwrap())).map(|(k, _)| *k).collect();
            for p in &doomed {
                ports.rows.remove(p);
            }
            doomed.len() as i64
        });
        let full = run_sync(&app, &w.id, "FULL", false).await;
        assert_eq!(full["status"], "SUCCEEDED", "{full}");
        assert_eq!(full["counts"]["deleted"].as_i64().unwrap(), gone.len() as i64 + ports_gone, "{full}");
        assert_eq!(local(&app, "ports").await, expected(&w.sim, w.project).2);
    }

    /// Deselection deletes (it was asked for), past the guard, and the run says so.
    async fn deselection_is_counted_as_purged(app: TestApp) {
        let w = world(&app, 30).await;
        let set = "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { id } }";
        app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "CTO", "CEO"] })).await;
        succeeded(&app, &w.id, "FULL").await;
        let ceos = entity::element::Entity::find().filter(entity::element::Column::Item.eq("CEO")).count(&app.state.db).await.unwrap();
        assert!(ceos > 0);
        app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "CTO"] })).await;
        let incremental = run_sync(&app, &w.id, "INCREMENTAL", false).await;
        assert_eq!(incremental["status"], "SUCCEEDED", "{incremental}");
        assert_eq!(incremental["counts"]["purged"].as_u64(), Some(ceos), "{incremental}");
    }

    /// A bound splitter that went back to service while its kind was deselected: the purge of
    /// the deselected kind asks the platform about it first, so it is updated in place and
    /// keeps its ports and bindings, in every mode. One still of the deselected kind is purged,
    /// its binding orphaned.
    async fn a_bound_splitter_back_in_the_selection_is_not_purged(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let set = "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { id } }";
        let ctos = fids(&w.sim, "cto", w.project, |_| true);
        let splitter = *service(&w.sim, w.project)
            .iter()
            .find(|s| {
                field(&w.sim, "splitter", **s, "fidCaixa").as_i64().is_some_and(|b| ctos.contains(&b))
                    && !fids(&w.sim, "portaSplitter", w.project, |r| r[1] == json!(**s)).is_empty()
            })
            .unwrap();
        let the_box = w.fid("cto", field(&w.sim, "splitter", splitter, "fidCaixa").as_i64().unwrap());
        let remote = w.fid("splitter", splitter);
        let local_splitter = || {
            entity::splitter::Entity::find().filter(entity::splitter::Column::Fid.eq(remote.clone())).one(&app.state.db)
        };
        let local_ports = |id: i64| entity::port::Entity::find().filter(entity::port::Column::SplitterId.eq(id)).count(&app.state.db);
        let before = local_splitter().await.unwrap().unwrap();
        let ports = local_ports(before.id).await.unwrap();
        let port = entity::port::Entity::find().filter(entity::port::Column::SplitterId.eq(before.id)).one(&app.state.db).await.unwrap().unwrap();
        let binding = bind(&app, db_id(&w.id), Some(port.id), "9983103", "CONFIRMED").await;
        let distribution_while_selected = || async {
            app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "DISTRIBUTION", "CTO"] })).await;
            w.save("splitter", splitter, &[("tipo", json!("Distribuição"))]);
            succeeded(&app, &w.id, "INCREMENTAL").await;
            let kept = local_splitter().await.unwrap().unwrap();
            assert_eq!((kept.id, kept.kind), (before.id, entity::splitter::SplitterKind::Distribution));
            assert_eq!(binding_row(&app, binding).await.status, BindingStatus::Confirmed);
        };
        for mode in ["INCREMENTAL", "FULL", "ELEMENT"] {
            distribution_while_selected().await;
            w.save("splitter", splitter, &[("tipo", json!("Atendimento"))]);
            app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "CTO"] })).await;
            let run = if mode == "ELEMENT" {
                let q = "mutation($i: ID!, $f: String!) { syncElement(integrationId: $i, fid: $f) { id } }";
                let started = app.ok(q, json!({ "i": w.id, "f": the_box })).await;
                app.wait_run(started["syncElement"]["id"].as_str().unwrap(), RUN).await
            } else {
                run_sync(&app, &w.id, mode, false).await
            };
            assert_eq!(run["status"], "SUCCEEDED", "{mode}: {run}");
            assert_eq!(run["counts"]["orphaned"], 0, "{mode}: {run}");
            let after = local_splitter().await.unwrap().unwrap();
            assert_eq!((after.id, after.kind), (before.id, entity::splitter::SplitterKind::Service), "{mode}");
            assert_eq!(local_ports(after.id).await.unwrap(), ports, "{mode}");
            assert_eq!(binding_row(&app, binding).await.status, BindingStatus::Confirmed, "{mode}");
        }
        distribution_while_selected().await;
        app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "CTO"] })).await;
        let run = run_sync(&app, &w.id, "INCREMENTAL", false).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert_eq!(run["counts"]["orphaned"], 1, "{run}");
        assert!(local_splitter().await.unwrap().is_none(), "purged");
        assert_eq!(binding_row(&app, binding).await.status, BindingStatus::Orphaned);
    }

    /// Searches fold accents and case alike on both engines.
    async fn search_folds_accents_and_case_alike(app: TestApp) {
        let w = world(&app, 10).await;
        let ctos = fids(&w.sim, "cto", w.project, |_| true);
        w.save("cto", ctos[0], &[("nome", json!("CTO SÃO JOSÉ 01"))]);
        w.save("cto", ctos[1], &[("nome", json!("cto joão 02"))]);
        succeeded(&app, &w.id, "FULL").await;
        let q = "query($i: ID!, $s: String!) { elements(integrationId: $i, filter: { search: $s }) { edges { node { fid } } } }";
        for (search, fid) in [("são", ctos[0]), ("SÃO", ctos[0]), ("sao jose", ctos[0]), ("JOÃO", ctos[1]), ("joão", ctos[1]), ("Joao", ctos[1])] {
            let found = app.ok(q, json!({ "i": w.id, "s": search })).await;
            assert_eq!(found["elements"]["edges"], json!([{ "node": { "fid": w.fid("cto", fid) } }]), "{search}");
        }
    }
}
