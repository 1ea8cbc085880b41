//! What both benchmarks need: settings, the integration, processes, databases, ports.

use mapping_gateway::simulator::SimPlatform;
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use mapping_gateway::access::Actor;
use mapping_gateway::server::Options;
use mapping_gateway::state::AppState;
use mapping_gateway::sync::{self, Mode, RunRequest, Trigger};

/// Default options, with loopback admitted: the simulator listens there.
pub(crate) fn local_settings() -> Options {
    let mut settings = Options::default();
    settings.platform.network = std::sync::Arc::new(
        mapping_gateway::outbound::NetworkPolicy::with_networks(&["127.0.0.0/8"])
            .expect("a valid CIDR"),
    );
    settings
}

/// Database time by statement shape (the first 70 characters of its text), when
/// `BENCH_PROFILE` is set: what `BENCH_PROFILE=1` prints after a phase.
#[derive(Clone, Default)]
pub(crate) struct Profile(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Duration)>>>,
    /// With `BENCH_PROFILE=timeline`: each statement's end (since attached), time and text.
    std::sync::Arc<std::sync::Mutex<Vec<(std::time::Duration, std::time::Duration, String)>>>,
);

impl Profile {
    /// Starts recording `db`'s statements when `BENCH_PROFILE` is set.
    pub(crate) fn attach(db: &mut sea_orm::DatabaseConnection) -> Self {
        let profile = Self::default();
        if std::env::var("BENCH_PROFILE").is_ok() {
            let sink = profile.0.clone();
            let timeline = (std::env::var("BENCH_PROFILE").as_deref() == Ok("timeline"))
                .then(|| (profile.1.clone(), std::time::Instant::now()));
            db.set_metric_callback(move |info| {
                let sql = info.statement.sql.chars().take(70).collect::<String>();
                if let Some((lines, since)) = &timeline {
                    lines
                        .lock()
                        .unwrap()
                        .push((since.elapsed(), info.elapsed, sql.clone()));
                }
                let mut map = sink.lock().unwrap();
                let entry = map.entry(sql).or_default();
                entry.0 += 1;
                entry.1 += info.elapsed;
            });
        }
        profile
    }

    /// Forgets what was recorded so far.
    pub(crate) fn reset(&self) {
        self.0.lock().unwrap().clear();
        self.1.lock().unwrap().clear();
    }

    /// Prints the twelve shapes that took longest, tagged `kind`, and the time of all of them.
    pub(crate) fn print(&self, kind: &str) {
        let mut shapes: Vec<_> = self.0.lock().unwrap().clone().into_iter().collect();
        if shapes.is_empty() {
            return;
        }
        for (end, took, sql) in self.1.lock().unwrap().iter() {
            eprintln!(
                "  [{kind}] at {:>8.1} ms {:>7.1} ms  {sql}",
                (*end - *took).as_secs_f64() * 1000.0,
                took.as_secs_f64() * 1000.0
            );
        }
        shapes.sort_by_key(|s| std::cmp::Reverse(s.1 .1));
        let (n, t) = shapes
            .iter()
            .fold((0, std::time::Duration::ZERO), |(n, t), s| {
                (n + s.1 .0, t + s.1 .1)
            });
        eprintln!(
            "  [{kind}] {n:>6} x {:>8.1} ms  all statements",
            t.as_secs_f64() * 1000.0
        );
        for (sql, (n, t)) in shapes.iter().take(12) {
            eprintln!(
                "  [{kind}] {n:>6} x {:>8.1} ms  {sql}",
                t.as_secs_f64() * 1000.0
            );
        }
    }
}

pub(crate) fn peak_rss_kb() -> u64 {
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

/// Makes (or finds) the benchmark integration, linked to project 1 of the simulator.
/// The platform the benchmark's simulator plays: `BENCH_PLATFORM` (`geosite`, the default, or
/// `ozmap`), passed by the orchestrator to the processes it starts.
pub(crate) fn bench_platform() -> SimPlatform {
    std::env::var("BENCH_PLATFORM")
        .ok()
        .and_then(|p| SimPlatform::parse(&p))
        .unwrap_or_default()
}

/// The platform id of the simulator's first project.
fn first_project() -> String {
    match bench_platform() {
        SimPlatform::Geosite => "1".into(),
        SimPlatform::Ozmap => mapping_gateway::simulator::ozmap::records::oid(
            mapping_gateway::simulator::ozmap::records::Tag::Plain,
            1,
        ),
    }
}

pub(crate) async fn integration(state: &AppState, sim: &str) -> anyhow::Result<i64> {
    let actor = Actor::system("bench");
    if let Some(row) = mapping_gateway::integrations::list(&state.db)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
        .into_iter()
        .next()
    {
        return Ok(row.id);
    }
    let row = create_integration(state, sim, "bench").await?;
    mapping_gateway::projects::set(
        state,
        &actor,
        row.id,
        mapping_gateway::projects::ProjectChoice::Existing(first_project()),
    )
    .await
    .map_err(mapping_gateway::Error::into_anyhow)?;
    Ok(row.id)
}

/// An integration named `name` on the simulator at `sim` (of the benchmark's platform), not
/// linked to a project.
pub(crate) async fn create_integration(
    state: &AppState,
    sim: &str,
    name: &str,
) -> anyhow::Result<entity::integration::Model> {
    mapping_gateway::integrations::create(
        &state.db,
        &state.master,
        &state.settings.network,
        &Actor::system("bench"),
        mapping_gateway::integrations::NewIntegration {
            name: name.into(),
            gateway: mapping_gateway::gateways::GatewayKind::parse(bench_platform().gateway())
                .expect("a gateway kind"),
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
    .map_err(mapping_gateway::Error::into_anyhow)
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Child(pub(crate) std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn fresh_db(engine: &str, pg: Option<&str>, tag: &str) -> anyhow::Result<String> {
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

pub(crate) async fn engine_run(state: &AppState, sim: &str, mode: Mode) -> anyhow::Result<Value> {
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

/// Starts the simulator (this binary's `simulate` mode) with `boxes` boxes on a free port;
/// returns the process and its URL once it is ready.
pub(crate) fn spawn_simulator(boxes: usize) -> anyhow::Result<(Child, String)> {
    spawn_simulator_on(boxes, bench_platform())
}

/// [`spawn_simulator`] playing `platform`.
pub(crate) fn spawn_simulator_on(
    boxes: usize,
    platform: SimPlatform,
) -> anyhow::Result<(Child, String)> {
    use std::io::BufRead;
    let port = free_port();
    let mut child = Child(
        std::process::Command::new(std::env::current_exe()?)
            .args([
                "simulate",
                "--port",
                &port.to_string(),
                "--boxes",
                &boxes.to_string(),
            ])
            .env("BENCH_PLATFORM", platform.name().to_ascii_lowercase())
            .stdout(std::process::Stdio::piped())
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
        .ok_or_else(|| anyhow::anyhow!("simulator did not start: {ready}"))?
        .to_owned();
    Ok((child, sim))
}
