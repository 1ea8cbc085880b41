//! Events across instances on PostgreSQL, through `LISTEN/NOTIFY`.
//!
//! A notification carries only `run id:sequence:instance` (a few dozen bytes, far under
//! PostgreSQL's 8,000-byte payload limit); the receiving instance reads the run's row and
//! delivers its state to its own subscribers. Reading the row rather than trusting the payload
//! means a burst of notifications costs at most one read each, and an instance that missed some
//! (a dropped listener connection) still delivers the latest state, in order, on the next one.
//! SQLite has one process, so nothing is relayed there.

use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbBackend, EntityTrait};
use tokio::sync::mpsc;

use entity::sync_run;

use super::{Bus, Progress};

/// The PostgreSQL channel of run events.
pub const CHANNEL: &str = "mgw_runs";

/// Sends this instance's events to the others, in order, from a task of its own, so that the
/// publisher never waits on the database.
#[derive(Clone, Debug)]
pub struct Outbound(mpsc::UnboundedSender<(i64, i64)>);

impl Outbound {
    pub(crate) fn send(&self, run_id: i64, seq: i64) {
        let _ = self.0.send((run_id, seq));
    }
}

fn payload(run_id: i64, seq: i64, instance: &str) -> String {
    format!("{run_id}:{seq}:{instance}")
}

fn parse(payload: &str) -> Option<(i64, i64, &str)> {
    let mut parts = payload.splitn(3, ':');
    let run = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some((run, seq, parts.next()?))
}

/// Starts relaying on PostgreSQL (both directions); does nothing on SQLite. `instance` is this
/// instance's id, so that its own notifications are not delivered twice.
pub async fn start(db: &DatabaseConnection, bus: Arc<Bus>, instance: String) -> crate::Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let mut listener = crate::store::notify::listen(db, CHANNEL).await?;

    let (tx, mut rx) = mpsc::unbounded_channel::<(i64, i64)>();
    bus.set_outbound(Outbound(tx));
    {
        let db = db.clone();
        let instance = instance.clone();
        tokio::spawn(async move {
            while let Some((run_id, seq)) = rx.recv().await {
                let sent =
                    crate::store::notify::notify(&db, CHANNEL, &payload(run_id, seq, &instance))
                        .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e.message(), run_id, "could not notify other instances");
                }
            }
        });
    }
    let db = db.clone();
    tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(notification) => {
                    let Some((run_id, seq, from)) = parse(notification.payload()) else {
                        continue;
                    };
                    if from == instance {
                        continue;
                    }
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
                Err(e) => {
                    // sqlx reconnects on the next call; wait a little so that a database that
                    // is down is not asked in a tight loop.
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
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
        assert_eq!(parse(&payload(12, 7, "a:b")), Some((12, 7, "a:b")));
        assert_eq!(parse("12:x:a"), None);
        assert_eq!(parse(""), None);
    }
}
