//! JSON over HTTP to a mapping platform, the same for every platform client: one attempt and its
//! classification (retry, final, unauthorized), and the retry loop with backoff and jitter (the
//! `backon` crate), a number of attempts, a total deadline, `Retry-After` honoured, and one
//! session renewal on a 401. Other 4xx are never retried. Tokens and keys never reach a log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Result};

/// Tunables of a platform client. The defaults suit a real installation; tests shorten them.
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
    /// Largest answer read, in bytes: a longer one is refused (before reading, when its
    /// `Content-Length` says so), so no platform answer holds more memory than this.
    pub max_body_bytes: usize,
}

/// Largest platform answer read by default: a page of 500 records is under 1 MiB on both
/// platforms.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

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
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A successful answer: its JSON body (a [`Value`] unless the caller asked for a type, such as
/// the raw text of a listing whose records are read one at a time) and the platform's clock.
#[derive(Debug)]
pub struct Reply<T = Value> {
    /// The JSON body.
    pub body: T,
    /// The `Date` header.
    pub clock: Option<DateTime<Utc>>,
}

/// 401s one call may answer by renewing the session, its own renewal and other tasks' included.
const MAX_RENEWALS: usize = 3;

/// A platform session: the `Authorization` value of the next call, renewed on a 401.
#[async_trait]
pub trait Session: Send + Sync {
    /// The header value to send now (logging in first when there is none yet).
    async fn authorization(&self) -> Result<String>;
    /// After a 401 answered to `used`: renew, unless another task already did. True when this
    /// call renewed (logged in or refreshed), false when the session had moved on already.
    async fn renew(&self, used: &str) -> Result<bool>;
}

/// How a request authenticates.
pub enum Auth<'a> {
    /// No Authorization header (login).
    None,
    /// This exact header value; a 401 is final.
    Fixed(String),
    /// The session's value, renewed once by the call on a 401 (a renewal by another task
    /// meanwhile does not count).
    Session(&'a dyn Session),
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

/// An HTTP `Date` header value (RFC 7231, an RFC 2822 form).
pub fn http_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The HTTP side of a platform client: one installation's base URL, a connection pool held to
/// the address policy, and the retry policy. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    base: String,
    /// `base` parsed: every request's URL is built from it with the URL library.
    base_url: url::Url,
    options: ClientOptions,
    /// The platform's name in log lines.
    platform: &'static str,
    /// The path segments of the platform's own routes: the only words a metrics or log label
    /// keeps (anything else, ids included, becomes `:id`).
    routes: &'static [&'static str],
}

impl Transport {
    /// A transport to `api_url` (checked: absolute, without query or fragment, and allowed by
    /// the address policy); `routes` are the path segments of the platform's routes.
    pub fn new(
        platform: &'static str,
        api_url: &str,
        options: ClientOptions,
        routes: &'static [&'static str],
    ) -> Result<Self> {
        let url = url::Url::parse(api_url.trim_end_matches('/'))
            .map_err(|_| Error::validation("apiUrl", "apiUrl is not an absolute URL"))?;
        if url.cannot_be_a_base() || url.query().is_some() || url.fragment().is_some() {
            return Err(Error::validation(
                "apiUrl",
                "apiUrl must be a base URL, without a query string or fragment",
            ));
        }
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
        Ok(Transport {
            http,
            base: api_url.trim_end_matches('/').to_owned(),
            base_url: url,
            options,
            platform,
            routes,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The options it was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The URL of `path` (segments, then an optional `?query`) under the base URL, built with
    /// the URL library: each segment is appended as one (percent-encoded, `.` and `..` dropped),
    /// so no path can climb out of the base or reach another host.
    fn url(&self, path: &str) -> url::Url {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let mut url = self.base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(
                path.split('/')
                    .filter(|s| !s.is_empty() && *s != "." && *s != ".."),
            );
        }
        url.set_query(query);
        url
    }

    /// One attempt of a request.
    async fn attempt<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        authorization: Option<&str>,
        retry: bool,
    ) -> std::result::Result<Reply<T>, Failure> {
        let started = Instant::now();
        let endpoint = endpoint_label(path, self.routes);
        let record = |status: Option<u16>| {
            crate::metrics::get().record_platform(
                &endpoint,
                status,
                retry,
                started.elapsed().as_secs_f64(),
            )
        };
        let mut request = self
            .http
            .request(method.clone(), self.url(path))
            .query(query);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(r) => {
                record(Some(r.status().as_u16()));
                r
            }
            Err(e) => {
                record(None);
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
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
        };
        let clock = header(reqwest::header::DATE).and_then(http_date);
        let retry_after = header(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        tracing::debug!(platform = self.platform, %method, path = %endpoint, status = status.as_u16(), "platform call");
        let text = read_capped(response, self.options.max_body_bytes, &endpoint).await?;
        let message = || {
            serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    // A platform's own words, bounded: they end up in errors callers read.
                    let m = v.get("message").and_then(Value::as_str)?;
                    Some(crate::text::plain(&m.chars().take(200).collect::<String>()).into_owned())
                })
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16()))
        };
        let path = endpoint.as_str();
        match status {
            s if s.is_success() => {
                // No content reads as `null`, which a caller's type may refuse.
                let parsed = if s == StatusCode::NO_CONTENT || text.trim().is_empty() {
                    serde_json::from_str::<T>("null")
                } else {
                    serde_json::from_str::<T>(&text)
                };
                parsed.map(|body| Reply { body, clock }).map_err(|_| {
                    Failure::Final(Error::PlatformUnavailable(format!(
                        "{path} answered with something that is not JSON"
                    )))
                })
            }
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
                "unexpected HTTP {} from {path}: {}",
                s.as_u16(),
                message()
            )))),
        }
    }

    /// A request with retries. With `Auth::Session`, a 401 renews the session once.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        auth: Auth<'_>,
    ) -> Result<Reply> {
        self.request_as(method, path, query, body, auth).await
    }

    /// [`Self::request`], its answer read as `T`.
    pub async fn request_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        auth: Auth<'_>,
    ) -> Result<Reply<T>> {
        let o = &self.options;
        let started = Instant::now();
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(o.min_delay)
            .with_max_delay(o.max_delay)
            .with_max_times(o.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut renewed = false;
        let mut renewals = 0;
        let mut attempts = 0;
        let label = endpoint_label(path, self.routes);
        loop {
            attempts += 1;
            let authorization = match &auth {
                Auth::None => None,
                Auth::Fixed(value) => Some(value.clone()),
                Auth::Session(session) => Some(session.authorization().await?),
            };
            match self
                .attempt(
                    &method,
                    path,
                    query,
                    body,
                    authorization.as_deref(),
                    attempts > 1,
                )
                .await
            {
                Ok(reply) => return Ok(reply),
                Err(Failure::Final(e)) => return Err(e),
                // A token another task renewed meanwhile is tried without using up this call's
                // own renewal (tokens that expire after a few calls can run out under shared
                // listings); one refused right after this call's own renewal is final.
                Err(Failure::Unauthorized) => match (&auth, renewed) {
                    (Auth::Session(session), false) if renewals < MAX_RENEWALS => {
                        renewals += 1;
                        attempts -= 1;
                        renewed = session
                            .renew(authorization.as_deref().unwrap_or_default())
                            .await?;
                    }
                    (Auth::None, _) => {
                        return Err(Error::PlatformAuth(
                            "it answered 401 to the username and password; check them with \
                             updateIntegration"
                                .into(),
                        ))
                    }
                    (Auth::Fixed(_), _) => {
                        return Err(Error::PlatformAuth(
                            "it answered 401 to the API key; set a valid key as the \
                             integration's password with updateIntegration"
                                .into(),
                        ))
                    }
                    _ => {
                        return Err(Error::PlatformAuth(
                            "it answered 401 to a fresh session token".into(),
                        ))
                    }
                },
                Err(Failure::Retry { reason, wait }) => {
                    let Some(delay) = delays.next() else {
                        return Err(Error::PlatformUnavailable(format!(
                            "{label}: {reason} after {attempts} attempts"
                        )));
                    };
                    let delay = wait.map_or(delay, |w| w.max(delay));
                    if started.elapsed() + delay > o.deadline {
                        return Err(Error::PlatformUnavailable(format!(
                            "{label}: {reason}; gave up after {attempts} attempts within {:?}",
                            o.deadline
                        )));
                    }
                    tracing::debug!(platform = self.platform, path = %label, %reason, ?delay, attempts, "retrying platform call");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

mod body;
mod label;

use body::read_capped;
use label::endpoint_label;
