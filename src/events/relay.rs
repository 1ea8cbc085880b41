//! Events across instances on PostgreSQL, through `LISTEN/NOTIFY`.
//!
//! A notification carries only `r<run id>:<sequence>:<instance>` for a run,
//! `b<binding id>:0:<instance>` for a binding, or `k<key id>:0:<instance>` for an API key revoked
//! or given another role (a few dozen bytes, far under PostgreSQL's
//! 8,000-byte payload limit); the receiving instance reads the row and delivers its state to
//! its own subscribers. Reading the row rather than trusting the payload
//! means a burst of notifications costs at most one read each, and an instance that missed some
//! (a dropped listener connection) still delivers the latest state, in order, on the next one.
//! SQLite has one process, so nothing is relayed there.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbBackend, EntityTrait};
use tokio::sync::mpsc;

use entity::sync_run;

use super::{Bus, KeyChange, Progress};

/// The PostgreSQL channel of run events.
pub const CHANNEL: &str = "mgw_runs";

/// Sends this instance's events to the others, in order, from a task of its own, so that the
/// publisher never waits on the database.
#[derive(Clone, Debug)]
pub struct Outbound(mpsc::UnboundedSender<Note>);

/// What a notification names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Note {
    /// A run's row at this sequence number.
    Run(i64, i64),
    /// A binding (or its delivery) changed.
    Binding(i64),
    /// An API key was revoked or given another role.
    Key(i64),
}

impl Outbound {
    pub(crate) fn send(&self, note: Note) {
        let _ = self.0.send(note);
    }
}

fn payload(note: Note, instance: &str) -> String {
    match note {
        Note::Run(run, seq) => format!("r{run}:{seq}:{instance}"),
        Note::Binding(binding) => format!("b{binding}:0:{instance}"),
        Note::Key(key) => format!("k{key}:0:{instance}"),
    }
}

fn parse(payload: &str) -> Option<(Note, &str)> {
    let mut parts = payload.splitn(3, ':');
    let head = parts.next()?;
    let seq: i64 = parts.next()?.parse().ok()?;
    let instance = parts.next()?;
    let note = match (head.get(..1)?, head.get(1..)?.parse::<i64>().ok()?) {
        ("r", run) => Note::Run(run, seq),
        ("b", binding) => Note::Binding(binding),
        ("k", key) => Note::Key(key),
        _ => return None,
    };
    Some((note, instance))
}

/// Sends this instance's events to the other instances (PostgreSQL; nothing on SQLite), in
/// order, from a task of its own.
pub fn start_outbound(db: &DatabaseConnection, bus: Arc<Bus>, instance: String) {
    if db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Note>();
    bus.set_outbound(Outbound(tx));
    let db = db.clone();
    tokio::spawn(async move {
        while let Some(note) = rx.recv().await {
            let sent = crate::store::notify::notify(&db, CHANNEL, &payload(note, &instance)).await;
            if let Err(e) = sent {
                tracing::warn!(error = %e.message(), ?note, "could not notify other instances");
            }
        }
    });
}

/// Tells the other instances (PostgreSQL) of a run's state at once, without the relay's queue:
/// for a process that exits right after a run. Receivers drop it when they already have it.
pub async fn announce_run(db: &DatabaseConnection, row: &sync_run::Model, instance: &str) {
    if db.get_database_backend() != DbBackend::Postgres {
        return;
    }
    let note = payload(Note::Run(row.id, row.seq), instance);
    if let Err(e) = crate::store::notify::notify(db, CHANNEL, &note).await {
        tracing::warn!(error = %e.message(), "cannot announce the run to other instances");
    }
}

/// Tells every instance (PostgreSQL; nothing on SQLite, which has one process) that an API key
/// was revoked or given another role, at once and without the relay's queue, so that a
/// `keys` command that exits right after is heard too. Every instance, the sender's own
/// included, then forgets the key's cached verification and checks the keys its open
/// connections hold (`access::KeyWatch`).
pub async fn announce_key(db: &DatabaseConnection, key_id: i64) -> crate::Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    crate::store::notify::notify(db, CHANNEL, &payload(Note::Key(key_id), "-")).await
}

/// Starts relaying on PostgreSQL (both directions); does nothing on SQLite. `instance` is this
/// instance's id, so that its own notifications are not delivered twice.
pub async fn start(db: &DatabaseConnection, bus: Arc<Bus>, instance: String) -> crate::Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut listener = crate::store::notify::listen(db, CHANNEL).await?;

    start_outbound(db, bus.clone(), instance.clone());
    let db = db.clone();
    tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    let Some((note, from)) = parse(notification.payload()) else {
                        continue;
                    };
                    if from == instance && !matches!(note, Note::Key(_)) {
                        continue;
                    }
                    match note {
                        Note::Key(key_id) => bus.deliver_key(KeyChange::One(key_id)),
                        Note::Run(run_id, seq) => {
                            match sync_run::Entity::find_by_id(run_id).one(&db).await {
                                Ok(Some(row)) if row.seq >= seq => {
                                    bus.deliver(Progress::of_run(&row));
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, run_id, "could not read a relayed run")
                                }
                            }
                        }
                        Note::Binding(binding_id) => {
                            match super::BindingEvent::read(&db, binding_id).await {
                                Ok(Some(event)) => bus.deliver_binding(event),
                                Ok(None) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e.message(), binding_id, "could not read a relayed binding")
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    // sqlx reconnects on the next call; wait a little so that a database that
                    // is down is not asked in a tight loop.
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    // Key changes told meanwhile were lost: holders check every key they hold.
                    bus.deliver_key(KeyChange::Any);
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        assert_eq!(
            parse(&payload(Note::Run(12, 7), "a:b")),
            Some((Note::Run(12, 7), "a:b"))
        );
        assert_eq!(
            parse(&payload(Note::Binding(5), "i")),
            Some((Note::Binding(5), "i"))
        );
        assert_eq!(
            parse(&payload(Note::Key(3), "-")),
            Some((Note::Key(3), "-"))
        );
        assert_eq!(parse("r12:x:a"), None);
        assert_eq!(parse("x12:1:a"), None);
        assert_eq!(parse(""), None);
    }
}
