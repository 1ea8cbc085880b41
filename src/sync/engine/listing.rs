//! Walking a listing page by page: each page is written in its own transaction (an incremental
//! listing's pages already fetched, together), and in a full listing the local rows of the
//! page's fid range that the page lacks are doomed.

use std::collections::HashSet;

use chrono::Utc;
use futures::stream::{Peekable, Stream, StreamExt};
use sea_orm::ConnectionTrait;

use super::write::fid_num;
use crate::store::plant::FidRange;

/// Records whose hashes a full listing makes room for at its first page (32 MiB); past that the
/// vector grows as it needs.
const UNNUMBERED_ROOM: u64 = 4_000_000;

/// A fid's hash, to remember many fids in little memory.
fn fid_hash(fid: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(fid)
}
use super::{Engine, Step, Stop};
use crate::catalog::ElementItem;
use crate::platform::{ListPage, Listing, RemoteElement, RemotePort, RemoteSplitter};
use crate::{Error, Result};

/// Most records an incremental listing writes in one transaction: the page in hand and those
/// already fetched behind it ([`Engine::take_ready`]). An incremental run's records are scattered
/// (about one port of each splitter), so every page costs its transaction's fixed part (the
/// statements that read and reconcile the page, the commit) for little writing.
const MERGED_RECORDS: usize = 2_000;

/// Pages of each listing fetched ahead of the writes: enough to keep the platform busy while a
/// page is written, little enough that memory does not follow the project's size. An
/// incremental listing lets four Geosite pages wait, which it writes together
/// ([`MERGED_RECORDS`]).
pub(super) fn pages_ahead(incremental: bool) -> usize {
    if incremental {
        4
    } else {
        2
    }
}

/// A table the engine lists into and deletes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Table {
    /// Boxes and points.
    Elements,
    /// Splitters.
    Splitters,
    /// Splitter ports.
    Ports,
}

impl Table {
    /// The table's name in SQL.
    pub(super) fn name(self) -> &'static str {
        match self {
            Table::Elements => "elements",
            Table::Splitters => "splitters",
            Table::Ports => "ports",
        }
    }

    /// The tables that hold no row of the integration (before its first full run). A page's
    /// records cannot then exist locally but for the run's own earlier pages, which listed other
    /// fids, so the run skips each page's lookup of existing rows. Were a fenced-out run to
    /// write the same rows meanwhile, the upsert still writes each right (only its count would
    /// say created for updated).
    pub(super) async fn empty(
        db: &sea_orm::DatabaseConnection,
        integration_id: i64,
    ) -> Result<Vec<Table>> {
        let mut empty = Vec::new();
        for table in [Table::Elements, Table::Splitters, Table::Ports] {
            if !crate::store::plant::holds_any(db, table.name(), integration_id).await? {
                empty.push(table);
            }
        }
        Ok(empty)
    }
}

/// The local rows a listing covers, when it covers a whole scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    /// Every row of the table in this project.
    Project(i64),
    /// The project's elements of one item.
    Item(i64, ElementItem),
    /// A narrower listing (one box): nothing is inferred gone from it.
    Narrow,
}

/// The records of one listing page, of whichever feature.
pub(super) enum Batch {
    Elements(ElementItem, Vec<RemoteElement>),
    Splitters(Vec<RemoteSplitter>),
    Ports(Vec<RemotePort>),
}

impl Batch {
    /// The platform's text made plain ([`crate::text::plain`]) before it is compared or kept.
    fn make_plain(&mut self) {
        use crate::text::make_plain;
        match self {
            Batch::Elements(_, r) => r.iter_mut().for_each(|x| make_plain(&mut x.name)),
            Batch::Splitters(r) => r.iter_mut().for_each(|x| {
                make_plain(&mut x.name);
                make_plain(&mut x.ratio);
            }),
            Batch::Ports(r) => {
                for customer in r.iter_mut().filter_map(|x| x.customer.as_mut()) {
                    for text in [
                        &mut customer.contract,
                        &mut customer.document,
                        &mut customer.name,
                    ] {
                        text.iter_mut().for_each(make_plain);
                    }
                }
            }
        }
    }

    fn fids(&self) -> Vec<&str> {
        match self {
            Batch::Elements(_, r) => r.iter().map(|x| x.fid.as_str()).collect(),
            Batch::Splitters(r) => r.iter().map(|x| x.fid.as_str()).collect(),
            Batch::Ports(r) => r.iter().map(|x| x.fid.as_str()).collect(),
        }
    }

    /// Drops every record but the last of each fid.
    fn keep_last_of_each_fid(&mut self) {
        fn keep_last<T>(records: &mut Vec<T>, fid: impl Fn(&T) -> &str) {
            let mut seen = HashSet::new();
            let mut keep: Vec<bool> = records
                .iter()
                .rev()
                .map(|r| seen.insert(fid(r).to_owned()))
                .collect();
            keep.reverse();
            let mut keep = keep.into_iter();
            records.retain(|_| keep.next().unwrap_or(true));
        }
        match self {
            Batch::Elements(_, r) => keep_last(r, |x| &x.fid),
            Batch::Splitters(r) => keep_last(r, |x| &x.fid),
            Batch::Ports(r) => keep_last(r, |x| &x.fid),
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
pub(super) struct Range {
    pub(super) last: Option<i64>,
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

/// Whether the table's statistics are refreshed after this page of a listing: on PostgreSQL,
/// after pages 8, 32, 128 and 512. A first full sync grows a table from nothing while its
/// statistics still describe it empty, until autovacuum gets to it; measured at 20,000 boxes,
/// the page's lookup of existing ports then took 17.7 ms instead of 1.6 (13.4 s of a 30.2 s
/// run) in one run of three, depending on when autovacuum ran.
fn refresh_statistics(backend: sea_orm::DbBackend, page: i64) -> bool {
    backend == sea_orm::DbBackend::Postgres
        && page >= 8
        && page.count_ones() == 1
        && page.trailing_zeros() % 2 == 1
        && page <= 512
}

impl<'a> Engine<'a> {
    pub(super) async fn next_page<T, S>(&mut self, listing: &mut S) -> Step<Option<ListPage<T>>>
    where
        S: Stream<Item = Result<ListPage<T>>> + Unpin,
    {
        self.checkpoint()?;
        let page = tokio::select! {
            page = listing.next() => page,
            _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
            () = tokio::time::sleep_until(self.deadline) => return Err(self.over_budget()),
        };
        match page {
            None => Ok(None),
            Some(Err(e)) => Err(Stop::Error(e)),
            Some(Ok(page)) => {
                self.saw_clock(&page);
                Ok(Some(page))
            }
        }
    }

    /// Listings are fetched concurrently, so the run's clock is the earliest any page gave: the
    /// next incremental run starts there.
    fn saw_clock<T>(&mut self, page: &ListPage<T>) {
        let clock = page.clock.unwrap_or_else(Utc::now);
        self.clock = Some(self.clock.map_or(clock, |c| c.min(clock)));
    }

    /// Adds to `page` the pages of `listing` already fetched, up to [`MERGED_RECORDS`], so that
    /// they are written in one transaction. An error or the listing's end is left for
    /// [`Engine::next_page`], after the pages before it are written.
    fn take_ready<T, S>(&mut self, listing: &mut Peekable<S>, page: &mut ListPage<T>) -> bool
    where
        S: Stream<Item = Result<ListPage<T>>> + Unpin,
    {
        use futures::FutureExt;
        let mut took = false;
        while page.records.len() + page.unreadable.len() < MERGED_RECORDS {
            let ready = std::pin::Pin::new(&mut *listing).peek().now_or_never();
            if !matches!(ready, Some(Some(Ok(_)))) {
                break;
            }
            let Some(Some(Ok(next))) = listing.next().now_or_never() else {
                break;
            };
            self.saw_clock(&next);
            self.live.page += 1;
            page.records.extend(next.records);
            page.unreadable.extend(next.unreadable);
            took = true;
        }
        took
    }
    /// Local rows of `table` in `scope` whose fid falls in (lo, hi] and is not in `keep`.
    pub(super) async fn gone_in_range<C: ConnectionTrait>(
        &self,
        db: &C,
        (table, scope): (Table, Scope),
        range: crate::store::plant::FidRange,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Vec<i64>> {
        use crate::store::plant::{self, RowScope};
        let scope = match scope {
            Scope::Project(project) => RowScope::Project(project),
            Scope::Item(project, item) => RowScope::Item(project, item.as_str()),
            Scope::Narrow => return Ok(Vec::new()),
        };
        plant::gone_in_range(db, table.name(), scope, range, keep).await
    }

    /// Lists one feature page by page and writes each page in its own transaction (without `full`,
    /// with the pages already fetched behind it: [`Engine::take_ready`]). With `full`
    /// the listing covers the whole scope of the target table, so local rows of each page's fid range
    /// that the page lacks (or that are no longer selected) are doomed, and so is whatever lies
    /// past the last fid. With `collect`, returns every fid kept (element syncs, one box).
    pub(super) async fn sync_listing<T: Send + 'static>(
        &mut self,
        listing: Listing<T>,
        wrap: impl Fn(Vec<T>) -> Batch,
        target: (Table, Scope),
        full: bool,
        collect: bool,
    ) -> Step<HashSet<String>> {
        let mut range = Range { last: None };
        let mut first = true;
        let mut kept = HashSet::new();
        // Records listed but not read: never taken for deleted ones. Those whose fid is known
        // are spared one by one; one without a readable fid could be any row, so the listing
        // then deletes nothing of its table.
        let mut spared: HashSet<String> = HashSet::new();
        let mut blind = false;
        // Fids that are not numbers (object ids) have no range a page covers: a full listing
        // remembers those it kept (as hashes: a collision can only spare a row, never doom
        // one) and dooms the others of its scope at the end. Kept in a vector sized once from
        // the count the listing announces (8 bytes a record, sorted at the end), not a set that
        // doubles as it grows: at 200,000 OZmap boxes, 2.65 million ports.
        let mut unnumbered: Vec<u64> = Vec::new();
        let mut announced = 0u64;
        let doomed_before = self.doomed.of(target.0).len();
        let mut listing = listing.peekable();
        while let Some(mut page) = self.next_page(&mut listing).await? {
            if first {
                announced = page.total;
                self.counts.total += page.total as i64;
                let per_page = (page.records.len() + page.unreadable.len()).max(1) as u64;
                self.live.pages = Some(page.total.div_ceil(per_page).max(1) as i64);
                first = false;
            }
            self.live.page += 1;
            let merged = !full && self.take_ready(&mut listing, &mut page);
            for unreadable in std::mem::take(&mut page.unreadable) {
                self.counts.unreadable += 1;
                self.counts.processed += 1;
                self.warn(format!("{unreadable}; kept as it was"));
                match unreadable.fid {
                    Some(fid) => {
                        spared.insert(fid);
                    }
                    None => blind = true,
                }
            }
            let mut batch = wrap(page.records);
            batch.make_plain();
            let bounds = range.advance(&batch.fid_nums())?;
            let listed = batch.len();
            if merged {
                // Paged by offset while records change, a listing can give one record twice
                // (numbered fids out of order stop the run above): its last state is written.
                batch.keep_last_of_each_fid();
            }
            let txn = crate::db::page_txn(self.db).await?;
            // The pages committed before this one are copied into the file while it is written,
            // started once it holds the write lock: a checkpoint started at the commit before
            // made this BEGIN wait on SQLite's busy handler (1 ms at least) about every page.
            self.checkpoints.start(self.db);
            let keep = self.write_batch(&txn, &batch).await?;
            if full {
                let last_page = batch.is_empty() || bounds.1.is_none();
                let hi = if last_page { None } else { bounds.1 };
                let kept_here = |fid: &str| keep.contains(fid) || spared.contains(fid);
                let gone = self
                    .gone_in_range(&txn, target, FidRange::Numbered(bounds.0, hi), &kept_here)
                    .await?;
                self.doom(target.0, gone);
                let mut hashes = keep.iter().filter(|fid| fid_num(fid).is_none()).peekable();
                if unnumbered.capacity() == 0 && hashes.peek().is_some() {
                    // The count is the platform's word: room for at most UNNUMBERED_ROOM first.
                    unnumbered.reserve(announced.min(UNNUMBERED_ROOM) as usize);
                }
                unnumbered.extend(hashes.map(|fid| fid_hash(fid)));
            }
            self.counted_page(&txn, listed).await?;
            txn.commit().await?;
            self.publish();
            if refresh_statistics(self.db.get_database_backend(), self.live.page) {
                // On a connection of its own, beside the next pages: ANALYZE takes a lock that
                // writes do not wait on, and the pages' cached plans are made again once it
                // committed (0.4 s of a full sync of 20,000 boxes when awaited).
                let db = self.db.clone();
                let table = target.0.name();
                tokio::spawn(async move { crate::store::plant::analyze(&db, table).await });
            }
            if collect {
                kept.extend(keep.into_iter().map(str::to_owned));
            }
        }
        if full {
            let spared_here = |fid: &str| spared.contains(fid);
            let tail = self
                .gone_in_range(
                    self.db,
                    target,
                    FidRange::Numbered(range.last, None),
                    &spared_here,
                )
                .await?;
            self.doom(target.0, tail);
            unnumbered.sort_unstable();
            unnumbered.dedup();
            let kept_here = |fid: &str| {
                unnumbered.binary_search(&fid_hash(fid)).is_ok() || spared.contains(fid)
            };
            let gone = self
                .gone_in_range(self.db, target, FidRange::Unnumbered, &kept_here)
                .await?;
            self.doom(target.0, gone);
            if blind {
                self.doomed.of(target.0).truncate(doomed_before);
                self.warn(format!(
                    "nothing of {} was deleted: a record without a readable fid was listed",
                    target.0.name()
                ));
            }
        }
        if collect {
            kept.extend(spared);
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_consecutive_fid_ranges() {
        let mut range = Range { last: None };
        assert_eq!(
            range.advance(&[Some(3), Some(7)]).ok(),
            Some((None, Some(7)))
        );
        assert_eq!(
            range.advance(&[Some(9), None, Some(12)]).ok(),
            Some((Some(7), Some(12)))
        );
        // An empty page (the end) covers what is left.
        assert_eq!(range.advance(&[]).ok(), Some((Some(12), None)));
    }

    #[test]
    fn out_of_order_fids_stop_the_run_before_anything_is_deleted() {
        for pages in [
            vec![vec![Some(5), Some(4)]],
            vec![vec![Some(5)], vec![Some(5)]],
            vec![vec![Some(8)], vec![Some(2)]],
        ] {
            let mut range = Range { last: None };
            let failed = pages.iter().any(|p| range.advance(p).is_err());
            assert!(failed, "{pages:?}");
        }
    }

    #[test]
    fn statistics_are_refreshed_a_few_times_as_a_table_grows() {
        let pages: Vec<i64> = (1..=2000)
            .filter(|p| refresh_statistics(sea_orm::DbBackend::Postgres, *p))
            .collect();
        assert_eq!(pages, [8, 32, 128, 512]);
        assert!(!(1..=2000).any(|p| refresh_statistics(sea_orm::DbBackend::Sqlite, p)));
    }

    #[test]
    fn a_record_listed_twice_is_kept_in_its_last_state() {
        let record = |fid: &str, name: &str| RemoteElement {
            fid: fid.into(),
            name: name.into(),
            project_id: None,
            latitude: None,
            longitude: None,
            updated_at: None,
        };
        let mut batch = Batch::Elements(
            ElementItem::Cto,
            vec![
                record("a", "1"),
                record("b", "1"),
                record("a", "2"),
                record("c", "1"),
            ],
        );
        batch.keep_last_of_each_fid();
        let Batch::Elements(_, kept) = batch else {
            unreachable!()
        };
        let kept: Vec<(&str, &str)> = kept
            .iter()
            .map(|r| (r.fid.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(kept, [("b", "1"), ("a", "2"), ("c", "1")]);
    }

    #[test]
    fn tables_have_their_sql_names() {
        assert_eq!(
            [Table::Elements, Table::Splitters, Table::Ports].map(Table::name),
            ["elements", "splitters", "ports"]
        );
    }
}
