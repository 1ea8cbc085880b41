//! The sync engine: lists the selected records page by page, writes what changed in one
//! transaction per page, and deletes only after a complete listing (DESIGN section 3).
//!
//! Finding what the platform deleted needs no set of everything seen: listings arrive in fid
//! order (the client checks it), so each page covers a fid range, and local rows of the same scope
//! in that range that the page lacks are gone on the platform. Only those ids are kept until the
//! end, so memory follows the number of deletions, not the size of the project.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QuerySelect,
};
use tokio_util::sync::CancellationToken;

use entity::{element, element_selection, integration, port, project, splitter, sync_run};

use super::{Mode, Outcome};
use crate::catalog::ElementItem;
use crate::platform::{
    ListPage, ListQuery, Listing, Platform, RemoteElement, RemotePort, RemoteSplitter, SplitterKind,
};
use crate::state::AppState;
use crate::store::plant::{self, PortScope};
use crate::{Error, Result};

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

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    fetched: i64,
    created: i64,
    updated: i64,
    deleted: i64,
    unchanged: i64,
    orphaned: i64,
    processed: i64,
    total: i64,
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

/// Local rows the platform no longer has, deleted once the listing is complete.
#[derive(Default)]
struct Doomed {
    elements: Vec<i64>,
    splitters: Vec<i64>,
    ports: Vec<i64>,
}

impl Doomed {
    fn is_empty(&self) -> bool {
        self.elements.is_empty() && self.splitters.is_empty() && self.ports.is_empty()
    }
}

fn kind_item(kind: SplitterKind) -> ElementItem {
    match kind {
        SplitterKind::Service => ElementItem::Service,
        SplitterKind::Distribution => ElementItem::Distribution,
    }
}

fn fid_num(fid: &str) -> Option<i64> {
    fid.parse().ok()
}

/// The records of one listing page, of whichever feature.
enum Batch {
    Elements(ElementItem, Vec<RemoteElement>),
    Splitters(Vec<RemoteSplitter>),
    Ports(Vec<RemotePort>),
}

impl Batch {
    fn fids(&self) -> Vec<&str> {
        match self {
            Batch::Elements(_, r) => r.iter().map(|x| x.fid.as_str()).collect(),
            Batch::Splitters(r) => r.iter().map(|x| x.fid.as_str()).collect(),
            Batch::Ports(r) => r.iter().map(|x| x.fid.as_str()).collect(),
        }
    }

    fn fid_nums(&self) -> Vec<Option<i64>> {
        self.fids().into_iter().map(fid_num).collect()
    }

    fn len(&self) -> usize {
        self.fids().len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Tracks the fid range a listing has covered, page after page.
struct Range {
    last: Option<i64>,
}

impl Range {
    /// The range of the next page: (previous last, this page's last], and checks fid order.
    fn advance(&mut self, fids: &[Option<i64>]) -> Step<(Option<i64>, Option<i64>)> {
        let nums: Vec<i64> = fids.iter().flatten().copied().collect();
        if nums.windows(2).any(|w| w[0] >= w[1])
            || nums.first().zip(self.last).is_some_and(|(f, l)| *f <= l)
        {
            return Err(Stop::Error(Error::PlatformUnavailable(
                "the platform did not list records in fid order; nothing was deleted".into(),
            )));
        }
        let lo = self.last;
        if let Some(last) = nums.last() {
            self.last = Some(*last);
        }
        Ok((lo, nums.last().copied()))
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
    counts: Counts,
    clock: Option<DateTime<Utc>>,
    doomed: Doomed,
    phase: &'static str,
    item: Option<&'static str>,
}

impl<'a> Engine<'a> {
    /// Runs a sync to its end and says how it went; never panics, never half-deletes.
    pub async fn run(
        app: &'a AppState,
        run: &sync_run::Model,
        cancel: &'a CancellationToken,
    ) -> Outcome {
        let outcome = match Self::prepare(app, run, cancel).await {
            Ok(mut engine) => {
                let result = engine.go().await;
                if let Err(e) = engine.save_progress().await {
                    tracing::warn!(error = %e.message(), "could not save the last progress");
                }
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
            counts: Counts::default(),
            clock: None,
            doomed: Doomed::default(),
            phase: "STARTING",
            item: None,
        })
    }

    fn selected(&self, item: ElementItem) -> bool {
        self.selection.iter().any(|s| s.item == item.as_str())
    }

    fn element_items(&self) -> Vec<ElementItem> {
        crate::selection::items(&self.selection)
            .into_iter()
            .filter(|i| i.is_element())
            .collect()
    }

    /// `changed_since` for a listing of these items: none (full) unless every one has a cursor.
    fn since(&self, items: &[ElementItem]) -> Option<DateTime<Utc>> {
        if self.mode != Mode::Incremental {
            return None;
        }
        let mut cursors = Vec::new();
        for item in items {
            match self
                .selection
                .iter()
                .find(|s| s.item == item.as_str())
                .and_then(|s| s.cursor)
            {
                Some(c) => cursors.push(c),
                None => return None,
            }
        }
        let overlap =
            chrono::Duration::from_std(self.app.settings.sync.overlap).unwrap_or_default();
        cursors.into_iter().min().map(|c| c - overlap)
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
                for item in self.element_items() {
                    let since = self.since(&[item]);
                    let listing = self.platform.elements(item, self.query(since));
                    self.set_phase("ELEMENTS", item.as_str());
                    let scope = format!(
                        "project_id = {} AND item = '{}'",
                        self.project.id,
                        item.as_str()
                    );
                    self.sync_listing(
                        listing,
                        |r| Batch::Elements(item, r),
                        ("elements", &scope),
                        since.is_none(),
                        false,
                    )
                    .await?;
                }
                let kinds: Vec<ElementItem> = [ElementItem::Service, ElementItem::Distribution]
                    .into_iter()
                    .filter(|i| self.selected(*i))
                    .collect();
                let since = self.since(&kinds);
                let scope = format!("project_id = {}", self.project.id);
                let listing = self.platform.splitters(self.query(since));
                self.set_phase("SPLITTERS", "SPLITTER");
                self.sync_listing(
                    listing,
                    Batch::Splitters,
                    ("splitters", &scope),
                    since.is_none(),
                    false,
                )
                .await?;
                let listing = self.platform.ports(self.query(since));
                self.set_phase("PORTS", "PORT");
                self.sync_listing(
                    listing,
                    Batch::Ports,
                    ("ports", &scope),
                    since.is_none(),
                    false,
                )
                .await?;
            }
        }
        self.apply_deletions().await?;
        self.link_boxes().await?;
        if self.mode != Mode::Element {
            self.advance_cursors().await?;
        }
        Ok(())
    }

    fn set_phase(&mut self, phase: &'static str, item: &'static str) {
        self.phase = phase;
        self.item = Some(item);
    }

    fn checkpoint(&self) -> Step {
        if self.cancel.is_cancelled() {
            Err(Stop::Cancelled)
        } else {
            Ok(())
        }
    }

    async fn next_page<T>(&mut self, listing: &mut Listing<T>) -> Step<Option<ListPage<T>>> {
        self.checkpoint()?;
        let page = tokio::select! {
            page = listing.next() => page,
            _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
        };
        match page {
            None => Ok(None),
            Some(Err(e)) => Err(Stop::Error(e)),
            Some(Ok(page)) => {
                if self.clock.is_none() {
                    self.clock = Some(page.clock.unwrap_or_else(Utc::now));
                }
                Ok(Some(page))
            }
        }
    }

    async fn save_progress(&self) -> Result<()> {
        self.save_progress_in(self.db).await
    }

    /// Writes the run's progress; inside a page's transaction it shares that page's commit.
    async fn save_progress_in<C: ConnectionTrait>(&self, db: &C) -> Result<()> {
        let c = self.counts;
        sync_run::ActiveModel {
            id: Set(self.run_id),
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
            heartbeat_at: Set(Some(Utc::now())),
            ..Default::default()
        }
        .update(db)
        .await?;
        Ok(())
    }

    /// Local rows of `table` in `scope` whose fid falls in (lo, hi] and is not in `keep`.
    async fn gone_in_range<C: ConnectionTrait>(
        &self,
        db: &C,
        table: &str,
        scope: &str,
        (lo, hi): (Option<i64>, Option<i64>),
        keep: &HashSet<&str>,
    ) -> Result<Vec<i64>> {
        let mut condition = format!("{scope} AND fid_num IS NOT NULL");
        if let Some(lo) = lo {
            condition.push_str(&format!(" AND fid_num > {lo}"));
        }
        if let Some(hi) = hi {
            condition.push_str(&format!(" AND fid_num <= {hi}"));
        }
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT id, fid FROM {table} WHERE {condition}"),
            ))
            .await?;
        let mut gone = Vec::new();
        for row in rows {
            let fid: String = row.try_get("", "fid")?;
            if !keep.contains(fid.as_str()) {
                gone.push(row.try_get::<i64>("", "id")?);
            }
        }
        Ok(gone)
    }

    /// Lists one feature page by page and writes each page in its own transaction. With `full`
    /// the listing covers the whole `scope` of `table`, so local rows of each page's fid range
    /// that the page lacks (or that are no longer selected) are doomed, and so is whatever lies
    /// past the last fid. With `collect`, returns every fid kept (element syncs, one box).
    async fn sync_listing<T: Send + 'static>(
        &mut self,
        mut listing: Listing<T>,
        wrap: impl Fn(Vec<T>) -> Batch,
        (table, scope): (&'static str, &str),
        full: bool,
        collect: bool,
    ) -> Step<HashSet<String>> {
        let mut range = Range { last: None };
        let mut first = true;
        let mut kept = HashSet::new();
        while let Some(page) = self.next_page(&mut listing).await? {
            if first {
                self.counts.total += page.total as i64;
                first = false;
            }
            let batch = wrap(page.records);
            let bounds = range.advance(&batch.fid_nums())?;
            let txn = crate::db::write_txn(self.db).await?;
            let keep = self.write_batch(&txn, &batch).await?;
            if full {
                let last_page = batch.is_empty() || bounds.1.is_none();
                let hi = if last_page { None } else { bounds.1 };
                let gone = self
                    .gone_in_range(&txn, table, scope, (bounds.0, hi), &keep)
                    .await?;
                self.doom(table, gone);
            }
            self.counted_page(&txn, batch.len()).await?;
            txn.commit().await?;
            if collect {
                kept.extend(keep.into_iter().map(str::to_owned));
            }
        }
        if full {
            let tail = self
                .gone_in_range(self.db, table, scope, (range.last, None), &HashSet::new())
                .await?;
            self.doom(table, tail);
        }
        Ok(kept)
    }

    fn doom(&mut self, table: &str, ids: Vec<i64>) {
        match table {
            "elements" => self.doomed.elements.extend(ids),
            "splitters" => self.doomed.splitters.extend(ids),
            _ => self.doomed.ports.extend(ids),
        }
    }

    async fn write_batch<'b, C: ConnectionTrait>(
        &mut self,
        txn: &C,
        batch: &'b Batch,
    ) -> Step<HashSet<&'b str>> {
        match batch {
            Batch::Elements(item, records) => self.write_elements(txn, *item, records).await,
            Batch::Splitters(records) => self.write_splitters(txn, records).await,
            Batch::Ports(records) => self.write_ports(txn, records).await,
        }
    }

    /// Upserts boxes or points of one item; returns the fids kept (all of them).
    async fn write_elements<'r, C: ConnectionTrait>(
        &mut self,
        txn: &C,
        item: ElementItem,
        records: &'r [RemoteElement],
    ) -> Step<HashSet<&'r str>> {
        let fids: Vec<String> = records.iter().map(|r| r.fid.clone()).collect();
        let existing: HashMap<String, element::Model> = element::Entity::find()
            .filter(element::Column::IntegrationId.eq(self.integration.id))
            .filter(element::Column::Item.eq(item.as_str()))
            .filter(element::Column::Fid.is_in(fids))
            .all(txn)
            .await?
            .into_iter()
            .map(|e| (e.fid.clone(), e))
            .collect();
        let now = Utc::now();
        let mut writes = Vec::new();
        for rec in records {
            let same = existing.get(&rec.fid).is_some_and(|e| {
                e.project_id == self.project.id
                    && e.name == rec.name
                    && e.latitude == rec.latitude
                    && e.longitude == rec.longitude
                    && e.remote_updated_at == rec.updated_at
            });
            if !self.counts.tally(existing.contains_key(&rec.fid), same) {
                continue;
            }
            writes.push(element::ActiveModel {
                integration_id: Set(self.integration.id),
                project_id: Set(self.project.id),
                item: Set(item.as_str().to_owned()),
                fid: Set(rec.fid.clone()),
                fid_num: Set(fid_num(&rec.fid)),
                name: Set(rec.name.clone()),
                latitude: Set(rec.latitude),
                longitude: Set(rec.longitude),
                remote_updated_at: Set(rec.updated_at),
                synced_at: Set(now),
                ..Default::default()
            });
        }
        upsert::<element::Entity, _>(
            txn,
            writes,
            [
                element::Column::IntegrationId,
                element::Column::Item,
                element::Column::Fid,
            ],
        )
        .await?;
        Ok(records.iter().map(|r| r.fid.as_str()).collect())
    }

    async fn counted_page<C: ConnectionTrait>(&mut self, txn: &C, n: usize) -> Step {
        self.counts.fetched += n as i64;
        self.counts.processed += n as i64;
        self.save_progress_in(txn).await?;
        Ok(())
    }

    /// Upserts the splitters of selected kinds; returns the fids kept. A listed splitter whose
    /// kind is not selected (its kind changed on the platform) is doomed if it exists locally.
    async fn write_splitters<'r, C: ConnectionTrait>(
        &mut self,
        txn: &C,
        records: &'r [RemoteSplitter],
    ) -> Step<HashSet<&'r str>> {
        let fids: Vec<String> = records.iter().map(|r| r.fid.clone()).collect();
        let existing: HashMap<String, splitter::Model> = splitter::Entity::find()
            .filter(splitter::Column::IntegrationId.eq(self.integration.id))
            .filter(splitter::Column::Fid.is_in(fids))
            .all(txn)
            .await?
            .into_iter()
            .map(|s| (s.fid.clone(), s))
            .collect();
        let box_fids: Vec<String> = records.iter().filter_map(|r| r.box_fid.clone()).collect();
        let boxes: HashMap<String, i64> = element::Entity::find()
            .select_only()
            .column(element::Column::Fid)
            .column(element::Column::Id)
            .filter(element::Column::IntegrationId.eq(self.integration.id))
            .filter(element::Column::Item.is_in(["CTO", "CEO"]))
            .filter(element::Column::Fid.is_in(box_fids))
            .into_tuple::<(String, i64)>()
            .all(txn)
            .await?
            .into_iter()
            .collect();
        let now = Utc::now();
        let mut keep = HashSet::new();
        let mut writes = Vec::new();
        for rec in records {
            if !self.selected(kind_item(rec.kind)) {
                if let Some(local) = existing.get(&rec.fid) {
                    self.doomed.splitters.push(local.id);
                }
                continue;
            }
            keep.insert(rec.fid.as_str());
            let element_id = rec.box_fid.as_ref().and_then(|b| boxes.get(b).copied());
            let same = existing.get(&rec.fid).is_some_and(|s| {
                s.project_id == self.project.id
                    && s.name == rec.name
                    && s.kind == rec.kind
                    && s.ratio == rec.ratio
                    && s.port_count == rec.port_count
                    && s.box_fid == rec.box_fid
                    && s.element_id == element_id
                    && s.remote_updated_at == rec.updated_at
            });
            if !self.counts.tally(existing.contains_key(&rec.fid), same) {
                continue;
            }
            writes.push(splitter::ActiveModel {
                integration_id: Set(self.integration.id),
                project_id: Set(self.project.id),
                fid: Set(rec.fid.clone()),
                fid_num: Set(fid_num(&rec.fid)),
                name: Set(rec.name.clone()),
                kind: Set(rec.kind),
                ratio: Set(rec.ratio.clone()),
                port_count: Set(rec.port_count),
                box_fid: Set(rec.box_fid.clone()),
                element_id: Set(element_id),
                remote_updated_at: Set(rec.updated_at),
                synced_at: Set(now),
                ..Default::default()
            });
        }
        upsert::<splitter::Entity, _>(
            txn,
            writes,
            [splitter::Column::IntegrationId, splitter::Column::Fid],
        )
        .await?;
        Ok(keep)
    }

    /// Upserts ports of known splitters of selected kinds; returns the fids kept.
    async fn write_ports<'r, C: ConnectionTrait>(
        &mut self,
        txn: &C,
        records: &'r [RemotePort],
    ) -> Step<HashSet<&'r str>> {
        let splitter_fids: Vec<String> = {
            let set: HashSet<&str> = records.iter().map(|r| r.splitter_fid.as_str()).collect();
            set.into_iter().map(str::to_owned).collect()
        };
        let splitters: HashMap<String, (i64, String)> = splitter::Entity::find()
            .select_only()
            .column(splitter::Column::Fid)
            .column(splitter::Column::Id)
            .column(splitter::Column::Kind)
            .filter(splitter::Column::IntegrationId.eq(self.integration.id))
            .filter(splitter::Column::Fid.is_in(splitter_fids))
            .into_tuple::<(String, i64, String)>()
            .all(txn)
            .await?
            .into_iter()
            .map(|(fid, id, kind)| (fid, (id, kind)))
            .collect();
        let fids: Vec<String> = records.iter().map(|r| r.fid.clone()).collect();
        let existing: HashMap<String, port::Model> = port::Entity::find()
            .filter(port::Column::IntegrationId.eq(self.integration.id))
            .filter(port::Column::Fid.is_in(fids))
            .all(txn)
            .await?
            .into_iter()
            .map(|p| (p.fid.clone(), p))
            .collect();
        let now = Utc::now();
        let mut keep = HashSet::new();
        let mut writes = Vec::new();
        let mut slots: Vec<(i64, i32, &str)> = Vec::new();
        for rec in records {
            let Some((splitter_id, kind)) = splitters.get(&rec.splitter_fid) else {
                continue;
            };
            let selected = ElementItem::parse(kind).is_some_and(|k| self.selected(k));
            if !selected {
                continue;
            }
            keep.insert(rec.fid.as_str());
            let customer = rec.customer.clone().unwrap_or_default();
            let same = existing.get(&rec.fid).is_some_and(|p| {
                p.project_id == self.project.id
                    && p.splitter_id == *splitter_id
                    && p.number == rec.number
                    && p.status == rec.status
                    && p.customer_contract == customer.contract
                    && p.customer_document == customer.document
                    && p.customer_name == customer.name
                    && p.remote_updated_at == rec.updated_at
            });
            if !self.counts.tally(existing.contains_key(&rec.fid), same) {
                continue;
            }
            slots.push((*splitter_id, rec.number, rec.fid.as_str()));
            writes.push(port::ActiveModel {
                integration_id: Set(self.integration.id),
                project_id: Set(self.project.id),
                splitter_id: Set(*splitter_id),
                fid: Set(rec.fid.clone()),
                fid_num: Set(fid_num(&rec.fid)),
                number: Set(rec.number),
                status: Set(rec.status),
                customer_contract: Set(customer.contract),
                customer_document: Set(customer.document),
                customer_name: Set(customer.name),
                remote_updated_at: Set(rec.updated_at),
                synced_at: Set(now),
                ..Default::default()
            });
        }
        self.park_displaced_ports(txn, &slots).await?;
        upsert::<port::Entity, _>(
            txn,
            writes,
            [port::Column::IntegrationId, port::Column::Fid],
        )
        .await?;
        Ok(keep)
    }

    /// A port number taken on the platform by another port fid: the local row that held it is
    /// parked on number `-id` (its real number comes with a later record, or a full sync removes
    /// it), so the one-port-per-number key holds without deleting anything mid-listing.
    async fn park_displaced_ports<C: ConnectionTrait>(
        &self,
        txn: &C,
        slots: &[(i64, i32, &str)],
    ) -> Result<()> {
        if slots.is_empty() {
            return Ok(());
        }
        let splitter_ids: Vec<i64> = {
            let set: HashSet<i64> = slots.iter().map(|s| s.0).collect();
            set.into_iter().collect()
        };
        let taken: HashMap<(i64, i32), &str> =
            slots.iter().map(|(s, n, f)| ((*s, *n), *f)).collect();
        let mut displaced = Vec::new();
        for chunk in splitter_ids.chunks(plant::CHUNK) {
            let rows = port::Entity::find()
                .select_only()
                .column(port::Column::Id)
                .column(port::Column::SplitterId)
                .column(port::Column::Number)
                .column(port::Column::Fid)
                .filter(port::Column::SplitterId.is_in(chunk.to_vec()))
                .into_tuple::<(i64, i64, i32, String)>()
                .all(txn)
                .await?;
            for (id, splitter_id, number, fid) in rows {
                if taken.get(&(splitter_id, number)).is_some_and(|f| *f != fid) {
                    displaced.push(id);
                }
            }
        }
        for id in displaced {
            super::exec(
                txn,
                format!("UPDATE ports SET number = -id WHERE id = {id}"),
            )
            .await?;
        }
        Ok(())
    }

    /// ELEMENT mode: one box, its splitters and their ports.
    async fn sync_one_box(&mut self) -> Step {
        let fid = self.element_fid.clone().unwrap_or_default();
        let mut found = false;
        for item in self.element_items() {
            let query = ListQuery {
                project_id: Some(self.project.remote_id.clone()),
                fid: Some(fid.clone()),
                ..Default::default()
            };
            let listing = self.platform.elements(item, query);
            let before = self.counts.fetched;
            // Listed "in full" over a one-record scope: the local box of this item is doomed
            // when the platform no longer has it.
            self.sync_elements_of_fid(item, listing, &fid).await?;
            if self.counts.fetched > before {
                found = true;
                break;
            }
        }
        if !found {
            tracing::info!(fid, "the box is gone from the platform");
        }
        let query = ListQuery {
            project_id: Some(self.project.remote_id.clone()),
            box_fid: Some(fid.clone()),
            ..Default::default()
        };
        let listing = self.platform.splitters(query);
        self.set_phase("SPLITTERS", "SPLITTER");
        let listed: Vec<String> = self
            .sync_listing(listing, Batch::Splitters, ("splitters", ""), false, true)
            .await?
            .into_iter()
            .collect();
        let local: Vec<(i64, String)> = splitter::Entity::find()
            .select_only()
            .column(splitter::Column::Id)
            .column(splitter::Column::Fid)
            .filter(splitter::Column::IntegrationId.eq(self.integration.id))
            .filter(splitter::Column::BoxFid.eq(fid.clone()))
            .into_tuple()
            .all(self.db)
            .await?;
        for (id, sfid) in &local {
            if !listed.contains(sfid) {
                self.doomed.splitters.push(*id);
            }
        }
        if listed.is_empty() {
            return Ok(());
        }
        let listing = self.platform.ports(ListQuery {
            splitter_fids: Some(listed.clone()),
            ..Default::default()
        });
        self.set_phase("PORTS", "PORT");
        let kept = self
            .sync_listing(listing, Batch::Ports, ("ports", ""), false, true)
            .await?;
        let splitter_ids: Vec<i64> = local
            .iter()
            .filter(|(_, f)| listed.contains(f))
            .map(|(id, _)| *id)
            .collect();
        let ports: Vec<(i64, String)> = port::Entity::find()
            .select_only()
            .column(port::Column::Id)
            .column(port::Column::Fid)
            .filter(port::Column::SplitterId.is_in(splitter_ids))
            .into_tuple()
            .all(self.db)
            .await?;
        self.doomed.ports.extend(
            ports
                .into_iter()
                .filter(|(_, f)| !kept.contains(f))
                .map(|(id, _)| id),
        );
        Ok(())
    }

    async fn sync_elements_of_fid(
        &mut self,
        item: ElementItem,
        listing: Listing<RemoteElement>,
        fid: &str,
    ) -> Step {
        let before = self.doomed.elements.len();
        let fetched = self.counts.fetched;
        self.set_phase("ELEMENTS", item.as_str());
        self.sync_listing(
            listing,
            |r| Batch::Elements(item, r),
            ("elements", ""),
            false,
            false,
        )
        .await?;
        if self.counts.fetched == fetched {
            let gone: Vec<i64> = element::Entity::find()
                .select_only()
                .column(element::Column::Id)
                .filter(element::Column::IntegrationId.eq(self.integration.id))
                .filter(element::Column::Item.eq(item.as_str()))
                .filter(element::Column::Fid.eq(fid))
                .into_tuple()
                .all(self.db)
                .await?;
            self.doomed.elements.truncate(before);
            self.doomed.elements.extend(gone);
        }
        Ok(())
    }

    /// Purges records of items no longer selected (any mode).
    async fn purge_deselected(&mut self) -> Step {
        self.phase = "PURGING";
        let integration = self.integration.id;
        let keep_items: Vec<String> = self
            .element_items()
            .iter()
            .map(|i| format!("'{}'", i.as_str()))
            .collect();
        let keep_kinds: Vec<String> = [ElementItem::Service, ElementItem::Distribution]
            .into_iter()
            .filter(|k| self.selected(*k))
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        let splitters: Vec<i64> = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                format!(
                    "SELECT id FROM splitters WHERE integration_id = {integration} AND kind NOT IN ({})",
                    keep_kinds.join(",")
                ),
            ))
            .await?
            .into_iter()
            .map(|r| r.try_get::<i64>("", "id"))
            .collect::<std::result::Result<_, _>>()?;
        let elements: Vec<i64> = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                format!(
                    "SELECT id FROM elements WHERE integration_id = {integration} AND item NOT IN ({})",
                    keep_items.join(",")
                ),
            ))
            .await?
            .into_iter()
            .map(|r| r.try_get::<i64>("", "id"))
            .collect::<std::result::Result<_, _>>()?;
        if splitters.is_empty() && elements.is_empty() {
            return Ok(());
        }
        let doomed = Doomed {
            elements,
            splitters,
            ports: Vec::new(),
        };
        let deleted = self.delete(&doomed).await?;
        tracing::info!(deleted, "purged records of deselected items");
        Ok(())
    }

    /// Deletes what the listing found gone, after the mass-deletion guard.
    async fn apply_deletions(&mut self) -> Step {
        self.checkpoint()?;
        self.phase = "DELETING";
        self.item = None;
        let mut doomed = std::mem::take(&mut self.doomed);
        for list in [
            &mut doomed.elements,
            &mut doomed.splitters,
            &mut doomed.ports,
        ] {
            list.sort_unstable();
            list.dedup();
        }
        if doomed.is_empty() {
            return Ok(());
        }
        if self.mode == Mode::Full && !self.allow_mass_deletion {
            let project = self.project.id;
            let mut local = 0;
            for table in ["elements", "splitters", "ports"] {
                local += plant::count(self.db, table, &format!("project_id = {project}")).await?;
            }
            let mut going = (doomed.elements.len() + doomed.splitters.len()) as u64;
            going += doomed.ports.len() as u64;
            for chunk in doomed.splitters.chunks(plant::CHUNK) {
                let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
                going += plant::count(
                    self.db,
                    "ports",
                    &format!("splitter_id IN ({})", ids.join(",")),
                )
                .await?;
            }
            let share = self.app.settings.sync.mass_deletion_share;
            if local > 0 && going as f64 > share * local as f64 {
                return Err(Stop::Guard(format!(
                    "this full sync would delete {going} of the project's {local} records \
                     (over {:.0}%); nothing was deleted. Check the platform, then run again with \
                     allowMassDeletion if it is right",
                    share * 100.0
                )));
            }
        }
        self.delete(&doomed).await?;
        Ok(())
    }

    /// Orphans bindings, then deletes ports, splitters and elements, in one transaction.
    async fn delete(&mut self, doomed: &Doomed) -> Result<u64> {
        let txn = crate::db::write_txn(self.db).await?;
        let mut orphaned =
            plant::orphan_bindings(&txn, &PortScope::Ports(doomed.ports.clone())).await?;
        orphaned +=
            plant::orphan_bindings(&txn, &PortScope::Splitters(doomed.splitters.clone())).await?;
        let mut deleted = plant::delete_ids(&txn, "ports", &doomed.ports).await?;
        for chunk in doomed.splitters.chunks(plant::CHUNK) {
            let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
            deleted += super::exec(
                &txn,
                format!("DELETE FROM ports WHERE splitter_id IN ({})", ids.join(",")),
            )
            .await?;
        }
        deleted += plant::delete_ids(&txn, "splitters", &doomed.splitters).await?;
        deleted += plant::delete_ids(&txn, "elements", &doomed.elements).await?;
        self.counts.deleted += deleted as i64;
        self.counts.orphaned += orphaned as i64;
        self.save_progress_in(&txn).await?;
        txn.commit().await?;
        Ok(deleted)
    }

    /// Links splitters to boxes synced after them (or re-selected).
    async fn link_boxes(&self) -> Result<()> {
        super::exec(
            self.db,
            format!(
                "UPDATE splitters SET element_id = (SELECT e.id FROM elements e \
                   WHERE e.integration_id = splitters.integration_id AND e.fid = splitters.box_fid \
                   AND e.item IN ('CTO', 'CEO') ORDER BY e.id LIMIT 1) \
                 WHERE integration_id = {} AND element_id IS NULL AND box_fid IS NOT NULL",
                self.integration.id
            ),
        )
        .await?;
        Ok(())
    }

    /// Moves every selected item's cursor to the platform clock at the start of this run.
    async fn advance_cursors(&mut self) -> Step {
        let clock = self.clock.unwrap_or_else(Utc::now);
        element_selection::Entity::update_many()
            .col_expr(
                element_selection::Column::Cursor,
                sea_orm::sea_query::Expr::value(clock),
            )
            .filter(element_selection::Column::IntegrationId.eq(self.integration.id))
            .exec(self.db)
            .await?;
        sync_run::Entity::update_many()
            .col_expr(
                sync_run::Column::CursorAfter,
                sea_orm::sea_query::Expr::value(clock),
            )
            .filter(sync_run::Column::Id.eq(self.run_id))
            .exec(self.db)
            .await?;
        Ok(())
    }
}

/// Inserts rows, or updates every other column of the row with the same `key`, in multi-row
/// statements of 500 rows (well under PostgreSQL's bind-parameter limit).
async fn upsert<E, C>(
    txn: &C,
    rows: Vec<E::ActiveModel>,
    key: impl IntoIterator<Item = E::Column>,
) -> Result<()>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    use sea_orm::{IdenStatic, Iterable};
    let key: Vec<E::Column> = key.into_iter().collect();
    let key_names: Vec<&str> = key.iter().map(|c| c.as_str()).collect();
    let update =
        E::Column::iter().filter(|c| c.as_str() != "id" && !key_names.contains(&c.as_str()));
    let conflict = OnConflict::columns(key).update_columns(update).to_owned();
    for chunk in chunked(rows, 500) {
        E::insert_many(chunk)
            .on_conflict(conflict.clone())
            .exec(txn)
            .await?;
    }
    Ok(())
}

fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(size).collect());
    }
    out
}
