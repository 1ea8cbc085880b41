//! A Geosite simulator: an axum server that follows the same contract as the client, over a
//! generated network, with faults that tests set at start or at run time through `/_sim/`, and a
//! record of every write.
//!
//! Admin API (no auth, loopback use only):
//! - `GET /_sim/faults`, `PUT /_sim/faults` (JSON [`Faults`]; resets fault counters);
//! - `GET /_sim/writes` (every `save`/`delete`, oldest first);
//! - `GET /_sim/stats` (records per feature, logins, refreshes, calls);
//! - `POST /_sim/touch` `{"feature": "portaSplitter", "share": 0.01}` changes that share of the
//!   feature's records (ports flip between LIVRE and RESERVADA, others get a new name) and moves
//!   their `dataAlteracao`, as edits on the platform would (benchmarks of incremental syncs).

mod auth;
pub mod changes;
mod faults;
mod features;
pub mod gate;
pub mod network;
pub mod ozmap;
pub mod store;
pub mod values;
mod viability;

pub use faults::{FailListPage, Faults};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use store::Store;

/// Which platform's contract a simulator serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SimPlatform {
    /// `docs/` Geosite contract (`/auth/...`, `/{feature}/list`, ...).
    #[default]
    Geosite,
    /// `docs/OZMAP-API.md` (`/api/v2/...`).
    Ozmap,
}

impl SimPlatform {
    /// The gateway kind an integration with it names.
    pub fn gateway(self) -> &'static str {
        match self {
            SimPlatform::Geosite => "GEOSITE",
            SimPlatform::Ozmap => "OZMAP",
        }
    }

    /// From its lower-case name (`geosite`, `ozmap`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "geosite" => Some(SimPlatform::Geosite),
            "ozmap" => Some(SimPlatform::Ozmap),
            _ => None,
        }
    }

    /// Its display name.
    pub fn name(self) -> &'static str {
        match self {
            SimPlatform::Geosite => "Geosite",
            SimPlatform::Ozmap => "OZmap",
        }
    }
}

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The contract it serves.
    pub platform: SimPlatform,
    /// OZmap: an API key accepted on every call (none when empty).
    pub api_key: String,
    /// Seed of the generated network.
    pub seed: u64,
    /// Boxes to generate.
    pub boxes: usize,
    /// Accepted user.
    pub username: String,
    /// Accepted password.
    pub password: String,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// Refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// Faults in force at start.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            platform: SimPlatform::Geosite,
            api_key: String::new(),
            seed: 1,
            boxes: 50,
            username: "integracao".into(),
            password: "geosite".into(),
            token_ttl: Duration::from_secs(30 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            faults: Faults::default(),
        }
    }
}

/// A write the simulator received.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteRecord {
    /// Feature written.
    pub feature: String,
    /// `save` or `delete`.
    pub action: String,
    /// The request body.
    pub body: Value,
    /// When, RFC 3339.
    pub at: String,
}

struct TokenInfo {
    expires: Instant,
    calls: u32,
}

/// The simulator's state, shared by its handlers.
pub struct SimState {
    config: SimConfig,
    /// The records.
    pub store: RwLock<Store>,
    /// What was generated at start.
    pub summary: network::Summary,
    tokens: Mutex<HashMap<String, TokenInfo>>,
    refresh_tokens: Mutex<HashMap<String, Instant>>,
    faults: Mutex<Faults>,
    burst_left: AtomicU64,
    list_calls: Mutex<HashMap<String, u32>>,
    writes: Mutex<Vec<WriteRecord>>,
    logins: AtomicU64,
    refreshes: AtomicU64,
    calls: AtomicU64,
    /// Bumped by every write; cached listings of an older version are stale.
    version: AtomicU64,
    /// fids matching a (feature, filter without the keyset bound), in fid order: keyset pages of
    /// one listing then count and slice with a binary search instead of a scan each.
    matching: Mutex<HashMap<String, Matching>>,
    /// Rows by change time, per table (what a listing of changes reads).
    pub(crate) changes: changes::ChangeIndexes,
    /// What the OZmap front keeps besides the store.
    ozmap: Mutex<ozmap::OzState>,
    /// Requests held by a test ([`SimState::hold`]).
    gates: gate::Gates,
}

/// The store version a set of matching fids was computed at, and the fids.
type Matching = (u64, Arc<Vec<i64>>);

impl SimState {
    /// A simulator with a freshly generated network.
    pub fn new(config: SimConfig) -> Arc<Self> {
        let mut store = Store::new();
        let summary = network::generate(&mut store, config.seed, config.boxes, Utc::now());
        let changes = changes::ChangeIndexes::default();
        changes.warm(&store, 0);
        let ozmap = config.platform == SimPlatform::Ozmap;
        let state = Arc::new(SimState {
            burst_left: AtomicU64::new(config.faults.burst_429 as u64),
            faults: Mutex::new(config.faults.clone()),
            config,
            store: RwLock::new(store),
            summary,
            tokens: Default::default(),
            refresh_tokens: Default::default(),
            list_calls: Default::default(),
            writes: Default::default(),
            logins: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            version: AtomicU64::new(0),
            matching: Default::default(),
            changes,
            ozmap: Default::default(),
            gates: Default::default(),
        });
        if ozmap {
            state.warm_ozmap();
        }
        state
    }

    /// Replaces the faults and resets their counters.
    pub fn set_faults(&self, faults: Faults) {
        self.burst_left
            .store(faults.burst_429 as u64, Ordering::SeqCst);
        self.list_calls.lock().unwrap().clear();
        *self.faults.lock().unwrap() = faults;
    }

    /// Edits the records in place, as an installation edited behind the API would be (no
    /// `dataAlteracao` is touched); listings see the edit from their next page.
    pub fn edit<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let out = f(&mut self.store.write().unwrap());
        self.version.fetch_add(1, Ordering::SeqCst);
        out
    }

    /// See [`RunningSimulator::remote_fid`].
    pub fn remote_fid(&self, platform: SimPlatform, feature: &str, fid: i64) -> String {
        use ozmap::records::{oid, Tag};
        match platform {
            SimPlatform::Geosite => fid.to_string(),
            SimPlatform::Ozmap if feature == "portaSplitter" => {
                let store = self.store.read().unwrap();
                let t = &store.tables["portaSplitter"];
                let cell = |c: &str| {
                    t.col(c)
                        .and_then(|i| t.rows.get(&fid).and_then(|r| values::int(&r[i])))
                };
                format!(
                    "{}:{}",
                    oid(Tag::Plain, cell("fidSplitter").unwrap_or(0)),
                    cell("numero").unwrap_or(0)
                )
            }
            SimPlatform::Ozmap => oid(Tag::Plain, fid),
        }
    }

    /// Every write received so far.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.writes.lock().unwrap().clone()
    }

    /// Logins so far.
    /// Contract calls answered (logins included), since start.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::SeqCst)
    }

    /// Refreshes so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::SeqCst)
    }

    fn new_tokens(&self) -> Value {
        let token = crate::crypto::random_hex(16);
        let refresh = crate::crypto::random_hex(16);
        let now = Instant::now();
        self.tokens.lock().unwrap().insert(
            token.clone(),
            TokenInfo {
                expires: now + self.config.token_ttl,
                calls: 0,
            },
        );
        self.refresh_tokens
            .lock()
            .unwrap()
            .insert(refresh.clone(), now + self.config.refresh_ttl);
        json!({ "token": token, "refreshToken": refresh })
    }
}

/// A simulator serving on a loopback port.
pub struct RunningSimulator {
    /// Base URL, e.g. `http://127.0.0.1:41234`: the `apiUrl` of an integration.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// Its state, for tests to inspect.
    pub state: Arc<SimState>,
    /// The contract it serves.
    pub platform: SimPlatform,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSimulator {
    /// The platform id a client sees for a store record: the fid itself on Geosite; on OZmap
    /// the object id, and `{splitter id}:{N}` for a port.
    pub fn remote_fid(&self, feature: &str, fid: i64) -> String {
        self.state.remote_fid(self.platform, feature, fid)
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a simulator on `addr` (port 0 picks a free one).
pub async fn spawn(config: SimConfig, addr: SocketAddr) -> std::io::Result<RunningSimulator> {
    let platform = config.platform;
    let state = SimState::new(config);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(RunningSimulator {
        url: format!("http://{addr}"),
        addr,
        state,
        platform,
        task,
    })
}

/// The simulator's routes: its platform's contract and the admin API.
pub fn router(state: Arc<SimState>) -> Router {
    let contract = match state.config.platform {
        SimPlatform::Geosite => geosite_routes(),
        SimPlatform::Ozmap => ozmap::routes(),
    };
    contract
        .route(
            "/_sim/faults",
            get(faults::get_faults).put(faults::put_faults),
        )
        .route("/_sim/writes", get(faults::get_writes))
        .route("/_sim/stats", get(faults::stats))
        .route("/_sim/touch", post(faults::touch))
        .layer(axum::middleware::map_response(date_header))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::held,
        ))
        .with_state(state)
}

fn geosite_routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/auth/generatetoken", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/viabilidade/caixas", get(viability::viability))
        .route("/{feature}/desc", get(features::desc))
        .route("/{feature}/list", get(features::list))
        .route("/{feature}/save", post(features::save))
        .route("/{feature}/delete", post(features::delete))
}

async fn date_header(mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&values::http_date(Utc::now())) {
        response.headers_mut().insert(header::DATE, v);
    }
    response
}

/// A refusal: status, message and, for 429, the `Retry-After` seconds.
#[derive(Debug)]
pub struct SimError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "success": false, "message": self.message })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

type Answer = Result<Response, SimError>;

fn fail(status: StatusCode, message: impl Into<String>) -> SimError {
    SimError {
        status,
        message: message.into(),
        retry_after: None,
    }
}
