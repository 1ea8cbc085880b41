//! The fan-out benchmark: the gateway's CPU per published run event, by how its subscribers are
//! laid out over sockets, and with subscribers of another integration present.
//!
//! The gateway runs in this process and publishes synthetic progress events of one run straight
//! to its bus (no sync, no database write), so what is measured is routing, resolving and
//! sending. The subscribers run in a child process (`fanout-clients`), whose CPU is not counted.
//! Layouts, measured in the same run, in the order A B B A to even out drift:
//! - `S` sockets with one `syncProgress(integrationId)` subscription each (the baseline);
//! - one socket (or as few as `MAX_OPERATIONS_PER_SOCKET` allows) with all `S` subscriptions;
//!
//! and both again with `noise` subscriptions to another integration, which should cost nothing
//! per event of the first.

use std::io::BufRead;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};

use mapping_gateway::access::{self, Role};

use super::common::*;
use super::live_bench::{cpu_seconds, gateway, open_socket};
use super::read_bench::median;

/// Subscriptions per socket of the noise (another integration's followers).
const NOISE_PER_SOCKET: usize = 100;

/// One layout: the subscriptions to the published integration, as sockets × per socket, and
/// those to another integration.
#[derive(Clone, Copy)]
struct Layout {
    sockets: usize,
    per_socket: usize,
    noise: usize,
}

/// The gateway's CPU microseconds per event for one layout.
async fn one_layout(sim: &str, layout: Layout, events: usize, tag: &str) -> anyhow::Result<f64> {
    let (state, addr) = gateway("sqlite", None, tag).await?;
    let id = integration(&state, sim).await?;
    let other = create_integration(&state, sim, "other").await?;
    let key = access::create_key(&state.db, "bench", Role::Viewer)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
        .secret;
    let gid =
        |id| mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::INTEGRATION, id);
    let mut child = Child(
        std::process::Command::new(std::env::current_exe()?)
            .args([
                "fanout-clients",
                "--url",
                &format!("ws://{addr}/graphql/ws"),
                "--key",
                &key,
                "--integration",
                gid(id).as_str(),
                "--sockets",
                &layout.sockets.to_string(),
                "--per-socket",
                &layout.per_socket.to_string(),
                "--other",
                gid(other.id).as_str(),
                "--noise",
                &layout.noise.to_string(),
                "--events",
                &events.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    anyhow::ensure!(
        lines.next().transpose()?.as_deref() == Some("ready"),
        "the clients did not start"
    );
    let total = layout.sockets * layout.per_socket + layout.noise;
    while state.events.subscribers() < total {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let now = chrono::Utc::now();
    let mut run = entity::sync_run::Model {
        id: 1,
        integration_id: id,
        mode: entity::sync_run::SyncMode::Full,
        trigger: entity::sync_run::SyncTrigger::Manual,
        status: entity::sync_run::SyncStatus::Running,
        element_fid: None,
        allow_mass_deletion: false,
        scheduled_for: None,
        cursor_before: None,
        cursor_after: None,
        phase: Some("PORTS".into()),
        current_item: Some("PORT".into()),
        processed: 0,
        total: Some(events as i64),
        fetched: 0,
        created: 0,
        updated: 0,
        deleted: 0,
        unchanged: 0,
        orphaned: 0,
        error_code: None,
        error_message: None,
        instance_id: None,
        heartbeat_at: Some(now),
        created_at: now,
        started_at: Some(now),
        finished_at: None,
        seq: 0,
        page: 0,
        pages: Some(events as i64),
        conflicts: 0,
        unreadable: 0,
        purged: 0,
        warnings: None,
        cancel_requested: false,
    };
    let before = cpu_seconds();
    for n in 1..=events as i64 {
        run.seq = n;
        run.page = n;
        run.processed = n;
        state.events.publish_run(&run);
        // Paced like a sync's pages, so no subscriber falls behind.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let report = tokio::task::spawn_blocking(move || lines.next())
        .await?
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("no report from the clients"))?;
    let cpu = cpu_seconds() - before;
    let report: Value = serde_json::from_str(&report)?;
    anyhow::ensure!(
        report["missing"] == 0 && report["noise_received"] == 0,
        "deliveries were wrong: {report}"
    );
    Ok(cpu * 1e6 / events as f64)
}

/// Runs the benchmark and prints Markdown rows.
pub(crate) async fn fanout_bench(
    subscriptions: usize,
    noise: usize,
    events: usize,
) -> anyhow::Result<()> {
    let (_sim_child, sim) = spawn_simulator(10)?;
    let per_socket_cap = mapping_gateway::config::Limits::default().max_operations_per_socket;
    let spread = |noise| Layout {
        sockets: subscriptions,
        per_socket: 1,
        noise,
    };
    let packed = |noise| Layout {
        sockets: subscriptions.div_ceil(per_socket_cap),
        per_socket: subscriptions.min(per_socket_cap),
        noise,
    };
    let mut rows = Vec::new();
    for (name, layouts) in [
        ("alone", [spread(0), packed(0)]),
        ("with noise", [spread(noise), packed(noise)]),
    ] {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (i, which) in [0, 1, 1, 0].into_iter().enumerate() {
            let cpu = one_layout(&sim, layouts[which], events, &format!("fanout_{i}")).await?;
            if which == 0 {
                a.push(cpu)
            } else {
                b.push(cpu)
            }
        }
        rows.push((name, median(a), median(b)));
    }
    let base = rows[0].1;
    let l = packed(0);
    for (name, spread, packed) in rows {
        println!(
            "| {subscriptions} subscriptions, {name} ({noise} to another integration) | {subscriptions} sockets × 1: {spread:.0} µs an event ({:.2}× alone) | {} socket(s) × {}: {packed:.0} µs an event | packed / spread {:.2} |",
            spread / base,
            l.sockets,
            l.per_socket,
            packed / spread,
        );
    }
    Ok(())
}

/// The subscribers (a child process): `sockets` × `per_socket` subscriptions to `integration`
/// and `noise` to `other`; prints `ready` once all are sent, then, once every subscription to
/// `integration` has seen `events` events, one JSON line.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fanout_clients(
    url: &str,
    key: &str,
    integration: &str,
    sockets: usize,
    per_socket: usize,
    other: &str,
    noise: usize,
    events: usize,
) -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    let subscribe = |n: usize, integration: &str| {
        Message::Text(
            json!({ "id": n.to_string(), "type": "subscribe", "payload": {
                "query": "subscription($i: ID!) { syncProgress(integrationId: $i) { sequence phase message processed } }",
                "variables": { "i": integration } } })
            .to_string()
            .into(),
        )
    };
    let mut open = Vec::new();
    for _ in 0..sockets {
        let mut socket = open_socket(url, key).await?;
        for n in 0..per_socket {
            socket.send(subscribe(n, integration)).await?;
        }
        open.push((socket, per_socket * events));
    }
    let mut noisy = Vec::new();
    for chunk in 0..noise.div_ceil(NOISE_PER_SOCKET) {
        let mut socket = open_socket(url, key).await?;
        for n in 0..NOISE_PER_SOCKET.min(noise - chunk * NOISE_PER_SOCKET) {
            socket.send(subscribe(n, other)).await?;
        }
        noisy.push(socket);
    }
    println!("ready");
    let noise_received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for mut socket in noisy {
        let received = noise_received.clone();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = socket.next().await {
                if text.contains("\"next\"") {
                    received.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    let tasks: Vec<_> = open
        .into_iter()
        .map(|(mut socket, mut expected)| {
            tokio::spawn(async move {
                while expected > 0 {
                    match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                        Ok(Some(Ok(Message::Text(text)))) if text.contains("\"next\"") => {
                            anyhow::ensure!(!text.contains("\"errors\""), "refused: {text}");
                            expected -= 1
                        }
                        Ok(Some(Ok(Message::Text(text)))) if text.contains("\"ping\"") => {
                            let _ = socket
                                .send(Message::Text(r#"{"type":"pong"}"#.into()))
                                .await;
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                Ok(expected)
            })
        })
        .collect();
    let mut missing = 0;
    for task in tasks {
        missing += task.await??;
    }
    println!(
        "{}",
        json!({
            "missing": missing,
            "noise_received": noise_received.load(std::sync::atomic::Ordering::Relaxed),
        })
    );
    Ok(())
}
