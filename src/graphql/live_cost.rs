//! What live subscriptions cost: every event of a subscription is executed once per
//! subscriber, so its selection's size (fragments expanded) is paid on each event. A
//! subscription is refused when its selection is over [`MAX_SUBSCRIPTION_NODES`], or when the
//! key's live subscriptions would sum over [`MAX_LIVE_NODES_PER_KEY`]; the weight is held for
//! as long as the subscription lives (the [`Reservation`] goes with the operation's extension).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Largest selection (fields, fragments expanded) a subscription may have.
pub const MAX_SUBSCRIPTION_NODES: u64 = 200;
/// Largest sum of the selections of one key's live subscriptions on this instance.
pub const MAX_LIVE_NODES_PER_KEY: u64 = 20_000;

fn live() -> &'static Mutex<HashMap<Option<i64>, u64>> {
    static LIVE: OnceLock<Mutex<HashMap<Option<i64>, u64>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// A live subscription's weight, given back when dropped.
pub struct Reservation {
    key: Option<i64>,
    nodes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut live = live().lock().expect("live subscription costs");
        if let Some(sum) = live.get_mut(&self.key) {
            *sum = sum.saturating_sub(self.nodes);
            if *sum == 0 {
                live.remove(&self.key);
            }
        }
    }
}

/// Why a subscription was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its own selection is over the limit.
    TooLarge(u64),
    /// The key's live subscriptions would sum over the limit.
    KeyFull(u64),
}

/// Holds `nodes` for a new subscription of `key`.
pub fn reserve(key: Option<i64>, nodes: u64) -> Result<Reservation, Refused> {
    if nodes > MAX_SUBSCRIPTION_NODES {
        return Err(Refused::TooLarge(nodes));
    }
    let mut live = live().lock().expect("live subscription costs");
    let sum = live.entry(key).or_default();
    if *sum + nodes > MAX_LIVE_NODES_PER_KEY {
        return Err(Refused::KeyFull(*sum));
    }
    *sum += nodes;
    Ok(Reservation { key, nodes })
}

/// The weight `key`'s live subscriptions hold now.
pub fn live_nodes(key: Option<i64>) -> u64 {
    live()
        .lock()
        .expect("live subscription costs")
        .get(&key)
        .copied()
        .unwrap_or(0)
}
