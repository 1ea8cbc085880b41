//! Automatic persisted queries, as Apollo's clients speak them: a request may carry
//! `extensions.persistedQuery = { version: 1, sha256Hash }` and no query. A hash this instance
//! has seen with its text runs that text; an unknown one is answered `PersistedQueryNotFound`
//! (code `PERSISTED_QUERY_NOT_FOUND`), and the client sends the text with the hash once, which
//! registers it. The text must hash to what it claims. Per instance and bounded like the parse
//! cache; the parsed document is then found by its text in that cache.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use async_graphql::{Request, ServerResult, Value};
use sha2::{Digest, Sha256};

/// Texts kept, and the longest kept (at most 16 MiB in all).
const KEPT: usize = 1_000;
const MAX_LEN: usize = 16 * 1024;

fn texts() -> &'static Mutex<HashMap<String, String>> {
    static TEXTS: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    TEXTS.get_or_init(Default::default)
}

use super::extension::coded as error;

/// Fills in the query of a request that names a persisted one, and registers the text of one
/// that sends both. Requests without `persistedQuery` pass unchanged.
pub(super) fn resolve(request: &mut Request) -> ServerResult<()> {
    let Some(persisted) = request.extensions.get("persistedQuery") else {
        return Ok(());
    };
    let Value::Object(fields) = persisted else {
        return Err(error("persistedQuery must be an object", "VALIDATION"));
    };
    if fields.get("version") != Some(&Value::from(1)) {
        return Err(error(
            "only version 1 of persistedQuery is supported",
            "VALIDATION",
        ));
    }
    let Some(Value::String(hash)) = fields.get("sha256Hash") else {
        return Err(error("persistedQuery needs sha256Hash", "VALIDATION"));
    };
    let hash = hash.to_ascii_lowercase();
    if request.query.is_empty() {
        let known = texts()
            .lock()
            .expect("persisted queries lock")
            .get(&hash)
            .cloned();
        return match known {
            Some(text) => {
                request.query = text;
                Ok(())
            }
            None => Err(error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")),
        };
    }
    if hex::encode(Sha256::digest(request.query.as_bytes())) != hash {
        return Err(error(
            "the query does not hash to persistedQuery.sha256Hash",
            "VALIDATION",
        ));
    }
    if request.query.len() <= MAX_LEN {
        let mut kept = texts().lock().expect("persisted queries lock");
        if kept.len() >= KEPT && !kept.contains_key(&hash) {
            kept.clear();
        }
        kept.insert(hash, request.query.clone());
    }
    Ok(())
}
