//! Keys held by long-lived connections (WebSockets), checked again together: at once when the
//! event bus says a key changed (any instance, on PostgreSQL), and every [`RECHECK`] for every
//! key held, however many sockets hold them, so that a revoked key (or a key given another role)
//! ends its subscriptions even when nobody announced it (an UPDATE by hand).
//!
//! A socket asking the database itself every two seconds measured 500 queries a second with
//! 1,000 subscribers, which slowed a SQLite sync by a tenth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio::sync::watch;

use entity::api_key;

use super::Role;

/// How often held keys are checked on SQLite, where a `keys` command in another process has no
/// bus to announce its change on.
pub const RECHECK: Duration = Duration::from_secs(2);
/// How often on PostgreSQL, where every change made through the gateway is announced on the
/// bus: only a safety net for changes made by hand.
pub const RECHECK_ANNOUNCED: Duration = Duration::from_secs(30);

struct Held {
    role: Role,
    holders: usize,
    valid: watch::Sender<bool>,
}

/// The keys open connections hold.
#[derive(Default)]
pub struct KeyWatch {
    held: Mutex<HashMap<i64, Held>>,
}

impl std::fmt::Debug for KeyWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyWatch").finish_non_exhaustive()
    }
}

/// One connection's hold on a key; dropping it lets the key go.
pub struct KeyHold {
    watch: Arc<KeyWatch>,
    key_id: i64,
    valid: watch::Receiver<bool>,
}

impl KeyHold {
    /// Resolves once the key is no longer valid (revoked, expired, deleted or given another role).
    pub async fn invalidated(&mut self) {
        let _ = self.valid.wait_for(|valid| !valid).await;
    }
}

impl Drop for KeyHold {
    fn drop(&mut self) {
        let mut held = self.watch.held.lock().expect("key watch lock");
        if let Some(entry) = held.get_mut(&self.key_id) {
            entry.holders -= 1;
            if entry.holders == 0 {
                held.remove(&self.key_id);
            }
        }
    }
}

impl KeyWatch {
    /// Holds `key_id` with `role` for as long as the returned hold lives.
    pub fn hold(self: &Arc<Self>, key_id: i64, role: Role) -> KeyHold {
        let mut held = self.held.lock().expect("key watch lock");
        let entry = held.entry(key_id).or_insert_with(|| Held {
            role,
            holders: 0,
            valid: watch::channel(true).0,
        });
        entry.holders += 1;
        KeyHold {
            watch: self.clone(),
            key_id,
            valid: entry.valid.subscribe(),
        }
    }

    /// Checks every held key once.
    pub async fn check(&self, db: &DatabaseConnection) -> crate::Result<()> {
        let ids: Vec<i64> = self
            .held
            .lock()
            .expect("key watch lock")
            .keys()
            .copied()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let valid: HashMap<i64, Option<Role>> = api_key::Entity::find()
            .filter(api_key::Column::Id.is_in(ids))
            .filter(api_key::Column::RevokedAt.is_null())
            .filter(
                sea_orm::Condition::any()
                    .add(api_key::Column::ExpiresAt.is_null())
                    .add(api_key::Column::ExpiresAt.gt(chrono::Utc::now())),
            )
            .all(db)
            .await?
            .into_iter()
            .map(|k| (k.id, Role::parse(&k.role)))
            .collect();
        for (id, entry) in self.held.lock().expect("key watch lock").iter() {
            if valid.get(id).copied().flatten() != Some(entry.role) {
                entry.valid.send_replace(false);
            }
        }
        Ok(())
    }

    /// Checks held keys when the bus says a key changed, and every [`RECHECK`] (SQLite) or
    /// [`RECHECK_ANNOUNCED`] (PostgreSQL), for as long as the process runs. A changed key is
    /// also forgotten by the verification cache. A database error keeps every key: the next
    /// check decides.
    pub fn spawn(self: &Arc<Self>, db: DatabaseConnection, bus: &crate::events::Bus) {
        use crate::events::KeyChange;
        use tokio::sync::broadcast::error::RecvError;
        let watch = Arc::downgrade(self);
        let mut changes = bus.key_changes();
        let every = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => RECHECK_ANNOUNCED,
            _ => RECHECK,
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    change = changes.recv() => match change {
                        Ok(KeyChange::One(id)) => super::cache::forget(id),
                        Ok(KeyChange::Any) | Err(RecvError::Lagged(_)) => super::cache::clear(),
                        Err(RecvError::Closed) => return,
                    },
                }
                let Some(watch) = watch.upgrade() else {
                    return;
                };
                if let Err(e) = watch.check(&db).await {
                    tracing::debug!(error = %e.for_log(), "could not check held keys");
                }
            }
        });
    }
}
