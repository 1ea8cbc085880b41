//! The memory budget, measured on a served gateway process (`/proc/<pid>/status`) while a
//! client does what the attacks of docs/SECURITY.md ("Memory budget") do. Each test fails on a
//! gateway that keeps what it should not (it grew by gigabytes there).

mod common;

use common::*;
use serde_json::json;

/// The process's resident set and its peak, in MiB.
fn rss_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Documents refused by validation are not kept: 250 distinct documents of 8,187 fields each
/// (under 16 KiB of text, about 1.8 MB each once parsed: 450 MB if they were kept), each refused for its size, leave the
/// gateway's memory where it was.
async fn refused_documents_are_not_kept(engine: Engine) {
    let Some(db) = fresh_database(engine).await else {
        return;
    };
    let admin = format!("mgw_{}", "b2".repeat(16));
    let (gateway, base) = serve_on(&db, &admin, &[]);
    let pid = gateway.child.id();
    let client = reqwest::Client::new();
    let fields = "a ".repeat(8_187);
    let send = |n: usize| {
        let (client, base, admin) = (client.clone(), base.clone(), admin.clone());
        let query = format!("#{n}\n{{{fields}}}");
        async move {
            let body: serde_json::Value = client
                .post(format!("{base}/graphql"))
                .bearer_auth(&admin)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "VALIDATION",
                "{body}"
            );
        }
    };
    // Warm up (allocator arenas, connection pools), then measure.
    for n in 0..20 {
        send(n).await;
    }
    let (before, _) = rss_mib(pid);
    use futures::StreamExt;
    futures::stream::iter(20..270)
        .for_each_concurrent(4, send)
        .await;
    let (after, peak) = rss_mib(pid);
    assert!(
        after < before + 150,
        "resident memory grew from {before} MiB to {after} MiB (peak {peak} MiB)"
    );
    drop(gateway);
}

/// Operations in flight are limited (MAX_OPERATIONS_IN_FLIGHT, and a share per key): 30
/// concurrent batches of 10 of the heaviest admitted page (`EVERY_FIELD_PAGE`, `first: 500`)
/// wait for room or are refused with 429/503 and `Retry-After`, and the gateway's peak stays
/// bounded by the limit instead of growing with what the client sends at once.
async fn operations_in_flight_are_bounded(engine: Engine) {
    let Some(db) = fresh_database(engine).await else {
        return;
    };
    let sim = simulator(mapping_gateway::simulator::SimConfig {
        boxes: 300,
        seed: 7,
        ..Default::default()
    })
    .await;
    let admin = format!("mgw_{}", "c3".repeat(16));
    let (gateway, base) = serve_on(&db, &admin, &[]);
    let pid = gateway.child.id();
    let id = link_over_http(&base, &admin, &sim).await;
    let run = graphql_at(
        &base,
        &admin,
        "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }",
        json!({ "i": id }),
    )
    .await["startSync"]["id"]
        .clone();
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        loop {
            let status = graphql_at(
                &base,
                &admin,
                "query($r: ID!) { syncRun(id: $r) { status } }",
                json!({ "r": run }),
            )
            .await["syncRun"]["status"]
                .clone();
            if status != "RUNNING" {
                assert_eq!(status, "SUCCEEDED");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("synced within 120 s");
    let page = json!({ "query": mapping_gateway::graphql::cost::EVERY_FIELD_PAGE,
                       "variables": { "i": id, "first": 500 } });
    let batch: Vec<_> = (0..10).map(|_| page.clone()).collect();
    let client = reqwest::Client::new();
    let send = || {
        let (client, base, admin, batch) =
            (client.clone(), base.clone(), admin.clone(), batch.clone());
        async move {
            let answer = client
                .post(format!("{base}/graphql"))
                .bearer_auth(&admin)
                .json(&batch)
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            if status != 200 {
                assert!(matches!(status, 429 | 503), "{status}");
                assert!(answer.headers().contains_key("retry-after"));
            }
            let _ = answer.bytes().await;
            status
        }
    };
    assert_eq!(send().await, 200, "one batch alone runs");
    let (before, _) = rss_mib(pid);
    let statuses = futures::future::join_all((0..30).map(|_| send())).await;
    let (_, peak) = rss_mib(pid);
    eprintln!("resident before {before} MiB, peak {peak} MiB; answers {statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        peak < before + 300,
        "the peak grew from {before} MiB to {peak} MiB; answers: {statuses:?}"
    );
    drop(gateway);
}

each_engine!(
    refused_documents_are_not_kept,
    operations_in_flight_are_bounded
);
