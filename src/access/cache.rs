//! Verified API keys kept in memory for a second, so that a request does not ask the database
//! who its key is every time.
//!
//! Measured before it: `port(id)` over HTTP answered 6,361 requests a second against 131,644 for
//! `/healthz` in the same wrk run (0.05), each request spending a key lookup on the database.
//! A key revoked or given another role (`keys` functions here, in this process, another instance
//! or `mapping-gateway keys revoke`) leaves the cache at once, and on PostgreSQL every instance
//! hears of it through the event bus (`KeyWatch::spawn`); a change that no process announced (an
//! UPDATE by hand, a notification lost with the listening connection) is seen within [`TTL`],
//! when the entry expires. Only keys that verified are kept (a flood of random
//! keys gains nothing from a cache), at most [`MAX_ENTRIES`] of them.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Actor;

/// How long a verified key is trusted without asking the database again.
pub const TTL: Duration = Duration::from_secs(1);
/// Most keys kept; past it, expired entries go, and if that is not enough, all of them.
const MAX_ENTRIES: usize = 10_000;

/// When it was verified, the actor, and when the key expires.
type Entries = HashMap<String, (Instant, Actor, Option<DateTime<Utc>>)>;

fn entries() -> &'static Mutex<Entries> {
    static ENTRIES: OnceLock<Mutex<Entries>> = OnceLock::new();
    ENTRIES.get_or_init(Default::default)
}

/// The actor of a key digest verified less than [`TTL`] ago and not expired at `now`.
pub(super) fn get(digest: &str, now: DateTime<Utc>) -> Option<Actor> {
    let entries = entries().lock().expect("key cache lock");
    entries
        .get(digest)
        .filter(|(at, _, expires)| at.elapsed() < TTL && expires.is_none_or(|e| e > now))
        .map(|(_, actor, _)| actor.clone())
}

/// Keeps a key just verified, with its expiry.
pub(super) fn put(digest: String, actor: Actor, expires_at: Option<DateTime<Utc>>) {
    let mut entries = entries().lock().expect("key cache lock");
    if entries.len() >= MAX_ENTRIES {
        entries.retain(|_, (at, _, _)| at.elapsed() < TTL);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
    }
    entries.insert(digest, (Instant::now(), actor, expires_at));
}

/// Forgets a key (by its database id) that was revoked or changed.
pub(super) fn forget(key_id: i64) {
    entries()
        .lock()
        .expect("key cache lock")
        .retain(|_, (_, actor, _)| actor.key_id != Some(key_id));
}

/// Forgets every key (changes may have been missed).
pub(super) fn clear() {
    entries().lock().expect("key cache lock").clear();
}
