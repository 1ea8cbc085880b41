//! Automatic persisted queries, as Apollo's clients speak them: a request may carry
//! `extensions.persistedQuery = { version: 1, sha256Hash }` and no query. A hash this instance
//! has seen with its text runs that text; an unknown one is answered `PersistedQueryNotFound`
//! (code `PERSISTED_QUERY_NOT_FOUND`), and the client sends the text with the hash once, which
//! registers it. The text must hash to what it claims. Each API key has a store of its own (so a
//! key can neither tell what another registered nor push it out), bounded per key; per
//! instance. The parsed document is then found by its text in the parse cache.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use async_graphql::{Request, ServerResult, Value};
use sha2::{Digest, Sha256};

/// Texts kept per key, keys kept, and the longest text kept.
const KEPT_PER_KEY: usize = 200;
const KEYS_KEPT: usize = 1_000;
const MAX_LEN: usize = 16 * 1024;

/// Whose store: the key's id (`None`: the gateway itself, or no key).
type Scope = Option<i64>;

fn texts() -> &'static Mutex<HashMap<Scope, HashMap<String, String>>> {
    static TEXTS: OnceLock<Mutex<HashMap<Scope, HashMap<String, String>>>> = OnceLock::new();
    TEXTS.get_or_init(Default::default)
}

use super::extension::coded as error;

/// Fills in the query of a request that names a persisted one, and registers the text of one
/// that sends both. Requests without `persistedQuery` pass unchanged.
pub(super) fn resolve(request: &mut Request, scope: Scope) -> ServerResult<()> {
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
            .get(&scope)
            .and_then(|kept| kept.get(&hash))
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
        let mut all = texts().lock().expect("persisted queries lock");
        if all.len() >= KEYS_KEPT && !all.contains_key(&scope) {
            all.clear();
        }
        let kept = all.entry(scope).or_default();
        // A key that registers too much starts over, alone.
        if kept.len() >= KEPT_PER_KEY && !kept.contains_key(&hash) {
            kept.clear();
        }
        kept.insert(hash, request.query.clone());
    }
    Ok(())
}
