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

/// Sends the documents numbered `range`, 4 at a time, each distinct and refused for its size
/// (8,187 fields, under 16 KiB of text, about 1.8 MB once parsed). `crowded`: other operations
/// of the key run meanwhile, so a document may also be refused for lack of room.
async fn refused_documents(base: &str, admin: &str, range: std::ops::Range<usize>, crowded: bool) {
    use futures::StreamExt;
    let client = reqwest::Client::new();
    let fields = "a ".repeat(8_187);
    let send = |n: usize| {
        let client = client.clone();
        let query = format!("#{n}\n{{{fields}}}");
        async move {
            let body: serde_json::Value = client
                .post(format!("{base}/graphql"))
                .bearer_auth(admin)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let code = body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or_default();
            let room = crowded && matches!(code, "RATE_LIMITED" | "OVERLOADED");
            assert!(code == "VALIDATION" || room, "{body}");
        }
    };
    futures::stream::iter(range)
        .for_each_concurrent(4, send)
        .await;
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
    // Warm up (allocator arenas, connection pools), then measure.
    refused_documents(&base, &admin, 0..20, false).await;
    let (before, _) = rss_mib(pid);
    refused_documents(&base, &admin, 20..270, false).await;
    let (after, peak) = rss_mib(pid);
    assert!(
        after < before + 150,
        "resident memory grew from {before} MiB to {after} MiB (peak {peak} MiB)"
    );
    drop(gateway);
}

/// A gateway serving a synced plant of 300 boxes: the process, its address, the ADMIN key, the
/// integration's id and the simulator (kept alive by the caller).
async fn synced_gateway(
    db: &mapping_gateway::config::DbConfig,
    admin: &str,
) -> (
    Process,
    String,
    serde_json::Value,
    mapping_gateway::simulator::RunningSimulator,
) {
    let sim = simulator(mapping_gateway::simulator::SimConfig {
        boxes: 300,
        seed: 7,
        ..Default::default()
    })
    .await;
    let (gateway, base) = serve_on(db, admin, &[]);
    let id = link_over_http(&base, admin, &sim).await;
    let run = graphql_at(
        &base,
        admin,
        "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }",
        json!({ "i": id }),
    )
    .await["startSync"]["id"]
        .clone();
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        loop {
            let status = graphql_at(
                &base,
                admin,
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
    (gateway, base, json!(id), sim)
}

/// Sends `n` batches at once, each of `batch` copies of `operation`; the HTTP statuses. An
/// answer other than 200 must be 429 or 503 with `Retry-After`.
async fn batches(
    base: &str,
    admin: &str,
    operation: serde_json::Value,
    batch: usize,
    n: usize,
) -> Vec<u16> {
    let body: Vec<_> = (0..batch).map(|_| operation.clone()).collect();
    let client = reqwest::Client::new();
    let send = || {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let answer = client
                .post(format!("{base}/graphql"))
                .bearer_auth(admin)
                .json(&body)
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
    futures::future::join_all((0..n).map(|_| send())).await
}

/// The heaviest admitted page: every field of 500 elements.
fn heavy_page(id: &serde_json::Value) -> serde_json::Value {
    json!({ "query": mapping_gateway::graphql::cost::EVERY_FIELD_PAGE,
            "variables": { "i": id, "first": 500 } })
}

/// Operations in flight are limited (MAX_OPERATIONS_IN_FLIGHT, and a share per key): 30
/// concurrent batches of 10 of the heaviest admitted page (`EVERY_FIELD_PAGE`, `first: 500`)
/// wait for room or are refused with 429/503 and `Retry-After`, and the gateway's peak stays
/// bounded by the limit instead of growing with what the client sends at once.
async fn operations_in_flight_are_bounded(engine: Engine) {
    let Some(db) = fresh_database(engine).await else {
        return;
    };
    let admin = format!("mgw_{}", "c3".repeat(16));
    let (gateway, base, id, _sim) = synced_gateway(&db, &admin).await;
    let pid = gateway.child.id();
    assert_eq!(
        batches(&base, &admin, heavy_page(&id), 10, 1).await,
        [200],
        "one batch alone runs"
    );
    let (before, _) = rss_mib(pid);
    let statuses = batches(&base, &admin, heavy_page(&id), 10, 30).await;
    let (_, peak) = rss_mib(pid);
    eprintln!("resident before {before} MiB, peak {peak} MiB; answers {statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        peak < before + 300,
        "the peak grew from {before} MiB to {peak} MiB; answers: {statuses:?}"
    );
    drop(gateway);
}

/// The budget of docs/SECURITY.md (512 MiB) holds under the attacks together: refused
/// documents, heavy batches and introspection floods at once. The introspection flood comes
/// from a second key: on one key's share (one batch of 10 at a time) whichever flood reached
/// it first held it, and when that was introspection every heavy batch waited out
/// `in_flight::WAIT` and none ran. With a share each, both floods run at once, which is the
/// heavier attack.
async fn the_budget_holds_under_the_attacks_at_once(engine: Engine) {
    let Some(db) = fresh_database(engine).await else {
        return;
    };
    let admin = format!("mgw_{}", "d4".repeat(16));
    let (gateway, base, id, _sim) = synced_gateway(&db, &admin).await;
    let pid = gateway.child.id();
    let second = graphql_at(
        &base,
        &admin,
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret } }",
        json!({ "i": { "name": "introspection flood", "role": "ADMIN" } }),
    )
    .await["createApiKey"]["secret"]
        .as_str()
        .expect("a second key")
        .to_owned();
    let schema = format!(
        "{{ {} }}",
        (0..140)
            .map(|n| format!(
                "s{n}: __schema {{ types {{ name fields {{ name args {{ name }} }} }} }}"
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let ((), heavy, introspection) = tokio::join!(
        refused_documents(&base, &admin, 0..250, true),
        batches(&base, &admin, heavy_page(&id), 10, 30),
        batches(&base, &second, json!({ "query": schema }), 10, 20),
    );
    let (now, peak) = rss_mib(pid);
    eprintln!(
        "resident {now} MiB, peak {peak} MiB; heavy {heavy:?}, introspection {introspection:?}"
    );
    assert!(heavy.contains(&200), "{heavy:?}");
    assert!(
        peak < 512,
        "the peak ({peak} MiB) passed the 512 MiB budget"
    );
    drop(gateway);
}

each_engine!(
    refused_documents_are_not_kept,
    operations_in_flight_are_bounded,
    the_budget_holds_under_the_attacks_at_once
);
