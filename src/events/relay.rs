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

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

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
    /// A run's cancel was asked for.
    Cancel(i64),
    /// An instance's own echo: heard back once its LISTEN connection listens again.
    Echo,
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
        Note::Cancel(run) => format!("c{run}:0:{instance}"),
        Note::Echo => format!("e0:0:{instance}"),
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
        ("c", run) => Note::Cancel(run),
        ("e", _) => Note::Echo,
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
                tracing::warn!(error = %e.for_log(), ?note, "could not notify other instances");
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
        tracing::warn!(error = %e.for_log(), "cannot announce the run to other instances");
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
        // When the LISTEN connection was found lost, until this instance hears its own echo on
        // the new one: notifications of the gap are lost, so once listening again every state
        // that may have changed meanwhile is re-read and delivered.
        let gap: Arc<Mutex<Option<DateTime<Utc>>>> = Arc::default();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let Some((note, from)) = parse(notification.payload()) else {
                        continue;
                    };
                    if note == Note::Echo {
                        let since = if from == instance {
                            gap.lock().unwrap().take()
                        } else {
                            None
                        };
                        if let Some(since) = since {
                            tracing::info!(
                                "LISTEN connection back; re-reading what changed meanwhile"
                            );
                            if let Err(e) = resync(&db, &bus, since).await {
                                tracing::warn!(error = %e.for_log(), "could not re-read runs and bindings after a reconnect");
                            }
                        }
                        continue;
                    }
                    if from == instance && !matches!(note, Note::Key(_)) {
                        continue;
                    }
                    relay_note(&db, &bus, note).await;
                }
                // `None`: the connection was lost, and the next call reconnects and listens
                // again; an error: the reconnect failed (the database is down), tried again
                // after a second.
                lost => {
                    match &lost {
                        Err(e) => tracing::warn!(error = %e, "LISTEN connection cannot reconnect"),
                        _ => tracing::warn!("LISTEN connection lost; reconnecting"),
                    }
                    // Key changes told meanwhile were lost: holders check every key they hold.
                    bus.deliver_key(KeyChange::Any);
                    let first = gap.lock().unwrap().is_none();
                    if first {
                        *gap.lock().unwrap() = Some(Utc::now());
                        tokio::spawn(echo_until_heard(db.clone(), gap.clone(), instance.clone()));
                    }
                    if lost.is_err() {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        }
    });
    Ok(())
}

/// Delivers what a notification of another instance names, read from its row.
async fn relay_note(db: &DatabaseConnection, bus: &Bus, note: Note) {
    match note {
        Note::Key(key_id) => bus.deliver_key(KeyChange::One(key_id)),
        Note::Cancel(run_id) => bus.deliver_cancel(run_id),
        Note::Echo => {}
        Note::Run(run_id, seq) => match sync_run::Entity::find_by_id(run_id).one(db).await {
            Ok(Some(row)) if row.seq >= seq => {
                bus.deliver(Progress::of_run(&row));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, run_id, "could not read a relayed run"),
        },
        Note::Binding(binding_id) => match super::BindingEvent::read(db, binding_id).await {
            Ok(Some(event)) => bus.deliver_binding(event),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e.for_log(), binding_id, "could not read a relayed binding")
            }
        },
    }
}

/// Sends this instance's echo every half second while the gap lasts: the first one heard
/// proves the new connection listens.
async fn echo_until_heard(
    db: DatabaseConnection,
    gap: Arc<Mutex<Option<DateTime<Utc>>>>,
    instance: String,
) {
    while gap.lock().unwrap().is_some() {
        let echo = payload(Note::Echo, &instance);
        if let Err(e) = crate::store::notify::notify(&db, CHANNEL, &echo).await {
            tracing::debug!(error = %e.for_log(), "could not send the relay's echo");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// How far before the loss of the LISTEN connection changes are re-read: instances' clocks
/// differ a little, and a change written just before the loss may have been told in the gap.
const RESYNC_MARGIN: chrono::Duration = chrono::Duration::minutes(1);

/// Delivers the current state of every run and binding that may have changed since `since`:
/// runs still active or ended since, bindings changed since or whose delivery moved since. The
/// bus drops a run's state it already has (by sequence number).
async fn resync(db: &DatabaseConnection, bus: &Bus, since: DateTime<Utc>) -> crate::Result<()> {
    use entity::{binding, push_outbox};
    use sea_orm::{ColumnTrait, Condition, QueryFilter, QuerySelect};
    let since = since - RESYNC_MARGIN;
    let runs = sync_run::Entity::find()
        .filter(
            Condition::any()
                .add(sync_run::Column::Status.is_in(sync_run::SyncStatus::ACTIVE))
                .add(sync_run::Column::FinishedAt.gte(since)),
        )
        .all(db)
        .await?;
    for row in &runs {
        bus.deliver(Progress::of_run(row));
    }
    let mut ids: Vec<i64> = binding::Entity::find()
        .select_only()
        .column(binding::Column::Id)
        .filter(binding::Column::UpdatedAt.gte(since))
        .into_tuple()
        .all(db)
        .await?;
    ids.extend(
        push_outbox::Entity::find()
            .select_only()
            .column(push_outbox::Column::BindingId)
            .filter(
                Condition::any()
                    .add(push_outbox::Column::CreatedAt.gte(since))
                    .add(push_outbox::Column::DeliveredAt.gte(since))
                    .add(push_outbox::Column::NextAttemptAt.gte(since)),
            )
            .into_tuple::<i64>()
            .all(db)
            .await?,
    );
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(500) {
        for event in super::BindingEvent::read_many(db, chunk).await? {
            bus.deliver_binding(event);
        }
    }
    tracing::info!(
        runs = runs.len(),
        bindings = ids.len(),
        "re-read after a reconnect"
    );
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
        assert_eq!(
            parse(&payload(Note::Cancel(8), "i")),
            Some((Note::Cancel(8), "i"))
        );
        assert_eq!(parse(&payload(Note::Echo, "i")), Some((Note::Echo, "i")));
        assert_eq!(parse("r12:x:a"), None);
        assert_eq!(parse("x12:1:a"), None);
        assert_eq!(parse(""), None);
    }
}
