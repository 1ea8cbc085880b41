//! Faults injected on purpose (latency, 429 bursts, random 500s, a failing listing page, tokens
//! that expire early) and the admin endpoints under `/_sim/`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{SecondsFormat, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{fail, store, Answer, SimError, SimState, WriteRecord};

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
    /// OZmap: list answers without `hasNextPage` and `nextUrl`, as servers older than mid-2025
    /// (clients end on an empty page).
    pub legacy_envelope: bool,
    /// OZmap: a `nextUrl` that does not repeat `populate` (a client that follows it verbatim
    /// gets clients as bare ids from the second page on).
    pub next_url_without_populate: bool,
    /// OZmap: `populate` is ignored, clients always come as bare ids.
    pub populate_ignored: bool,
    /// OZmap: listings ignore filters on `connections.id` (a field of the SDK's read schema,
    /// not of its stored data), answering as if the condition were not there.
    pub ignore_connections_filter: bool,
    /// OZmap: listings refuse a filter on `connections.id` with 400, as a server validating
    /// filters against its stored fields would.
    pub refuse_connections_filter: bool,
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

/// Latency, 429 bursts and random 500s, applied to every contract call.
pub(super) async fn chaos(state: &SimState) -> Result<(), SimError> {
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

pub(super) async fn get_faults(State(state): State<Arc<SimState>>) -> Json<Faults> {
    Json(state.faults.lock().unwrap().clone())
}

pub(super) async fn put_faults(
    State(state): State<Arc<SimState>>,
    Json(faults): Json<Faults>,
) -> Json<Faults> {
    state.set_faults(faults.clone());
    Json(faults)
}

pub(super) async fn get_writes(State(state): State<Arc<SimState>>) -> Json<Vec<WriteRecord>> {
    Json(state.writes())
}

pub(super) async fn stats(State(state): State<Arc<SimState>>) -> Json<Value> {
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
pub(super) struct Touch {
    feature: String,
    share: f64,
}

pub(super) async fn touch(State(state): State<Arc<SimState>>, Json(touch): Json<Touch>) -> Answer {
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
    let version = state.version.fetch_add(1, Ordering::SeqCst) + 1;
    // Indexed now, as a platform's database indexes as it writes: the next listing of changes
    // does not pay for it.
    state.changes.warm(&state.store.read().unwrap(), version);
    if state.config.platform == super::SimPlatform::Ozmap {
        state.warm_ozmap();
    }
    Ok(Json(json!({ "touched": touched })).into_response())
}
