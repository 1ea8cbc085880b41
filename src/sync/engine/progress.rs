//! A run's progress: its row, written with each page (in the page's transaction) and on each
//! phase change, and the events subscribers are told once what was written has committed.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait};

use entity::sync_run;

use super::{Counts, Engine, Step};
use crate::Result;

/// What subscribers are told of the run: its sequence number, the listing's page, the row
/// written in a page's transaction (published once committed), when the last event went out.
#[derive(Debug)]
pub(super) struct Live {
    seq: i64,
    pub(super) page: i64,
    pub(super) pages: Option<i64>,
    unpublished: Option<sync_run::Model>,
    last_event: Option<std::time::Instant>,
    /// When the engine started (on the database's clock), for what is counted once per run.
    pub(super) started_at: DateTime<Utc>,
    /// What the row last written says, to leave out a write that would say nothing new.
    written: Option<Said>,
}

impl Live {
    /// A run's live state before its first write, from its row's sequence number.
    pub(super) fn new(seq: i64, started_at: DateTime<Utc>) -> Live {
        Live {
            seq,
            page: 0,
            pages: None,
            unpublished: None,
            last_event: None,
            started_at,
            written: None,
        }
    }
}

/// What a progress write records of the run, but for its heartbeat.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Said {
    counts: Counts,
    phase: &'static str,
    item: Option<&'static str>,
    page: i64,
    pages: Option<i64>,
    warnings: usize,
}

impl<'a> Engine<'a> {
    /// Enters a phase (and the listing of an item), and tells subscribers.
    pub(super) async fn set_phase(
        &mut self,
        phase: &'static str,
        item: Option<&'static str>,
    ) -> Result<()> {
        self.phase = phase;
        self.item = item;
        self.live.page = 0;
        self.live.pages = None;
        self.save_progress().await
    }
    /// Writes the run's progress and publishes it.
    pub(super) async fn save_progress(&mut self) -> Result<()> {
        self.save_progress_in(self.db).await?;
        self.publish();
        Ok(())
    }
    /// Writes the run's progress; inside a page's transaction it shares that page's commit, and
    /// is published by [`Engine::publish`] once committed.
    pub(super) async fn save_progress_in<C: ConnectionTrait>(&mut self, db: &C) -> Result<()> {
        let c = self.counts;
        // Every write of the row records the counts; an event (a new sequence number) goes out
        // on a phase change, on the first page of a listing, and otherwise at most every
        // `progress_every`. Measured with 1,000 subscribers of a 20,000-box sync on SQLite, an
        // event per page (1,069 of them) made the sync 2.2 times slower on this 2-core machine:
        // every event is executed and written once per subscriber.
        let every = self.app.settings.sync.progress_every;
        let announce =
            self.live.page <= 1 || self.live.last_event.is_none_or(|t| t.elapsed() >= every);
        if announce {
            self.live.seq += 1;
            self.live.last_event = Some(std::time::Instant::now());
        }
        let warnings = (!self.warnings.is_empty()).then(|| self.warnings.join("\n"));
        let row = sync_run::ActiveModel {
            id: Set(self.run_id),
            unreadable: Set(c.unreadable),
            purged: Set(c.purged),
            warnings: Set(warnings),
            phase: Set(Some(self.phase.to_owned())),
            current_item: Set(self.item.map(str::to_owned)),
            processed: Set(c.processed),
            total: Set(Some(c.total)),
            fetched: Set(c.fetched),
            created: Set(c.created),
            updated: Set(c.updated),
            deleted: Set(c.deleted),
            unchanged: Set(c.unchanged),
            orphaned: Set(c.orphaned),
            conflicts: Set(c.conflicts),
            heartbeat_at: Set(Some(self.db_now())),
            seq: Set(self.live.seq),
            page: Set(self.live.page),
            pages: Set(self.live.pages),
            ..Default::default()
        };
        // Fenced: only while the run is RUNNING on this instance. A run another instance marked
        // failed (its heartbeats stopped reaching the database) writes nothing more: the page's
        // transaction is rolled back with this error.
        let row = crate::sync::liveness::fenced(row, &self.app.settings.sync.instance_id)?
            .exec(db)
            .await
            .map_err(|e| match e {
                sea_orm::DbErr::RecordNotUpdated => crate::sync::liveness::lost(self.run_id),
                e => e.into(),
            })?;
        if row.cancel_requested {
            self.cancel.cancel();
        }
        self.live.unpublished = announce.then_some(row);
        self.live.written = Some(self.said());
        Ok(())
    }
    /// Whether the row last written says all a progress write would say now.
    pub(super) fn all_said(&self) -> bool {
        self.live.written == Some(self.said())
    }
    /// What a progress write would record now.
    fn said(&self) -> Said {
        Said {
            counts: self.counts,
            phase: self.phase,
            item: self.item,
            page: self.live.page,
            pages: self.live.pages,
            warnings: self.warnings.len(),
        }
    }
    /// Tells subscribers of the progress last written, once its transaction has committed.
    pub(super) fn publish(&mut self) {
        if let Some(row) = self.live.unpublished.take() {
            self.app.events.publish_run(&row);
        }
    }
    pub(super) async fn counted_page<C: ConnectionTrait>(&mut self, txn: &C, n: usize) -> Step {
        self.counts.fetched += n as i64;
        self.counts.processed += n as i64;
        self.save_progress_in(txn).await?;
        Ok(())
    }
}
