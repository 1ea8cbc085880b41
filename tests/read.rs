//! The read API end to end: element trees, filters, pagination edges, nearest free ports,
//! bindings, DataLoader batching and cost limits, on SQLite and PostgreSQL.

mod common;

use common::world::synced;
use common::{Engine, TestApp};
use mapping_gateway::config::Limits;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use mapping_gateway::graphql::cost::EVERY_FIELD_PAGE as TREE;

async fn bind(app: &TestApp, port: &entity::port::Model, contract: &str, document: &str) -> i64 {
    common::insert_binding(
        app,
        port.integration_id,
        Some(port.id),
        contract,
        document,
        "PENDING",
    )
    .await
}

/// Bindable free ports per element, straight from the tables.
async fn free_by_element(app: &TestApp) -> std::collections::HashMap<String, i64> {
    let splitters = entity::splitter::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    let ports = entity::port::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    let bound: Vec<i64> = entity::binding::Entity::find()
        .filter(entity::binding::Column::Status.is_in(["PENDING", "CONFIRMED"]))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|b| b.port_id)
        .collect();
    let elements = entity::element::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    elements
        .into_iter()
        .map(|e| {
            let n = ports
                .iter()
                .filter(|p| p.status == entity::port::PortStatus::Free && !bound.contains(&p.id))
                .filter(|p| {
                    splitters.iter().any(|s| {
                        s.id == p.splitter_id
                            && s.element_id == Some(e.id)
                            && s.kind == entity::splitter::SplitterKind::Service
                    })
                })
                .count() as i64;
            (e.fid, n)
        })
        .collect()
}

on_both_engines! {
    async fn an_unknown_stored_value_is_an_error_not_a_guess(app: TestApp) {
        use sea_orm::ConnectionTrait;
        let (_sim, id) = synced(&app, 3, &["SERVICE", "CTO"]).await;
        let q = "query($i: ID!) { elements(integrationId: $i, first: 1) { edges { node { splitters { ports { id status } } } } } }";
        let data = app.ok(q, json!({ "i": id })).await;
        let port_id = data["elements"]["edges"][0]["node"]["splitters"][0]["ports"][0]["id"].as_str().unwrap().to_owned();
        let db_id = mapping_gateway::graphql::ids::decode(mapping_gateway::graphql::ids::PORT, &async_graphql::ID(port_id.clone())).unwrap();
        app.state
            .db
            .execute_unprepared(&format!("UPDATE ports SET status = 'BROKEN' WHERE id = {db_id}"))
            .await
            .unwrap();
        let (_, body) = app.post(Some(&app.admin_key), "query($p: ID!) { port(id: $p) { status } }", json!({ "p": port_id })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL", "{body}");
        assert!(common::captured_logs().contains("BROKEN"), "the unknown value is logged");
        // The tree reads its ports as JSON (`store::rows`): the same refusal there.
        let (_, body) = app.post(Some(&app.admin_key), q, json!({ "i": id })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL", "{body}");

        // The same for an element's item (a typed column too, declared once in entity/).
        let element_id = entity::element::Entity::find().one(&app.state.db).await.unwrap().unwrap().id;
        app.state
            .db
            .execute_unprepared(&format!("UPDATE elements SET item = 'ARMARIO' WHERE id = {element_id}"))
            .await
            .unwrap();
        let (_, body) = app.post(Some(&app.admin_key), "query($i: ID!) { elements(integrationId: $i, first: 5) { edges { node { item } } } }", json!({ "i": id })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "INTERNAL", "{body}");
        assert!(common::captured_logs().contains("ARMARIO"), "the unknown item is logged");
    }

    async fn tree_levels_read_as_json_are_the_rows_themselves(app: TestApp) {
        use entity::{port, splitter};
        use mapping_gateway::store::rows;
        use sea_orm::{ConnectionTrait, QueryOrder};
        let (_sim, _id) = synced(&app, 12, &["SERVICE", "DISTRIBUTION", "CTO", "CEO"]).await;
        let db = &app.state.db;
        // Text that JSON must escape, and the ends of the integer range.
        db.execute_unprepared(
            "UPDATE ports SET customer_name = 'Jo\u{e3}o \"Zé\" \\ d''Ávila\n\ttab \u{2603}', fid_num = 9223372036854775807 \
             WHERE id = (SELECT MIN(id) FROM ports)",
        )
        .await
        .unwrap();
        db.execute_unprepared("UPDATE ports SET fid_num = -9223372036854775808, remote_updated_at = NULL WHERE id = (SELECT MAX(id) FROM ports)")
            .await
            .unwrap();
        let by_rows = port::Entity::find().order_by_asc(port::Column::Id).all(db).await.unwrap();
        let by_json = rows::all::<port::Entity>(db, sea_orm::Condition::all(), &[port::Column::Id], rows::decoder())
            .await
            .unwrap();
        assert!(by_rows.len() > 100);
        assert_eq!(by_json, by_rows);
        assert!(by_json.iter().any(|p| p.customer_name.as_deref().is_some_and(|n| n.contains('\u{2603}'))));
        let by_rows = splitter::Entity::find()
            .order_by_asc(splitter::Column::FidNum)
            .order_by_asc(splitter::Column::Fid)
            .all(db)
            .await
            .unwrap();
        let by_json = rows::all::<splitter::Entity>(
            db,
            sea_orm::Condition::all(),
            &[splitter::Column::FidNum, splitter::Column::Fid],
            rows::decoder(),
        )
        .await
        .unwrap();
        assert_eq!(by_json, by_rows);
        // No rows: an empty list on both engines (PostgreSQL's aggregate of nothing is NULL).
        let none = rows::all::<port::Entity>(
            db,
            sea_orm::Condition::all().add(port::Column::Id.lt(0)),
            &[],
            rows::decoder(),
        )
        .await
        .unwrap();
        assert!(none.is_empty());
        // Coordinates would come back rounded from SQLite's JSON: such a table is refused.
        let refused = rows::all::<entity::element::Entity>(db, sea_orm::Condition::all(), &[], |_| Ok(Vec::new())).await;
        assert!(matches!(refused, Err(mapping_gateway::Error::Internal(_))), "{refused:?}");
    }

    async fn element_trees_carry_every_level(app: TestApp) {
        let (_sim, id) = synced(&app, 30, &["SERVICE", "DISTRIBUTION", "CTO"]).await;
        let port = entity::port::Entity::find().filter(entity::port::Column::Status.eq("FREE")).one(&app.state.db).await.unwrap().unwrap();
        let binding = bind(&app, &port, "880001", "52998224725").await;
        let data = app.ok(TREE, json!({ "i": id, "first": 60 })).await;
        let conn = &data["elements"];
        let expected_free = free_by_element(&app).await;
        assert_eq!(conn["totalCount"].as_u64().unwrap() as usize, expected_free.len());
        let mut saw_binding = false;
        let mut saw_customer = false;
        for edge in conn["edges"].as_array().unwrap() {
            let e = &edge["node"];
            assert_eq!(e["item"], "CTO");
            assert!(e["latitude"].is_f64() && e["project"]["name"].is_string());
            assert_eq!(e["freePortCount"], expected_free[e["fid"].as_str().unwrap()], "{e}");
            for s in e["splitters"].as_array().unwrap() {
                assert_eq!(s["box"]["fid"], e["fid"]);
                assert_eq!(s["boxFid"], e["fid"]);
                assert!(s["ratio"] == "1:8" || s["ratio"] == "1:16");
                let ports = s["ports"].as_array().unwrap();
                assert_eq!(ports.len() as i64, s["portCount"].as_i64().unwrap());
                let numbers: Vec<i64> = ports.iter().map(|p| p["number"].as_i64().unwrap()).collect();
                assert!(numbers.windows(2).all(|w| w[0] < w[1]), "ports by number");
                for p in ports {
                    assert_eq!(p["splitter"]["fid"], s["fid"]);
                    if p["status"] == "OCCUPIED" && !p["platformCustomer"].is_null() {
                        saw_customer = true;
                        assert!(p["platformCustomer"]["contract"].is_string());
                    }
                    if !p["binding"].is_null() {
                        saw_binding = true;
                        assert_eq!(p["fid"], port.fid);
                        assert_eq!(p["binding"]["id"], mapping_gateway::graphql::ids::encode("Binding", binding).to_string());
                    }
                }
            }
        }
        assert!(saw_binding && saw_customer);

        // Single lookups, and ids of the wrong kind or garbage are NOT_FOUND.
        let first = &conn["edges"][0]["node"];
        let one = app.ok("query($e: ID!) { element(id: $e) { fid splitters { id ports { id } } } }", json!({ "e": first["id"] })).await;
        assert_eq!(one["element"]["fid"], first["fid"]);
        let by_fid = app.ok("query($i: ID!, $f: String!) { elementByFid(integrationId: $i, fid: $f) { id } }", json!({ "i": id, "f": first["fid"] })).await;
        assert_eq!(by_fid["elementByFid"]["id"], first["id"]);
        let sid = &one["element"]["splitters"][0]["id"];
        let s = app.ok("query($s: ID!) { splitter(id: $s) { box { fid } } }", json!({ "s": sid })).await;
        assert_eq!(s["splitter"]["box"]["fid"], first["fid"]);
        let pid = &one["element"]["splitters"][0]["ports"][0]["id"];
        let p = app.ok("query($p: ID!) { port(id: $p) { number splitter { id } } }", json!({ "p": pid })).await;
        assert_eq!(p["port"]["splitter"]["id"], *sid);
        for (q, v) in [
            ("query($x: ID!) { element(id: $x) { id } }", sid.clone()),
            ("query($x: ID!) { port(id: $x) { id } }", json!("garbage")),
        ] {
            assert_eq!(app.error_code(Some(&app.admin_key), q, json!({ "x": v })).await, "NOT_FOUND");
        }
        assert_eq!(
            app.error_code(Some(&app.admin_key), "query($i: ID!) { elementByFid(integrationId: $i, fid: \"0\") { id } }", json!({ "i": id })).await,
            "NOT_FOUND"
        );
    }

    /// A splitter's ports answer the same, byte for byte, whether the selection is plain (written
    /// from the rows) or not (async-graphql's own path): aliases, `__typename`, selection order,
    /// a bound port's binding.
    async fn plain_port_selections_answer_as_the_general_path(app: TestApp) {
        let (_sim, id) = synced(&app, 12, &["SERVICE", "CTO"]).await;
        let port = entity::port::Entity::find().filter(entity::port::Column::Status.eq("FREE")).one(&app.state.db).await.unwrap().unwrap();
        bind(&app, &port, "880003", "52998224725").await;
        let raw = |ports: &str| {
            let query = format!("query($i: ID!) {{ elements(integrationId: $i, first: 12) {{ edges {{ node {{ splitters {{ ports {{ {ports} }} }} }} }} }} }}");
            let request = app.client.post(format!("{}/graphql", app.url)).bearer_auth(&app.admin_key).json(&json!({ "query": query, "variables": { "i": id } }));
            async move { request.send().await.unwrap().text().await.unwrap() }
        };
        for (plain, general) in [
            ("b: binding { contract id } __typename n: number id status fid", "b: binding { contract id } __typename n: number @include(if: true) id status fid"),
            ("status number", "status number ... on Port { number }"),
            ("binding { id }", "binding { id } binding { id }"),
        ] {
            // The data alone: a fragment costs more.
            let data = |text: String| text[..text.find(",\"extensions\"").unwrap_or(text.len())].to_owned();
            let (fast, slow) = (data(raw(plain).await), data(raw(general).await));
            let bound = ["\"b\":{", "\"binding\":{"].iter().any(|key| fast.contains(key));
            assert_eq!(bound, plain.contains("binding"), "{fast}");
            assert!(!fast.contains("\"errors\""), "{fast}");
            assert_eq!(fast, slow, "{plain}");
        }
        let text = raw("b: binding { contract } __typename n: number").await;
        assert!(text.contains("{\"b\":null,\"__typename\":\"Port\",\"n\":1}"), "{text}");
        assert!(text.contains("{\"b\":{\"contract\":\"880003\"},\"__typename\":\"Port\",\"n\":"), "{text}");
    }

    async fn a_splitter_in_an_unselected_box_keeps_its_box_fid(app: TestApp) {
        let (sim, id) = synced(&app, 40, &["SERVICE", "DISTRIBUTION", "CTO"]).await;
        let ceo_fid = {
            let store = sim.state.store.read().unwrap();
            let ceos: Vec<i64> = store.tables["caixaEmenda"].rows.keys().copied().collect();
            store.tables["splitter"].rows.values()
                .find(|r| r[2] == json!(sim.state.summary.projects[0]) && r[3].as_i64().is_some_and(|b| ceos.contains(&b)))
                .map(|r| r[3].as_i64().unwrap())
                .expect("a splitter in a CEO")
        };
        let s = entity::splitter::Entity::find().filter(entity::splitter::Column::BoxFid.eq(ceo_fid.to_string())).one(&app.state.db).await.unwrap().unwrap();
        let sid = mapping_gateway::graphql::ids::encode("Splitter", s.id);
        let data = app.ok("query($s: ID!) { splitter(id: $s) { box { fid } boxFid } }", json!({ "s": sid })).await;
        assert_eq!(data["splitter"]["box"], Value::Null);
        assert_eq!(data["splitter"]["boxFid"], ceo_fid.to_string());
        let _ = id;
    }

    async fn filters_and_pagination_edges(app: TestApp) {
        let (_sim, id) = synced(&app, 30, &["SERVICE", "CTO", "CEO"]).await;
        let q = "query($i: ID!, $f: ElementFilterInput, $first: Int, $after: String) {
            elements(integrationId: $i, filter: $f, first: $first, after: $after) {
                totalCount pageInfo { hasNextPage endCursor } edges { node { id fid item name latitude longitude } }
            }
        }";
        let all = app.ok(q, json!({ "i": id, "first": 500 })).await["elements"].clone();
        let total = all["totalCount"].as_u64().unwrap();
        let nodes: Vec<Value> = all["edges"].as_array().unwrap().iter().map(|e| e["node"].clone()).collect();
        assert_eq!(nodes.len() as u64, total);
        let ctos = nodes.iter().filter(|n| n["item"] == "CTO").count() as u64;
        let only_cto = app.ok(q, json!({ "i": id, "f": { "items": ["CTO"] }, "first": 500 })).await;
        assert_eq!(only_cto["elements"]["totalCount"].as_u64().unwrap(), ctos);
        assert!(ctos > 0 && ctos < total);
        // Search: a piece of a name in another case, or an exact fid.
        let target = &nodes[3];
        let piece = target["name"].as_str().unwrap()[4..].to_lowercase();
        let found = app.ok(q, json!({ "i": id, "f": { "search": piece }, "first": 500 })).await;
        assert!(found["elements"]["edges"].as_array().unwrap().iter().any(|e| e["node"]["id"] == target["id"]));
        for hostile in ["'; DROP TABLE elements; --", "%", "_", "\\'", "o'neil", "\\", "\u{0}", "%%", "C_O", "%CTO%"] {
            let none = app.ok(q, json!({ "i": id, "f": { "search": hostile } })).await;
            assert_eq!(none["elements"]["totalCount"], 0, "{hostile}");
        }
        let by_fid = app.ok(q, json!({ "i": id, "f": { "search": target["fid"] } })).await;
        assert_eq!(by_fid["elements"]["edges"][0]["node"]["id"], target["id"]);
        // A bounding box around one element.
        let (lat, lng) = (target["latitude"].as_f64().unwrap(), target["longitude"].as_f64().unwrap());
        let bbox = json!({ "minLatitude": lat - 1e-7, "maxLatitude": lat + 1e-7, "minLongitude": lng - 1e-7, "maxLongitude": lng + 1e-7 });
        let boxed = app.ok(q, json!({ "i": id, "f": { "bbox": bbox } })).await;
        assert_eq!(boxed["elements"]["totalCount"], 1);
        let bad = json!({ "minLatitude": 10.0, "maxLatitude": 95.0, "minLongitude": 0.0, "maxLongitude": 1.0 });
        assert_eq!(app.error_code(Some(&app.admin_key), q, json!({ "i": id, "f": { "bbox": bad } })).await, "VALIDATION");
        // changedSince: nothing is newer than the future; everything is newer than the past.
        let future = app.ok(q, json!({ "i": id, "f": { "changedSince": "2999-01-01T00:00:00Z" } })).await;
        assert_eq!(future["elements"]["totalCount"], 0);
        let past = app.ok(q, json!({ "i": id, "f": { "changedSince": "2000-01-01T00:00:00Z" } })).await;
        assert_eq!(past["elements"]["totalCount"].as_u64().unwrap(), total);
        // hasFreePorts splits the set.
        let with = app.ok(q, json!({ "i": id, "f": { "hasFreePorts": true } })).await["elements"]["totalCount"].as_u64().unwrap();
        let without = app.ok(q, json!({ "i": id, "f": { "hasFreePorts": false } })).await["elements"]["totalCount"].as_u64().unwrap();
        assert_eq!(with + without, total);
        let expected_with = free_by_element(&app).await.values().filter(|n| **n > 0).count() as u64;
        assert_eq!(with, expected_with);
        // Pages: walk to the end; the last page says so; an empty result is a valid page.
        let mut after: Option<String> = None;
        let mut seen = 0;
        loop {
            let page = app.ok(q, json!({ "i": id, "first": 7, "after": after })).await["elements"].clone();
            seen += page["edges"].as_array().unwrap().len();
            if page["pageInfo"]["hasNextPage"] == false {
                break;
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
        assert_eq!(seen as u64, total);
        let empty = app.ok(q, json!({ "i": id, "f": { "search": "nada-disso" } })).await["elements"].clone();
        assert_eq!(empty, json!({ "totalCount": 0, "pageInfo": { "hasNextPage": false, "endCursor": null }, "edges": [] }));
        // A cursor from another list is refused.
        let history = app.ok("query($i: ID!) { history(integrationId: $i, first: 1) { pageInfo { endCursor } } }", json!({ "i": id })).await;
        let foreign = history["history"]["pageInfo"]["endCursor"].clone();
        assert_eq!(app.error_code(Some(&app.admin_key), q, json!({ "i": id, "after": foreign })).await, "VALIDATION");
        assert_eq!(app.error_code(Some(&app.admin_key), q, json!({ "i": id, "first": 501 })).await, "VALIDATION");
    }

    async fn free_ports_are_nearest_first_and_exclude_bound_ones(app: TestApp) {
        let (_sim, id) = synced(&app, 40, &["SERVICE", "DISTRIBUTION", "CTO"]).await;
        let q = "query($i: ID!, $lat: Float!, $lng: Float!, $r: Float, $first: Int) {
            freePorts(integrationId: $i, latitude: $lat, longitude: $lng, radiusMeters: $r, first: $first) {
                distanceMeters port { id fid status } splitter { kind } element { fid }
            }
        }";
        let (lat, lng) = (-3.78, -38.53);
        let expected = |bound: &[i64]| {
            let db = app.state.db.clone();
            let bound = bound.to_vec();
            async move {
                let elements = entity::element::Entity::find().all(&db).await.unwrap();
                let splitters = entity::splitter::Entity::find().filter(entity::splitter::Column::Kind.eq("SERVICE")).all(&db).await.unwrap();
                let ports = entity::port::Entity::find().filter(entity::port::Column::Status.eq("FREE")).all(&db).await.unwrap();
                let mut hits = Vec::new();
                for p in ports.iter().filter(|p| !bound.contains(&p.id)) {
                    let Some(s) = splitters.iter().find(|s| s.id == p.splitter_id) else { continue };
                    let Some(e) = elements.iter().find(|e| Some(e.id) == s.element_id) else { continue };
                    let d = mapping_gateway::store::lookup::distance_m(lat, lng, e.latitude.unwrap(), e.longitude.unwrap());
                    if d <= 3000.0 {
                        hits.push((d, e.id, s.id, p.number, p.fid.clone()));
                    }
                }
                hits.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
                hits.into_iter().take(25).map(|h| h.4).collect::<Vec<_>>()
            }
        };
        let data = app.ok(q, json!({ "i": id, "lat": lat, "lng": lng, "r": 3000.0, "first": 25 })).await;
        let got: Vec<String> = data["freePorts"].as_array().unwrap().iter().map(|f| f["port"]["fid"].as_str().unwrap().to_owned()).collect();
        assert!(!got.is_empty());
        assert_eq!(got, expected(&[]).await, "exact order");
        let hits = data["freePorts"].as_array().unwrap();
        assert!(hits.iter().all(|h| h["port"]["status"] == "FREE" && h["splitter"]["kind"] == "SERVICE"));
        let d: Vec<f64> = hits.iter().map(|h| h["distanceMeters"].as_f64().unwrap()).collect();
        assert!(d.windows(2).all(|w| w[0] <= w[1]) && d.iter().all(|x| *x <= 3000.0));
        // A bound port is no longer offered.
        let nearest = entity::port::Entity::find().filter(entity::port::Column::Fid.eq(got[0].clone())).one(&app.state.db).await.unwrap().unwrap();
        bind(&app, &nearest, "880002", "52998224725").await;
        let data = app.ok(q, json!({ "i": id, "lat": lat, "lng": lng, "r": 3000.0, "first": 25 })).await;
        let again: Vec<String> = data["freePorts"].as_array().unwrap().iter().map(|f| f["port"]["fid"].as_str().unwrap().to_owned()).collect();
        assert!(!again.contains(&got[0]));
        assert_eq!(again, expected(&[nearest.id]).await);
        // Defaults, and bad input by code.
        let default = app.ok("query($i: ID!) { freePorts(integrationId: $i, latitude: -3.78, longitude: -38.53) { port { id } } }", json!({ "i": id })).await;
        assert!(default["freePorts"].as_array().unwrap().len() <= 10);
        for vars in [
            json!({ "i": id, "lat": 91.0, "lng": lng }),
            json!({ "i": id, "lat": lat, "lng": -181.0 }),
            json!({ "i": id, "lat": lat, "lng": lng, "r": 5001.0 }),
            json!({ "i": id, "lat": lat, "lng": lng, "r": 0.0 }),
            json!({ "i": id, "lat": lat, "lng": lng, "r": 200.0, "first": 101 }),
        ] {
            assert_eq!(app.error_code(Some(&app.admin_key), q, vars.clone()).await, "VALIDATION", "{vars}");
        }
        for (vars, limit, max) in [
            (json!({ "i": id, "lat": lat, "lng": lng, "r": 5001.0 }), "radius", 5000.0),
            (json!({ "i": id, "lat": lat, "lng": lng, "r": 200.0, "first": 101 }), "pageSize", 100.0),
        ] {
            let (_, body) = app.post(Some(&app.admin_key), q, vars).await;
            assert_eq!(body["errors"][0]["extensions"]["limit"], limit, "{body}");
            assert_eq!(body["errors"][0]["extensions"]["max"], max, "{body}");
        }
    }

    async fn bindings_are_found_by_document_contract_and_status(app: TestApp) {
        let (_sim, id) = synced(&app, 10, &["SERVICE", "CTO"]).await;
        let ports = entity::port::Entity::find().filter(entity::port::Column::Status.eq("FREE")).all(&app.state.db).await.unwrap();
        bind(&app, &ports[0], "990001", "52998224725").await;
        bind(&app, &ports[1], "990002", "11222333000181").await;
        let q = "query($f: BindingFilterInput, $first: Int) { bindings(filter: $f, first: $first) {
            totalCount edges { node { contract document status port { fid } } } } }";
        let formatted = app.ok(q, json!({ "f": { "document": "529.982.247-25" } })).await;
        assert_eq!(formatted["bindings"]["totalCount"], 1);
        assert_eq!(formatted["bindings"]["edges"][0]["node"]["contract"], "990001");
        let cnpj = app.ok(q, json!({ "f": { "document": "11.222.333/0001-81", "integrationId": id } })).await;
        assert_eq!(cnpj["bindings"]["edges"][0]["node"]["port"]["fid"], ports[1].fid);
        let by_contract = app.ok(q, json!({ "f": { "contract": "990002" } })).await;
        assert_eq!(by_contract["bindings"]["totalCount"], 1);
        let pending = app.ok(q, json!({ "f": { "status": ["PENDING"] } })).await;
        assert_eq!(pending["bindings"]["totalCount"], 2);
        let released = app.ok(q, json!({ "f": { "status": ["RELEASED"] } })).await;
        assert_eq!(released["bindings"]["totalCount"], 0);
        let newest = app.ok(q, json!({ "first": 1 })).await;
        assert_eq!(newest["bindings"]["edges"][0]["node"]["contract"], "990002");
    }

    async fn too_large_a_tree_is_refused_before_it_runs(app: TestApp) {
        let (_sim, id) = synced(&app, 10, &["SERVICE", "CTO"]).await;
        // One page with every field at the page cap is admitted...
        let (status, body) = app.post(Some(&app.admin_key), TREE, json!({ "i": id, "first": 500 })).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        // ...two of them aliased are not.
        let page = &TREE[TREE.find("elements(").unwrap()..TREE.rfind('}').unwrap()];
        let two = format!("query($i: ID!, $first: Int, $after: String) {{ a: {page} b: {page} }}");
        let (_, body) = app.post(Some(&app.admin_key), &two, json!({ "i": id, "first": 500 })).await;
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], "VALIDATION", "{body}");
        assert_eq!(error["extensions"]["limit"], "complexity");
        let (cost, max) = (error["extensions"]["cost"].as_u64().unwrap(), error["extensions"]["maxCost"].as_u64().unwrap());
        assert!(cost > max, "{body}");
        assert_eq!(max, Limits::default().max_complexity as u64);
        assert!(error["message"].as_str().unwrap().contains(&format!("costs {cost}, over the limit of {max}")), "{body}");
        assert_eq!(body["extensions"]["cost"], cost, "the refusal carries the cost too");
        assert!(body["data"].is_null());
    }

    /// `Project.elements` is the same connection as `elements`, reached from the integration.
    async fn a_project_lists_its_elements(app: TestApp) {
        let (_sim, id) = synced(&app, 12, &["SERVICE", "CTO"]).await;
        let tree = "totalCount pageInfo { hasNextPage endCursor } edges { node { fid name splitters { fid ports { number status } } } }";
        let direct = app
            .ok(&format!("query($i: ID!) {{ elements(integrationId: $i, first: 4, filter: {{ items: [CTO] }}) {{ {tree} }} }}"), json!({ "i": id }))
            .await["elements"]
            .clone();
        let nested = app
            .ok(&format!("query($i: ID!) {{ integration(id: $i) {{ project {{ elements(first: 4, filter: {{ items: [CTO] }}) {{ {tree} }} }} }} }}"), json!({ "i": id }))
            .await["integration"]["project"]["elements"]
            .clone();
        assert!(direct["totalCount"].as_u64().unwrap() > 4, "{direct}");
        assert_eq!(nested, direct);
        let after = direct["pageInfo"]["endCursor"].clone();
        let next = app
            .ok(&format!("query($i: ID!, $a: String) {{ integration(id: $i) {{ project {{ elements(first: 4, after: $a, filter: {{ items: [CTO] }}) {{ {tree} }} }} }} }}"), json!({ "i": id, "a": after }))
            .await["integration"]["project"]["elements"]
            .clone();
        assert_ne!(next["edges"][0], direct["edges"][0], "the cursor pages on");
    }

    /// The README's front-end tree fits the default limits at the page cap, and every answer
    /// says what it cost.
    async fn the_readme_tree_fits_at_the_page_cap(app: TestApp) {
        let (_sim, id) = synced(&app, 10, &["SERVICE", "CTO"]).await;
        let readme = include_str!("../README.md");
        let start = readme.find("query {\n  elements(").expect("the README's tree query");
        let end = start + readme[start..].find("\n```").unwrap();
        let query = readme[start..end]
            .replace("integrationId: \"...\"", "integrationId: $i")
            .replace("first: 50", "first: 500")
            .replace("query {", "query($i: ID!) {");
        let (status, body) = app.post(Some(&app.admin_key), &query, json!({ "i": id })).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        let cost = body["extensions"]["cost"].as_u64().expect("extensions.cost");
        eprintln!("the README tree at 500 costs {cost}");
        assert!(cost > 0 && cost <= Limits::default().max_complexity as u64);
        // A small query costs little.
        let (_, small) = app.post(Some(&app.admin_key), "{ integrations { id } }", json!({})).await;
        assert!(small["extensions"]["cost"].as_u64().unwrap() < 1_000, "{small}");
    }
}
