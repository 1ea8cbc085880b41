//! The Geosite client: the one module that knows Geosite's wire format.
//!
//! - Sessions: a token from `/auth/generatetoken`, renewed shortly before it expires through
//!   `/auth/refresh`, falling back to a new login; on a 401, one renewal and one retry.
//! - Retries: 429 (honouring `Retry-After`), 5xx, timeouts and connection errors are retried with
//!   exponential backoff and jitter (the `backon` crate), within a number of attempts and a total
//!   deadline; other 4xx are not retried.
//! - Listings are keyset-paged (`fid > last`, sorted by fid) so that records deleted while a
//!   listing runs cannot shift later records out of it, and are streamed page by page.
//! - Passwords and tokens never reach a log line.

mod listing;
mod session;
pub mod wire;
mod writes;

pub use crate::transport::{ClientOptions, Reply};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::catalog::ElementItem;
use crate::platform::{
    Check, Holder, ListPage, ListQuery, Listing, Platform, PortChange, PortWrite, RemoteElement,
    RemotePort, RemoteProject, RemoteSplitter,
};
use crate::transport::{Auth, Transport};
use crate::Result;

use listing::filter_of;

/// The path segments of Geosite's routes (every feature's path, its actions, the session's and
/// the viability's): the words a metrics label keeps.
const ROUTES: &[&str] = &[
    "projeto",
    "cto",
    "caixaEmenda",
    "estacao",
    "poste",
    "splitter",
    "portaSplitter",
    "list",
    "desc",
    "save",
    "delete",
    "auth",
    "generatetoken",
    "refresh",
    "viabilidade",
    "caixas",
];

/// A Geosite feature ("feição").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feature {
    /// `projeto`.
    Project,
    /// `cto`.
    Cto,
    /// `caixaEmenda`.
    SpliceBox,
    /// `estacao`.
    Station,
    /// `poste`.
    Pole,
    /// `splitter`.
    Splitter,
    /// `portaSplitter`.
    Port,
}

impl Feature {
    /// The feature's path segment.
    pub fn path(self) -> &'static str {
        match self {
            Feature::Project => "projeto",
            Feature::Cto => "cto",
            Feature::SpliceBox => "caixaEmenda",
            Feature::Station => "estacao",
            Feature::Pole => "poste",
            Feature::Splitter => "splitter",
            Feature::Port => "portaSplitter",
        }
    }

    /// The feature that holds an element item; `None` for splitter items.
    pub fn of_item(item: ElementItem) -> Option<Feature> {
        match item {
            ElementItem::Cto => Some(Feature::Cto),
            ElementItem::Ceo => Some(Feature::SpliceBox),
            ElementItem::Pop => Some(Feature::Station),
            ElementItem::Pole => Some(Feature::Pole),
            ElementItem::Service | ElementItem::Distribution => None,
        }
    }

    /// The columns the gateway reads, before intersecting with what `desc` reports.
    fn wanted_columns(self) -> &'static [&'static str] {
        match self {
            Feature::Project => &["fid", "nome", "dataAlteracao"],
            Feature::Cto | Feature::SpliceBox | Feature::Station | Feature::Pole => &[
                "fid",
                "nome",
                "fidProjeto",
                "geometry",
                "x",
                "y",
                "latitude",
                "longitude",
                "dataAlteracao",
            ],
            Feature::Splitter => &[
                "fid",
                "nome",
                "fidProjeto",
                "fidCaixa",
                "tipo",
                "relacao",
                "dataAlteracao",
            ],
            Feature::Port => &[
                "fid",
                "fidSplitter",
                "fidProjeto",
                "numero",
                "status",
                "contrato",
                "documento",
                "nomeCliente",
                "dataAlteracao",
            ],
        }
    }
}

/// A box found by the viability endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ViabilityBox {
    /// Platform id of the box.
    pub fid: String,
    /// `tipoCodigo`, e.g. `CTO: CTO-01`.
    pub label: String,
    /// Distance from the asked point, in meters.
    pub distance_m: f64,
    /// Splitter ports in the box.
    pub ports: i64,
    /// Free splitter ports.
    pub free_ports: i64,
    /// Occupied splitter ports.
    pub occupied_ports: i64,
    /// (latitude, longitude) of the box, when given.
    pub location: Option<(f64, f64)>,
}

struct Inner {
    transport: Transport,
    username: String,
    password: String,
    session: Mutex<Option<session::Session>>,
    columns: std::sync::Mutex<HashMap<Feature, Vec<String>>>,
}

/// A client of one Geosite installation. Cheap to clone.
#[derive(Clone)]
pub struct GeositeClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GeositeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeositeClient")
            .field("base", &self.inner.transport.base())
            .field("username", &self.inner.username)
            .finish_non_exhaustive()
    }
}

/// Builds Geosite clients with the same options: the registry entry of `GEOSITE`.
#[derive(Clone, Debug, Default)]
pub struct GeositeConnector(pub ClientOptions);

impl crate::platform::Connector for GeositeConnector {
    fn connect(
        &self,
        api_url: &str,
        username: &str,
        password: &str,
    ) -> Result<Arc<dyn crate::platform::Platform>> {
        Ok(Arc::new(GeositeClient::new(
            api_url,
            username,
            password,
            self.0.clone(),
        )?))
    }
}

impl GeositeClient {
    /// A client for `api_url` with these credentials.
    pub fn new(
        api_url: &str,
        username: &str,
        password: &str,
        options: ClientOptions,
    ) -> Result<Self> {
        Ok(GeositeClient {
            inner: Arc::new(Inner {
                transport: Transport::new("geosite", api_url, options, ROUTES)?,
                username: username.to_owned(),
                password: password.to_owned(),
                session: Mutex::new(None),
                columns: Default::default(),
            }),
        })
    }

    fn options(&self) -> &ClientOptions {
        self.inner.transport.options()
    }

    /// GET with the session.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Reply> {
        self.inner
            .transport
            .request(Method::GET, path, query, None, Auth::Session(self))
            .await
    }

    /// POST JSON with the session.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.inner
            .transport
            .request(Method::POST, path, &[], Some(body), Auth::Session(self))
            .await
    }
}
#[async_trait]
impl Platform for GeositeClient {
    async fn check(&self) -> Result<crate::platform::Check> {
        let started = Instant::now();
        let query = [
            ("columns", "fid".to_string()),
            ("limit", "1".to_string()),
            ("start", "0".to_string()),
        ];
        let reply = self.get("projeto/list", &query).await?;
        let project_count = reply
            .body
            .get("total")
            .and_then(wire::int)
            .map(|t| t.max(0) as u64)
            .unwrap_or(0);
        Ok(Check {
            latency: started.elapsed(),
            project_count,
        })
    }

    async fn projects(&self) -> Result<Vec<RemoteProject>> {
        use futures::TryStreamExt;
        let pages: Vec<ListPage<RemoteProject>> = self
            .list_typed(Feature::Project, Vec::new(), wire::project)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flat_map(|p| p.records).collect())
    }

    async fn create_project(&self, name: &str) -> Result<RemoteProject> {
        let fid = self
            .save(Feature::Project, &json!({ "nome": name }))
            .await?;
        Ok(RemoteProject {
            remote_id: fid,
            name: name.to_owned(),
            updated_at: None,
        })
    }

    fn elements(&self, item: ElementItem, query: ListQuery) -> Listing<RemoteElement> {
        match Feature::of_item(item) {
            Some(feature) => self.list_typed(feature, filter_of(&query, true), wire::element),
            None => Box::pin(futures::stream::empty()),
        }
    }

    fn splitters(&self, query: ListQuery) -> Listing<RemoteSplitter> {
        self.list_typed(Feature::Splitter, filter_of(&query, true), wire::splitter)
    }

    fn ports(&self, query: ListQuery) -> Listing<RemotePort> {
        self.list_typed(Feature::Port, filter_of(&query, true), wire::port)
    }

    /// A push is one `save` (a read first would double the requests of a burst of
    /// confirmations; the outbox holds a push whose port the last sync saw in conflict). A
    /// removal, the write that could erase a customer, first reads the port by fid and frees it
    /// only when the customer on it is ours.
    async fn set_port_customer(
        &self,
        port_fid: &str,
        change: PortChange<'_>,
        origin: &str,
    ) -> Result<PortWrite> {
        let record = match change {
            PortChange::Occupy(c) => json!({
                "fid": wire::id_value(port_fid), "status": "OCUPADA",
                "contrato": c.contract, "documento": c.document, "nomeCliente": c.name,
                "origem": origin,
            }),
            PortChange::Free(ours) => {
                let now = self.port_now(port_fid).await?;
                let Some(port) = now else {
                    return Ok(PortWrite::NothingThere);
                };
                match port.holder(&ours.contract, &ours.document) {
                    Holder::Nobody => return Ok(PortWrite::NothingThere),
                    Holder::Other => {
                        return Ok(PortWrite::Other(port.customer.unwrap_or_default()))
                    }
                    Holder::Ours => {}
                }
                json!({
                    "fid": wire::id_value(port_fid), "status": "LIVRE",
                    "contrato": null, "documento": null, "nomeCliente": null, "origem": origin,
                })
            }
        };
        self.save(Feature::Port, &record).await?;
        Ok(PortWrite::Written)
    }
}

#[cfg(test)]
mod routes {
    #[test]
    fn every_feature_path_is_a_route_word() {
        use super::Feature::*;
        for f in [Project, Cto, SpliceBox, Station, Pole, Splitter, Port] {
            assert!(super::ROUTES.contains(&f.path()), "{}", f.path());
        }
    }
}
