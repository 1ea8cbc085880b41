//! The generic feature endpoints: `desc`, `list` (filters, sorters, offset and keyset pages),
//! `save` and `delete`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::authorize;
use super::faults::chaos;
use super::{fail, store, values, Answer, SimError, SimState, WriteRecord};

pub(super) async fn desc(
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
pub(super) struct ListParams {
    columns: Option<String>,
    filter: Option<String>,
    sorter: Option<String>,
    limit: Option<String>,
    start: Option<String>,
}

pub(super) async fn list(
    State(state): State<Arc<SimState>>,
    Path(feature): Path<String>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    failing_page(&state, &feature)?;
    let store = state.store.read().unwrap();
    let Some(table) = store.tables.get(feature.as_str()) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("unknown feature {feature}"),
        ));
    };
    let ask = ListAsk::parse(table, &params)?;
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
    let by_fid = ask.sort_keys.is_empty()
        || ask.sorter == json!([{ "property": "fid", "direction": "ASC" }]);
    let (total, records): (usize, Vec<Value>) = if by_fid {
        let (base, from) = store::split_fid_bound(&ask.conditions);
        let fids = matching_fids(&state, table, &feature, &ask.filter, &base);
        let rest = &fids[fids.partition_point(|f| *f < from)..];
        let records = rest
            .iter()
            .skip(ask.start)
            .take(ask.limit)
            .filter_map(|fid| table.rows.get(fid))
            .map(|row| table.to_json(row, &wanted))
            .collect();
        (rest.len(), records)
    } else {
        let mut rows: Vec<&Vec<Value>> = table
            .rows
            .values()
            .filter(|row| store::matches(row, &ask.conditions))
            .collect();
        rows.sort_by(|a, b| store::order(a, b, &ask.sort_keys));
        let total = rows.len();
        let records = rows
            .into_iter()
            .skip(ask.start)
            .take(ask.limit)
            .map(|r| table.to_json(r, &wanted))
            .collect();
        (total, records)
    };
    Ok(Json(json!({ "total": total, "records": records })).into_response())
}

/// The `failListPage` fault: the Nth listing call of a feature (and every later one) fails.
pub(super) fn failing_page(state: &SimState, feature: &str) -> Result<(), SimError> {
    let Some(rule) = state.faults.lock().unwrap().fail_list_page.clone() else {
        return Ok(());
    };
    if rule.feature.as_deref().is_some_and(|f| f != feature) {
        return Ok(());
    }
    let mut calls = state.list_calls.lock().unwrap();
    let n = calls.entry(feature.to_owned()).or_default();
    *n += 1;
    if *n >= rule.page {
        return Err(fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulated listing failure",
        ));
    }
    Ok(())
}

/// A listing call's filter, sorter and page, read and checked.
struct ListAsk {
    filter: Value,
    sorter: Value,
    conditions: Vec<store::Condition>,
    sort_keys: Vec<store::SortKey>,
    limit: usize,
    start: usize,
}

impl ListAsk {
    fn parse(table: &store::Table, params: &ListParams) -> Result<Self, SimError> {
        let parse_json = |text: &Option<String>| -> Result<Value, SimError> {
            match text {
                None => Ok(json!([])),
                Some(t) => serde_json::from_str(t)
                    .map_err(|_| fail(StatusCode::BAD_REQUEST, "filter/sorter is not JSON")),
            }
        };
        let (filter, sorter) = (parse_json(&params.filter)?, parse_json(&params.sorter)?);
        let conditions =
            store::parse_filter(table, &filter).map_err(|m| fail(StatusCode::BAD_REQUEST, m))?;
        let sort_keys =
            store::parse_sorter(table, &sorter).map_err(|m| fail(StatusCode::BAD_REQUEST, m))?;
        let number = |v: &Option<String>| v.as_deref().and_then(|l| l.parse::<usize>().ok());
        Ok(ListAsk {
            filter,
            sorter,
            conditions,
            sort_keys,
            limit: number(&params.limit).unwrap_or(50).min(1000),
            start: number(&params.start).unwrap_or(0),
        })
    }
}

/// The fids matching a listing's filter without its keyset bound, in fid order. Keyset pages of
/// one listing share the set, so each page counts and slices it with a binary search.
fn matching_fids(
    state: &SimState,
    table: &store::Table,
    feature: &str,
    filter: &Value,
    base: &[store::Condition],
) -> Arc<Vec<i64>> {
    let key = format!("{feature}|{}", store::filter_key(filter));
    let version = state.version.load(Ordering::SeqCst);
    let cached = state
        .matching
        .lock()
        .unwrap()
        .get(&key)
        .filter(|(v, _)| *v == version)
        .map(|(_, fids)| fids.clone());
    cached.unwrap_or_else(|| {
        let changed = store::change_bound(table, base).and_then(|(since, strict)| {
            let index = state.changes.get(table, feature, version)?;
            Some(index.since(since, strict))
        });
        let fids: Arc<Vec<i64>> = Arc::new(match changed {
            Some(candidates) => candidates
                .into_iter()
                .filter(|fid| table.rows.get(fid).is_some_and(|r| store::matches(r, base)))
                .collect(),
            None => table
                .rows
                .iter()
                .filter(|(_, row)| store::matches(row, base))
                .map(|(fid, _)| *fid)
                .collect(),
        });
        let mut cache = state.matching.lock().unwrap();
        if cache.len() > 64 {
            cache.clear();
        }
        cache.insert(key, (version, fids.clone()));
        fids
    })
}

pub(super) fn record_write(state: &SimState, feature: &str, action: &str, body: &Value) {
    state.version.fetch_add(1, Ordering::SeqCst);
    state.writes.lock().unwrap().push(WriteRecord {
        feature: feature.to_owned(),
        action: action.to_owned(),
        body: body.clone(),
        at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    });
}

pub(super) async fn save(
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
            let Some(fid) = values::int(fid) else {
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

pub(super) async fn delete(
    State(state): State<Arc<SimState>>,
    Path(feature): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(fid) = body.get("fid").and_then(values::int) else {
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
