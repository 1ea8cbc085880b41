//! `/auth/generatetoken`, `/auth/refresh`, and the token check of every other call.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;

use super::faults::chaos;
use super::{fail, Answer, SimError, SimState};

/// Checks `Authorization: Digicade-Rest-API:{token}`.
pub(super) fn authorize(state: &SimState, headers: &HeaderMap) -> Result<(), SimError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Digicade-Rest-API:"))
        .ok_or_else(|| fail(StatusCode::UNAUTHORIZED, "missing token"))?;
    check_token(state, token)
}

/// Checks a login token: known, not expired, within the `expireTokensAfterCalls` fault.
pub(super) fn check_token(state: &SimState, token: &str) -> Result<(), SimError> {
    let limit = state.faults.lock().unwrap().expire_tokens_after_calls;
    let mut tokens = state.tokens.lock().unwrap();
    let info = tokens
        .get_mut(token)
        .ok_or_else(|| fail(StatusCode::UNAUTHORIZED, "unknown token"))?;
    info.calls += 1;
    if info.expires < Instant::now() || limit.is_some_and(|n| info.calls > n) {
        return Err(fail(StatusCode::UNAUTHORIZED, "token expired"));
    }
    Ok(())
}

pub(super) async fn login(State(state): State<Arc<SimState>>, body: Bytes) -> Answer {
    chaos(&state).await?;
    let creds: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let user = creds.get("username").and_then(Value::as_str);
    let pass = creds.get("password").and_then(Value::as_str);
    if user != Some(state.config.username.as_str()) || pass != Some(state.config.password.as_str())
    {
        return Err(fail(StatusCode::UNAUTHORIZED, "invalid credentials"));
    }
    state.logins.fetch_add(1, Ordering::SeqCst);
    Ok(Json(state.new_tokens()).into_response())
}

pub(super) async fn refresh(State(state): State<Arc<SimState>>, headers: HeaderMap) -> Answer {
    chaos(&state).await?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Digicade-Rest-API:"))
        .map(str::to_owned);
    let valid = token.as_ref().is_some_and(|t| {
        state
            .refresh_tokens
            .lock()
            .unwrap()
            .remove(t)
            .is_some_and(|exp| exp > Instant::now())
    });
    if !valid {
        return Err(fail(StatusCode::UNAUTHORIZED, "invalid refresh token"));
    }
    state.refreshes.fetch_add(1, Ordering::SeqCst);
    Ok(Json(state.new_tokens()).into_response())
}
