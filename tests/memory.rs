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

each_engine!(refused_documents_are_not_kept);
