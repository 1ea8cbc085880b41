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

pub mod network;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::geosite::wire;
use store::Store;

/// A fault injected on purpose.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Added to every contract call.
    pub latency_ms: u64,
    /// Share (0..1) of contract calls answered 500.
    pub error_rate: f64,
    /// The next N contract calls are answered 429.
    pub burst_429: u32,
    /// `Retry-After` of those 429s, in seconds.
    pub retry_after_secs: u64,
    /// Listing requests fail (500) from the K-th one on (counted since the faults were set).
    pub fail_list_page: Option<FailListPage>,
    /// Tokens stop working after this many calls each.
    pub expire_tokens_after_calls: Option<u32>,
}

/// See [`Faults::fail_list_page`].
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailListPage {
    /// Only listings of this feature (all when absent).
    pub feature: Option<String>,
    /// 1-based number of the first listing request that fails.
    pub page: u32,
}

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
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
}

/// The store version a set of matching fids was computed at, and the fids.
type Matching = (u64, Arc<Vec<i64>>);

impl SimState {
    /// A simulator with a freshly generated network.
    pub fn new(config: SimConfig) -> Arc<Self> {
        let mut store = Store::new();
        let summary = network::generate(&mut store, config.seed, config.boxes, Utc::now());
        Arc::new(SimState {
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
        })
    }

    /// Replaces the faults and resets their counters.
    pub fn set_faults(&self, faults: Faults) {
        self.burst_left
            .store(faults.burst_429 as u64, Ordering::SeqCst);
        self.list_calls.lock().unwrap().clear();
        *self.faults.lock().unwrap() = faults;
    }

    /// Every write received so far.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.writes.lock().unwrap().clone()
    }

    /// Logins so far.
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
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a simulator on `addr` (port 0 picks a free one).
pub async fn spawn(config: SimConfig, addr: SocketAddr) -> std::io::Result<RunningSimulator> {
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
        task,
    })
}

/// The simulator's routes.
pub fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/auth/generatetoken", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/viabilidade/caixas", get(viability))
        .route("/{feature}/desc", get(desc))
        .route("/{feature}/list", get(list))
        .route("/{feature}/save", post(save))
        .route("/{feature}/delete", post(delete))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/writes", get(get_writes))
        .route("/_sim/stats", get(stats))
        .route("/_sim/touch", post(touch))
        .layer(axum::middleware::map_response(date_header))
        .with_state(state)
}

async fn date_header(mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&wire::format_http_date(Utc::now())) {
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

/// Latency, 429 bursts and random 500s, applied to every contract call.
async fn chaos(state: &SimState) -> Result<(), SimError> {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let faults = state.faults.lock().unwrap().clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if state
        .burst_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err(SimError {
            retry_after: Some(faults.retry_after_secs),
            ..fail(StatusCode::TOO_MANY_REQUESTS, "rate limited")
        });
    }
    if faults.error_rate > 0.0 && rand::thread_rng().gen_bool(faults.error_rate.clamp(0.0, 1.0)) {
        return Err(fail(StatusCode::INTERNAL_SERVER_ERROR, "simulated failure"));
    }
    Ok(())
}

/// Checks `Authorization: Digicade-Rest-API:{token}`.
fn authorize(state: &SimState, headers: &HeaderMap) -> Result<(), SimError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Digicade-Rest-API:"))
        .ok_or_else(|| fail(StatusCode::UNAUTHORIZED, "missing token"))?;
    let limit = state.faults.lock().unwrap().expire_tokens_after_calls;
    let mut tokens = state.tokens.lock().unwrap();
    let info = tokens
        .get_mut(token)
        .ok_or_else(|| fail(StatusCode::UNAUTHORIZED, "unknown token"))?;
    info.calls += 1;
    if info.expires < Instant::now() || limit.is_some_and(|n| info.calls > n) {
        return Err(fail(StatusCode::UNAUTHORIZED, "token expired"));
    }
    Ok(())
}

async fn login(State(state): State<Arc<SimState>>, body: Bytes) -> Answer {
    chaos(&state).await?;
    let creds: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let user = creds.get("username").and_then(Value::as_str);
    let pass = creds.get("password").and_then(Value::as_str);
    if user != Some(state.config.username.as_str()) || pass != Some(state.config.password.as_str())
    {
        return Err(fail(StatusCode::UNAUTHORIZED, "invalid credentials"));
    }
    state.logins.fetch_add(1, Ordering::SeqCst);
    Ok(Json(state.new_tokens()).into_response())
}

async fn refresh(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Answer {
    chaos(&state).await?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Digicade-Rest-API:"))
        .map(str::to_owned);
    let valid = token.as_ref().is_some_and(|t| {
        state
            .refresh_tokens
            .lock()
            .unwrap()
            .remove(t)
            .is_some_and(|exp| exp > Instant::now())
    });
    if !valid {
        return Err(fail(StatusCode::UNAUTHORIZED, "invalid refresh token"));
    }
    state.refreshes.fetch_add(1, Ordering::SeqCst);
    Ok(Json(state.new_tokens()).into_response())
}

async fn desc(
    State(state): State<Arc<SimState>>,
    Path(feature): Path<String>,
    headers: HeaderMap,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    match store::columns_of(&feature) {
        Some(cols) => Ok(Json(json!({
            "columns": cols.iter().map(|c| json!({ "name": c })).collect::<Vec<_>>()
        }))
        .into_response()),
        None => Err(fail(
            StatusCode::NOT_FOUND,
            format!("unknown feature {feature}"),
        )),
    }
}

/// Query string of `list`.
#[derive(Deserialize)]
struct ListParams {
    columns: Option<String>,
    filter: Option<String>,
    sorter: Option<String>,
    limit: Option<String>,
    start: Option<String>,
}

async fn list(
    State(state): State<Arc<SimState>>,
    Path(feature): Path<String>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    if let Some(rule) = state.faults.lock().unwrap().fail_list_page.clone() {
        if rule.feature.as_deref().is_none_or(|f| f == feature) {
            let mut calls = state.list_calls.lock().unwrap();
            let n = calls.entry(feature.clone()).or_default();
            *n += 1;
            if *n >= rule.page {
                return Err(fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "simulated listing failure",
                ));
            }
        }
    }
    let store = state.store.read().unwrap();
    let Some(table) = store.tables.get(feature.as_str()) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("unknown feature {feature}"),
        ));
    };
    let parse_json = |text: &Option<String>| -> Result<Value, SimError> {
        match text {
            None => Ok(json!([])),
            Some(t) => serde_json::from_str(t)
                .map_err(|_| fail(StatusCode::BAD_REQUEST, "filter/sorter is not JSON")),
        }
    };
    let (filter, sorter) = (parse_json(&params.filter)?, parse_json(&params.sorter)?);
    let conditions = match store::parse_filter(table, &filter) {
        Ok(c) => c,
        Err(m) => return Err(fail(StatusCode::BAD_REQUEST, m)),
    };
    let sort_keys = match store::parse_sorter(table, &sorter) {
        Ok(s) => s,
        Err(m) => return Err(fail(StatusCode::BAD_REQUEST, m)),
    };
    let limit = params
        .limit
        .as_deref()
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .min(1000);
    let start = params
        .start
        .as_deref()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let wanted: Vec<&str> = params
        .columns
        .as_deref()
        .map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default();
    // Rows are kept in fid order, so sorting by fid ascending (or not at all) needs no sort.
    let by_fid =
        sort_keys.is_empty() || sorter == json!([{ "property": "fid", "direction": "ASC" }]);
    let (total, records): (usize, Vec<Value>) = if by_fid {
        // Keyset pages (`fid >` bound, fid order) of one listing share the set of matching fids.
        let (base, from) = store::split_fid_bound(&conditions);
        let key = format!("{feature}|{}", store::filter_key(&filter));
        let version = state.version.load(Ordering::SeqCst);
        let cached = state
            .matching
            .lock()
            .unwrap()
            .get(&key)
            .filter(|(v, _)| *v == version)
            .map(|(_, fids)| fids.clone());
        let fids = cached.unwrap_or_else(|| {
            let fids: Arc<Vec<i64>> = Arc::new(
                table
                    .rows
                    .iter()
                    .filter(|(_, row)| store::matches(row, &base))
                    .map(|(fid, _)| *fid)
                    .collect(),
            );
            let mut cache = state.matching.lock().unwrap();
            if cache.len() > 64 {
                cache.clear();
            }
            cache.insert(key, (version, fids.clone()));
            fids
        });
        let rest = &fids[fids.partition_point(|f| *f < from)..];
        let records = rest
            .iter()
            .skip(start)
            .take(limit)
            .filter_map(|fid| table.rows.get(fid))
            .map(|row| table.to_json(row, &wanted))
            .collect();
        (rest.len(), records)
    } else {
        let mut rows: Vec<&Vec<Value>> = table
            .rows
            .values()
            .filter(|row| store::matches(row, &conditions))
            .collect();
        rows.sort_by(|a, b| store::order(a, b, &sort_keys));
        let total = rows.len();
        let records = rows
            .into_iter()
            .skip(start)
            .take(limit)
            .map(|r| table.to_json(r, &wanted))
            .collect();
        (total, records)
    };
    Ok(Json(json!({ "total": total, "records": records })).into_response())
}

fn record_write(state: &SimState, feature: &str, action: &str, body: &Value) {
    state.version.fetch_add(1, Ordering::SeqCst);
    state.writes.lock().unwrap().push(WriteRecord {
        feature: feature.to_owned(),
        action: action.to_owned(),
        body: body.clone(),
        at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    });
}

async fn save(
    State(state): State<Arc<SimState>>,
    Path(feature): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(&body) else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    };
    let mut store = state.store.write().unwrap();
    let Some(&feature_name) = store::FEATURES.iter().find(|f| **f == feature) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("unknown feature {feature}"),
        ));
    };
    if feature_name == "portaSplitter" {
        if let Some(status) = record.get("status") {
            let ok = status
                .as_str()
                .is_some_and(|s| ["LIVRE", "OCUPADA", "RESERVADA", "DANIFICADA"].contains(&s));
            if !ok {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    format!("invalid status {status}"),
                ));
            }
        }
    }
    let table = store.tables.get(feature_name).expect("feature table");
    if let Some(unknown) = record.keys().find(|k| table.col(k).is_none()) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("unknown column {unknown}"),
        ));
    }
    let now = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
    let fid = match record.get("fid") {
        Some(fid) => {
            let Some(fid) = wire::int(fid) else {
                return Err(fail(StatusCode::BAD_REQUEST, "fid must be a number"));
            };
            let table = store.tables.get_mut(feature_name).expect("feature table");
            let columns = table.columns;
            let Some(row) = table.rows.get_mut(&fid) else {
                return Err(fail(
                    StatusCode::NOT_FOUND,
                    format!("no {feature} with fid {fid}"),
                ));
            };
            for (k, v) in &record {
                if k != "fid" {
                    let i = columns.iter().position(|c| c == k).expect("checked");
                    row[i] = v.clone();
                }
            }
            if let Some(i) = columns.iter().position(|c| *c == "dataAlteracao") {
                row[i] = now;
            }
            fid
        }
        None => {
            if feature_name == "projeto"
                && record
                    .get("nome")
                    .and_then(Value::as_str)
                    .is_none_or(|n| n.trim().is_empty())
            {
                return Err(fail(StatusCode::BAD_REQUEST, "nome is required"));
            }
            let mut fields: Vec<(&str, Value)> = record
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            fields.push(("dataAlteracao", now));
            store.insert(feature_name, &fields)
        }
    };
    drop(store);
    record_write(&state, &feature, "save", &Value::Object(record));
    Ok(Json(json!({ "success": true, "fid": fid })).into_response())
}

async fn delete(
    State(state): State<Arc<SimState>>,
    Path(feature): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(fid) = body.get("fid").and_then(wire::int) else {
        return Err(fail(StatusCode::BAD_REQUEST, "fid is required"));
    };
    let removed = {
        let mut store = state.store.write().unwrap();
        match store.tables.get_mut(feature.as_str()) {
            None => {
                return Err(fail(
                    StatusCode::NOT_FOUND,
                    format!("unknown feature {feature}"),
                ))
            }
            Some(table) => table.rows.remove(&fid).is_some(),
        }
    };
    if !removed {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no {feature} with fid {fid}"),
        ));
    }
    record_write(&state, &feature, "delete", &body);
    Ok(Json(json!({ "success": true })).into_response())
}

#[derive(Deserialize)]
struct ViabilityParams {
    raio: f64,
    latitude: f64,
    longitude: f64,
}

async fn viability(
    State(state): State<Arc<SimState>>,
    Query(params): Query<ViabilityParams>,
    headers: HeaderMap,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    let store = state.store.read().unwrap();
    let splitters = &store.tables["splitter"];
    let ports = &store.tables["portaSplitter"];
    let (s_box, p_split, p_status) = (
        splitters.col("fidCaixa").expect("col"),
        ports.col("fidSplitter").expect("col"),
        ports.col("status").expect("col"),
    );
    let mut boxes = Vec::new();
    for (feature, label) in [("cto", "CTO"), ("caixaEmenda", "CEO")] {
        let table = &store.tables[feature];
        for row in table.rows.values() {
            let Some((lat, lng)) =
                wire::location(table.to_json(row, &[]).as_object().expect("object"))
            else {
                continue;
            };
            let distance = crate::geo::haversine_m(params.latitude, params.longitude, lat, lng);
            if distance > params.raio {
                continue;
            }
            let fid = row[0].clone();
            let split_fids: Vec<&Value> = splitters
                .rows
                .values()
                .filter(|s| store::compare(&s[s_box], &fid) == Some(std::cmp::Ordering::Equal))
                .map(|s| &s[0])
                .collect();
            let (mut total, mut free, mut occupied) = (0, 0, 0);
            for p in ports.rows.values() {
                if split_fids
                    .iter()
                    .any(|f| store::compare(&p[p_split], f) == Some(std::cmp::Ordering::Equal))
                {
                    total += 1;
                    match p[p_status].as_str() {
                        Some("LIVRE") => free += 1,
                        Some("OCUPADA") => occupied += 1,
                        _ => {}
                    }
                }
            }
            let name = row[1].as_str().unwrap_or_default();
            boxes.push(json!({
                "fid": fid, "tipoCodigo": format!("{label}: {name}"),
                "distancia": (distance * 10.0).round() / 10.0,
                "qtdPortasSplitter": total, "qtdPortasSplitterDisp": free,
                "qtdPortasSplitterOcup": occupied,
                "geometryCaixaEmenda": row[3].clone(),
            }));
        }
    }
    boxes.sort_by(|a, b| {
        a["distancia"]
            .as_f64()
            .partial_cmp(&b["distancia"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(Json(json!({ "success": "true", "caixas": boxes })).into_response())
}

async fn get_faults(State(state): State<Arc<SimState>>) -> Json<Faults> {
    Json(state.faults.lock().unwrap().clone())
}

async fn put_faults(
    State(state): State<Arc<SimState>>,
    Json(faults): Json<Faults>,
) -> Json<Faults> {
    state.set_faults(faults.clone());
    Json(faults)
}

async fn get_writes(State(state): State<Arc<SimState>>) -> Json<Vec<WriteRecord>> {
    Json(state.writes())
}

async fn stats(State(state): State<Arc<SimState>>) -> Json<Value> {
    let store = state.store.read().unwrap();
    let counts: HashMap<&str, usize> = store
        .tables
        .iter()
        .map(|(k, t)| (*k, t.rows.len()))
        .collect();
    Json(json!({
        "records": counts,
        "projects": state.summary.projects,
        "logins": state.logins(),
        "refreshes": state.refreshes(),
        "calls": state.calls.load(Ordering::SeqCst),
    }))
}

/// Body of `/_sim/touch`.
#[derive(Deserialize)]
struct Touch {
    feature: String,
    share: f64,
}

async fn touch(State(state): State<Arc<SimState>>, Json(touch): Json<Touch>) -> Answer {
    let mut store = state.store.write().unwrap();
    let Some(table) = store.tables.get_mut(touch.feature.as_str()) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("unknown feature {}", touch.feature),
        ));
    };
    let every = if touch.share <= 0.0 {
        usize::MAX
    } else {
        (1.0 / touch.share.min(1.0)).round().max(1.0) as usize
    };
    let (status, name, changed) = (
        table.col("status"),
        table.col("nome"),
        table.col("dataAlteracao"),
    );
    let now = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
    let mut touched = 0;
    for (i, row) in table.rows.values_mut().enumerate() {
        if i % every != 0 {
            continue;
        }
        if let Some(c) = status {
            let free = row[c] == json!("LIVRE");
            row[c] = json!(if free { "RESERVADA" } else { "LIVRE" });
            for col in ["contrato", "documento", "nomeCliente"] {
                if let Some(k) = store::columns_of(&touch.feature)
                    .and_then(|cols| cols.iter().position(|x| *x == col))
                {
                    row[k] = Value::Null;
                }
            }
        } else if let Some(c) = name {
            row[c] = json!(format!("{}*", row[c].as_str().unwrap_or_default()));
        }
        if let Some(c) = changed {
            row[c] = now.clone();
        }
        touched += 1;
    }
    drop(store);
    state.version.fetch_add(1, Ordering::SeqCst);
    Ok(Json(json!({ "touched": touched })).into_response())
}
