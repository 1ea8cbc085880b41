//! Relay's conventions: every object with an id is a `Node` that `node(id:)` and `nodes(ids:)`
//! fetch again (batched), `binding(id:)`, and connections that page both ways with keyset
//! cursors that stay right when rows come and go between pages.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::bindings::{bind_port, customer, free_service_ports, synced_world, CPF};
use common::*;
use mapping_gateway::graphql::ids;
use serde_json::{json, Value};

/// One id of every kind, with its typename.
async fn one_of_each(app: &TestApp) -> Vec<(String, &'static str)> {
    let w = synced_world(app).await;
    let (port, _) = free_service_ports(app, 1).await.remove(0);
    let binding = bind_port(app, &port, customer("610001", CPF)).await;
    let data = app
        .ok(
            "query($i: ID!) { integration(id: $i) { id project { id } }
               elements(integrationId: $i, first: 1, filter: { items: [CTO] }) { edges { node { id splitters { id ports { id } } } } }
               syncRuns(integrationId: $i, first: 1) { edges { node { id } } }
               history(integrationId: $i, first: 1) { edges { node { id } } } }",
            json!({ "i": w.id }),
        )
        .await;
    let element = &data["elements"]["edges"][0]["node"];
    let s = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("an id: {data}"))
            .to_owned()
    };
    vec![
        (s(&data["integration"]["id"]), "Integration"),
        (s(&data["integration"]["project"]["id"]), "Project"),
        (s(&element["id"]), "Element"),
        (s(&element["splitters"][0]["id"]), "Splitter"),
        (s(&element["splitters"][0]["ports"][0]["id"]), "Port"),
        (s(&binding["id"]), "Binding"),
        (s(&data["syncRuns"]["edges"][0]["node"]["id"]), "SyncRun"),
        (
            s(&data["history"]["edges"][0]["node"]["id"]),
            "HistoryEntry",
        ),
    ]
}

on_both_engines! {
    async fn every_object_is_fetched_again_by_its_id(app: TestApp) {
        let known = one_of_each(&app).await;
        for (id, typename) in &known {
            let data = app.ok("query($id: ID!) { node(id: $id) { __typename id } }", json!({ "id": id })).await;
            assert_eq!(data["node"], json!({ "__typename": typename, "id": id }));
        }
        // All at once, in order, with unknown ids as nulls.
        let missing = ids::encode(ids::ELEMENT, 987_654).0;
        let mut asked: Vec<String> = known.iter().map(|(id, _)| id.clone()).collect();
        asked.insert(3, missing);
        asked.push("not an id".into());
        let data = app
            .ok(
                "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Element { fid } ... on Binding { status } } }",
                json!({ "ids": asked }),
            )
            .await;
        let got = data["nodes"].as_array().unwrap();
        assert_eq!(got.len(), asked.len());
        assert!(got[3].is_null() && got[asked.len() - 1].is_null(), "{data}");
        let typenames: Vec<&str> = got.iter().filter_map(|n| n["__typename"].as_str()).collect();
        assert_eq!(typenames, known.iter().map(|(_, t)| *t).collect::<Vec<_>>());
        assert!(got[2]["fid"].is_string() && got[6]["status"] == "PENDING", "{data}");
        // binding(id:), like the other lookups: NOT_FOUND when there is none.
        let binding = &known[5].0;
        let data = app.ok("query($id: ID!) { binding(id: $id) { id status } }", json!({ "id": binding })).await;
        assert_eq!(data["binding"]["id"], *binding);
        let code = app.error_code(Some(&app.admin_key), "query($id: ID!) { binding(id: $id) { id } }", json!({ "id": ids::encode(ids::BINDING, 987_654).0 })).await;
        assert_eq!(code, "NOT_FOUND");
        // At most 100 ids.
        let many: Vec<String> = (1..=101).map(|n| ids::encode(ids::PORT, n).0).collect();
        let (_, body) = app.post(Some(&app.admin_key), "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", json!({ "ids": many })).await;
        assert_eq!(body["errors"][0]["extensions"]["limit"], "pageSize", "{body}");
    }
}

/// `nodes` reads the ids of one kind with one statement, however many there are.
async fn nodes_are_batched(engine: Engine) {
    let counter = Arc::new(AtomicUsize::new(0));
    let Some(app) = TestApp::start_counting(engine, Default::default(), counter.clone()).await
    else {
        return;
    };
    let (_sim, id) = world::synced(&app, 60, &["SERVICE", "CTO"]).await;
    let mut counts = Vec::new();
    for n in [5, 50] {
        let page = app
            .ok(
                "query($i: ID!, $n: Int!) { elements(integrationId: $i, first: $n) { edges { node { id splitters { ports { id } } } } } }",
                json!({ "i": id, "n": n }),
            )
            .await;
        let edges = page["elements"]["edges"].as_array().unwrap();
        let mut asked: Vec<Value> = edges.iter().map(|e| e["node"]["id"].clone()).collect();
        asked.extend(
            edges
                .iter()
                .filter_map(|e| e["node"]["splitters"][0]["ports"][0].get("id").cloned())
                .take(n),
        );
        asked.truncate(100);
        // The counter sees the whole pool, the background workers' polls too: the fewest of
        // three runs is the request's own count.
        let mut fewest = usize::MAX;
        for _ in 0..3 {
            counter.store(0, Ordering::SeqCst);
            let data = app
                .ok(
                    "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
                    json!({ "ids": asked }),
                )
                .await;
            assert!(
                data["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|n| n["id"].is_string()),
                "{data}"
            );
            fewest = fewest.min(counter.load(Ordering::SeqCst));
        }
        counts.push(fewest);
    }
    assert_eq!(
        counts[0], counts[1],
        "statements for 10 and for 100 ids: {counts:?}"
    );
}

each_engine!(nodes_are_batched);

/// Walks a connection backward with `last`/`before` from its end; returns the ids in list order.
async fn walk_backward(
    app: &TestApp,
    field: &str,
    args: &str,
    vars: Value,
    size: i64,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let q = format!(
            "query($i: ID!, $n: Int!, $before: String) {{ {field}({args} last: $n, before: $before) {{
               edges {{ cursor node {{ id }} }} pageInfo {{ hasPreviousPage hasNextPage startCursor endCursor }} }} }}"
        );
        let mut v = vars.clone();
        v["n"] = json!(size);
        v["before"] = json!(before);
        let data = app.ok(&q, v).await;
        let page = &data[field];
        let mut got: Vec<String> = page["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(page["pageInfo"]["hasNextPage"], before.is_some(), "{page}");
        got.append(&mut ids);
        ids = got;
        if page["pageInfo"]["hasPreviousPage"] != true {
            return ids;
        }
        before = page["pageInfo"]["startCursor"].as_str().map(str::to_owned);
    }
}

on_both_engines! {
    async fn connections_page_both_ways_with_cursors_that_survive_inserts(app: TestApp) {
        let (_sim, id) = world::synced(&app, 40, &["SERVICE", "CTO", "CEO"]).await;
        for (field, args) in [("elements", "integrationId: $i,"), ("history", "integrationId: $i,")] {
            let all = app
                .ok(&format!("query($i: ID!) {{ {field}({args} first: 500) {{ edges {{ node {{ id }} }} }} }}"), json!({ "i": id }))
                .await[field]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>();
            assert!(all.len() > 3, "{field}: {}", all.len());
            assert_eq!(walk_backward(&app, field, args, json!({ "i": id }), 3).await, all, "{field}");
        }
        // first and last together are refused.
        let code = app.error_code(Some(&app.admin_key), "query($i: ID!) { elements(integrationId: $i, first: 2, last: 2) { totalCount } }", json!({ "i": id })).await;
        assert_eq!(code, "VALIDATION");

        // History grows at its head between two pages: the second page goes on where the
        // first ended, with nothing repeated or skipped.
        let page = |after: Option<String>| {
            let app = &app;
            let id = id.clone();
            async move {
                app.ok("query($i: ID!, $a: String) { history(integrationId: $i, first: 2, after: $a) { edges { node { id } } pageInfo { endCursor hasPreviousPage } } }", json!({ "i": id, "a": after }))
                    .await["history"].clone()
            }
        };
        let before_inserts: Vec<Value> = app
            .ok("query($i: ID!) { history(integrationId: $i, first: 4) { edges { node { id } } } }", json!({ "i": id }))
            .await["history"]["edges"].as_array().unwrap().clone();
        let first = page(None).await;
        assert_eq!(first["pageInfo"]["hasPreviousPage"], false);
        for name in ["Renomeada 1", "Renomeada 2", "Renomeada 3"] {
            app.ok("mutation($i: ID!, $n: String!) { updateIntegration(id: $i, input: { name: $n }) { id } }", json!({ "i": id, "n": name })).await;
        }
        let second = page(first["pageInfo"]["endCursor"].as_str().map(str::to_owned)).await;
        assert_eq!(second["edges"].as_array().unwrap()[..], before_inserts[2..4], "{second}");
        assert_eq!(second["pageInfo"]["hasPreviousPage"], true);
    }
}

/// The text of the operation in a relay-compiler artifact committed under
/// `scripts/frontend/relay/src/__generated__/` (`scripts/frontend-check` compiles them).
fn compiled(name: &str) -> String {
    let path = format!(
        "{}/scripts/frontend/relay/src/__generated__/{name}.graphql.js",
        env!("CARGO_MANIFEST_DIR")
    );
    let artifact = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let line = artifact
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"text\": "))
        .unwrap_or_else(|| panic!("no operation text in {path}"));
    serde_json::from_str(line.trim_end_matches(',')).expect("a JSON string")
}

on_both_engines! {
    /// What relay-compiler made of the fixture's fragments runs: the app's query, paging an
    /// integration's boxes to `totalCount` with the generated pagination query, and refetching a
    /// box and a project through `node(id:)`.
    async fn relay_compiled_operations_run(app: TestApp) {
        let (_sim, id) = world::synced(&app, 30, &["SERVICE", "CTO", "CEO"]).await;
        let first = app.ok(&compiled("AppQuery"), json!({ "integrationId": id })).await;
        let total = first["elements"]["totalCount"].as_u64().unwrap();
        assert!(total > 7, "{first}");
        let project = first["integration"]["project"]["id"].as_str().expect("the project's id").to_owned();
        let mut seen = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let page = app
                .ok(&compiled("IntegrationElementsPaginationQuery"), json!({ "integrationId": id, "count": 7, "cursor": cursor }))
                .await;
            let elements = &page["elements"];
            seen.extend(elements["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()));
            if elements["pageInfo"]["hasNextPage"] != true {
                break;
            }
            cursor = elements["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seen.len() as u64, total);
        let card = app.ok(&compiled("ElementCardRefetchQuery"), json!({ "id": seen[3] })).await;
        assert_eq!(card["node"]["id"], seen[3]);
        assert!(card["node"]["fid"].is_string() && card["node"]["splitters"].is_array(), "{card}");
        let boxes = app.ok(&compiled("ProjectElementsPaginationQuery"), json!({ "id": project, "count": 5 })).await;
        assert_eq!(boxes["node"]["__typename"], "Project");
        assert_eq!(boxes["node"]["elements"]["edges"].as_array().unwrap().len(), 5, "{boxes}");
    }
}
