//! The OZmap front of the simulator: `/api/v2/...` per `docs/OZMAP-API.md`, over the same
//! generated network and with the same faults and `/_sim/` endpoints as the Geosite front.
//!
//! - `POST /api/v2/users/login?type=API` `{"login", "password"}` → `{"authorization": token}`;
//!   every other call sends `Authorization: <token>` (or the configured API key), raw.
//! - Listings: `GET /api/v2/{route}?page=P&limit=L[&populate=client]` (or the `nextUrl` given,
//!   which pages by `skip`), filters and sort in the JSON body of the GET (or `filter=`/`sort=`
//!   in the query string). The envelope is `{total, count, start, limit, rows, hasNextPage,
//!   nextUrl}`; the `legacyEnvelope` fault drops the last two (clients end on an empty page).
//! - `GET /{route}/{id}`; `POST /projects`; `POST /properties` (connects a property to a
//!   splitter's port: 409 when the port is taken or a new client's code is in use);
//!   `PATCH /properties/{id}` `{"client": null}`; `DELETE /properties/{id}`;
//!   `PATCH /ftth-clients/{id}`.

mod filter;
mod listed;
pub mod records;
mod writes;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::check_token;
use super::changes::ChangeIndex;
use super::faults::chaos;
use super::features::failing_page;
use super::{fail, Answer, SimError, SimState};
use records::View;

/// Port fids by splitter fid.
type PortIndex = Arc<HashMap<i64, Vec<i64>>>;

/// What the OZmap front keeps besides the store.
#[derive(Default)]
pub struct OzState {
    /// Ports whose property was left without a client (`PATCH {"client": null}`).
    pub(super) detached: HashSet<i64>,
    /// Ids of clients that moved onto a port from elsewhere, by port.
    pub(super) port_client: HashMap<i64, String>,
    /// Clients on no property (their property deleted or left without them), by id.
    pub(super) loose_clients: std::collections::BTreeMap<String, Value>,
    /// Numbers handed to clients whose port's own id is taken by a loose client.
    pub(super) next_client: i64,
    /// The `observation` text of a port's client as it was written (a person's notes around
    /// the document), by port; shown while the port's document is still the one it names.
    pub(super) notes: HashMap<i64, String>,
    /// Ports by splitter, at a store version.
    index: Option<(u64, PortIndex)>,
    /// Matching records of recent listings, at a store version.
    listings: HashMap<String, (u64, Arc<Vec<String>>)>,
    /// Records by `updatedAt`, per route, at a store version (see [`crate::simulator::changes`]).
    changes: HashMap<String, (u64, Arc<ChangeIndex<String>>)>,
}

/// The routes whose listings of changes read the change index.
const INDEXED: [&str; 7] = [
    "projects",
    "boxes",
    "pops",
    "poles",
    "splitters",
    "properties",
    "ftth-clients",
];

/// The routes of the OZmap front.
pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/api/v2/users/login", post(login))
        .route("/api/v2/authenticated", get(authenticated))
        .route("/api/v2/{route}", get(list).post(writes::create))
        .route(
            "/api/v2/{route}/{id}",
            get(by_id).patch(writes::update).delete(writes::delete),
        )
}

/// Checks `Authorization: <token>` (raw) or the API key.
pub(super) fn authorize(state: &SimState, headers: &HeaderMap) -> Result<(), SimError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| fail(StatusCode::UNAUTHORIZED, "missing authorization"))?;
    if !state.config.api_key.is_empty() && value == state.config.api_key {
        return Ok(());
    }
    check_token(state, value)
}

async fn login(State(state): State<Arc<SimState>>, body: Bytes) -> Answer {
    chaos(&state).await?;
    let creds: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let user = creds.get("login").and_then(Value::as_str);
    let pass = creds.get("password").and_then(Value::as_str);
    if user != Some(state.config.username.as_str()) || pass != Some(state.config.password.as_str())
    {
        return Err(fail(StatusCode::UNAUTHORIZED, "invalid credentials"));
    }
    state.logins.fetch_add(1, Ordering::SeqCst);
    let tokens = state.new_tokens();
    Ok(
        Json(json!({ "authorization": tokens["token"], "user": { "login": user } }))
            .into_response(),
    )
}

async fn authenticated(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    Ok(Json(json!({ "authenticated": true })).into_response())
}

/// Query string of a listing.
#[derive(Deserialize)]
struct ListParams {
    page: Option<String>,
    limit: Option<String>,
    skip: Option<String>,
    populate: Option<String>,
    filter: Option<String>,
    sort: Option<String>,
}

impl SimState {
    /// Writes the `observation` of the client on port `fid` (a store fid) as a person would in
    /// OZmap's own screens: free text around the CPF/CNPJ, which becomes the port's document.
    pub fn set_client_observation(&self, fid: i64, text: &str) {
        let document = records::document_in(text);
        self.edit(|store| {
            let t = store.tables.get_mut("portaSplitter").expect("ports table");
            if let (Some(c), Some(row)) = (t.col("documento"), t.rows.get_mut(&fid)) {
                row[c] = document.map_or(Value::Null, Value::from);
            }
        });
        self.ozmap
            .lock()
            .unwrap()
            .notes
            .insert(fid, text.to_owned());
    }

    /// Runs `f` over the OZmap view of the store.
    pub(super) fn ozmap_view<R>(&self, f: impl FnOnce(&View) -> R) -> R {
        let store = self.store.read().unwrap();
        let version = self.version.load(Ordering::SeqCst);
        let mut oz = self.ozmap.lock().unwrap();
        let index = match &oz.index {
            Some((v, index)) if *v == version => index.clone(),
            _ => {
                let index = Arc::new(records::index_ports(&store));
                oz.index = Some((version, index.clone()));
                index
            }
        };
        let view = View {
            store: &store,
            ports_by_splitter: &index,
            detached: &oz.detached,
            port_client: &oz.port_client,
            loose_clients: &oz.loose_clients,
            notes: &oz.notes,
        };
        f(&view)
    }

    /// The change index of an OZmap route at the store's current version, built now if missing.
    fn route_changes(&self, route: &str) -> Arc<ChangeIndex<String>> {
        let version = self.version.load(Ordering::SeqCst);
        if let Some((v, index)) = self.ozmap.lock().unwrap().changes.get(route) {
            if *v == version {
                return index.clone();
            }
        }
        let index = Arc::new(self.ozmap_view(|view| {
            let mut stamps = Vec::new();
            view.each(route, |record| {
                if let (Some(stamp), Some(id)) = (filter::stamp(&record), record["id"].as_str()) {
                    stamps.push((id.to_owned(), stamp));
                }
            });
            ChangeIndex::new(stamps)
        }));
        self.ozmap
            .lock()
            .unwrap()
            .changes
            .insert(route.to_owned(), (version, index.clone()));
        index
    }

    /// Builds the change index of every OZmap route (at start, and after `/_sim/touch`), as a
    /// platform's database indexes as it writes.
    pub(crate) fn warm_ozmap(&self) {
        for route in INDEXED {
            self.route_changes(route);
        }
    }

    /// The records of `route` matching a filter, sorted, each as JSON text: cached per store
    /// version (a listing read twice, as splitters are, is rendered and written once).
    fn matching(
        &self,
        route: &str,
        populate: bool,
        filter: &Value,
        sort: &Value,
    ) -> Result<Arc<Vec<String>>, String> {
        let key = format!("{route}|{populate}|{filter}|{sort}");
        let version = self.version.load(Ordering::SeqCst);
        if let Some((v, rows)) = self.ozmap.lock().unwrap().listings.get(&key) {
            if *v == version {
                return Ok(rows.clone());
            }
        }
        let keys = filter::parse_sort(sort)?;
        let named = filter::named_ids(filter)
            .filter(|(by, _)| *by == filter::Named::Ids || route == "properties");
        // The condition that named the records holds for each record read by it.
        let conditions = match named {
            Some(_) => filter::parse(&filter::without_named(filter))?,
            None => filter::parse(filter)?,
        };
        // A listing of changes reads the records changed, as a database would through its index
        // on `updatedAt` (the rest of the filter still applies).
        let changed: Option<Vec<String>> = match (&named, filter::change_bound(filter)) {
            (None, Some((since, strict))) if INDEXED.contains(&route) => {
                Some(self.route_changes(route).since(since, strict))
            }
            _ => None,
        };
        let mut rows: Vec<Value> = self.ozmap_view(|view| {
            // A filter naming ids (`id`, or `connections.id` of properties) reads those
            // records only, as a database would through its index.
            let mut all = match &named {
                Some((filter::Named::Ids, ids)) => {
                    ids.iter().filter_map(|id| view.by_id(route, id)).collect()
                }
                // Rendered populated at once: the listing of a page's ports asks for these.
                Some((filter::Named::Splitters, ids)) => ids
                    .iter()
                    .filter_map(|id| records::fid_of(records::Tag::Plain, id))
                    .flat_map(|s| view.ports_by_splitter.get(&s).cloned().unwrap_or_default())
                    .filter_map(|port| view.property(port, populate))
                    .collect(),
                _ => match &changed {
                    Some(ids) => ids.iter().filter_map(|id| view.listed(route, id)).collect(),
                    None => view.all(route),
                },
            };
            all.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            all.dedup_by(|a, b| a["id"] == b["id"]);
            let rendered = matches!(named, Some((filter::Named::Splitters, _)));
            if route == "properties" && populate && !rendered {
                for row in &mut all {
                    if let Some(fid) = row["id"]
                        .as_str()
                        .and_then(|id| records::fid_of(records::Tag::Property, id))
                    {
                        if let Some(full) = view.property(fid, true) {
                            *row = full;
                        }
                    }
                }
            }
            all
        });
        rows.retain(|row| filter::matches(row, &conditions));
        if !keys.is_empty() {
            rows.sort_by(|a, b| filter::order(a, b, &keys));
        }
        let rows: Arc<Vec<String>> = Arc::new(rows.iter().map(Value::to_string).collect());
        if named.is_some() {
            // Read through the index: cheap again, and caching each page's own filter would
            // evict the listings that are costly to compute.
            return Ok(rows);
        }
        let mut oz = self.ozmap.lock().unwrap();
        if oz.listings.len() > 64 {
            oz.listings.clear();
        }
        oz.listings.insert(key, (version, rows.clone()));
        Ok(rows)
    }
}

async fn list(
    State(state): State<Arc<SimState>>,
    Path(route): Path<String>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    if !records::ROUTES.contains(&route.as_str()) {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("unknown route {route}"),
        ));
    }
    failing_page(&state, &route)?;
    let bad = |m: String| fail(StatusCode::BAD_REQUEST, m);
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|_| bad("the body is not JSON".into()))?
    };
    let from_query = |text: &Option<String>| -> Result<Option<Value>, SimError> {
        text.as_deref()
            .map(|t| serde_json::from_str(t).map_err(|_| bad("filter/sort is not JSON".into())))
            .transpose()
    };
    let mut filter = match from_query(&params.filter)? {
        Some(f) => f,
        None => body.get("filter").cloned().unwrap_or(json!([])),
    };
    let names_connections = |f: &Value| {
        f.as_array().is_some_and(|items| {
            items
                .iter()
                .any(|c| c.get("property") == Some(&json!("connections.id")))
        })
    };
    if state.faults.lock().unwrap().refuse_connections_filter && names_connections(&filter) {
        return Err(bad("connections.id: not a filterable field".into()));
    }
    if state.faults.lock().unwrap().ignore_connections_filter {
        if let Some(items) = filter.as_array_mut() {
            items.retain(|c| c.get("property") != Some(&json!("connections.id")));
        }
    }
    let sort = match from_query(&params.sort)? {
        Some(s) => s,
        None => body.get("sort").cloned().unwrap_or(json!([])),
    };
    let number = |v: &Option<String>| v.as_deref().and_then(|l| l.parse::<usize>().ok());
    let limit = number(&params.limit).unwrap_or(50).clamp(1, 500);
    let start = match number(&params.skip) {
        Some(skip) => skip,
        None => number(&params.page).unwrap_or(1).max(1).saturating_sub(1) * limit,
    };
    let populate = params
        .populate
        .as_deref()
        .is_some_and(|p| p.split(',').any(|f| f == "client"))
        && !state.faults.lock().unwrap().populate_ignored;
    let rows = state
        .matching(&route, populate, &filter, &sort)
        .map_err(bad)?;
    let page = &rows[start.min(rows.len())..(start + limit).min(rows.len())];
    let more = start + page.len() < rows.len();
    let mut answer = json!({
        "total": rows.len(), "count": page.len(), "start": start, "limit": limit,
    });
    let faults = state.faults.lock().unwrap().clone();
    if !faults.legacy_envelope {
        answer["hasNextPage"] = json!(more);
        if more {
            let populate = if populate && !faults.next_url_without_populate {
                "&populate=client"
            } else {
                ""
            };
            answer["nextUrl"] = json!(format!(
                "/api/v2/{route}?skip={}&limit={limit}{populate}",
                start + limit
            ));
        }
    }
    // The envelope with the rows' text spliced in as its last member.
    let head = answer.to_string();
    let mut body =
        String::with_capacity(head.len() + page.iter().map(|r| r.len() + 1).sum::<usize>() + 10);
    body.push_str(&head[..head.len() - 1]);
    body.push_str(",\"rows\":[");
    for (i, row) in page.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(row);
    }
    body.push_str("]}");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn by_id(
    State(state): State<Arc<SimState>>,
    Path((route, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    match state.ozmap_view(|view| view.by_id(&route, &id)) {
        Some(record) => Ok(Json(record).into_response()),
        None => Err(fail(StatusCode::NOT_FOUND, format!("no {route} {id}"))),
    }
}
