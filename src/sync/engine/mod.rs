//! The sync engine: lists the selected records page by page, writes what changed in one
//! transaction per page, and deletes only after a complete listing (docs/DESIGN.md section 3).
//!
//! Finding what the platform deleted needs no set of everything seen: listings arrive in fid
//! order (the client checks it), so each page covers a fid range, and local rows of the same scope
//! in that range that the page lacks are gone on the platform. Only those ids are kept until the
//! end, so memory follows the number of deletions, not the size of the project.
//!
//! The engine is split by concern: [`listing`] walks a listing page by page and finds what is
//! gone in each page's fid range, [`write`] turns a page into [`upsert`]s, [`delete`] holds what is
//! doomed until the listing is complete and applies it behind the mass-deletion guard, and
//! [`one_box`] is the ELEMENT mode; [`progress`] writes the run's row and tells subscribers.

mod ahead;
mod cursors;
mod delete;
mod in_place;
mod listing;
mod one_box;
mod port_writes;
mod ports;
mod progress;
mod upsert;
mod write;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;

use entity::{element_selection, integration, project, sync_run};

use super::{Mode, Outcome};
use crate::catalog::ElementItem;
use crate::platform::{ListQuery, Platform};
use crate::state::AppState;
use crate::Error;

use delete::Doomed;
use listing::{Batch, Scope, Table};
use progress::Live;

/// Why a run stopped early.
enum Stop {
    Cancelled,
    Guard(String),
    Error(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Error(e)
    }
}

impl From<sea_orm::DbErr> for Stop {
    fn from(e: sea_orm::DbErr) -> Self {
        Stop::Error(e.into())
    }
}

type Step<T = ()> = std::result::Result<T, Stop>;

#[derive(Default, Debug, Clone, Copy, PartialEq)]
struct Counts {
    fetched: i64,
    created: i64,
    updated: i64,
    deleted: i64,
    unchanged: i64,
    orphaned: i64,
    conflicts: i64,
    processed: i64,
    total: i64,
    unreadable: i64,
    purged: i64,
}

impl Counts {
    /// Counts a listed record as unchanged, updated or created; true when it must be written.
    fn tally(&mut self, exists: bool, same: bool) -> bool {
        match (exists, same) {
            (true, true) => self.unchanged += 1,
            (true, false) => self.updated += 1,
            (false, _) => self.created += 1,
        }
        !(exists && same)
    }
}

/// One run of the engine.
pub struct Engine<'a> {
    db: &'a DatabaseConnection,
    app: &'a AppState,
    run_id: i64,
    mode: Mode,
    allow_mass_deletion: bool,
    element_fid: Option<String>,
    integration: integration::Model,
    project: project::Model,
    platform: Arc<dyn Platform>,
    selection: Vec<element_selection::Model>,
    cancel: &'a CancellationToken,
    /// When the run's time budget runs out.
    deadline: tokio::time::Instant,
    /// Who started the run: bindings it orphans are recorded in their name.
    actor: &'a crate::access::Actor,
    counts: Counts,
    clock: Option<DateTime<Utc>>,
    doomed: Doomed,
    /// Port writes waiting for a later page to move the port that holds their number.
    pending_ports: Vec<crate::platform::RemotePort>,
    phase: &'static str,
    item: Option<&'static str>,
    live: Live,
    /// What a person should know of the run (records not read, deletions skipped), one line
    /// each, at most [`WARNINGS_KEPT`].
    warnings: Vec<String>,
    /// Splitters an INCREMENTAL run created or saw change kind: their ports are listed by
    /// splitter, since ports are listed by their own change time.
    new_splitters: Vec<String>,
    /// The tables that held no row of the integration when the run began ([`Table::empty`]).
    empty: Vec<Table>,
    new_boxes: write::NewBoxes,
    /// The database's clock minus this instance's at the start (heartbeats are on its clock).
    skew: chrono::Duration,
    /// SQLite's WAL copied into the database beside the pages' writes.
    checkpoints: crate::db::Checkpoints,
}

const WARNINGS_KEPT: usize = 20; // past them, one more line says how many were left out

impl<'a> Engine<'a> {
    /// Runs a sync to its end and says how it went; never panics, never half-deletes.
    pub async fn run(
        app: &'a AppState,
        run: &sync_run::Model,
        cancel: &'a CancellationToken,
        actor: &'a crate::access::Actor,
    ) -> Outcome {
        let outcome = match Self::prepare(app, run, cancel, actor).await {
            Ok(mut engine) => {
                let result = engine.go().await;
                // The last counts, unless a run that went well wrote them last in a transaction
                // (the last page's, the cursors'): its end is written next anyway, and on
                // PostgreSQL every write outside a page's transaction waits for the disk.
                let written = result.is_ok() && engine.all_said();
                if !written {
                    if let Err(e) = engine.save_progress().await {
                        tracing::warn!(error = %e.for_log(), "could not save the last progress");
                    }
                }
                // What the last pages wrote goes into the file beside the run's end.
                engine.checkpoints.start(engine.db);
                result
            }
            Err(stop) => Err(stop),
        };
        match outcome {
            Ok(()) => Outcome::Succeeded,
            Err(Stop::Cancelled) => Outcome::Cancelled,
            Err(Stop::Guard(message)) => Outcome::Failed {
                code: "MASS_DELETION_GUARD".into(),
                message,
            },
            Err(Stop::Error(e)) => {
                if let Error::Internal(cause) = &e {
                    tracing::error!(error = format!("{cause:#}"), "sync failed");
                }
                Outcome::Failed {
                    code: e.code().into(),
                    message: e.message(),
                }
            }
        }
    }
    async fn prepare(
        app: &'a AppState,
        run: &sync_run::Model,
        cancel: &'a CancellationToken,
        actor: &'a crate::access::Actor,
    ) -> Step<Engine<'a>> {
        let db = &app.db;
        let integration = crate::integrations::find(db, run.integration_id).await?;
        if !integration.active {
            return Err(Stop::Error(Error::InactiveIntegration));
        }
        let project = crate::projects::of(db, run.integration_id)
            .await?
            .ok_or_else(|| Error::Conflict("the integration has no project".into()))?;
        let platform = app.platform(&integration)?;
        let selection = crate::selection::get(db, run.integration_id).await?;
        let skew = crate::db::clock(db).await? - app.settings.clock.now();
        let mut mode = run.mode;
        // The first run of a project is always full.
        if mode == Mode::Incremental && selection.iter().all(|s| s.cursor.is_none()) {
            mode = Mode::Full;
            tracing::info!("first run of the project: running FULL instead of INCREMENTAL");
            sync_run::Entity::update_many()
                .col_expr(
                    sync_run::Column::Mode,
                    sea_orm::sea_query::Expr::value(Mode::Full),
                )
                .filter(sync_run::Column::Id.eq(run.id))
                .exec(db)
                .await?;
        }
        let cursor_before = if selection.iter().all(|s| s.cursor.is_some()) {
            selection.iter().filter_map(|s| s.cursor).min()
        } else {
            None
        };
        let empty = match mode {
            Mode::Element => Vec::new(),
            _ => Table::empty(db, integration.id).await?,
        };
        sync_run::Entity::update_many()
            .col_expr(
                sync_run::Column::CursorBefore,
                sea_orm::sea_query::Expr::value(cursor_before),
            )
            .filter(sync_run::Column::Id.eq(run.id))
            .exec(db)
            .await?;
        Ok(Engine {
            db,
            app,
            run_id: run.id,
            mode,
            allow_mass_deletion: run.allow_mass_deletion,
            element_fid: run.element_fid.clone(),
            integration,
            project,
            platform,
            selection,
            cancel,
            deadline: tokio::time::Instant::now() + app.settings.sync.time_budget,
            actor,
            counts: Counts::default(),
            clock: None,
            doomed: Doomed::default(),
            pending_ports: Vec::new(),
            phase: "STARTING",
            item: None,
            warnings: Vec::new(),
            new_splitters: Vec::new(),
            empty,
            new_boxes: Default::default(),
            skew,
            checkpoints: Default::default(),
            live: Live::new(run.seq, app.settings.clock.now() + skew),
        })
    }
    /// The database's clock now (this instance's, moved by the skew measured at the start).
    fn db_now(&self) -> DateTime<Utc> {
        self.app.settings.clock.now() + self.skew
    }

    fn selected(&self, item: ElementItem) -> bool {
        self.selection.iter().any(|s| s.item == item)
    }
    fn element_items(&self) -> Vec<ElementItem> {
        crate::selection::items(&self.selection)
            .into_iter()
            .filter(|i| i.is_element())
            .collect()
    }
    fn query(&self, since: Option<DateTime<Utc>>) -> ListQuery {
        ListQuery {
            project_id: Some(self.project.remote_id.clone()),
            changed_since: since,
            ..Default::default()
        }
    }
    async fn go(&mut self) -> Step {
        self.purge_deselected().await?;
        match self.mode {
            Mode::Element => self.sync_one_box().await?,
            Mode::Full | Mode::Incremental => {
                // Every listing starts now and is fetched a few pages ahead of the writes,
                // within one limit of requests in flight; the writes stay in order (elements,
                // splitters, ports), a page per transaction (an incremental listing's pages
                // already fetched together).
                let gate = Arc::new(tokio::sync::Semaphore::new(
                    self.app.settings.sync.requests_in_flight.max(1),
                ));
                let elements: Vec<_> = self
                    .element_items()
                    .into_iter()
                    .map(|item| {
                        let since = self.since(&[item]);
                        let listing = ahead::ahead(
                            self.platform.elements(item, self.query(since)),
                            listing::pages_ahead(since.is_some()),
                            gate.clone(),
                        );
                        (item, since, listing)
                    })
                    .collect();
                let kinds: Vec<ElementItem> = [ElementItem::Service, ElementItem::Distribution]
                    .into_iter()
                    .filter(|i| self.selected(*i))
                    .collect();
                let since = self.since(&kinds);
                let splitters = ahead::ahead(
                    self.platform.splitters(self.query(since)),
                    listing::pages_ahead(since.is_some()),
                    gate.clone(),
                );
                let ports = ahead::ahead(
                    self.platform.ports(self.query(since)),
                    listing::pages_ahead(since.is_some()),
                    gate.clone(),
                );
                for (item, since, listing) in elements {
                    self.set_phase("ELEMENTS", Some(item.as_str())).await?;
                    self.sync_listing(
                        listing,
                        |r| Batch::Elements(item, r),
                        (Table::Elements, Scope::Item(self.project.id, item)),
                        since.is_none(),
                        false,
                    )
                    .await?;
                }
                let scope = Scope::Project(self.project.id);
                self.set_phase("SPLITTERS", Some("SPLITTER")).await?;
                self.sync_listing(
                    splitters,
                    Batch::Splitters,
                    (Table::Splitters, scope),
                    since.is_none(),
                    false,
                )
                .await?;
                self.set_phase("PORTS", Some("PORT")).await?;
                self.sync_listing(
                    ports,
                    Batch::Ports,
                    (Table::Ports, scope),
                    since.is_none(),
                    false,
                )
                .await?;
                if since.is_some() {
                    self.ports_of_new_splitters().await?;
                }
            }
        }
        self.apply_deletions().await?;
        self.write_deferred_ports().await?;
        self.link_boxes().await?;
        if self.mode != Mode::Element {
            self.advance_cursors().await?;
        }
        Ok(())
    }
    fn checkpoint(&self) -> Step {
        if self.cancel.is_cancelled() {
            Err(Stop::Cancelled)
        } else if tokio::time::Instant::now() >= self.deadline {
            Err(self.over_budget())
        } else {
            Ok(())
        }
    }
    /// The end of a run past its time budget.
    fn over_budget(&self) -> Stop {
        Stop::Error(Error::PlatformUnavailable(format!(
            "the run took longer than its time budget of {} s (SYNC_TIME_BUDGET_SECS) and \
             stopped before deleting anything; the pages it wrote stay",
            self.app.settings.sync.time_budget.as_secs()
        )))
    }
    /// Notes what a person should know of the run.
    fn warn(&mut self, line: String) {
        tracing::warn!(run_id = self.run_id, "{line}");
        match self.warnings.len() {
            n if n < WARNINGS_KEPT => self.warnings.push(line),
            WARNINGS_KEPT => self.warnings.push("(more warnings in the log)".into()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_record_is_counted_once() {
        let mut c = Counts::default();
        assert!(!c.tally(true, true), "unchanged: nothing to write");
        assert!(c.tally(true, false));
        assert!(c.tally(false, false));
        assert!(
            c.tally(false, true),
            "a new record is written even if it looks the same"
        );
        assert_eq!((c.unchanged, c.updated, c.created), (1, 1, 2));
    }
}
