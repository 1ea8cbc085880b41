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

/// The kind and number of any object's id; `None` for anything else.
pub fn decode_any(text: &str) -> Option<(&'static str, i64)> {
    let bytes = B64.decode(text).ok()?;
    let decoded = std::str::from_utf8(&bytes).ok()?;
    let (kind, _) = decoded.split_once(':')?;
    let kind = KINDS.into_iter().find(|k| *k == kind)?;
    decode_tagged(kind, text).map(|n| (kind, n))
}

/// Encodes a database id as an opaque API id.
pub fn encode(kind: &str, id: i64) -> ID {
    ID(B64.encode(format!("{kind}:{id}")))
}

/// The positive number of `base64url("tag:N")`, only in the one spelling [`encode`] writes: a
/// leading zero, a sign, padding or another base64 spelling of the same bytes is refused, so
/// that every row has exactly one id and one cursor.
pub fn decode_tagged(tag: &str, text: &str) -> Option<i64> {
    let bytes = B64.decode(text).ok()?;
    let decoded = std::str::from_utf8(&bytes).ok()?;
    let (k, n) = decoded.split_once(':')?;
    let n: i64 = n.parse().ok()?;
    (k == tag && n > 0 && encode(tag, n).as_str() == text).then_some(n)
}

/// Decodes an API id of the given kind; anything else is `NOT_FOUND`.
pub fn decode(kind: &str, id: &ID) -> Result<i64, Error> {
    decode_tagged(kind, id.as_str())
        .ok_or_else(|| Error::NotFound(format!("{kind} {}", printable(id.as_str()))))
}

/// An id as it may appear in a message: short, and without control characters.
fn printable(text: &str) -> String {
    let mut shown: String = text.chars().take(40).filter(|c| !c.is_control()).collect();
    if text.chars().count() > 40 {
        shown.push('…');
    }
    shown
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
        // Other spellings of the same row are refused: leading zero, sign, zero, negative.
        for text in [
            "Integration:07",
            "Integration:+7",
            "Integration:0",
            "Integration:-7",
        ] {
            let other = ID(B64.encode(text));
            assert!(decode(INTEGRATION, &other).is_err(), "{text}");
        }
        assert!(decode(INTEGRATION, &ID(format!("{}=", id.as_str()))).is_err());
    }
}
