//! Test harness: a fresh database per test (SQLite always, PostgreSQL when `TEST_POSTGRES_URL`
//! is set), the real router on an ephemeral port, and a GraphQL client.
#![allow(dead_code)]

pub mod bindings;
mod database;
mod logs;
mod macros;
pub mod ozmap;
mod platform;
mod process;
pub mod served;
mod tcp;
pub mod world;
mod ws;

// Each suite uses part of the harness; the rest would warn as unused in it.
#[allow(unused_imports)]
pub use database::*;
#[allow(unused_imports)]
pub use logs::*;
#[allow(unused_imports)]
pub use platform::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use tcp::*;
pub use ws::*;

use std::sync::Arc;

use mapping_gateway::access::{self, Role};
use mapping_gateway::config::{DbConfig, Limits};
use mapping_gateway::server;
use mapping_gateway::state::AppState;
use serde_json::{json, Value};

/// What the suite's client accepts, as the GraphQL-over-HTTP spec recommends: the GraphQL
/// response media type first (request errors answer 400 in it), plain JSON after.
pub const ACCEPT: &str = "application/graphql-response+json, application/json;q=0.9";

/// A policy admitting loopback, where the tests' simulators and mock platforms listen.
pub fn loopback_allowed() -> Arc<mapping_gateway::outbound::NetworkPolicy> {
    Arc::new(mapping_gateway::outbound::NetworkPolicy::with_networks(&["127.0.0.0/8"]).unwrap())
}

/// Settings for tests: small pages (so listings span many pages) and quick retries.
pub fn test_settings() -> server::Options {
    server::Options {
        platform: mapping_gateway::transport::ClientOptions {
            page_size: 40,
            min_delay: std::time::Duration::from_millis(10),
            max_delay: std::time::Duration::from_millis(50),
            max_attempts: 3,
            deadline: std::time::Duration::from_secs(20),
            network: loopback_allowed(),
            ..Default::default()
        },
        sync: mapping_gateway::sync::SyncSettings {
            heartbeat_every: std::time::Duration::from_millis(200),
            // An event for every page, so that the live tests see each one.
            progress_every: std::time::Duration::ZERO,
            ..Default::default()
        },
        delivery: Default::default(),
        clock: Default::default(),
        migrate: true,
    }
}

/// A running gateway on an ephemeral port.
pub struct TestApp {
    pub engine: Engine,
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub db_config: DbConfig,
    pub state: AppState,
    pub admin_key: String,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    /// The pool operations over WebSockets use (`None` for in-memory SQLite).
    pub socket_db: Option<sea_orm::DatabaseConnection>,
    /// False for a second instance on another's database (`beside`): the first drops it.
    owns_database: bool,
    /// The platform its simulators play (`linked_simulator`).
    pub platform: mapping_gateway::simulator::SimPlatform,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if !self.owns_database {
            return;
        }
        match self.engine {
            Engine::Postgres => drop_database(&self.db_config.database_url),
            // The test's own folder, with the database, its WAL and its master key file.
            Engine::Sqlite => {
                if let Some(dir) = self
                    .db_config
                    .database_url
                    .strip_prefix("sqlite://")
                    .and_then(|path| std::path::Path::new(path).parent())
                    .filter(|dir| dir.starts_with(std::env::temp_dir()))
                {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
}

impl TestApp {
    /// Starts the gateway with the default limits.
    pub async fn start(engine: Engine) -> Option<TestApp> {
        Self::start_with(engine, Limits::default()).await
    }

    /// Starts the gateway with the given limits.
    pub async fn start_with(engine: Engine, limits: Limits) -> Option<TestApp> {
        Self::start_inner(engine, limits, test_settings(), None).await
    }

    /// Starts the gateway with the given limits and settings.
    pub async fn start_configured(
        engine: Engine,
        limits: Limits,
        settings: server::Options,
    ) -> Option<TestApp> {
        Self::start_inner(engine, limits, settings, None).await
    }

    /// Starts the gateway counting every SQL statement it sends into `counter`.
    pub async fn start_counting(
        engine: Engine,
        limits: Limits,
        counter: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Option<TestApp> {
        Self::start_inner(engine, limits, test_settings(), Some(counter)).await
    }

    async fn start_inner(
        engine: Engine,
        limits: Limits,
        settings: server::Options,
        counter: Option<Arc<std::sync::atomic::AtomicUsize>>,
    ) -> Option<TestApp> {
        logs::log_buffer();
        let db_config = fresh_database(engine).await?;
        let mut state = server::open_with(&db_config, settings)
            .await
            .expect("open database");
        if let Some(counter) = counter {
            state.db.set_metric_callback(move |info| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if std::env::var("SHOW_SQL").is_ok() {
                    eprintln!(
                        "SQL {}",
                        info.statement.sql.chars().take(100).collect::<String>()
                    );
                }
            });
        }
        let admin_key = access::create_key(&state.db, "test admin", Role::Admin)
            .await
            .unwrap()
            .secret;
        Some(Self::serve(engine, db_config, state, admin_key, limits, true).await)
    }

    /// A second instance (its own pool, worker and event relay) on this one's database, as a
    /// second gateway process would be; it answers with the same keys.
    pub async fn beside(&self) -> TestApp {
        self.beside_at(chrono::Duration::zero()).await
    }

    /// A second instance as [`Self::beside`], whose clock is `offset` ahead of this one's
    /// (behind when negative), as two machines' clocks may be.
    pub async fn beside_at(&self, offset: chrono::Duration) -> TestApp {
        let mut settings = test_settings();
        settings.clock = mapping_gateway::clock::LocalClock::offset_by(offset);
        let state = server::open_with(&self.db_config, settings)
            .await
            .expect("open the database again");
        let platform = self.platform;
        Self::serve(
            self.engine,
            self.db_config.clone(),
            state,
            self.admin_key.clone(),
            Limits::default(),
            false,
        )
        .await
        .on(platform)
    }

    async fn serve(
        engine: Engine,
        db_config: DbConfig,
        state: AppState,
        admin_key: String,
        limits: Limits,
        owns_database: bool,
    ) -> TestApp {
        let socket_db = mapping_gateway::db::connect_sockets(&db_config.database_url)
            .await
            .expect("open the sockets' pool");
        let surface = mapping_gateway::http::Surface {
            socket_db: socket_db.clone(),
            ..Default::default()
        };
        let router = mapping_gateway::http::router(state.clone(), &limits, &surface);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            mapping_gateway::http::serve(listener, router, &limits, std::future::pending())
                .await
                .unwrap();
        });
        TestApp {
            engine,
            url: format!("http://{addr}"),
            addr,
            db_config,
            state,
            admin_key,
            client: reqwest::Client::new(),
            server,
            socket_db,
            owns_database,
            platform: Default::default(),
        }
    }

    /// The same app, its simulators playing `platform`.
    pub fn on(mut self, platform: mapping_gateway::simulator::SimPlatform) -> Self {
        self.platform = platform;
        self
    }

    /// Serves this app's state on another address with another surface (base path, GraphiQL,
    /// CORS); returns its origin (`http://127.0.0.1:port`).
    pub async fn serve_surface(&self, surface: mapping_gateway::http::Surface) -> String {
        let limits = Limits::default();
        let router = mapping_gateway::http::router(self.state.clone(), &limits, &surface);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = mapping_gateway::http::serve(listener, router, &limits, std::future::pending())
                .await;
        });
        origin
    }

    /// A new key of the role.
    pub async fn key(&self, role: Role) -> String {
        access::create_key(&self.state.db, &unique("key-"), role)
            .await
            .unwrap()
            .secret
    }

    /// Posts an operation and returns the status and JSON body.
    pub async fn post(&self, key: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        self.post_body(
            key,
            json!({ "query": query, "variables": variables }).to_string(),
        )
        .await
    }

    /// Posts a raw JSON body and returns the status and JSON answer.
    pub async fn post_body(&self, key: Option<&str>, body: String) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.url))
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, body)
    }

    /// Runs an operation as the admin, expecting success; returns `data`.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        self.ok_as(&self.admin_key, query, variables).await
    }

    /// Runs an operation with a key, expecting success; returns `data`.
    pub async fn ok_as(&self, key: &str, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(Some(key), query, variables).await;
        assert_eq!(status, 200, "{body}");
        if body.get("errors").is_some() {
            let logs = captured_logs();
            let errors: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
            panic!("unexpected errors: {body}\n{}", errors.join("\n"));
        }
        body["data"].clone()
    }

    /// Runs an operation expecting an error; returns the first error's code and the body.
    pub async fn error_code(&self, key: Option<&str>, query: &str, variables: Value) -> String {
        let (_, body) = self.post(key, query, variables).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error with a code: {body}"))
            .to_owned()
    }

    /// The WebSocket endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql/ws", self.addr)
    }

    /// Waits (10 s at most) until at least `n` subscriptions follow the event bus: a
    /// subscription is sent before the server has taken it, and a test that starts a run right
    /// after must know that it is in place.
    pub async fn wait_subscribers(&self, n: usize) {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while self.state.events.subscribers() < n {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the subscriptions are in place within 10 s");
    }

    /// Waits (on the run's `syncProgress` events, 120 s at most) until a sync run has ended;
    /// returns `syncRun { fields }`.
    pub async fn wait_run(&self, run_id: &str, fields: &str) -> Value {
        let mut progress = Subscription::start(
            &self.ws_url(),
            TRANSPORT_WS,
            &self.admin_key,
            "subscription($r: ID!) { syncProgress(runId: $r) { status phase } }",
            json!({ "r": run_id }),
        )
        .await;
        tokio::time::timeout(std::time::Duration::from_secs(120), async {
            let mut last = Value::Null;
            while let Some(event) = progress.next().await {
                assert!(event.get("errors").is_none(), "{event}");
                last = event["data"]["syncProgress"].clone();
            }
            assert_eq!(
                last["phase"], "FINISHED",
                "the stream ends with the run's end"
            );
        })
        .await
        .expect("the run ends within 120 s");
        let query = format!("query($r: ID!) {{ syncRun(id: $r) {{ status {fields} }} }}");
        let run = self.ok(&query, json!({ "r": run_id })).await["syncRun"].clone();
        assert!(
            run["status"] != "RUNNING" && run["status"] != "QUEUED",
            "ended by its events, not by its row: {run}"
        );
        run
    }

    /// Runs `testIntegration` on an integration; returns `{ ok code message }`.
    pub async fn test_integration(&self, id: &str) -> Value {
        self.ok(
            "mutation($id: ID!) { testIntegration(id: $id) { ok code message } }",
            json!({ "id": id }),
        )
        .await["testIntegration"]
            .clone()
    }

    /// Creates an integration through the API and returns its id.
    pub async fn create_integration(&self, name: &str, api_url: &str) -> String {
        self.create_integration_with(name, api_url, &unique("pw-"))
            .await
    }

    /// Creates an integration with this password through the API and returns its id.
    pub async fn create_integration_with(
        &self,
        name: &str,
        api_url: &str,
        password: &str,
    ) -> String {
        let data = self
            .ok(
                "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }",
                json!({ "input": {
                    "name": name, "gateway": "GEOSITE", "apiUrl": api_url,
                    "username": "integracao", "password": password,
                }}),
            )
            .await;
        data["createIntegration"]["id"].as_str().unwrap().to_owned()
    }
}

/// A simulator with a generated network and an integration of `app` linked to its first (and
/// largest) project. Returns the simulator, the integration id and the project's fid.
pub async fn linked_simulator(
    app: &TestApp,
    boxes: usize,
    seed: u64,
) -> (mapping_gateway::simulator::RunningSimulator, String, i64) {
    let sim = mapping_gateway::simulator::spawn(
        mapping_gateway::simulator::SimConfig {
            platform: app.platform,
            boxes,
            seed,
            ..Default::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let data = app
        .ok(
            "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }",
            json!({ "input": {
                "name": unique("Integração "), "gateway": app.platform.gateway(), "apiUrl": sim.url,
                "username": "integracao", "password": "geosite",
            }}),
        )
        .await;
    let id = data["createIntegration"]["id"].as_str().unwrap().to_owned();
    let project = sim.state.summary.projects[0];
    app.ok(
        "mutation($i: ID!, $r: String!) { setProject(integrationId: $i, input: { remoteId: $r }) { id } }",
        json!({ "i": id, "r": sim.remote_fid("projeto", project) }),
    )
    .await;
    (sim, id, project)
}

/// Inserts a binding row directly (the binding API comes later); returns its id.
pub async fn insert_binding(
    app: &TestApp,
    integration_id: i64,
    port_id: Option<i64>,
    contract: &str,
    document: &str,
    status: &str,
) -> i64 {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let now = chrono::Utc::now();
    entity::binding::ActiveModel {
        integration_id: Set(integration_id),
        port_id: Set(port_id),
        status: Set(sea_orm::ActiveEnum::try_from_value(&status.to_owned()).unwrap()),
        document: Set(document.into()),
        contract: Set(contract.into()),
        name: Set("Cliente Teste".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap()
    .id
}

/// `levels` fragments, each spreading the next `fan` times; the last asks `__typename`.
pub fn fragment_bomb(levels: usize, fan: usize) -> String {
    let mut q = String::from("query{...F0}");
    for i in 0..levels {
        q.push_str(&format!(" fragment F{i} on Query{{"));
        for _ in 0..fan {
            q.push_str(&format!("...F{} ", i + 1));
        }
        q.push('}');
    }
    q.push_str(&format!(" fragment F{levels} on Query{{__typename}}"));
    q
}
