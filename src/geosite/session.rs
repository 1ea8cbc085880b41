//! The session: a token from `/auth/generatetoken`, renewed a little before it expires through
//! `/auth/refresh`, falling back to a new login.

use std::time::Instant;

use reqwest::Method;
use serde_json::{json, Value};

use super::GeositeClient;
use crate::transport::{Auth, Session as Authorizing};
use crate::{Error, Result};

/// The `Authorization` value of a token.
fn header(token: &str) -> String {
    format!("Digicade-Rest-API:{token}")
}

#[derive(Clone)]
pub(super) struct Session {
    pub(super) token: String,
    refresh_token: String,
    token_expires: Instant,
    refresh_expires: Instant,
}

impl GeositeClient {
    pub(super) fn session_from(&self, body: &Value) -> Result<Session> {
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
            token_expires: now + self.options().token_ttl,
            refresh_expires: now + self.options().refresh_ttl,
        })
    }
    pub(super) async fn login(&self) -> Result<Session> {
        let body = json!({ "username": self.inner.username, "password": self.inner.password });
        let reply = self
            .inner
            .transport
            .request(
                Method::POST,
                "auth/generatetoken",
                &[],
                Some(&body),
                Auth::None,
            )
            .await?;
        tracing::debug!(base = %self.inner.transport.base(), "geosite login");
        self.session_from(&reply.body)
    }
    pub(super) async fn refresh(&self, refresh_token: &str) -> Result<Session> {
        let reply = self
            .inner
            .transport
            .request(
                Method::POST,
                "auth/refresh",
                &[],
                None,
                Auth::Fixed(header(refresh_token)),
            )
            .await?;
        self.session_from(&reply.body)
    }
    /// Refresh when the refresh token should still live, else log in.
    pub(super) async fn renewed(&self, old: Option<&Session>) -> Result<Session> {
        let margin = self.options().renew_margin;
        if let Some(old) = old {
            if old.refresh_expires > Instant::now() + margin {
                // Boxed: login and refresh go through `request`, which may call back here.
                match Box::pin(self.refresh(&old.refresh_token)).await {
                    Ok(s) => return Ok(s),
                    Err(e) => tracing::debug!(error = %e.for_log(), "refresh failed; logging in"),
                }
            }
        }
        Box::pin(self.login()).await
    }
}

#[async_trait::async_trait]
impl Authorizing for GeositeClient {
    /// The current token, renewed a little before it expires.
    async fn authorization(&self) -> Result<String> {
        let mut session = self.inner.session.lock().await;
        if let Some(s) = session.as_ref() {
            if s.token_expires > Instant::now() + self.options().renew_margin {
                return Ok(header(&s.token));
            }
        }
        let fresh = self.renewed(session.as_ref()).await?;
        let token = header(&fresh.token);
        *session = Some(fresh);
        Ok(token)
    }
    /// After a 401 with `used`: renew, unless another task already did.
    async fn renew(&self, used: &str) -> Result<bool> {
        let mut session = self.inner.session.lock().await;
        if session.as_ref().is_some_and(|s| header(&s.token) != used) {
            return Ok(false);
        }
        let fresh = self.renewed(session.as_ref()).await?;
        *session = Some(fresh);
        Ok(true)
    }
}
