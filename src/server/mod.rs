//! Start-up: open the database, resolve the master key, ensure keys, build the platform
//! registry, serve, run the demo, shut down. The only place that wires concrete parts.

pub mod cli;
pub mod demo;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::access;
use crate::config::{DbConfig, ServeConfig};
use crate::crypto::{self, MasterKey};
use crate::db::{self, Engine};
use crate::gateways::GatewayKind;
use crate::platform::Registry;
use crate::state::{AppState, Settings};

/// What start-up is given: the platform clients' options (their network policy is also what
/// integrations are checked against) and the sync tunables.
#[derive(Clone, Debug)]
pub struct Options {
    /// Timeouts, retries, page size and network policy of the platform clients.
    pub platform: crate::transport::ClientOptions,
    /// Overlap, mass-deletion share, heartbeats, schedule defaults.
    pub sync: crate::sync::SyncSettings,
    /// Lease and give-up horizon of deliveries to the platform.
    pub delivery: crate::bindings::outbox::Delivery,
    /// This instance's clock (offset only in tests of instances whose clocks disagree).
    pub clock: crate::clock::LocalClock,
    /// Apply pending migrations when opening (`serve`, unless `MIGRATE_ON_START=false`); else a
    /// database with pending migrations is refused.
    pub migrate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            platform: Default::default(),
            sync: Default::default(),
            delivery: Default::default(),
            clock: Default::default(),
            migrate: true,
        }
    }
}

impl Options {
    /// The platform registry: the one place that names the implementations.
    fn registry(&self) -> Registry {
        Registry::default()
            .with(
                GatewayKind::Geosite,
                Arc::new(crate::geosite::GeositeConnector(self.platform.clone())),
            )
            .with(
                GatewayKind::Ozmap,
                Arc::new(crate::ozmap::OzmapConnector(self.platform.clone())),
            )
    }
}

/// Finds the master key: `MASTER_KEY`, else (SQLite file only) the key file beside the database.
pub fn resolve_master_key(config: &DbConfig) -> anyhow::Result<MasterKey> {
    if let Some(text) = &config.master_key {
        return MasterKey::from_base64(text);
    }
    match Engine::of(&config.database_url)? {
        Engine::Postgres => anyhow::bail!(
            "MASTER_KEY is required with PostgreSQL: set it to base64 of 32 random bytes \
             (e.g. `openssl rand -base64 32`) and keep it safe"
        ),
        Engine::Sqlite => match db::sqlite_file(&config.database_url) {
            None => {
                tracing::warn!(
                    "no MASTER_KEY with an in-memory database: using a throwaway key for this run"
                );
                Ok(MasterKey::generate().0)
            }
            Some(path) => {
                let key_path = crypto::key_file_for(&path);
                let (key, created) = MasterKey::load_or_create(&key_path).map_err(|e| {
                    anyhow::anyhow!("cannot use master key file {}: {e}", key_path.display())
                })?;
                if created {
                    tracing::info!(
                        path = %key_path.display(),
                        "generated a master key file (mode 0600); back it up with the database"
                    );
                }
                Ok(key)
            }
        },
    }
}

/// Refuses a master key that does not open the database's secrets, naming where it came from.
pub async fn check_master_key(
    config: &DbConfig,
    db: &sea_orm::DatabaseConnection,
    master: &MasterKey,
) -> anyhow::Result<()> {
    crate::master_key::ensure(db, master)
        .await
        .map_err(|e| match e {
            crate::Error::MasterKeyMismatch => anyhow::anyhow!(
                "{} does not open this database's secrets: it is not the key they were stored \
                 with. Start with that key (docs/OPERATIONS.md, \"The master key\")",
                master_key_source(config)
            ),
            other => anyhow::anyhow!("cannot check the master key: {}", other.for_log()),
        })
}

/// Where the master key was read: `MASTER_KEY`, or the key file beside the SQLite database.
pub fn master_key_source(config: &DbConfig) -> String {
    match (&config.master_key, db::sqlite_file(&config.database_url)) {
        (None, Some(path)) => format!(
            "the master key file {}",
            crypto::key_file_for(&path).display()
        ),
        _ => "MASTER_KEY".to_owned(),
    }
}

/// Connects and resolves the master key, with default options, for a command that does its
/// work and exits: no push is delivered from it, and a database with pending migrations is
/// refused.
pub async fn open(config: &DbConfig) -> anyhow::Result<AppState> {
    let options = Options {
        migrate: false,
        ..Default::default()
    };
    open_state(config, options, false).await
}

/// Only the database, for commands that read or write no secret (`keys`, `integrations list`):
/// no `MASTER_KEY` needed, and a database with pending migrations is refused.
pub async fn open_database(config: &DbConfig) -> anyhow::Result<sea_orm::DatabaseConnection> {
    Engine::of(&config.database_url)?;
    let db = db::connect(&config.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    db::require_current(&db).await?;
    Ok(db)
}

/// `migrate`: applies pending migrations; needs no `MASTER_KEY`.
pub async fn migrate(config: &DbConfig) -> anyhow::Result<()> {
    Engine::of(&config.database_url)?;
    let db = db::connect(&config.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    db::migrate(&db)
        .await
        .map_err(|e| anyhow::anyhow!("cannot migrate the database: {e:#}"))
}

/// Connects, migrates and resolves the master key, and starts what runs beside the requests:
/// the event relay between instances, the key watch and the push outbox's worker.
pub async fn open_with(config: &DbConfig, options: Options) -> anyhow::Result<AppState> {
    open_state(config, options, true).await
}

/// Like [`open`], and this instance's run events also reach the other instances' subscribers
/// (PostgreSQL): for `sync` from the command line.
pub async fn open_relaying(config: &DbConfig, options: Options) -> anyhow::Result<AppState> {
    let options = Options {
        migrate: false,
        ..options
    };
    let instance = options.sync.instance_id.clone();
    let state = open_state(config, options, false).await?;
    crate::events::relay::start_outbound(&state.db, state.events.clone(), instance);
    Ok(state)
}

async fn open_state(
    config: &DbConfig,
    options: Options,
    background: bool,
) -> anyhow::Result<AppState> {
    Engine::of(&config.database_url)?;
    let master = resolve_master_key(config)?;
    let db = db::connect(&config.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    if options.migrate {
        db::migrate(&db)
            .await
            .map_err(|e| anyhow::anyhow!("cannot migrate the database: {e:#}"))?;
    } else {
        db::require_current(&db).await?;
    }
    check_master_key(config, &db, &master).await?;
    let events = Arc::new(crate::events::Bus::with_capacity(options.sync.event_buffer));
    let keys = Arc::new(crate::access::KeyWatch::default());
    if background {
        crate::events::relay::start(&db, events.clone(), options.sync.instance_id.clone())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen for events of other instances: {}",
                    e.message()
                )
            })?;
        keys.spawn(db.clone(), &events);
    }
    let points = crate::store::point::PointReads::open(&db)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open point reads: {}", e.message()))?
        .map(Arc::new);
    let state = AppState {
        db,
        points,
        master,
        events,
        keys,
        outbox: Arc::default(),
        platforms: Arc::new(options.registry()),
        settings: Arc::new(Settings {
            sync: options.sync,
            network: options.platform.network,
            delivery: options.delivery,
            clock: options.clock,
        }),
        runner: Arc::new(crate::sync::Runner::default()),
    };
    if background {
        crate::bindings::outbox::spawn(state.clone());
    }
    Ok(state)
}

/// Runs the HTTP server until SIGINT/SIGTERM. Shutdown stops accepting, cancels syncs in
/// flight (recorded as CANCELLED) and waits for requests, at most `SHUTDOWN_TIMEOUT_SECS` in all;
/// then it returns anyway.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // Installed first: a SIGTERM from here on is a graceful shutdown, never the default kill.
    let signal = shutdown_signal();
    crate::schedule::parse_cron(&config.sync.cron).map_err(|e| {
        anyhow::anyhow!(
            "SYNC_CRON (--sync-cron) {:?}: {}; e.g. SYNC_CRON=\"0 4 * * *\" for 04:00 every day",
            config.sync.cron,
            e.message()
        )
    })?;
    crate::schedule::parse_zone(&config.sync.timezone).map_err(|e| {
        anyhow::anyhow!(
            "SYNC_TIMEZONE (--sync-timezone): {}; e.g. SYNC_TIMEZONE=America/Sao_Paulo",
            e.message()
        )
    })?;
    anyhow::ensure!(
        (0.0..=1.0).contains(&config.sync.mass_deletion_share),
        "MASS_DELETION_SHARE must be between 0 and 1"
    );
    db::claim_sqlite_file(&config.db.database_url)?;
    let mut network =
        crate::outbound::NetworkPolicy::with_networks(&config.allowed_platform_networks)?;
    // The demo's simulator listens on loopback, which the policy refuses: admit exactly it.
    let simulator = if config.demo {
        let platform = crate::simulator::SimPlatform::parse(&config.demo_platform)
            .ok_or_else(|| anyhow::anyhow!("unknown demo platform {:?}", config.demo_platform))?;
        let sim = demo::spawn_simulator(config.demo_boxes, platform).await?;
        network.admit_socket(sim.addr);
        Some(sim)
    } else {
        None
    };
    let options = Options {
        sync: crate::sync::SyncSettings {
            overlap: Duration::from_secs(config.sync.overlap_secs),
            mass_deletion_share: config.sync.mass_deletion_share,
            requests_in_flight: config.sync.requests_in_flight.max(1),
            time_budget: Duration::from_secs(config.sync.time_budget_secs.max(1)),
            catch_up: config
                .sync
                .catch_up
                .max(crate::sync::scheduler::MIN_CATCH_UP),
            default_cron: config.sync.cron.clone(),
            default_timezone: config.sync.timezone.clone(),
            ..Default::default()
        },
        platform: crate::transport::ClientOptions {
            network: Arc::new(network),
            max_body_bytes: config.platform_max_body_bytes,
            ..Default::default()
        },
        delivery: crate::bindings::outbox::Delivery {
            lease: Duration::from_secs(config.delivery_lease_secs.max(3)),
            give_up_after: Duration::from_secs_f64(config.delivery_give_up_hours.max(0.0) * 3600.0),
        },
        clock: crate::clock::LocalClock::offset_by(chrono::Duration::seconds(
            config.clock_offset_secs,
        )),
        migrate: config.migrate_on_start,
    };
    let state = open_with(&config.db, options).await?;
    if let Some(secret) = &config.admin_api_key {
        access::ensure_admin_secret(&state.db, secret)
            .await
            .map_err(crate::Error::into_anyhow)?;
    }
    let demo_key = match &simulator {
        Some(sim) => {
            Some(demo::start(&state, sim, &config.db, config.demo_key_file.as_ref()).await?)
        }
        None => None,
    };
    if let Some(new) = access::bootstrap_admin(&state.db)
        .await
        .map_err(crate::Error::into_anyhow)?
    {
        // Printed once, to stdout only, so a newcomer can start at once; it is never logged.
        println!(
            "Created the first ADMIN API key (shown only now, keep it):\n\n    {}\n\n\
             Send it as `Authorization: Bearer <key>`.",
            new.secret
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let signalled = tokio_util::sync::CancellationToken::new();
    let sockets = tokio_util::task::TaskTracker::new();
    let surface = crate::http::Surface {
        graphiql: config.graphiql,
        base_path: config.base_path.clone(),
        metrics_token: config.metrics_token.clone(),
        cors_allowed_origins: config.cors_allowed_origins.clone(),
        access_log: config.access_log,
        going_away: signalled.clone(),
        sockets: sockets.clone(),
        socket_db: db::connect_sockets(&config.db.database_url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database for WebSockets: {e}"))?,
    };
    let router = crate::http::router(state.clone(), &config.limits, &surface);
    let stop = tokio_util::sync::CancellationToken::new();
    let scheduler = config.sync.scheduler.then(|| {
        tokio::spawn(crate::sync::scheduler::run(
            state.clone(),
            Arc::new(crate::sync::scheduler::SystemClock),
            stop.clone(),
        ))
    });
    let sweeper = tokio::spawn(crate::sync::sweep_forever(state.clone(), stop.clone()));
    println!("GraphiQL: http://{addr}{}/graphql", config.base_path);
    if let Some(key) = &demo_key {
        // The key rides in the fragment, which the browser never sends: no page holds it.
        println!(
            "GraphiQL with the demo key: http://{addr}{}/graphql#key={key}",
            config.base_path
        );
    }
    tracing::info!(%addr, "listening");
    let server = crate::http::serve(listener, router, &config.limits, {
        let signalled = signalled.clone();
        async move {
            signal.await;
            signalled.cancel();
        }
    });
    tokio::pin!(server);
    let deadline = Duration::from_secs(config.shutdown_timeout_secs);
    // Until a signal, the server runs; after it, requests in flight get what is left of the
    // deadline while syncs are cancelled beside them. The server may also finish first (with
    // nothing in flight it drains at once), so its result is kept rather than polled again.
    let mut served = None;
    tokio::select! {
        result = &mut server => served = Some(result),
        () = signalled.cancelled() => {}
    }
    let started = tokio::time::Instant::now();
    stop.cancel();
    let drain = async {
        let requests = async {
            let result = match served.take() {
                Some(result) => result,
                None => (&mut server).await,
            };
            // WebSockets outlive their connection's graceful end: wait for their close frames.
            sockets.close();
            sockets.wait().await;
            result
        };
        let syncs = async {
            if let Some(task) = scheduler {
                let _ = task.await;
            }
            let _ = sweeper.await;
            state.runner.shutdown(deadline).await;
        };
        tokio::join!(requests, syncs).0
    };
    match tokio::time::timeout(deadline, drain).await {
        Ok(result) => result?,
        Err(_) => tracing::warn!(
            deadline_secs = deadline.as_secs(),
            "requests still in flight at the shutdown deadline; exiting anyway"
        ),
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
    Ok(())
}

/// An integration's id as the API shows it, for what start-up and the commands print.
pub fn integration_api_id(id: i64) -> String {
    crate::ids::integration(id)
}

/// The database id of an integration id as the API shows it.
pub fn integration_from_api_id(text: &str) -> Option<i64> {
    crate::ids::decode_tagged(crate::ids::INTEGRATION, text)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: a signal that arrives in between must not kill the process the
/// default way.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut term, mut interrupt) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let interrupt = async {
                match interrupt.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = term => {},
                () = interrupt => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}
