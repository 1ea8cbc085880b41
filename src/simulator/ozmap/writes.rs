//! OZmap writes: projects created; properties created on a port, left without a client or
//! deleted; FTTH clients renamed. Each is recorded in `/_sim/writes` (feature = route, action
//! `create`/`update`/`delete`, the body with the record's `id`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::records::{fid_of, oid, Tag};
use super::{authorize, SimState};
use crate::simulator::faults::chaos;
use crate::simulator::features::record_write;
use crate::simulator::store::Store;
use crate::simulator::{fail, Answer, SimError};

fn now() -> Value {
    json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn object(body: &Bytes) -> Result<Map<String, Value>, SimError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(fail(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        )),
    }
}

/// Sets columns of a port row.
fn set_port(store: &mut Store, fid: i64, fields: &[(&str, Value)]) {
    let table = store.tables.get_mut("portaSplitter").expect("ports table");
    let columns: Vec<Option<usize>> = fields.iter().map(|(c, _)| table.col(c)).collect();
    if let Some(row) = table.rows.get_mut(&fid) {
        for ((_, value), column) in fields.iter().zip(columns) {
            if let Some(i) = column {
                row[i] = value.clone();
            }
        }
    }
}

/// The port row of splitter `splitter`, number `number`.
fn port_at(store: &Store, splitter: i64, number: i64) -> Option<i64> {
    let t = &store.tables["portaSplitter"];
    let (s, n) = (t.col("fidSplitter")?, t.col("numero")?);
    t.rows
        .iter()
        .find(|(_, row)| row[s] == json!(splitter) && row[n] == json!(number))
        .map(|(fid, _)| *fid)
}

fn column<'a>(store: &'a Store, fid: i64, name: &str) -> &'a Value {
    let t = &store.tables["portaSplitter"];
    t.col(name)
        .and_then(|i| t.rows.get(&fid).map(|row| &row[i]))
        .unwrap_or(&Value::Null)
}

/// The document kept in a client's observation (`CPF/CNPJ <digits>`).
fn document_of(observation: Option<&Value>) -> Value {
    observation
        .and_then(Value::as_str)
        .map(|o| o.trim_start_matches("CPF/CNPJ").trim())
        .filter(|d| !d.is_empty())
        .map_or(Value::Null, |d| json!(d))
}

pub(super) async fn create(
    State(state): State<Arc<SimState>>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    let record = object(&body)?;
    let created = match route.as_str() {
        "projects" => {
            let name = record
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "name is required"))?;
            let fid = state.store.write().unwrap().insert(
                "projeto",
                &[("nome", json!(name)), ("dataAlteracao", now())],
            );
            oid(Tag::Plain, fid)
        }
        "properties" => create_property(&state, &record)?,
        _ => {
            return Err(fail(
                StatusCode::NOT_FOUND,
                format!("cannot create {route}"),
            ))
        }
    };
    let mut written = record.clone();
    written.insert("id".into(), json!(created));
    record_write(&state, &route, "create", &Value::Object(written));
    let answer = state
        .ozmap_view(|view| view.by_id(&route, &created))
        .unwrap_or_else(|| json!({ "id": created }));
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `POST /properties`: the port must be free; the client is an existing one's id or a new one.
fn create_property(state: &SimState, record: &Map<String, Value>) -> Result<String, SimError> {
    let bad = |m: &str| fail(StatusCode::BAD_REQUEST, m);
    let splitter = record
        .get("connector")
        .and_then(Value::as_str)
        .and_then(|id| fid_of(Tag::Plain, id))
        .ok_or_else(|| bad("connector must be a splitter id"))?;
    let number = record
        .get("port")
        .and_then(Value::as_i64)
        .filter(|n| *n >= 1)
        .ok_or_else(|| bad("port must be a positive number"))?;
    let mut store = state.store.write().unwrap();
    let port = port_at(&store, splitter, number)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, "no such port on that splitter"))?;
    let status = column(&store, port, "status")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if status == "OCUPADA" || status == "DANIFICADA" {
        return Err(fail(StatusCode::CONFLICT, "the port is taken"));
    }
    let codes = |store: &Store, code: &str| {
        let t = &store.tables["portaSplitter"];
        let c = t.col("contrato").expect("contrato");
        t.rows
            .iter()
            .find(|(_, row)| row[c].as_str() == Some(code))
            .map(|(fid, _)| *fid)
    };
    // The simulator keeps a client on the port that carries it: an existing client is always
    // on another property, and OZmap refuses to connect it twice.
    let (code, name, document) = match record.get("client") {
        Some(Value::String(id)) => {
            let known =
                fid_of(Tag::Client, id).is_some_and(|f| !column(&store, f, "contrato").is_null());
            return Err(if known {
                fail(StatusCode::CONFLICT, "the client is on another property")
            } else {
                fail(StatusCode::NOT_FOUND, "no such client")
            });
        }
        Some(Value::Object(client)) => {
            let code = client
                .get("code")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| bad("client.code is required"))?;
            if codes(&store, code).is_some() {
                return Err(fail(StatusCode::CONFLICT, "a client with that code exists"));
            }
            (
                json!(code),
                client.get("name").cloned().unwrap_or(Value::Null),
                document_of(client.get("observation")),
            )
        }
        _ => return Err(bad("client must be an id or a client")),
    };
    set_port(
        &mut store,
        port,
        &[
            ("status", json!("OCUPADA")),
            ("contrato", code),
            ("nomeCliente", name),
            ("documento", document),
            (
                "origem",
                record.get("external_id").cloned().unwrap_or(Value::Null),
            ),
            ("dataAlteracao", now()),
        ],
    );
    drop(store);
    state.ozmap.lock().unwrap().detached.remove(&port);
    Ok(oid(Tag::Property, port))
}

pub(super) async fn update(
    State(state): State<Arc<SimState>>,
    Path((route, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    let record = object(&body)?;
    let exists = state.ozmap_view(|view| view.by_id(&route, &id)).is_some();
    if !exists {
        return Err(fail(StatusCode::NOT_FOUND, format!("no {route} {id}")));
    }
    match route.as_str() {
        "properties" => {
            let fid = fid_of(Tag::Property, &id).expect("rendered");
            if record.keys().any(|k| k != "client") || !record["client"].is_null() {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "only {\"client\": null} is simulated",
                ));
            }
            let mut store = state.store.write().unwrap();
            set_port(
                &mut store,
                fid,
                &[
                    ("contrato", Value::Null),
                    ("nomeCliente", Value::Null),
                    ("documento", Value::Null),
                    ("dataAlteracao", now()),
                ],
            );
            state.ozmap.lock().unwrap().detached.insert(fid);
        }
        "ftth-clients" => {
            let fid = fid_of(Tag::Client, &id).expect("rendered");
            let mut fields = vec![("dataAlteracao", now())];
            if let Some(name) = record.get("name") {
                fields.push(("nomeCliente", name.clone()));
            }
            if record.contains_key("observation") {
                fields.push(("documento", document_of(record.get("observation"))));
            }
            set_port(&mut state.store.write().unwrap(), fid, &fields);
        }
        _ => {
            return Err(fail(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("cannot update {route}"),
            ))
        }
    }
    let mut written = record;
    written.insert("id".into(), json!(id));
    record_write(&state, &route, "update", &Value::Object(written));
    Ok(Json(json!({ "id": id })).into_response())
}

pub(super) async fn delete(
    State(state): State<Arc<SimState>>,
    Path((route, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    if route != "properties" {
        return Err(fail(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("cannot delete {route}"),
        ));
    }
    let exists = state.ozmap_view(|view| view.by_id(&route, &id)).is_some();
    let Some(fid) = fid_of(Tag::Property, &id).filter(|_| exists) else {
        return Err(fail(StatusCode::NOT_FOUND, format!("no property {id}")));
    };
    set_port(
        &mut state.store.write().unwrap(),
        fid,
        &[
            ("status", json!("LIVRE")),
            ("contrato", Value::Null),
            ("nomeCliente", Value::Null),
            ("documento", Value::Null),
            ("origem", Value::Null),
            ("dataAlteracao", now()),
        ],
    );
    state.ozmap.lock().unwrap().detached.remove(&fid);
    record_write(&state, &route, "delete", &json!({ "id": id }));
    Ok(StatusCode::NO_CONTENT.into_response())
}
