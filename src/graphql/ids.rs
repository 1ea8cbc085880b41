//! Opaque ids: `base64url("Kind:123")`. Clients treat them as strings; a well-formed id of
//! another kind, or garbage, is simply not found.

use async_graphql::ID;

pub use crate::ids::{
    decode_any, decode_tagged, API_KEY, BINDING, ELEMENT, HISTORY_ENTRY, INTEGRATION, KINDS, PORT,
    PROJECT, SPLITTER, SYNC_RUN,
};
use crate::Error;

/// Encodes a database id as an opaque API id.
pub fn encode(kind: &str, id: i64) -> ID {
    ID(crate::ids::opaque(kind, id))
}

/// Decodes an API id of the given kind; anything else is `NOT_FOUND`, and the message says
/// when the id is not one this API gives at all.
pub fn decode(kind: &'static str, id: &ID) -> Result<i64, Error> {
    decode_tagged(kind, id.as_str()).ok_or_else(|| {
        let shown = printable(id.as_str());
        if decode_any(id.as_str()).is_some() {
            Error::NotFound(format!("{kind} with id \"{shown}\""))
        } else {
            Error::MalformedId { kind, id: shown }
        }
    })
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine as _;

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
