//! Opaque ids: `base64url("Kind:123")`. Clients treat them as strings; a well-formed id of
//! another kind, or garbage, is simply not found.

use async_graphql::ID;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use crate::Error;

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

/// Encodes a database id as an opaque API id.
pub fn encode(kind: &str, id: i64) -> ID {
    ID(B64.encode(format!("{kind}:{id}")))
}

/// Decodes an API id of the given kind; anything else is `NOT_FOUND`.
pub fn decode(kind: &str, id: &ID) -> Result<i64, Error> {
    B64.decode(id.as_str())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let (k, n) = text.split_once(':')?;
            (k == kind).then(|| n.parse().ok()).flatten()
        })
        .ok_or_else(|| Error::NotFound(format!("{kind} {}", id.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_kind_check() {
        let id = encode(INTEGRATION, 7);
        assert_eq!(decode(INTEGRATION, &id).unwrap(), 7);
        assert_eq!(decode(SYNC_RUN, &id).unwrap_err().code(), "NOT_FOUND");
        assert_eq!(
            decode(INTEGRATION, &ID("%%".into())).unwrap_err().code(),
            "NOT_FOUND"
        );
    }
}
