//! Benchmarks, run on demand (not in CI). Each measured phase runs in a child process of its own,
//! so its time and peak RSS are its alone; the simulator runs in another.
//!
//! ```sh
//! cargo bench --bench gateway -- sync --boxes 5000,20000 --engines sqlite,postgres
//! ```
//!
//! For each size and engine it measures, against the Geosite simulator over loopback HTTP:
//! - the baseline: the same records fetched and written with one plain multi-row insert per page,
//!   no diffing, no deletion tracking;
//! - a full sync by the engine, into a fresh database;
//! - an incremental sync after 1% of the records changed on the platform;
//!
//! and prints the ratios (full / baseline, incremental / full) and peak RSS as Markdown rows.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use futures::TryStreamExt;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use mapping_gateway::access::Actor;
use mapping_gateway::server::{self, Options};
use mapping_gateway::state::AppState;

/// Default options, with loopback admitted: the simulator listens there.
fn local_settings() -> Options {
    let mut settings = Options::default();
    settings.geosite.network = std::sync::Arc::new(
        mapping_gateway::outbound::NetworkPolicy::with_networks(&["127.0.0.0/8"])
            .expect("a valid CIDR"),
    );
    settings
}
use mapping_gateway::catalog::ElementItem;
use mapping_gateway::config::DbConfig;
use mapping_gateway::platform::{ListQuery, SplitterKind};
use mapping_gateway::sync::{self, Mode, RunRequest, Trigger};

#[derive(Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Full and incremental sync against the baseline.
    Sync {
        /// Project sizes, in boxes (the simulator puts 80% of them in the synced project).
        #[arg(long, value_delimiter = ',', default_value = "5000,20000")]
        boxes: Vec<usize>,
        /// Engines to measure.
        #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
        engines: Vec<String>,
        /// PostgreSQL server URL of a role that may create databases.
        #[arg(long, env = "BENCH_POSTGRES_URL")]
        postgres_url: Option<String>,
    },
    /// Read API: a 1,000-box tree against hand-written SQL, freePorts on a 20,000-box project,
    /// and HTTP throughput of `port(id)` under wrk.
    Read {
        /// Boxes in the synced project (the simulator gets 25% more).
        #[arg(long, default_value_t = 20000)]
        boxes: usize,
        /// Seconds of each wrk run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
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
        /// `baseline`, `full` or `incremental`.
        kind: String,
        #[arg(long)]
        sim: String,
        #[arg(long)]
        db: String,
        #[arg(long)]
        master_key: String,
    },
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` adds `--bench` to a harness-less benchmark's arguments.
    match Cli::parse_from(std::env::args().filter(|a| a != "--bench")).command {
        Cmd::Simulate { port, boxes } => {
            let sim = mapping_gateway::simulator::spawn(
                mapping_gateway::simulator::SimConfig {
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
            let mut state = server::open_with(&config, local_settings()).await?;
            // BENCH_PROFILE=1 prints where the database time went, by statement shape.
            let profile: std::sync::Arc<
                std::sync::Mutex<std::collections::HashMap<String, (u32, Duration)>>,
            > = Default::default();
            if std::env::var("BENCH_PROFILE").is_ok() {
                let sink = profile.clone();
                state.db.set_metric_callback(move |info| {
                    let sql = info.statement.sql.chars().take(70).collect::<String>();
                    let mut map = sink.lock().unwrap();
                    let entry = map.entry(sql).or_default();
                    entry.0 += 1;
                    entry.1 += info.elapsed;
                });
            }
            let started = Instant::now();
            let counts = match kind.as_str() {
                "baseline" => baseline(&state, &sim).await?,
                "full" => engine_run(&state, &sim, Mode::Full).await?,
                "incremental" => engine_run(&state, &sim, Mode::Incremental).await?,
                other => anyhow::bail!("unknown phase {other}"),
            };
            let secs = started.elapsed().as_secs_f64();
            let mut shapes: Vec<_> = profile.lock().unwrap().clone().into_iter().collect();
            shapes.sort_by_key(|s| std::cmp::Reverse(s.1 .1));
            for (sql, (n, t)) in shapes.iter().take(8) {
                eprintln!(
                    "  [{kind}] {n:>6} x {:>8.1} ms  {sql}",
                    t.as_secs_f64() * 1000.0
                );
            }
            println!(
                "{}",
                json!({ "secs": secs, "peak_rss_kb": peak_rss_kb(), "counts": counts })
            );
            Ok(())
        }
        Cmd::Sync {
            boxes,
            engines,
            postgres_url,
        } => orchestrate(boxes, engines, postgres_url).await,
        Cmd::Read { boxes, seconds } => read_bench(boxes, seconds).await,
    }
}

/// Makes (or finds) the benchmark integration, linked to project 1 of the simulator.
async fn integration(state: &AppState, sim: &str) -> anyhow::Result<i64> {
    let actor = Actor::system("bench");
    if let Some(row) = mapping_gateway::integrations::list(&state.db)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
        .into_iter()
        .next()
    {
        return Ok(row.id);
    }
    let row = mapping_gateway::integrations::create(
        &state.db,
        &state.master,
        &state.settings.network,
        &actor,
        mapping_gateway::integrations::NewIntegration {
            name: "bench".into(),
            gateway: mapping_gateway::gateways::GatewayKind::Geosite,
            api_url: sim.into(),
            username: "integracao".into(),
            password: "geosite".into(),
        },
        (
            mapping_gateway::schedule::DEFAULT_CRON,
            mapping_gateway::schedule::DEFAULT_TIMEZONE,
        ),
    )
    .await
    .map_err(mapping_gateway::Error::into_anyhow)?;
    mapping_gateway::projects::set(
        state,
        &actor,
        row.id,
        mapping_gateway::projects::ProjectChoice::Existing("1".into()),
    )
    .await
    .map_err(mapping_gateway::Error::into_anyhow)?;
    Ok(row.id)
}

async fn engine_run(state: &AppState, sim: &str, mode: Mode) -> anyhow::Result<Value> {
    let id = integration(state, sim).await?;
    let run = sync::start(
        state,
        &Actor::system("bench"),
        id,
        RunRequest {
            mode,
            trigger: Trigger::Manual,
            allow_mass_deletion: false,
            element_fid: None,
            scheduled_for: None,
        },
    )
    .await
    .map_err(mapping_gateway::Error::into_anyhow)?;
    state.runner.idle().await;
    let done = sync::find(&state.db, run.id)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;
    anyhow::ensure!(
        done.status == mapping_gateway::sync::SyncStatus::Succeeded,
        "run {} ended {}: {:?}",
        done.id,
        done.status,
        done.error_message
    );
    Ok(json!({
        "fetched": done.fetched, "created": done.created, "updated": done.updated,
        "deleted": done.deleted, "unchanged": done.unchanged,
    }))
}

/// The baseline: fetch the same listings, insert every page with one plain multi-row INSERT.
async fn baseline(state: &AppState, sim: &str) -> anyhow::Result<Value> {
    use entity::{element, port, splitter};
    let id = integration(state, sim).await?;
    let project = mapping_gateway::projects::of(&state.db, id)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
        .expect("project");
    let row = mapping_gateway::integrations::find(&state.db, id)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;
    let platform = state
        .platform(&row)
        .map_err(mapping_gateway::Error::into_anyhow)?;
    let query = ListQuery {
        project_id: Some(project.remote_id.clone()),
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let mut written = 0u64;
    let mut listing = platform.elements(ElementItem::Cto, query.clone());
    while let Some(page) = listing
        .try_next()
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
    {
        let rows: Vec<element::ActiveModel> = page
            .records
            .into_iter()
            .map(|r| element::ActiveModel {
                integration_id: Set(id),
                project_id: Set(project.id),
                item: Set("CTO".into()),
                fid_num: Set(r.fid.parse().ok()),
                fid: Set(r.fid),
                name: Set(r.name),
                latitude: Set(r.latitude),
                longitude: Set(r.longitude),
                remote_updated_at: Set(r.updated_at),
                synced_at: Set(now),
                ..Default::default()
            })
            .collect();
        written += rows.len() as u64;
        if !rows.is_empty() {
            element::Entity::insert_many(rows).exec(&state.db).await?;
        }
    }
    let mut listing = platform.splitters(query.clone());
    while let Some(page) = listing
        .try_next()
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
    {
        let rows: Vec<splitter::ActiveModel> = page
            .records
            .into_iter()
            .filter(|r| r.kind == SplitterKind::Service)
            .map(|r| splitter::ActiveModel {
                integration_id: Set(id),
                project_id: Set(project.id),
                fid_num: Set(r.fid.parse().ok()),
                fid: Set(r.fid),
                name: Set(r.name),
                kind: Set(SplitterKind::Service),
                ratio: Set(r.ratio),
                port_count: Set(r.port_count),
                box_fid: Set(r.box_fid),
                element_id: Set(None),
                remote_updated_at: Set(r.updated_at),
                synced_at: Set(now),
                ..Default::default()
            })
            .collect();
        written += rows.len() as u64;
        if !rows.is_empty() {
            splitter::Entity::insert_many(rows).exec(&state.db).await?;
        }
    }
    let ids: std::collections::HashMap<String, i64> = splitter::Entity::find()
        .filter(splitter::Column::IntegrationId.eq(id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|s| (s.fid, s.id))
        .collect();
    let mut listing = platform.ports(query);
    while let Some(page) = listing
        .try_next()
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
    {
        let rows: Vec<port::ActiveModel> = page
            .records
            .into_iter()
            .filter_map(|r| {
                let splitter_id = *ids.get(&r.splitter_fid)?;
                let c = r.customer.unwrap_or_default();
                Some(port::ActiveModel {
                    integration_id: Set(id),
                    project_id: Set(project.id),
                    splitter_id: Set(splitter_id),
                    fid_num: Set(r.fid.parse().ok()),
                    fid: Set(r.fid),
                    number: Set(r.number),
                    status: Set(r.status),
                    customer_contract: Set(c.contract),
                    customer_document: Set(c.document),
                    customer_name: Set(c.name),
                    remote_updated_at: Set(r.updated_at),
                    synced_at: Set(now),
                    ..Default::default()
                })
            })
            .collect();
        written += rows.len() as u64;
        if !rows.is_empty() {
            port::Entity::insert_many(rows).exec(&state.db).await?;
        }
    }
    Ok(json!({ "written": written }))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn fresh_db(engine: &str, pg: Option<&str>, tag: &str) -> anyhow::Result<String> {
    match engine {
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!("mgw-bench-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            Ok(format!("sqlite://{}", dir.join("bench.db").display()))
        }
        "postgres" => {
            let base = pg.ok_or_else(|| anyhow::anyhow!("set BENCH_POSTGRES_URL for postgres"))?;
            let admin = sea_orm::Database::connect(base).await?;
            let name = format!("mgw_bench_{tag}");
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                .await?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
            Ok(format!("{prefix}/{name}"))
        }
        other => anyhow::bail!("unknown engine {other}"),
    }
}

fn phase(kind: &str, sim: &str, db: &str, key: &str) -> anyhow::Result<Value> {
    let out = Command::new(std::env::current_exe()?)
        .args(["phase", kind, "--sim", sim, "--db", db, "--master-key", key])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "phase {kind} failed");
    let line = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(
        line.lines().last().unwrap_or_default(),
    )?)
}

async fn orchestrate(
    sizes: Vec<usize>,
    engines: Vec<String>,
    pg: Option<String>,
) -> anyhow::Result<()> {
    let key = mapping_gateway::crypto::MasterKey::generate().1;
    println!("| boxes | engine | records | baseline s | full s | full/baseline | full peak RSS MiB | baseline peak RSS MiB | incremental s | incremental/full |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for boxes in sizes {
        let port = free_port();
        let mut child = Child(
            Command::new(std::env::current_exe()?)
                .args([
                    "simulate",
                    "--port",
                    &port.to_string(),
                    "--boxes",
                    &boxes.to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()?,
        );
        let stdout = child.0.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let ready = lines.next().transpose()?.unwrap_or_default();
        let sim = ready
            .strip_prefix("ready ")
            .ok_or_else(|| anyhow::anyhow!("simulator did not start: {ready}"))?
            .to_owned();
        for engine in &engines {
            let db = fresh_db(engine, pg.as_deref(), &format!("base_{boxes}")).await?;
            let base = phase("baseline", &sim, &db, &key)?;
            let db = fresh_db(engine, pg.as_deref(), &format!("full_{boxes}")).await?;
            let full = phase("full", &sim, &db, &key)?;
            let client = reqwest::Client::new();
            for feature in ["cto", "splitter", "portaSplitter"] {
                client
                    .post(format!("{sim}/_sim/touch"))
                    .json(&json!({ "feature": feature, "share": 0.01 }))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            // Let the touched records' time move past the platform clock's second.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let incr = phase("incremental", &sim, &db, &key)?;
            let secs = |v: &Value| v["secs"].as_f64().unwrap_or(0.0);
            let mib = |v: &Value| v["peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0;
            println!(
                "| {boxes} | {engine} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.2} | {:.3} |",
                base["counts"]["written"],
                secs(&base),
                secs(&full),
                secs(&full) / secs(&base),
                mib(&full),
                mib(&base),
                secs(&incr),
                secs(&incr) / secs(&full),
            );
            eprintln!(
                "  full: {}  incremental: {}",
                full["counts"], incr["counts"]
            );
        }
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p95(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

/// The tree of the first `n` elements, read with joins and shaped like the GraphQL answer.
async fn handwritten_tree(
    db: &sea_orm::DatabaseConnection,
    integration: i64,
    n: usize,
) -> anyhow::Result<String> {
    let sql = format!(
        "SELECT e.id AS eid, e.fid AS efid, e.name AS ename, s.id AS sid, s.fid AS sfid, s.kind AS kind, \
                p.number AS number, p.status AS status, b.id AS bid \
         FROM elements e \
         LEFT JOIN splitters s ON s.element_id = e.id \
         LEFT JOIN ports p ON p.splitter_id = s.id \
         LEFT JOIN bindings b ON b.port_id = p.id AND b.status IN ('PENDING', 'CONFIRMED') \
         WHERE e.id IN (SELECT id FROM elements WHERE integration_id = {integration} ORDER BY id LIMIT {n}) \
         ORDER BY e.id, s.fid_num, s.fid, p.number"
    );
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await?;
    let mut edges: Vec<Value> = Vec::new();
    let (mut last_e, mut last_s) = (None::<i64>, None::<i64>);
    for row in rows {
        let eid: i64 = row.try_get("", "eid")?;
        if last_e != Some(eid) {
            edges.push(json!({ "node": { "fid": row.try_get::<String>("", "efid")?, "name": row.try_get::<String>("", "ename")?, "splitters": [] } }));
            last_e = Some(eid);
            last_s = None;
        }
        let Some(sid) = row.try_get::<Option<i64>>("", "sid")? else {
            continue;
        };
        let splitters = edges.last_mut().unwrap()["node"]["splitters"]
            .as_array_mut()
            .unwrap();
        if last_s != Some(sid) {
            splitters.push(json!({ "fid": row.try_get::<String>("", "sfid")?, "kind": row.try_get::<String>("", "kind")?, "ports": [] }));
            last_s = Some(sid);
        }
        if let Some(number) = row.try_get::<Option<i32>>("", "number")? {
            let bid: Option<i64> = row.try_get("", "bid")?;
            splitters.last_mut().unwrap()["ports"]
                .as_array_mut()
                .unwrap()
                .push(json!({
                    "number": number, "status": row.try_get::<String>("", "status")?,
                    "binding": bid.map(|b| json!({ "id": b })),
                }));
        }
    }
    Ok(serde_json::to_string(
        &json!({ "data": { "elements": { "edges": edges } } }),
    )?)
}

fn wrk(url: &str, script: &str, seconds: u64) -> anyhow::Result<f64> {
    let path = std::env::temp_dir().join(format!("mgw-wrk-{}.lua", std::process::id()));
    std::fs::write(&path, script)?;
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "-s"])
        .arg(&path)
        .arg(url)
        .output()
        .map_err(|e| anyhow::anyhow!("wrk is needed (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("Requests/sec:")
                .map(|v| v.trim().parse::<f64>())
        })
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk output: {text}"))?
        .map_err(Into::into)
}

async fn read_bench(boxes: usize, seconds: u64) -> anyhow::Result<()> {
    use mapping_gateway::access::{self, Role};
    let port = free_port();
    let mut child = Child(
        Command::new(std::env::current_exe()?)
            .args([
                "simulate",
                "--port",
                &port.to_string(),
                "--boxes",
                &(boxes * 5 / 4).to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let ready = std::io::BufReader::new(stdout)
        .lines()
        .next()
        .transpose()?
        .unwrap_or_default();
    let sim = ready
        .strip_prefix("ready ")
        .ok_or_else(|| anyhow::anyhow!("simulator: {ready}"))?
        .to_owned();
    let db = fresh_db("sqlite", None, "read").await?;
    let config = DbConfig {
        database_url: db,
        master_key: Some(mapping_gateway::crypto::MasterKey::generate().1),
    };
    let state = server::open_with(&config, local_settings()).await?;
    let id = integration(&state, &sim).await?;
    mapping_gateway::selection::set(
        &state.db,
        &Actor::system("bench"),
        id,
        &[ElementItem::Service, ElementItem::Cto, ElementItem::Ceo],
    )
    .await
    .map_err(mapping_gateway::Error::into_anyhow)?;
    let started = Instant::now();
    engine_run(&state, &sim, Mode::Full).await?;
    let elements = mapping_gateway::store::plant::count(&state.db, "elements", "1 = 1")
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;
    let ports = mapping_gateway::store::plant::count(&state.db, "ports", "1 = 1")
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;
    eprintln!(
        "synced {elements} boxes, {ports} ports in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(child);

    let limits = mapping_gateway::config::Limits {
        max_complexity: 10_000_000,
        ..Default::default()
    };
    let schema = mapping_gateway::graphql::schema_builder(&limits)
        .data(state.clone())
        .finish();
    let admin = Actor {
        key_id: None,
        name: "bench".into(),
        role: Role::Admin,
    };
    let gid = mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::INTEGRATION, id);
    let page = |after: Option<String>| json!({ "i": gid, "after": after });
    // The cursor after the first 500 elements, for the second half of the 1,000-box tree.
    let first = schema
        .execute(async_graphql::Request::new("query($i: ID!) { elements(integrationId: $i, first: 500) { pageInfo { endCursor } } }")
            .variables(async_graphql::Variables::from_json(page(None)))
            .data(admin.clone()))
        .await;
    let cursor = first.data.into_json()?["elements"]["pageInfo"]["endCursor"]
        .as_str()
        .map(str::to_owned);
    let tree = "query($i: ID!, $after: String) {
      a: elements(integrationId: $i, first: 500) { edges { node { fid name splitters { fid kind ports { number status binding { id } } } } } }
      b: elements(integrationId: $i, first: 500, after: $after) { edges { node { fid name splitters { fid kind ports { number status binding { id } } } } } }
    }";
    let (mut gql, mut base) = (Vec::new(), Vec::new());
    let mut sizes = (0, 0);
    for _ in 0..15 {
        let t = Instant::now();
        let response = schema
            .execute(
                async_graphql::Request::new(tree)
                    .variables(async_graphql::Variables::from_json(page(cursor.clone())))
                    .data(admin.clone()),
            )
            .await;
        anyhow::ensure!(response.errors.is_empty(), "{:?}", response.errors);
        sizes.0 = serde_json::to_string(&response)?.len();
        gql.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        sizes.1 = handwritten_tree(&state.db, id, 1000).await?.len();
        base.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("| tree of 1,000 boxes | gateway {:.1} ms | hand-written SQL {:.1} ms | ratio {:.2} | JSON {} vs {} bytes |",
        median(gql.clone()), median(base.clone()), median(gql) / median(base), sizes.0, sizes.1);

    let mut rng_state = 12345u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        (rng_state % 1_000_000) as f64 / 1_000_000.0
    };
    let (min_lat, min_lng, max_lat, max_lng) = mapping_gateway::simulator::network::CITY_BBOX;
    for radius in [200.0, 1000.0] {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..200 {
            let lat = min_lat + next() * (max_lat - min_lat);
            let lng = min_lng + next() * (max_lng - min_lng);
            let t = Instant::now();
            let hits =
                mapping_gateway::store::lookup::free_ports(&state.db, id, lat, lng, radius, 10)
                    .await
                    .map_err(mapping_gateway::Error::into_anyhow)?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            found += hits.len();
        }
        println!("| freePorts, {elements} boxes, radius {radius} m | median {:.2} ms | p95 {:.2} ms | {:.1} ports found on average |",
            median(times.clone()), p95(times), found as f64 / 200.0);
    }

    let key = access::create_key(&state.db, "bench", Role::Viewer)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
        .secret;
    let router = mapping_gateway::http::router(state.clone(), &Default::default(), false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let port_row = entity::port::Entity::find()
        .one(&state.db)
        .await?
        .expect("a port");
    let pid =
        mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::PORT, port_row.id);
    let body = json!({ "query": "query($p: ID!) { port(id: $p) { id number status } }", "variables": { "p": pid } }).to_string();
    let script = format!(
        "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {key}\"\n"
    );
    let health = wrk(&format!("http://{addr}/healthz"), "", seconds)?;
    let graphql = wrk(&format!("http://{addr}/graphql"), &script, seconds)?;
    println!("| HTTP, wrk -t2 -c32, {seconds} s | port(id) {graphql:.0} req/s | /healthz {health:.0} req/s | ratio {:.2} |", graphql / health);
    Ok(())
}
