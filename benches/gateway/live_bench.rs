//! The live benchmark: many WebSocket subscribers following one full sync.
//!
//! The gateway (state and HTTP server) runs in this process; the subscribers run in a child
//! process of their own (`live-clients`), so that the gateway's memory growth per subscriber is
//! measured alone. Both share the machine's cores, as a load generator on the same host does.
//!
//! The baseline is the same full sync, into a fresh database of the same engine, with no
//! subscriber, measured in the same run (before and after, to even out drift).

use std::io::BufRead;
use std::time::Instant;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};

use mapping_gateway::access::{self, Role};
use mapping_gateway::config::DbConfig;
use mapping_gateway::server;
use mapping_gateway::sync::Mode;

use super::common::*;
use super::read_bench::median;

/// The current resident set of this process, in KiB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user and system) this process has used.
pub(crate) fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses): utime is the 12th, stime
            // the 13th, in clock ticks of 1/100 s.
            let rest = s.rsplit_once(") ")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// A fresh gateway on `engine` with its HTTP server on loopback; returns the state and address.
pub(crate) async fn gateway(
    engine: &str,
    pg: Option<&str>,
    tag: &str,
) -> anyhow::Result<(mapping_gateway::state::AppState, std::net::SocketAddr)> {
    let config = DbConfig {
        database_url: fresh_db(engine, pg, tag).await?,
        master_key: Some(mapping_gateway::crypto::MasterKey::generate().1),
    };
    let state = server::open_with(&config, local_settings()).await?;
    let limits = mapping_gateway::config::Limits {
        max_connections: 4096,
        max_subscriptions_per_key: 100_000,
        ..Default::default()
    };
    let router = mapping_gateway::http::router(state.clone(), &limits, &Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        mapping_gateway::http::serve(listener, router, &limits, std::future::pending()).await
    });
    Ok((state, addr))
}

/// One full sync with `subscribers` following it from another process; returns the sync's
/// seconds and, with subscribers, their report.
async fn one_run(
    engine: &str,
    pg: Option<&str>,
    sim: &str,
    subscribers: usize,
    tag: &str,
) -> anyhow::Result<(f64, Option<Value>)> {
    let (state, addr) = gateway(engine, pg, tag).await?;
    let id = integration(&state, sim).await?;
    let mut clients = None;
    let mut rss_growth = 0;
    if subscribers > 0 {
        let key = access::create_key(&state.db, "bench", Role::Viewer)
            .await
            .map_err(mapping_gateway::Error::into_anyhow)?
            .secret;
        let before = rss_kb();
        let gid =
            mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::INTEGRATION, id);
        let mut child = Child(
            std::process::Command::new(std::env::current_exe()?)
                .args([
                    "live-clients",
                    "--url",
                    &format!("ws://{addr}/graphql/ws"),
                    "--key",
                    &key,
                    "--integration",
                    gid.as_str(),
                    "--n",
                    &subscribers.to_string(),
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
        while state.events.subscribers() < subscribers {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        rss_growth = rss_kb().saturating_sub(before);
        clients = Some((child, lines));
    }
    let started = Instant::now();
    engine_run(&state, sim, Mode::Full).await?;
    let secs = started.elapsed().as_secs_f64();
    let report = match clients {
        None => None,
        Some((_child, mut lines)) => {
            let line = tokio::task::spawn_blocking(move || lines.next())
                .await?
                .transpose()?
                .ok_or_else(|| anyhow::anyhow!("no report from the clients"))?;
            let mut report: Value = serde_json::from_str(&line)?;
            report["rss_growth_kb"] = json!(rss_growth);
            Some(report)
        }
    };
    Ok((secs, report))
}

/// Runs the benchmark and prints Markdown rows.
pub(crate) async fn live_bench(
    boxes: usize,
    subscribers: usize,
    engine: &str,
    pg: Option<&str>,
) -> anyhow::Result<()> {
    let (_sim_child, sim) = spawn_simulator(boxes * 5 / 4)?;
    let (before, _) = one_run(engine, pg, &sim, 0, "live_a").await?;
    let (with, report) = one_run(engine, pg, &sim, subscribers, "live_b").await?;
    let (after, _) = one_run(engine, pg, &sim, 0, "live_c").await?;
    let report = report.expect("a report");
    let baseline = median(vec![before, after]);
    println!(
        "| {subscribers} subscribers, {boxes} boxes, {engine} | lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms | {} events each, {} lagged | {:.1} KiB per subscriber | sync {:.2} s vs {:.2} s and {:.2} s without: ratio {:.3} | clients' own CPU {:.1} s |",
        report["p50_ms"].as_f64().unwrap_or(f64::NAN),
        report["p99_ms"].as_f64().unwrap_or(f64::NAN),
        report["max_ms"].as_f64().unwrap_or(f64::NAN),
        report["events_per_subscriber"],
        report["lagged"],
        report["rss_growth_kb"].as_f64().unwrap_or(0.0) / subscribers as f64,
        with,
        before,
        after,
        with / baseline,
        report["clients_cpu_secs"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(())
}

/// A graphql-transport-ws socket, acknowledged.
pub(crate) async fn open_socket(
    url: &str,
    key: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    socket
        .send(Message::Text(
            json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } })
                .to_string()
                .into(),
        ))
        .await?;
    loop {
        if let Some(Message::Text(t)) = socket.next().await.transpose()? {
            if t.contains("connection_ack") {
                return Ok(socket);
            }
        }
    }
}

/// The subscribers (a child process): `n` sockets following the integration's runs; prints
/// `ready` once all are acknowledged and subscribed, then, after every one has seen a run end,
/// one JSON line of delivery lags (event timestamp to receipt).
pub(crate) async fn live_clients(
    url: &str,
    key: &str,
    integration: &str,
    n: usize,
) -> anyhow::Result<()> {
    use tokio_tungstenite::tungstenite::Message;
    let mut sockets = Vec::new();
    for _ in 0..n {
        let mut socket = open_socket(url, key).await?;
        socket
            .send(Message::Text(
                json!({ "id": "1", "type": "subscribe", "payload": {
                    "query": "subscription($i: ID!) { syncProgress(integrationId: $i) { sequence lagged phase at } }",
                    "variables": { "i": integration } } })
                .to_string()
                .into(),
            ))
            .await?;
        sockets.push(socket);
    }
    println!("ready");
    let cpu_before = cpu_seconds();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let mut lags = Vec::new();
                let mut lagged = 0u32;
                while let Some(Ok(message)) = socket.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let received = chrono::Utc::now();
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if v["type"] == "ping" {
                        let _ = socket
                            .send(Message::Text(r#"{"type":"pong"}"#.into()))
                            .await;
                        continue;
                    }
                    let p = &v["payload"]["data"]["syncProgress"];
                    if let Some(at) = p["at"]
                        .as_str()
                        .and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok())
                    {
                        lags.push(
                            (received - at.with_timezone(&chrono::Utc))
                                .num_microseconds()
                                .unwrap_or(0) as f64
                                / 1000.0,
                        );
                    }
                    if p["lagged"] == true {
                        lagged += 1;
                    }
                    if p["phase"] == "FINISHED" {
                        break;
                    }
                }
                (lags, lagged)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut lagged = 0;
    let mut events = Vec::new();
    for task in tasks {
        let (lags, l) = task.await?;
        events.push(lags.len() as f64);
        lagged += l;
        all.extend(lags);
    }
    println!(
        "{}",
        json!({
            "p50_ms": percentile(all.clone(), 0.50),
            "p99_ms": percentile(all.clone(), 0.99),
            "max_ms": percentile(all, 1.0),
            "events_per_subscriber": median(events),
            "lagged": lagged,
            "clients_cpu_secs": cpu_seconds() - cpu_before,
        })
    );
    Ok(())
}
