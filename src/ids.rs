//! Opaque ids: `base64url("Kind:123")`, the only ids clients and operators ever see. The API
//! hands them out (`graphql::ids`); messages, logs and metric labels quote them too, so that
//! what an operator reads can be pasted into a query.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

/// Kind tag of integration ids.
pub const INTEGRATION: &str = "Integration";
/// Kind tag of history entry ids.
pub const HISTORY_ENTRY: &str = "HistoryEntry";
/// Kind tag of element ids.
pub const ELEMENT: &str = "Element";
/// Kind tag of splitter ids.
pub const SPLITTER: &str = "Splitter";
/// Kind tag of port ids.
pub const PORT: &str = "Port";
/// Kind tag of binding ids.
pub const BINDING: &str = "Binding";
/// Kind tag of project ids.
pub const PROJECT: &str = "Project";
/// Kind tag of sync run ids.
pub const SYNC_RUN: &str = "SyncRun";
/// Kind tag of API key ids (not a `Node`: keys are read by ADMIN keys only, in `apiKeys`).
pub const API_KEY: &str = "ApiKey";

/// Every kind of object with an id (the types of the `Node` interface).
pub const KINDS: [&str; 8] = [
    INTEGRATION,
    PROJECT,
    ELEMENT,
    SPLITTER,
    PORT,
    BINDING,
    SYNC_RUN,
    HISTORY_ENTRY,
];

/// The opaque id of a database row of the given kind.
pub fn opaque(kind: &str, id: i64) -> String {
    B64.encode(format!("{kind}:{id}"))
}

/// An integration's opaque id.
pub fn integration(id: i64) -> String {
    opaque(INTEGRATION, id)
}

/// A sync run's opaque id.
pub fn run(id: i64) -> String {
    opaque(SYNC_RUN, id)
}

/// A binding's opaque id.
pub fn binding(id: i64) -> String {
    opaque(BINDING, id)
}

/// An API key's opaque id.
pub fn api_key(id: i64) -> String {
    opaque(API_KEY, id)
}

/// A port's opaque id.
pub fn port(id: i64) -> String {
    opaque(PORT, id)
}

/// The positive number of `base64url("tag:N")`, only in the one spelling [`opaque`] writes: a
/// leading zero, a sign, padding or another base64 spelling of the same bytes is refused, so
/// that every row has exactly one id and one cursor.
pub fn decode_tagged(tag: &str, text: &str) -> Option<i64> {
    let bytes = B64.decode(text).ok()?;
    let decoded = std::str::from_utf8(&bytes).ok()?;
    let (k, n) = decoded.split_once(':')?;
    let n: i64 = n.parse().ok()?;
    (k == tag && n > 0 && opaque(tag, n) == text).then_some(n)
}

/// The kind and number of any object's id; `None` for anything else.
pub fn decode_any(text: &str) -> Option<(&'static str, i64)> {
    let bytes = B64.decode(text).ok()?;
    let decoded = std::str::from_utf8(&bytes).ok()?;
    let (kind, _) = decoded.split_once(':')?;
    let kind = KINDS.into_iter().find(|k| *k == kind)?;
    decode_tagged(kind, text).map(|n| (kind, n))
}
