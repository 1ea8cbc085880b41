//! The statement-count guarantee of element trees: the same number of statements for a page of
//! 100 boxes and for 1,000, on SQLite and PostgreSQL.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::world::synced;
use common::{Engine, TestApp};
use serde_json::json;

/// Statements a tree query costs for 100 and for 1,000 boxes: the same.
async fn tree_queries_cost_a_constant_number_of_statements(engine: Engine) {
    let counter = Arc::new(AtomicUsize::new(0));
    // A 1,000-box tree is over the default cost limit; the limit is a setting.
    let limits = mapping_gateway::config::Limits {
        max_complexity: 2_000_000,
        ..Default::default()
    };
    let Some(app) = TestApp::start_counting(engine, limits, counter.clone()).await else {
        return;
    };
    // 1,250 boxes: the synced project gets 80% of them, CTOs and CEOs.
    let (_sim, id) = synced(&app, 1250, &["SERVICE", "CTO", "CEO"]).await;
    let q = "query($i: ID!, $n: Int!, $after: String) {
        a: elements(integrationId: $i, first: $n) { edges { node { fid freePortCount splitters { fid freePortCount ports { number binding { id } } } } } }
        b: elements(integrationId: $i, first: $n, after: $after) { edges { node { fid splitters { fid ports { number status binding { id } } } } } }
    }";
    let cursor = |n: i64| {
        let app = &app;
        let id = id.clone();
        async move {
            let page = app
                .ok("query($i: ID!, $n: Int!) { elements(integrationId: $i, first: $n) { pageInfo { endCursor } } }", json!({ "i": id, "n": n }))
                .await;
            page["elements"]["pageInfo"]["endCursor"].clone()
        }
    };
    let mut counts = Vec::new();
    for n in [50, 500] {
        let after = cursor(n).await;
        counter.store(0, Ordering::SeqCst);
        let data = app
            .ok_as(&app.admin_key, "query($i: ID!, $n: Int!, $after: String) { a: elements(integrationId: $i, first: $n) { edges { node { fid } } } b: elements(integrationId: $i, first: $n, after: $after) { edges { node { fid } } } }", json!({ "i": id, "n": n, "after": after }))
            .await;
        let baseline = counter.swap(0, Ordering::SeqCst);
        let boxes = data["a"]["edges"].as_array().unwrap().len()
            + data["b"]["edges"].as_array().unwrap().len();
        assert_eq!(boxes, 2 * n as usize, "a tree of {} boxes", 2 * n);
        let tree = app
            .ok_as(
                &app.admin_key,
                q,
                json!({ "i": id, "n": n, "after": after }),
            )
            .await;
        let statements = counter.load(Ordering::SeqCst);
        let ports: usize = tree["a"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| e["node"]["splitters"].as_array().unwrap().iter())
            .map(|s| s["ports"].as_array().unwrap().len())
            .sum();
        assert!(ports > n as usize);
        counts.push((2 * n, statements - baseline.min(statements), statements));
    }
    assert_eq!(
        counts[0].2, counts[1].2,
        "statements for 100 and 1,000 boxes: {counts:?}"
    );
    assert!(counts[1].2 <= 16, "a handful of statements: {counts:?}");
}

each_engine!(tree_queries_cost_a_constant_number_of_statements);
