//! One request to the platform: an attempt, its classification (retry, final, unauthorized),
//! and the retry loop with backoff, a deadline and one session renewal on a 401.

use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{wire, GeositeClient};
use crate::{Error, Result};

/// A successful answer: its JSON body and the platform's clock.
#[derive(Debug)]
pub struct Reply {
    /// The JSON body.
    pub body: Value,
    /// The `Date` header.
    pub clock: Option<DateTime<Utc>>,
}

pub(super) enum Auth<'a> {
    /// No Authorization header (login).
    None,
    /// The given raw token (refresh).
    Token(&'a str),
    /// The current session token, renewed on a 401 once.
    Session,
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

impl GeositeClient {
    /// One attempt of a request.
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        token: Option<&str>,
        retry: bool,
    ) -> std::result::Result<Reply, Failure> {
        let started = std::time::Instant::now();
        let endpoint = endpoint_label(path);
        let record = |status: Option<u16>| {
            crate::metrics::get().record_platform(
                &endpoint,
                status,
                retry,
                started.elapsed().as_secs_f64(),
            )
        };
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
    pub(super) async fn request(
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
                .attempt(&method, path, query, body, token.as_deref(), attempts > 1)
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
}

/// A path as a metrics label: numeric segments (ids) become `:id`, so that the label values
/// stay as few as the endpoints.
fn endpoint_label(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                ":id"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
