//! The OZmap client: authentication (a login token renewed once on a 401, or an API key sent
//! as is), the list envelope paged by `page`/`limit` (or the answer's `nextUrl`) with filters and
//! sort in the body of the GET, and the shared transport's retries, budget and `Date` clock.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::sync::Mutex;

use super::assumed;
use super::listing::{self, Route};
use super::wire::{BoxType, Envelope};
use crate::platform::{ListPage, ListQuery, Listing, Unreadable};
use crate::transport::{Auth, ClientOptions, Reply, Session, Transport};
use crate::{Error, Result};

/// Pages one listing may have before the client stops it: a server whose `nextUrl` loops.
const MAX_PAGES: u32 = 100_000;

/// The login path (`?type=API`, as the current SDK sends it).
/// The path segments of OZmap's routes (the API prefix, every listed route, the login): the
/// words a metrics label keeps.
pub(super) const ROUTES: &[&str] = &[
    "api",
    "v2",
    "users",
    "login",
    "projects",
    "boxes",
    "box-types",
    "pops",
    "poles",
    "splitters",
    "properties",
    "ftth-clients",
];

const LOGIN_PATH: &str = "/api/v2/users/login?type=API";

/// How the client authenticates.
enum Credentials {
    /// `POST /users/login` with these, then the token it answers.
    Login { login: String, password: String },
    /// An API key, sent as is on every call; a 401 is final.
    ApiKey(String),
}

struct Inner {
    transport: Transport,
    credentials: Credentials,
    token: Mutex<Option<String>>,
    /// The login in flight, shared by every task that needs a token meanwhile.
    login: Mutex<Option<Login>>,
}

/// A login any number of tasks await; whichever polls it drives it, so none waits on a task
/// that is not being polled. Its error is shared, and copied out to each waiter.
type Login = futures::future::Shared<
    futures::future::BoxFuture<'static, std::result::Result<String, Arc<Error>>>,
>;

/// The same failure again, for another task that shared the login.
fn copy(e: &Error) -> Error {
    match e {
        Error::NotFound(what) => Error::NotFound(what.clone()),
        Error::Validation { message, field } => Error::Validation {
            message: message.clone(),
            field: field.clone(),
        },
        Error::PlatformAuth(m) => Error::PlatformAuth(m.clone()),
        other => Error::PlatformUnavailable(other.message()),
    }
}

/// A client of one OZmap installation. Cheap to clone.
#[derive(Clone)]
pub struct OzmapClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OzmapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.inner.credentials {
            Credentials::Login { .. } => "login",
            Credentials::ApiKey(_) => "api key",
        };
        f.debug_struct("OzmapClient")
            .field("base", &self.inner.transport.base())
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

/// Builds OZmap clients with the same options: the registry entry of `OZMAP`.
#[derive(Clone, Debug, Default)]
pub struct OzmapConnector(pub ClientOptions);

impl crate::platform::Connector for OzmapConnector {
    fn connect(
        &self,
        api_url: &str,
        username: &str,
        password: &str,
    ) -> Result<Arc<dyn crate::platform::Platform>> {
        Ok(Arc::new(OzmapClient::new(
            api_url,
            username,
            password,
            self.0.clone(),
        )?))
    }
}

/// One page of a listing, its records not read yet (JSON text, read one at a time).
pub(super) struct RawPage {
    pub(super) rows: Vec<Box<RawValue>>,
    pub(super) total: u64,
    pub(super) clock: Option<chrono::DateTime<chrono::Utc>>,
}

impl RawPage {
    /// The page's rows, each read when the iterator reaches it (a row the server sent is valid
    /// JSON; one nested past the parser's depth reads as `null`, which no record reader takes).
    pub(super) fn values(&self) -> impl Iterator<Item = Value> + '_ {
        self.rows
            .iter()
            .map(|row| serde_json::from_str(row.get()).unwrap_or(Value::Null))
    }
}

/// What a box listing needs to tell CTOs from CEOs.
pub(super) struct BoxContext {
    pub(super) box_types: HashMap<String, BoxType>,
    pub(super) level_names: HashMap<i64, String>,
}

impl OzmapClient {
    /// A client for `api_url` (the SDK's base URL, without `/api/v2`). `username` `apikey` (any
    /// case) means `password` is an API key.
    pub fn new(
        api_url: &str,
        username: &str,
        password: &str,
        options: ClientOptions,
    ) -> Result<Self> {
        let credentials = if assumed::uses_api_key(username) {
            Credentials::ApiKey(password.to_owned())
        } else {
            Credentials::Login {
                login: username.to_owned(),
                password: password.to_owned(),
            }
        };
        Ok(OzmapClient {
            inner: Arc::new(Inner {
                transport: Transport::new("ozmap", api_url, options, ROUTES)?,
                credentials,
                token: Mutex::new(None),
                login: Mutex::new(None),
            }),
        })
    }

    /// Records asked for per page (the configured size, at most 500).
    pub(super) fn page_size(&self) -> u32 {
        self.inner
            .transport
            .options()
            .page_size
            .clamp(1, listing::MAX_PAGE_SIZE)
    }

    fn auth(&self) -> Auth<'_> {
        match &self.inner.credentials {
            Credentials::ApiKey(key) => Auth::Fixed(key.clone()),
            Credentials::Login { .. } => Auth::Session(self),
        }
    }

    /// A request with the client's authentication.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply> {
        self.call_as(method, path, body).await
    }

    /// [`Self::call`], its answer read as `T`.
    async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply<T>> {
        self.inner
            .transport
            .request_as(method, path, &[], body, self.auth())
            .await
    }

    async fn login(&self) -> Result<String> {
        let Credentials::Login { login, password } = &self.inner.credentials else {
            return Err(Error::PlatformAuth(
                "it answered 401 to the API key; set a valid key as the integration's password \
                 with updateIntegration"
                    .into(),
            ));
        };
        let body = json!({ "login": login, "password": password });
        let reply = self
            .inner
            .transport
            .request(Method::POST, LOGIN_PATH, &[], Some(&body), Auth::None)
            .await?;
        reply
            .body
            .get("authorization")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::PlatformUnavailable("the login answer has no authorization token".into())
            })
    }

    /// The pages of a listing, fetched as the stream is polled.
    pub(super) fn pages(
        &self,
        route: Route,
        body: Value,
    ) -> futures::stream::BoxStream<'static, Result<RawPage>> {
        self.pages_of(route, body, self.page_size())
    }

    /// [`Self::pages`] of `limit` records each.
    pub(super) fn pages_of(
        &self,
        route: Route,
        body: Value,
        limit: u32,
    ) -> futures::stream::BoxStream<'static, Result<RawPage>> {
        struct State {
            client: OzmapClient,
            body: Value,
            next: Option<String>,
            page: u32,
            total: Option<u64>,
            budget: Option<crate::platform::RowBudget>,
        }
        let state = State {
            client: self.clone(),
            body,
            next: Some(listing::page_path(route, 1, limit)),
            page: 1,
            total: None,
            budget: None,
        };
        futures::stream::try_unfold(state, move |mut s| async move {
            let Some(path) = s.next.take() else {
                return Ok(None);
            };
            let reply: Reply<Box<RawValue>> =
                s.client.call_as(Method::GET, &path, Some(&s.body)).await?;
            let envelope = Envelope::read(reply.body.get()).ok_or_else(|| {
                Error::PlatformUnavailable(format!(
                    "{} answered something that is not a list (no rows)",
                    route.segment()
                ))
            })?;
            let total = *s
                .total
                .get_or_insert(envelope.total.unwrap_or(envelope.rows.len() as u64));
            s.budget
                .get_or_insert_with(|| crate::platform::RowBudget::new(envelope.total))
                .take(envelope.rows.len(), route.segment())?;
            if !envelope.last() {
                if s.page >= MAX_PAGES {
                    return Err(Error::PlatformUnavailable(format!(
                        "{} listed more than {MAX_PAGES} pages",
                        route.segment()
                    )));
                }
                s.next = Some(listing::next_path(
                    route,
                    s.page,
                    limit,
                    envelope.next_url.as_deref(),
                ));
                s.page += 1;
            }
            let page = RawPage {
                rows: envelope.rows,
                total,
                clock: reply.clock,
            };
            Ok(Some((page, s)))
        })
        .boxed()
    }

    /// A listing of one route, each row read by `read`: `None` leaves a row out (a box of
    /// another item), an error reports it unreadable.
    pub(super) fn typed<T: Send + 'static>(
        &self,
        route: Route,
        query: &ListQuery,
        read: impl Fn(&Value) -> Option<std::result::Result<T, Unreadable>> + Send + 'static,
    ) -> Listing<T> {
        self.pages(route, listing::body(route, query))
            .map_ok(move |page| {
                let mut records = Vec::with_capacity(page.rows.len());
                let mut unreadable = Vec::new();
                for row in page.values() {
                    match read(&row) {
                        Some(Ok(r)) => records.push(r),
                        Some(Err(u)) => unreadable.push(u),
                        None => {}
                    }
                }
                ListPage {
                    records,
                    total: page.total,
                    clock: page.clock,
                    unreadable,
                }
            })
            .boxed()
    }

    /// Every row of a listing.
    pub(super) async fn all(&self, route: Route, body: Value) -> Result<Vec<Value>> {
        let mut rows = Vec::new();
        let mut pages = self.pages(route, body);
        while let Some(page) = pages.try_next().await? {
            rows.extend(page.values());
        }
        Ok(rows)
    }

    /// A record by id; `None` when the platform has none.
    pub(super) async fn one(&self, route: &str, id: &str) -> Result<Option<Value>> {
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) || id.is_empty() {
            return Ok(None);
        }
        match self
            .call(Method::GET, &format!("/api/v2/{route}/{id}"), None)
            .await
        {
            Ok(reply) => Ok(Some(reply.body)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Box types (read once per listing of boxes) and the names the project gives box
    /// hierarchy levels.
    pub(super) async fn box_context(&self, project: Option<&str>) -> Result<BoxContext> {
        let box_types = self
            .all(Route::BoxTypes, json!({}))
            .await?
            .iter()
            .filter_map(|row| BoxType::read(row).ok())
            .map(|t| (t.id.clone(), t))
            .collect();
        let mut level_names = HashMap::new();
        if let Some(project) = project {
            if let Some(record) = self.one("projects", project).await? {
                if let Some(levels) = record
                    .get("hierarchyLevels")
                    .and_then(|h| h.get("box"))
                    .and_then(Value::as_object)
                {
                    for (name, level) in levels {
                        if let Some(level) = level.as_i64() {
                            level_names.insert(level, name.clone());
                        }
                    }
                }
            }
        }
        Ok(BoxContext {
            box_types,
            level_names,
        })
    }
}

/// One login at a time per client (single flight): every task that finds no token, or its
/// token refused, joins the login in flight instead of starting its own, so a run's parallel
/// listings log in once (an installation allowing one session per user would otherwise end all
/// but the last). No lock is held while logging in: the login is a shared future that whichever
/// waiter polls drives, so a listing whose page future sits unpolled holds nobody up.
impl OzmapClient {
    async fn single_flight_login(&self) -> Result<String> {
        let flight = {
            let mut slot = self.inner.login.lock().unwrap();
            match slot.as_ref() {
                Some(flight) if flight.peek().is_none() => flight.clone(),
                _ => {
                    let inner = Arc::downgrade(&self.inner);
                    let flight = async move {
                        let inner = inner.upgrade().ok_or_else(|| {
                            Arc::new(Error::PlatformUnavailable("the client is gone".into()))
                        })?;
                        Box::pin(OzmapClient { inner }.login())
                            .await
                            .map_err(Arc::new)
                    }
                    .boxed()
                    .shared();
                    *slot = Some(flight.clone());
                    flight
                }
            }
        };
        match flight.await {
            Ok(token) => {
                *self.inner.token.lock().unwrap() = Some(token.clone());
                Ok(token)
            }
            Err(e) => Err(copy(&e)),
        }
    }
}

#[async_trait]
impl Session for OzmapClient {
    async fn authorization(&self) -> Result<String> {
        if let Some(t) = self.inner.token.lock().unwrap().as_ref() {
            return Ok(t.clone());
        }
        self.single_flight_login().await
    }

    async fn renew(&self, used: &str) -> Result<bool> {
        if self
            .inner
            .token
            .lock()
            .unwrap()
            .as_deref()
            .is_some_and(|t| t != used)
        {
            return Ok(false);
        }
        self.single_flight_login().await?;
        Ok(true)
    }
}

/// A project record in the gateway's terms.
pub(super) fn project(row: &Value) -> Option<crate::platform::RemoteProject> {
    Some(crate::platform::RemoteProject {
        remote_id: row.get("id").and_then(Value::as_str)?.to_owned(),
        name: row
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        updated_at: row
            .get("updatedAt")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok()),
    })
}

/// The id in a create answer.
pub(super) fn created_id(reply: &Reply) -> Result<String> {
    reply
        .body
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::PlatformUnavailable("the platform created a record without an id".into())
        })
}
