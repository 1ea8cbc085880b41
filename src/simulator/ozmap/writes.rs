//! OZmap writes: projects created; properties created on a port, left without a client or
//! deleted; FTTH clients renamed. Each is recorded in `/_sim/writes` (feature = route, action
//! `create`/`update`/`delete`, the body with the record's `id`, and for a property created the
//! client it got as `clientGot`). A client outlives its property (it is left on none), and a
//! property may take such a client by id.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use std::collections::HashMap;

use super::records::{fid_of, oid, Tag, View};
use super::{authorize, OzState, SimState};
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

/// The document an observation names (the first run of 11 or 14 digits).
fn document_of(observation: Option<&Value>) -> Value {
    observation
        .and_then(Value::as_str)
        .and_then(super::records::document_in)
        .map_or(Value::Null, Value::from)
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
    let answer = state
        .ozmap_view(|view| view.by_id(&route, &created))
        .unwrap_or_else(|| json!({ "id": created }));
    // The write log says which record was made, and for a property the client it got (the
    // request may name an existing client by id only).
    let mut written = record.clone();
    written.insert("id".into(), json!(created));
    if route == "properties" {
        written.insert("clientGot".into(), answer["client"].clone());
    }
    record_write(&state, &route, "create", &Value::Object(written));
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// A view for a write, under the locks the write holds (no splitter is rendered from it).
fn view<'a>(store: &'a Store, oz: &'a OzState, none: &'a HashMap<i64, Vec<i64>>) -> View<'a> {
    View {
        store,
        ports_by_splitter: none,
        detached: &oz.detached,
        port_client: &oz.port_client,
        loose_clients: &oz.loose_clients,
        notes: &oz.notes,
    }
}

/// The client on port `fid` leaves it and stays, on no property, with its id; a client put on
/// the port later (through the API or by someone editing the platform) gets a new one.
fn loosen_client(store: &Store, oz: &mut OzState, fid: i64) {
    let none = HashMap::new();
    let client = view(store, oz, &none).client(fid);
    if let Some(client) = client {
        let id = client["id"].as_str().unwrap_or_default().to_owned();
        oz.loose_clients.insert(id, client);
        oz.notes.remove(&fid);
        oz.next_client += 1;
        let next = oid(Tag::Client, (1 << 40) + oz.next_client);
        oz.port_client.insert(fid, next);
    }
}

/// `POST /properties`: the port must be free; the client is a loose one's id (attached), or a
/// new one whose code no client has.
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
    let mut oz = state.ozmap.lock().unwrap();
    let port = port_at(&store, splitter, number)
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, "no such port on that splitter"))?;
    let status = column(&store, port, "status")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if status == "OCUPADA" || status == "DANIFICADA" {
        return Err(fail(StatusCode::CONFLICT, "the port is taken"));
    }
    let none = HashMap::new();
    let (code, name, observation, id) = match record.get("client") {
        Some(Value::String(id)) => {
            if let Some(client) = oz.loose_clients.remove(id) {
                (
                    client["code"].clone(),
                    client["name"].clone(),
                    client.get("observation").cloned(),
                    id.clone(),
                )
            } else if view(&store, &oz, &none)
                .port_of_client(id)
                .is_some_and(|p| {
                    let t = &store.tables["portaSplitter"];
                    t.rows
                        .get(&p)
                        .is_some_and(|row| super::records::has_client(t, row))
                })
            {
                return Err(fail(
                    StatusCode::CONFLICT,
                    "the client is on another property",
                ));
            } else {
                return Err(fail(StatusCode::NOT_FOUND, "no such client"));
            }
        }
        Some(Value::Object(client)) => {
            let code = client
                .get("code")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| bad("client.code is required"))?;
            let v = view(&store, &oz, &none);
            let taken = v
                .all("ftth-clients")
                .iter()
                .any(|c| c["code"] == json!(code));
            if taken {
                return Err(fail(StatusCode::CONFLICT, "a client with that code exists"));
            }
            // The port's client id: its own, or the new one it got when its client left.
            let id = v.client_id(port);
            (
                json!(code),
                client.get("name").cloned().unwrap_or(Value::Null),
                client.get("observation").cloned(),
                id,
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
            ("documento", document_of(observation.as_ref())),
            (
                "origem",
                record.get("external_id").cloned().unwrap_or(Value::Null),
            ),
            ("dataAlteracao", now()),
        ],
    );
    oz.detached.remove(&port);
    match observation.as_ref().and_then(Value::as_str) {
        Some(text) => oz.notes.insert(port, text.to_owned()),
        None => oz.notes.remove(&port),
    };
    if id == oid(Tag::Client, port) {
        oz.port_client.remove(&port);
    } else {
        oz.port_client.insert(port, id);
    }
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
            let mut oz = state.ozmap.lock().unwrap();
            loosen_client(&store, &mut oz, fid);
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
            oz.detached.insert(fid);
        }
        "ftth-clients" => {
            let mut store = state.store.write().unwrap();
            let mut oz = state.ozmap.lock().unwrap();
            if let Some(client) = oz.loose_clients.get_mut(&id) {
                for field in ["name", "observation"] {
                    if let Some(v) = record.get(field) {
                        client[field] = v.clone();
                    }
                }
                client["updatedAt"] = now();
            } else {
                let none = HashMap::new();
                let port = view(&store, &oz, &none)
                    .port_of_client(&id)
                    .expect("rendered");
                let mut fields = vec![("dataAlteracao", now())];
                if let Some(name) = record.get("name") {
                    fields.push(("nomeCliente", name.clone()));
                }
                if record.contains_key("observation") {
                    fields.push(("documento", document_of(record.get("observation"))));
                    match record.get("observation").and_then(Value::as_str) {
                        Some(text) => oz.notes.insert(port, text.to_owned()),
                        None => oz.notes.remove(&port),
                    };
                }
                set_port(&mut store, port, &fields);
            }
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
    let mut store = state.store.write().unwrap();
    let mut oz = state.ozmap.lock().unwrap();
    loosen_client(&store, &mut oz, fid);
    set_port(
        &mut store,
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
    oz.detached.remove(&fid);
    drop((store, oz));
    record_write(&state, &route, "delete", &json!({ "id": id }));
    Ok(StatusCode::NO_CONTENT.into_response())
}
