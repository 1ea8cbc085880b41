//! OZmap behind the platform trait: projects, boxes (CTO or CEO by box type and level), POPs,
//! poles of the project's boxes, splitters, and ports derived from splitters and the properties
//! connected to them. Writing a customer is in [`super::push`].

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use futures::{stream, StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{project, OzmapClient, RawPage};
use super::listing::{self, by_ids, condition, split, Route, IDS_PER_QUERY};
use super::wire::{Client, Place, Property, Splitter};
use super::{assumed, convert};
use crate::catalog::ElementItem;
use crate::platform::{
    Check, ListPage, ListQuery, Listing, Platform, PortChange, PortWrite, RemoteElement,
    RemotePort, RemoteProject, RemoteSplitter, Unreadable,
};
use crate::{Error, Result};

/// Splitters whose properties are asked for in one filter: a whole page of them, so that the
/// ports of a page cost one listing of properties (paged) instead of one per hundred.
const SPLITTERS_PER_QUERY: usize = listing::MAX_PAGE_SIZE as usize;

/// Ports a splitter is taken to have when the ports listing pages through splitters: it asks
/// for pages of `page_size / 8` splitters, about a page of ports at 1:8 (a page of 500
/// splitters carried up to 8,000 ports and took the simulator twice as long per splitter).
const PORTS_PER_SPLITTER: u32 = 8;

/// Pages of splitters whose properties are read at once while the ports listing streams: the
/// next page's are fetched while the engine writes the previous one's ports.
const PORT_PAGES_AHEAD: usize = 2;

/// The splitters a changed-since listing of ports has read, by a hash of their id: a port's
/// change moves its splitter's `updatedAt` and its property's, and the splitters found through
/// properties and clients are then not read a second time.
#[derive(Clone, Default)]
struct ReadSplitters(Arc<(RandomState, Mutex<HashSet<u64>>)>);

impl ReadSplitters {
    fn add(&self, splitters: &[Splitter]) {
        let (hasher, set) = &*self.0;
        let mut set = set.lock().expect("splitters read");
        set.extend(splitters.iter().map(|s| hasher.hash_one(&s.id)));
    }

    fn has(&self, id: &String) -> bool {
        let (hasher, set) = &*self.0;
        set.lock()
            .expect("splitters read")
            .contains(&hasher.hash_one(id))
    }
}

fn place(
    feature: &'static str,
) -> impl Fn(&Value) -> Option<std::result::Result<RemoteElement, Unreadable>> {
    move |row| Some(Place::read(feature, row).map(|p| convert::element(&p)))
}

impl OzmapClient {
    /// CTOs or CEOs: the project's boxes whose type (else level) names that item.
    fn boxes(&self, item: ElementItem, query: ListQuery) -> Listing<RemoteElement> {
        let this = self.clone();
        stream::once(async move {
            let context = this.box_context(query.project_id.as_deref()).await?;
            Ok::<_, Error>(this.typed(Route::Boxes, &query, move |row| {
                match Place::read("boxes", row) {
                    Ok(p) => (convert::box_item(&p, &context.box_types, &context.level_names)
                        == Some(item))
                    .then(|| Ok(convert::element(&p))),
                    Err(u) => Some(Err(u)),
                }
            }))
        })
        .try_flatten()
        .boxed()
    }

    /// Poles are not per project: those the project's boxes hang on.
    fn poles(&self, query: ListQuery) -> Listing<RemoteElement> {
        let this = self.clone();
        stream::once(async move {
            let Some(project) = query.project_id.clone() else {
                return Ok::<_, Error>(this.typed(Route::Poles, &query, place("poles")));
            };
            let in_project = ListQuery {
                project_id: Some(project),
                ..Default::default()
            };
            let mut ids: BTreeSet<String> = BTreeSet::new();
            let mut boxes = this.pages(Route::Boxes, listing::body(Route::Boxes, &in_project));
            while let Some(page) = boxes.try_next().await? {
                ids.extend(
                    page.values()
                        .filter_map(|row| Place::read("boxes", &row).ok()?.pole),
                );
            }
            if let Some(fid) = &query.fid {
                ids.retain(|id| id == fid);
            }
            if let Some(fids) = &query.fids {
                ids.retain(|id| fids.contains(id));
            }
            let ids: Vec<String> = ids.into_iter().collect();
            let listings: Vec<Listing<RemoteElement>> = by_ids(&query, &ids)
                .iter()
                .map(|q| this.typed(Route::Poles, q, place("poles")))
                .collect();
            Ok(stream::iter(listings).flatten().boxed())
        })
        .try_flatten()
        .boxed()
    }

    /// The properties connected to these splitters (clients populated): those read, and the
    /// field of one that could not be.
    async fn properties_on(
        &self,
        splitters: &[Splitter],
    ) -> Result<(Vec<Property>, Option<&'static str>)> {
        let mut properties = Vec::new();
        let mut unreadable = None;
        for chunk in splitters.chunks(SPLITTERS_PER_QUERY) {
            let (read, field) = self.properties_connected(chunk).await?;
            properties.extend(read);
            unreadable = unreadable.or(field);
        }
        Ok((properties, unreadable))
    }

    /// The properties connected to these splitters, asked for by `connections.id`. That field
    /// is in the SDK's read schema but not in its stored data, so a server may ignore the
    /// filter (a property of another splitter comes back) or refuse it: the listing then asks
    /// by the boxes that house the splitters (a stored field) and keeps the properties
    /// connected to them. A property not connected to the splitters is never taken for theirs.
    pub(super) async fn properties_connected(
        &self,
        splitters: &[Splitter],
    ) -> Result<(Vec<Property>, Option<&'static str>)> {
        let ids: HashSet<&str> = splitters.iter().map(|s| s.id.as_str()).collect();
        let query = ListQuery {
            splitter_fids: Some(ids.iter().map(|id| id.to_string()).collect()),
            ..Default::default()
        };
        match self
            .properties(listing::body(Route::Properties, &query), Some(&ids))
            .await
        {
            Ok(Some(read)) => return Ok(read),
            // Ignored (a property of another splitter) or refused: by box.
            Ok(None) | Err(Error::Validation { .. }) => {}
            Err(e) => return Err(e),
        }
        let boxes: BTreeSet<&str> = splitters
            .iter()
            .filter_map(|s| s.parent.as_deref())
            .collect();
        let boxes: Vec<&str> = boxes.into_iter().collect();
        let connected = |p: &Property| p.connections.iter().any(|(s, _)| ids.contains(s.as_str()));
        let mut properties = Vec::new();
        let mut unreadable = None;
        for chunk in boxes.chunks(IDS_PER_QUERY) {
            let body = json!({ "filter": [condition("box", "in", json!(chunk))] });
            let (read, field) = self.properties(body, None).await?.unwrap_or_default();
            properties.extend(read.into_iter().filter(connected));
            unreadable = unreadable.or(field);
        }
        Ok((properties, unreadable))
    }

    /// Every property a listing's filter names, its client populated: a client the server
    /// named by id only (it ignored `populate`) is read by id, never taken for no customer.
    /// Returns those read, and the field of one that could not be (its client missing too);
    /// `None`, at the first page that shows it, when `connected_to` is given and a property
    /// connected to none of those splitters comes back (the server ignored the filter).
    pub(super) async fn properties(
        &self,
        body: Value,
        connected_to: Option<&HashSet<&str>>,
    ) -> Result<Option<(Vec<Property>, Option<&'static str>)>> {
        let mut properties = Vec::new();
        let mut unreadable = None;
        let mut pages = self.pages(Route::Properties, body);
        while let Some(page) = pages.try_next().await? {
            for row in page.values() {
                match Property::read(&row) {
                    Ok(p) => properties.push(p),
                    Err(u) => unreadable = Some(u.field),
                }
            }
            if let Some(ids) = connected_to {
                let stray =
                    |p: &Property| !p.connections.iter().any(|(s, _)| ids.contains(s.as_str()));
                if properties.iter().any(stray) {
                    return Ok(None);
                }
            }
        }
        let bare: BTreeSet<String> = properties
            .iter()
            .filter(|p| p.client.is_none())
            .filter_map(|p| p.client_ref.clone())
            .collect();
        if bare.is_empty() {
            return Ok(Some((properties, unreadable)));
        }
        let bare: Vec<String> = bare.into_iter().collect();
        let mut clients = std::collections::HashMap::new();
        for chunk in bare.chunks(IDS_PER_QUERY) {
            let body = json!({ "filter": [condition("id", "in", json!(chunk))] });
            for row in self.all(Route::Clients, body).await? {
                if let Some(c) = Client::read(&row) {
                    clients.insert(c.id.clone(), c);
                }
            }
        }
        for p in properties.iter_mut().filter(|p| p.client.is_none()) {
            if let Some(id) = &p.client_ref {
                match clients.get(id) {
                    Some(c) => p.client = Some(c.clone()),
                    None => unreadable = Some("client"),
                }
            }
        }
        Ok(Some((properties, unreadable)))
    }

    /// The ports of a page of splitters. A splitter that cannot be read hides ports that cannot
    /// be named (nothing of ports is then deleted); a property that cannot be read could be on
    /// any port of the page, so every port of the page is reported unreadable (kept as it was).
    async fn ports_of(
        &self,
        page: RawPage,
        wanted: Option<&HashSet<String>>,
        read: Option<&ReadSplitters>,
    ) -> Result<ListPage<RemotePort>> {
        let mut splitters = Vec::new();
        let mut unreadable = Vec::new();
        for row in page.values() {
            match Splitter::read(&row) {
                Ok(s) => splitters.push(s),
                Err(u) => unreadable.push(Unreadable {
                    feature: "splitters",
                    fid: None,
                    field: u.field,
                }),
            }
        }
        drop(page.rows);
        if let Some(read) = read {
            read.add(&splitters);
        }
        let (properties, property_unreadable) = self.properties_on(&splitters).await?;
        let mut records = Vec::new();
        for s in &splitters {
            for port in convert::ports(s, &properties) {
                if wanted.is_some_and(|w| !w.contains(&port.fid)) {
                    continue;
                }
                match property_unreadable {
                    Some(field) => unreadable.push(Unreadable {
                        feature: "properties",
                        fid: Some(port.fid),
                        field,
                    }),
                    None => records.push(port),
                }
            }
        }
        // The listing counts splitters; a port estimate keeps progress in ports.
        let total = if splitters.is_empty() {
            page.total
        } else {
            page.total * (records.len() + unreadable.len()).max(1) as u64 / splitters.len() as u64
        };
        Ok(ListPage {
            records,
            total,
            clock: page.clock,
            unreadable,
        })
    }

    /// Ports of the splitters a listing (of this query) pages through, page by page.
    fn ports_streamed(
        &self,
        query: &ListQuery,
        read: Option<ReadSplitters>,
    ) -> Listing<RemotePort> {
        let pages = self.pages_of(
            Route::Splitters,
            listing::body(Route::Splitters, query),
            (self.page_size() / PORTS_PER_SPLITTER).max(1),
        );
        let this = self.clone();
        let per_page = self.page_size() as usize;
        pages
            .map_ok(move |page| {
                let this = this.clone();
                let read = read.clone();
                async move { this.ports_of(page, None, read.as_ref()).await }
            })
            .try_buffered(PORT_PAGES_AHEAD)
            // A page of splitters carries up to 16 times as many ports: written in pages of
            // the configured size, as other listings are, so that a sync's transactions and
            // its pages in flight stay as large as on any platform.
            .map_ok(move |page| stream::iter(split(page, per_page).into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    /// Ports asked for by fid or by splitter: read at once, one page, counted exactly.
    async fn ports_named(&self, query: ListQuery) -> Result<ListPage<RemotePort>> {
        let mut wanted: Option<HashSet<String>> = None;
        let mut splitters: BTreeSet<String> = BTreeSet::new();
        for fid in query.fid.iter().chain(query.fids.iter().flatten()) {
            if let Some((splitter, _)) = assumed::parse_port_fid(fid) {
                splitters.insert(splitter.to_owned());
            }
            wanted.get_or_insert_with(HashSet::new).insert(fid.clone());
        }
        splitters.extend(query.splitter_fids.iter().flatten().cloned());
        let ids: Vec<String> = splitters.into_iter().collect();
        let mut out = ListPage {
            records: Vec::new(),
            total: 0,
            clock: None,
            unreadable: Vec::new(),
        };
        let scope = ListQuery {
            project_id: query.project_id.clone(),
            changed_since: query.changed_since,
            ..Default::default()
        };
        for q in by_ids(&scope, &ids) {
            let mut pages = self.pages(Route::Splitters, listing::body(Route::Splitters, &q));
            while let Some(page) = pages.try_next().await? {
                let ports = self.ports_of(page, wanted.as_ref(), None).await?;
                out.clock = ports.clock.or(out.clock);
                out.records.extend(ports.records);
                out.unreadable.extend(ports.unreadable);
            }
        }
        out.total = (out.records.len() + out.unreadable.len()) as u64;
        Ok(out)
    }

    /// The splitters whose ports changed since `since` through their property or its client
    /// (a splitter's own changes are listed by its `updatedAt`).
    async fn splitters_touched_since(&self, query: &ListQuery) -> Result<Vec<String>> {
        let changed = |q: &ListQuery| ListQuery {
            project_id: q.project_id.clone(),
            changed_since: q.changed_since,
            ..Default::default()
        };
        let mut splitters = BTreeSet::new();
        let mut connected = |rows: Vec<Value>| {
            for row in rows {
                if let Ok(p) = Property::read(&row) {
                    splitters.extend(p.connections.into_iter().map(|(s, _)| s));
                }
            }
        };
        connected(
            self.all(
                Route::Properties,
                listing::body(Route::Properties, &changed(query)),
            )
            .await?,
        );
        let clients: Vec<String> = self
            .all(
                Route::Clients,
                listing::body(Route::Clients, &changed(query)),
            )
            .await?
            .iter()
            .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        for chunk in clients.chunks(IDS_PER_QUERY) {
            let body = json!({ "filter": [condition("client", "in", json!(chunk))] });
            connected(self.all(Route::Properties, body).await?);
        }
        Ok(splitters.into_iter().collect())
    }
}

#[async_trait]
impl Platform for OzmapClient {
    async fn check(&self) -> Result<Check> {
        let started = Instant::now();
        let first = self
            .pages(Route::Projects, json!({}))
            .try_next()
            .await?
            .map_or(0, |p| p.total);
        Ok(Check {
            latency: started.elapsed(),
            project_count: first,
        })
    }

    async fn projects(&self) -> Result<Vec<RemoteProject>> {
        let rows = self
            .all(
                Route::Projects,
                listing::body(Route::Projects, &ListQuery::default()),
            )
            .await?;
        Ok(rows.iter().filter_map(project).collect())
    }

    async fn create_project(&self, name: &str) -> Result<RemoteProject> {
        let reply = self
            .call(
                Method::POST,
                "/api/v2/projects",
                Some(&json!({ "name": name, "lat": 0, "lng": 0 })),
            )
            .await?;
        Ok(project(&reply.body).unwrap_or(RemoteProject {
            remote_id: super::client::created_id(&reply)?,
            name: name.to_owned(),
            updated_at: None,
        }))
    }

    fn elements(&self, item: ElementItem, query: ListQuery) -> Listing<RemoteElement> {
        match item {
            ElementItem::Cto | ElementItem::Ceo => self.boxes(item, query),
            ElementItem::Pop => self.typed(Route::Pops, &query, place("pops")),
            ElementItem::Pole => self.poles(query),
            ElementItem::Service | ElementItem::Distribution => stream::empty().boxed(),
        }
    }

    fn splitters(&self, query: ListQuery) -> Listing<RemoteSplitter> {
        self.typed(Route::Splitters, &query, |row| {
            Some(Splitter::read(row).map(|s| convert::splitter(&s)))
        })
    }

    fn ports(&self, query: ListQuery) -> Listing<RemotePort> {
        let named = query.fid.is_some() || query.fids.is_some() || query.splitter_fids.is_some();
        if named {
            let this = self.clone();
            return stream::once(async move { this.ports_named(query).await }).boxed();
        }
        if query.changed_since.is_none() {
            return self.ports_streamed(&query, None);
        }
        let read = ReadSplitters::default();
        let changed = self.ports_streamed(&query, Some(read.clone()));
        let this = self.clone();
        // Chained: the splitters found through properties and clients are asked for once
        // the changed splitters have all been read.
        let touched = stream::once(async move {
            let mut ids = this.splitters_touched_since(&query).await?;
            ids.retain(|id| !read.has(id));
            let scope = ListQuery {
                project_id: query.project_id.clone(),
                ..Default::default()
            };
            let listings: Vec<Listing<RemotePort>> = by_ids(&scope, &ids)
                .iter()
                .map(|q| this.ports_streamed(q, None))
                .collect();
            Ok::<_, Error>(stream::iter(listings).flatten().boxed())
        })
        .try_flatten();
        changed.chain(touched).boxed()
    }

    async fn set_port_customer(
        &self,
        port_fid: &str,
        change: PortChange<'_>,
        origin: &str,
    ) -> Result<PortWrite> {
        self.write_port(port_fid, change, origin).await
    }
}
