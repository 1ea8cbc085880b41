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

pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::catalog::ElementItem;
use crate::platform::{
    Check, CustomerRecord, ListPage, ListQuery, Listing, Platform, RemoteElement, RemotePort,
    RemoteProject, RemoteSplitter,
};
use crate::{Error, Result};

use wire::Record;

/// Tunables of the client. The defaults suit a real installation; tests shorten them.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Time to open a connection.
    pub connect_timeout: Duration,
    /// Time for one request, start to end.
    pub request_timeout: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: usize,
    /// First backoff delay.
    pub min_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Total time a call may take, retries included.
    pub deadline: Duration,
    /// How long a token lives (30 minutes on Geosite).
    pub token_ttl: Duration,
    /// How long a refresh token lives (30 days on Geosite).
    pub refresh_ttl: Duration,
    /// Renew this long before a token expires.
    pub renew_margin: Duration,
    /// Records asked for per page (servers may cap lower).
    pub page_size: u32,
    /// Which addresses the client may connect to.
    pub network: Arc<crate::outbound::NetworkPolicy>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_attempts: 5,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            deadline: Duration::from_secs(90),
            token_ttl: Duration::from_secs(30 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            renew_margin: Duration::from_secs(60),
            page_size: 500,
            network: Default::default(),
        }
    }
}

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

/// A successful answer: its JSON body and the platform's clock.
#[derive(Debug)]
pub struct Reply {
    /// The JSON body.
    pub body: Value,
    /// The `Date` header.
    pub clock: Option<DateTime<Utc>>,
}

#[derive(Clone)]
struct Session {
    token: String,
    refresh_token: String,
    token_expires: Instant,
    refresh_expires: Instant,
}

enum Auth<'a> {
    /// No Authorization header (login).
    None,
    /// The given raw token (refresh).
    Token(&'a str),
    /// The current session token, renewed on a 401 once.
    Session,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    username: String,
    password: String,
    options: ClientOptions,
    session: Mutex<Option<Session>>,
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
            .field("base", &self.inner.base)
            .field("username", &self.inner.username)
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed, and whether another may help.
enum Failure {
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
    Final(Error),
    Unauthorized,
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

/// The policy refusal behind a reqwest error, if that is what it is.
fn refused_address(err: &reqwest::Error) -> Option<&crate::outbound::AddressRefused> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<crate::outbound::AddressRefused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

impl GeositeClient {
    /// A client for `api_url` with these credentials.
    pub fn new(
        api_url: &str,
        username: &str,
        password: &str,
        options: ClientOptions,
    ) -> Result<Self> {
        let url = url::Url::parse(api_url)
            .map_err(|_| Error::validation("apiUrl", "apiUrl is not an absolute URL"))?;
        // Literal addresses never reach the resolver: they are checked here, names there.
        options
            .network
            .check_url(&url)
            .map_err(|refused| Error::PlatformUnavailable(refused.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(concat!("mapping-gateway/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(options.network.resolver())
            // A redirect could lead the login body (with the password) to another host, or to
            // a literal internal address that no resolver sees.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::internal)?;
        Ok(GeositeClient {
            inner: Arc::new(Inner {
                http,
                base: api_url.trim_end_matches('/').to_owned(),
                username: username.to_owned(),
                password: password.to_owned(),
                options,
                session: Mutex::new(None),
                columns: Default::default(),
            }),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.inner.base, path.trim_start_matches('/'))
    }

    /// One attempt of a request.
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        token: Option<&str>,
    ) -> std::result::Result<Reply, Failure> {
        let mut request = self
            .inner
            .http
            .request(method.clone(), self.url(path))
            .query(query);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Digicade-Rest-API:{token}"));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                if let Some(refused) = refused_address(&e) {
                    return Err(Failure::Final(Error::PlatformUnavailable(
                        refused.to_string(),
                    )));
                }
                // One message for every transport failure: whether a port is closed, open but
                // silent, or speaking something else must not be told apart from outside.
                return Err(Failure::Retry {
                    reason: "could not reach the platform".into(),
                    wait: None,
                });
            }
        };
        let status = response.status();
        let clock = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(wire::http_date);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        tracing::debug!(%method, path, status = status.as_u16(), "geosite call");
        let text = match response.text().await {
            Ok(t) => t,
            Err(_) => {
                return Err(Failure::Retry {
                    reason: "response body interrupted".into(),
                    wait: None,
                })
            }
        };
        let json = || serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
        let message = || {
            json()
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16()))
        };
        match status {
            s if s.is_success() => match serde_json::from_str::<Value>(&text) {
                Ok(body) => Ok(Reply { body, clock }),
                Err(_) => Err(Failure::Final(Error::PlatformUnavailable(format!(
                    "{path} answered with something that is not JSON"
                )))),
            },
            StatusCode::UNAUTHORIZED => Err(Failure::Unauthorized),
            StatusCode::FORBIDDEN => Err(Failure::Final(Error::PlatformAuth(format!(
                "the user may not use {path}"
            )))),
            StatusCode::TOO_MANY_REQUESTS => Err(Failure::Retry {
                reason: "rate limited (429)".into(),
                wait: retry_after,
            }),
            StatusCode::NOT_FOUND => Err(Failure::Final(Error::NotFound(format!(
                "{path} on the platform"
            )))),
            s if s.is_server_error() => Err(Failure::Retry {
                reason: format!("server error {}", s.as_u16()),
                wait: retry_after,
            }),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Err(Failure::Final(Error::Validation {
                    message: format!("the platform refused the request: {}", message()),
                    field: None,
                }))
            }
            s => Err(Failure::Final(Error::PlatformUnavailable(format!(
                "unexpected HTTP {} from {path}",
                s.as_u16()
            )))),
        }
    }

    /// A request with retries. With `Auth::Session`, a 401 renews the session once.
    async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        auth: Auth<'_>,
    ) -> Result<Reply> {
        let o = &self.inner.options;
        let started = Instant::now();
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(o.min_delay)
            .with_max_delay(o.max_delay)
            .with_max_times(o.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut renewed = false;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let token = match &auth {
                Auth::None => None,
                Auth::Token(t) => Some(t.to_string()),
                Auth::Session => Some(self.token().await?),
            };
            match self
                .attempt(&method, path, query, body, token.as_deref())
                .await
            {
                Ok(reply) => return Ok(reply),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Unauthorized) => match (&auth, renewed) {
                    (Auth::Session, false) => {
                        renewed = true;
                        attempts -= 1;
                        self.renew(token.as_deref().unwrap_or_default()).await?;
                    }
                    (Auth::None, _) => {
                        return Err(Error::PlatformAuth(
                            "the platform refused the username or password".into(),
                        ))
                    }
                    _ => {
                        return Err(Error::PlatformAuth(
                            "the platform refused the session token".into(),
                        ))
                    }
                },
                Err(Failure::Retry { reason, wait }) => {
                    let Some(delay) = delays.next() else {
                        return Err(Error::PlatformUnavailable(format!(
                            "{path}: {reason} after {attempts} attempts"
                        )));
                    };
                    let delay = wait.map_or(delay, |w| w.max(delay));
                    if started.elapsed() + delay > o.deadline {
                        return Err(Error::PlatformUnavailable(format!(
                            "{path}: {reason}; gave up after {attempts} attempts within {:?}",
                            o.deadline
                        )));
                    }
                    tracing::debug!(path, %reason, ?delay, attempts, "retrying geosite call");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn session_from(&self, body: &Value) -> Result<Session> {
        let token = body.get("token").and_then(Value::as_str);
        let refresh = body.get("refreshToken").and_then(Value::as_str);
        let (Some(token), Some(refresh)) = (token, refresh) else {
            return Err(Error::PlatformUnavailable(
                "the platform's token answer lacks token or refreshToken".into(),
            ));
        };
        let now = Instant::now();
        Ok(Session {
            token: token.to_owned(),
            refresh_token: refresh.to_owned(),
            token_expires: now + self.inner.options.token_ttl,
            refresh_expires: now + self.inner.options.refresh_ttl,
        })
    }

    async fn login(&self) -> Result<Session> {
        let body = json!({ "username": self.inner.username, "password": self.inner.password });
        let reply = self
            .request(
                Method::POST,
                "auth/generatetoken",
                &[],
                Some(&body),
                Auth::None,
            )
            .await?;
        tracing::debug!(base = %self.inner.base, "geosite login");
        self.session_from(&reply.body)
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Session> {
        let reply = self
            .request(
                Method::POST,
                "auth/refresh",
                &[],
                None,
                Auth::Token(refresh_token),
            )
            .await?;
        self.session_from(&reply.body)
    }

    /// Refresh when the refresh token should still live, else log in.
    async fn renewed(&self, old: Option<&Session>) -> Result<Session> {
        let margin = self.inner.options.renew_margin;
        if let Some(old) = old {
            if old.refresh_expires > Instant::now() + margin {
                // Boxed: login and refresh go through `request`, which may call back here.
                match Box::pin(self.refresh(&old.refresh_token)).await {
                    Ok(s) => return Ok(s),
                    Err(e) => tracing::debug!(error = %e.message(), "refresh failed; logging in"),
                }
            }
        }
        Box::pin(self.login()).await
    }

    /// The current token, renewed a little before it expires.
    async fn token(&self) -> Result<String> {
        let mut session = self.inner.session.lock().await;
        if let Some(s) = session.as_ref() {
            if s.token_expires > Instant::now() + self.inner.options.renew_margin {
                return Ok(s.token.clone());
            }
        }
        let fresh = self.renewed(session.as_ref()).await?;
        let token = fresh.token.clone();
        *session = Some(fresh);
        Ok(token)
    }

    /// After a 401 with `used`: renew, unless another task already did.
    async fn renew(&self, used: &str) -> Result<()> {
        let mut session = self.inner.session.lock().await;
        if session.as_ref().is_some_and(|s| s.token != used) {
            return Ok(());
        }
        let fresh = self.renewed(session.as_ref()).await?;
        *session = Some(fresh);
        Ok(())
    }

    /// GET with the session.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Reply> {
        self.request(Method::GET, path, query, None, Auth::Session)
            .await
    }

    /// POST JSON with the session.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply> {
        self.request(Method::POST, path, &[], Some(body), Auth::Session)
            .await
    }

    /// The columns of a feature that the gateway reads and the installation has (`desc`).
    async fn columns(&self, feature: Feature) -> Result<Vec<String>> {
        if let Some(c) = self.inner.columns.lock().unwrap().get(&feature) {
            return Ok(c.clone());
        }
        let reply = self.get(&format!("{}/desc", feature.path()), &[]).await?;
        let available: Vec<String> = reply
            .body
            .get("columns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let columns: Vec<String> = if available.is_empty() {
            feature
                .wanted_columns()
                .iter()
                .map(|c| c.to_string())
                .collect()
        } else {
            feature
                .wanted_columns()
                .iter()
                .filter(|c| available.iter().any(|a| a == *c))
                .map(|c| c.to_string())
                .collect()
        };
        self.inner
            .columns
            .lock()
            .unwrap()
            .insert(feature, columns.clone());
        Ok(columns)
    }

    /// Streams the records of a feature that match `filter`, page by page.
    pub fn list_raw(&self, feature: Feature, filter: Vec<Value>) -> Listing<Record> {
        struct State {
            client: GeositeClient,
            feature: Feature,
            filter: Vec<Value>,
            after_fid: Option<i64>,
            total: Option<u64>,
            done: bool,
        }
        let state = State {
            client: self.clone(),
            feature,
            filter,
            after_fid: None,
            total: None,
            done: false,
        };
        Box::pin(futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            let page = st
                .client
                .list_page(st.feature, &st.filter, st.after_fid)
                .await;
            match page {
                Err(e) => {
                    st.done = true;
                    Some((Err(e), st))
                }
                Ok((records, remaining, clock)) => {
                    let total = *st.total.get_or_insert(remaining);
                    let last = records
                        .iter()
                        .filter_map(|r| r.get("fid").and_then(wire::int))
                        .max();
                    // Keyset pages: `remaining` counts this page and all after it.
                    if records.is_empty() || remaining <= records.len() as u64 || last.is_none() {
                        st.done = true;
                    }
                    st.after_fid = last.or(st.after_fid);
                    Some((
                        Ok(ListPage {
                            records,
                            total,
                            clock,
                        }),
                        st,
                    ))
                }
            }
        }))
    }

    /// One keyset page: records with `fid > after`, the count of all that remain, the clock.
    async fn list_page(
        &self,
        feature: Feature,
        filter: &[Value],
        after: Option<i64>,
    ) -> Result<(Vec<Record>, u64, Option<DateTime<Utc>>)> {
        let columns = self.columns(feature).await?;
        let mut filter = filter.to_vec();
        if let Some(after) = after {
            filter.push(json!({ "property": "fid", "operator": ">", "value": after }));
        }
        let query = [
            ("columns", columns.join(",")),
            ("filter", Value::Array(filter).to_string()),
            (
                "sorter",
                json!([{ "property": "fid", "direction": "ASC" }]).to_string(),
            ),
            ("limit", self.inner.options.page_size.to_string()),
            ("start", "0".to_string()),
        ];
        let reply = self
            .get(&format!("{}/list", feature.path()), &query)
            .await?;
        let records: Vec<Record> = reply
            .body
            .get("records")
            .and_then(Value::as_array)
            .map(|rs| rs.iter().filter_map(|r| r.as_object().cloned()).collect())
            .unwrap_or_default();
        let total = reply
            .body
            .get("total")
            .and_then(wire::int)
            .map(|t| t.max(0) as u64)
            .unwrap_or(records.len() as u64);
        Ok((records, total, reply.clock))
    }

    /// Streams typed records, skipping (and logging) records that cannot be read.
    fn list_typed<T: Send + 'static>(
        &self,
        feature: Feature,
        filter: Vec<Value>,
        parse: fn(&Record) -> Option<T>,
    ) -> Listing<T> {
        use futures::StreamExt;
        Box::pin(self.list_raw(feature, filter).map(move |page| {
            page.map(|p| {
                let records = p
                    .records
                    .iter()
                    .filter_map(|r| {
                        let parsed = parse(r);
                        if parsed.is_none() {
                            tracing::warn!(feature = feature.path(), fid = ?r.get("fid"), "skipped an unreadable record");
                        }
                        parsed
                    })
                    .collect();
                ListPage {
                    records,
                    total: p.total,
                    clock: p.clock,
                }
            })
        }))
    }

    /// Creates (`fid` absent) or updates a record; returns its fid.
    pub async fn save(&self, feature: Feature, record: &Value) -> Result<String> {
        let reply = self
            .post(&format!("{}/save", feature.path()), record)
            .await?;
        if !wire::success(&reply.body) {
            return Err(Error::Validation {
                message: format!(
                    "the platform refused the record: {}",
                    reply
                        .body
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given")
                ),
                field: None,
            });
        }
        reply
            .body
            .get("fid")
            .and_then(wire::id)
            .or_else(|| record.get("fid").and_then(wire::id))
            .ok_or_else(|| Error::PlatformUnavailable("save answered without a fid".into()))
    }

    /// Deletes a record; `NOT_FOUND` when the platform has no such fid.
    pub async fn delete(&self, feature: Feature, fid: &str) -> Result<()> {
        self.post(
            &format!("{}/delete", feature.path()),
            &json!({ "fid": wire::id_value(fid) }),
        )
        .await?;
        Ok(())
    }

    /// Boxes within `radius_m` of a point, with port counts (`/viabilidade/caixas`).
    pub async fn viability(
        &self,
        latitude: f64,
        longitude: f64,
        radius_m: f64,
    ) -> Result<Vec<ViabilityBox>> {
        let reply = self
            .get(
                "viabilidade/caixas",
                &[
                    ("raio", radius_m.to_string()),
                    ("latitude", latitude.to_string()),
                    ("longitude", longitude.to_string()),
                ],
            )
            .await?;
        if !wire::success(&reply.body) {
            return Err(Error::PlatformUnavailable(
                "viability answered without success".into(),
            ));
        }
        let boxes = reply
            .body
            .get("caixas")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(boxes
            .iter()
            .filter_map(|b| {
                let count = |k: &str| b.get(k).and_then(wire::int).unwrap_or(0);
                let location = b
                    .get("geometryCaixaEmenda")
                    .and_then(Value::as_str)
                    .and_then(|g| {
                        let mut r = Record::new();
                        r.insert("geometry".into(), Value::from(g));
                        wire::location(&r)
                    });
                Some(ViabilityBox {
                    fid: wire::id(b.get("fid")?)?,
                    label: b.get("tipoCodigo").and_then(wire::text).unwrap_or_default(),
                    distance_m: b.get("distancia").and_then(wire::float).unwrap_or(0.0),
                    ports: count("qtdPortasSplitter"),
                    free_ports: count("qtdPortasSplitterDisp"),
                    occupied_ports: count("qtdPortasSplitterOcup"),
                    location,
                })
            })
            .collect())
    }
}

/// The filter of a listing, in Geosite's ExtJS style.
fn filter_of(query: &ListQuery, project_column: bool) -> Vec<Value> {
    let mut filter = Vec::new();
    if let (true, Some(p)) = (project_column, &query.project_id) {
        filter
            .push(json!({ "property": "fidProjeto", "operator": "=", "value": wire::id_value(p) }));
    }
    if let Some(since) = query.changed_since {
        filter.push(json!({
            "property": "dataAlteracao", "operator": ">=",
            "value": since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }));
    }
    if let Some(fid) = &query.fid {
        filter.push(json!({ "property": "fid", "operator": "=", "value": wire::id_value(fid) }));
    }
    if let Some(box_fid) = &query.box_fid {
        filter.push(
            json!({ "property": "fidCaixa", "operator": "=", "value": wire::id_value(box_fid) }),
        );
    }
    if let Some(splitters) = &query.splitter_fids {
        let values: Vec<Value> = splitters.iter().map(|s| wire::id_value(s)).collect();
        filter.push(json!({ "property": "fidSplitter", "operator": "in", "value": values }));
    }
    filter
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

    async fn set_port_customer(
        &self,
        port_fid: &str,
        customer: Option<&CustomerRecord>,
        origin: &str,
    ) -> Result<()> {
        let record = match customer {
            Some(c) => json!({
                "fid": wire::id_value(port_fid), "status": "OCUPADA",
                "contrato": c.contract, "documento": c.document, "nomeCliente": c.name,
                "origem": origin,
            }),
            None => json!({
                "fid": wire::id_value(port_fid), "status": "LIVRE",
                "contrato": null, "documento": null, "nomeCliente": null, "origem": origin,
            }),
        };
        self.save(Feature::Port, &record).await.map(|_| ())
    }
}
