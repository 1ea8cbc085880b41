//! Benchmarks, run on demand (not in CI). Each measured phase runs in a child process of its own,
//! so its time and peak RSS are its alone; the simulator runs in another.
//!
//! ```sh
//! cargo bench --bench gateway -- sync --boxes 2000,20000 --engines sqlite,postgres
//! cargo bench --bench gateway -- scale --boxes 2000,20000,200000
//! ```
//!
//! For each size and engine it measures, against the Geosite simulator over loopback HTTP:
//! - the baseline: the same records fetched and written with one plain multi-row insert per page,
//!   no diffing, no deletion tracking;
//! - fetch-only: the same listings read and parsed, nothing written (the wire's limit);
//! - raw write: the same rows, fetched beforehand, written the fastest way the engine has
//!   (`COPY` per page on PostgreSQL, one prepared multi-row insert in a transaction on SQLite);
//! - a full sync by the engine, into a fresh database;
//! - an incremental sync after 1% of the records changed on the platform;
//!
//! and prints the ratios (full against the baseline, against fetch + raw write and against
//! max(fetch, raw write), what a pipelined sync can reach; incremental / full) and peak RSS as
//! Markdown rows.
//! `read` measures the API on a synced copy (see `read_bench`); `live`, subscribers following a
//! full sync over WebSocket (see `live_bench`); `bindings`, a burst of confirmed bindings
//! delivered to the platform (see `bindings_bench`); `fanout`, the CPU an event costs by how its
//! subscribers are laid out over sockets (see `fanout_bench`).

mod bindings_bench;
mod common;
mod fanout_bench;
mod live_bench;
mod raw_write;
mod read_bench;
mod scale_bench;
mod sync_bench;

use common::*;
use read_bench::read_bench;
use sync_bench::{baseline, orchestrate};

use std::time::Instant;

use clap::{Parser, Subcommand};
use serde_json::json;

use mapping_gateway::server;

use mapping_gateway::config::DbConfig;
use mapping_gateway::sync::Mode;

/// mimalloc rather than the system allocator: reading a 1,000-box tree spent about a third of its
/// CPU in glibc's malloc and free (docs/BENCHMARKS.md, the tree's profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// The runs a sync benchmark makes: every size on every engine and platform.
#[derive(clap::Args)]
struct Matrix {
    /// Project sizes, in boxes (the simulator puts 80% of them in the synced project).
    #[arg(long, value_delimiter = ',', default_value = "2000,20000")]
    boxes: Vec<usize>,
    /// Engines to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    engines: Vec<String>,
    /// PostgreSQL server URL of a role that may create databases.
    #[arg(long, env = "BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Platforms whose simulator is synced: `geosite`, `ozmap` (same generated network).
    #[arg(long, value_delimiter = ',', default_value = "geosite,ozmap")]
    platforms: Vec<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Full and incremental sync against the baseline.
    Sync(Matrix),
    /// The scale table: full and incremental runs (nothing changed, 1% changed), peak RSS and
    /// database size, by size, engine and platform. 200,000 boxes take minutes per row.
    Scale(Matrix),
    /// Read API: a 1,000-box tree against hand-written SQL, freePorts on a 20,000-box project,
    /// and HTTP throughput of `port(id)` under wrk.
    Read {
        /// Boxes in the synced project (the simulator gets 25% more).
        #[arg(long, default_value_t = 20000)]
        boxes: usize,
        /// Seconds of each wrk run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Timed executions of the tree (and of its hand-written baseline); more under a
        /// profiler.
        #[arg(long, default_value_t = 15)]
        rounds: usize,
        /// `sqlite` or `postgres`.
        #[arg(long, default_value = "sqlite")]
        engine: String,
        /// PostgreSQL server URL of a role that may create databases.
        #[arg(long, env = "BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
    /// Subscribers following one full sync: delivery lag, memory per subscriber, and the sync's
    /// duration against the same sync without subscribers.
    Live {
        /// Boxes in the synced project (the simulator gets 25% more).
        #[arg(long, default_value_t = 20000)]
        boxes: usize,
        /// Concurrent WebSocket subscribers.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// `sqlite` or `postgres`.
        #[arg(long, default_value = "sqlite")]
        engine: String,
        /// PostgreSQL server URL of a role that may create databases.
        #[arg(long, env = "BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
    /// Deliveries: bindings confirmed in a burst, pushed to the simulator.
    Bindings {
        #[arg(long, default_value_t = 2000)]
        boxes: usize,
        #[arg(long, default_value_t = 10000)]
        bindings: usize,
        #[arg(long, default_value = "sqlite")]
        engine: String,
        #[arg(long, env = "BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
    /// CPU per run event: subscribers one per socket against packed on few sockets, alone and
    /// beside another integration's subscribers.
    Fanout {
        /// Subscriptions to the integration whose events are published.
        #[arg(long, default_value_t = 100)]
        subscriptions: usize,
        /// Subscriptions to another integration, present in the second pair of layouts.
        #[arg(long, default_value_t = 1000)]
        noise: usize,
        /// Events published.
        #[arg(long, default_value_t = 1000)]
        events: usize,
    },
    /// (internal) The subscribers of `fanout`, in their own process.
    FanoutClients {
        #[arg(long)]
        url: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        integration: String,
        #[arg(long)]
        sockets: usize,
        #[arg(long)]
        per_socket: usize,
        #[arg(long)]
        other: String,
        #[arg(long)]
        noise: usize,
        #[arg(long)]
        events: usize,
    },
    /// (internal) The subscribers of `live`, in their own process.
    LiveClients {
        #[arg(long)]
        url: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        integration: String,
        #[arg(long)]
        n: usize,
    },
    /// (internal) The simulator, in its own process.
    Simulate {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        boxes: usize,
    },
    /// (internal) One measured phase; prints one JSON line.
    Phase {
        /// `baseline`, `fetch`, `raw`, `full` or `incremental`.
        kind: String,
        #[arg(long)]
        sim: String,
        #[arg(long)]
        db: String,
        #[arg(long)]
        master_key: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the gateway's own binary does.
    mapping_gateway::memory::no_huge_pages();
    // `cargo bench` adds `--bench` to a harness-less benchmark's arguments.
    match Cli::parse_from(std::env::args().filter(|a| a != "--bench")).command {
        Cmd::Simulate { port, boxes } => {
            let sim = mapping_gateway::simulator::spawn(
                mapping_gateway::simulator::SimConfig {
                    platform: common::bench_platform(),
                    boxes,
                    seed: 42,
                    ..Default::default()
                },
                ([127, 0, 0, 1], port).into(),
            )
            .await?;
            println!("ready {}", sim.url);
            std::future::pending::<()>().await;
            Ok(())
        }
        Cmd::Phase {
            kind,
            sim,
            db,
            master_key,
        } => {
            let config = DbConfig {
                database_url: db,
                master_key: Some(master_key),
            };
            if let Ok(filter) = std::env::var("BENCH_LOG") {
                // What the engine logs during the phase, with times, on stderr.
                tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                    .with_writer(std::io::stderr)
                    .with_timer(tracing_subscriber::fmt::time::uptime())
                    .init();
            }
            let mut state = server::open_with(&config, local_settings()).await?;
            let profile = Profile::attach(&mut state.db);
            let started = Instant::now();
            let counts = match kind.as_str() {
                "baseline" => baseline(&state, &sim).await?,
                "fetch" => sync_bench::fetch_only(&state, &sim).await?,
                "fetch-incremental" => sync_bench::fetch_incremental(&state, &sim).await?,
                "raw" => sync_bench::raw(&state, &sim).await?,
                "full" => engine_run(&state, &sim, Mode::Full).await?,
                "incremental" => engine_run(&state, &sim, Mode::Incremental).await?,
                "incremental-running" => sync_bench::running(&state, &sim).await?,
                other => anyhow::bail!("unknown phase {other}"),
            };
            // The raw write times itself: its fetching is not part of it.
            let secs = counts["timed_secs"]
                .as_f64()
                .unwrap_or_else(|| started.elapsed().as_secs_f64());
            profile.print(&kind);
            println!(
                "{}",
                json!({ "secs": secs, "peak_rss_kb": peak_rss_kb(), "counts": counts })
            );
            Ok(())
        }
        Cmd::Sync(m) => orchestrate(m.boxes, m.engines, m.postgres_url, m.platforms).await,
        Cmd::Scale(m) => scale_bench::scale(m.boxes, m.engines, m.postgres_url, m.platforms).await,
        Cmd::Read {
            boxes,
            seconds,
            rounds,
            engine,
            postgres_url,
        } => read_bench(boxes, seconds, rounds, &engine, postgres_url.as_deref()).await,
        Cmd::Bindings {
            boxes,
            bindings,
            engine,
            postgres_url,
        } => {
            bindings_bench::bindings_bench(boxes, bindings, &engine, postgres_url.as_deref()).await
        }
        Cmd::Live {
            boxes,
            subscribers,
            engine,
            postgres_url,
        } => live_bench::live_bench(boxes, subscribers, &engine, postgres_url.as_deref()).await,
        Cmd::Fanout {
            subscriptions,
            noise,
            events,
        } => fanout_bench::fanout_bench(subscriptions, noise, events).await,
        Cmd::FanoutClients {
            url,
            key,
            integration,
            sockets,
            per_socket,
            other,
            noise,
            events,
        } => {
            fanout_bench::fanout_clients(
                &url,
                &key,
                &integration,
                sockets,
                per_socket,
                &other,
                noise,
                events,
            )
            .await
        }
        Cmd::LiveClients {
            url,
            key,
            integration,
            n,
        } => live_bench::live_clients(&url, &key, &integration, n).await,
    }
}
