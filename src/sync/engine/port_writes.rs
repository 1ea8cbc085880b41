//! Writing a page of ports, with the renumberings planned in [`super::ports`] so that a reader
//! never sees a port parked on a number that is not its own.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
};

use entity::{port, splitter};

use super::in_place::write_ports_in_place;
use super::listing::Table;
use super::ports;
use super::upsert::upsert_narrowly;
use super::write::{fid_num, kind_item};
use super::{Engine, Step};
use crate::platform::{RemotePort, SplitterKind};
use crate::store::plant;
use crate::Result;

/// What a port's record says of its state, held by no index.
const STATE_COLUMNS: [port::Column; 6] = [
    port::Column::Status,
    port::Column::CustomerContract,
    port::Column::CustomerDocument,
    port::Column::CustomerName,
    port::Column::RemoteUpdatedAt,
    port::Column::SyncedAt,
];

/// What [`Engine::ports_in_place`] did with a page's records.
#[derive(Default)]
struct InPlace {
    /// Whether the records' splitters were looked up (an incremental run): a record whose
    /// splitter is not in `splitters` was dropped.
    looked_up: bool,
    /// The records' splitters of selected kinds: id and kind by fid.
    splitters: HashMap<String, (i64, SplitterKind)>,
    /// The ports written, id by fid.
    written: HashMap<String, i64>,
}

impl InPlace {
    /// Whether `record` is left to the general way: neither written nor dropped.
    fn goes_the_general_way(&self, record: &RemotePort) -> bool {
        !self.written.contains_key(&record.fid)
            && (!self.looked_up || self.splitters.contains_key(&record.splitter_fid))
    }
}

impl<'a> Engine<'a> {
    /// Upserts ports of known splitters of selected kinds, with the writes deferred by earlier
    /// pages; returns the fids kept (written, unchanged or deferred). See [`super::ports`].
    pub(super) async fn write_ports<'r, C: ConnectionTrait>(
        &mut self,
        txn: &C,
        records: &'r [RemotePort],
    ) -> Step<HashSet<&'r str>> {
        let mut candidates = std::mem::take(&mut self.pending_ports);
        let in_place = self.ports_in_place(txn, records, &candidates).await?;
        candidates.extend(
            records
                .iter()
                .filter(|r| in_place.goes_the_general_way(r))
                .cloned(),
        );
        let written: Vec<i64> = in_place.written.values().copied().collect();
        let kept = self
            .apply_ports(txn, candidates, false, written, in_place.splitters)
            .await?;
        Ok(records
            .iter()
            .filter(|r| kept.contains(&r.fid) || in_place.written.contains_key(&r.fid))
            .map(|r| r.fid.as_str())
            .collect())
    }

    /// In an incremental run, looks the records' splitters up, drops the records of a splitter
    /// unknown here or of a kind not selected (the general way skips them too), and writes those
    /// whose port stays on its slot in one statement ([`write_ports_in_place`]), but for ports
    /// with a write deferred by an earlier page (those go in order, the general way).
    async fn ports_in_place<C: ConnectionTrait>(
        &mut self,
        txn: &C,
        records: &[RemotePort],
        deferred: &[RemotePort],
    ) -> Step<InPlace> {
        if self.mode != super::Mode::Incremental || self.empty.contains(&Table::Ports) {
            return Ok(InPlace::default());
        }
        if records.is_empty() {
            // A listing with nothing changed: no splitter to look up.
            return Ok(InPlace {
                looked_up: true,
                ..InPlace::default()
            });
        }
        let wanted: HashSet<&str> = records.iter().map(|r| r.splitter_fid.as_str()).collect();
        let splitters: HashMap<String, (i64, SplitterKind)> = self
            .splitters_by_fid(txn, wanted.into_iter().map(str::to_owned).collect())
            .await?
            .into_iter()
            .filter(|(_, (_, kind))| self.selected(kind_item(*kind)))
            .collect();
        let deferred: HashSet<&str> = deferred.iter().map(|r| r.fid.as_str()).collect();
        let records: Vec<(&RemotePort, i64)> = records
            .iter()
            .filter(|r| !deferred.contains(r.fid.as_str()))
            .filter_map(|r| Some((r, splitters.get(&r.splitter_fid)?.0)))
            .collect();
        let written = write_ports_in_place(
            txn,
            self.integration.id,
            self.project.id,
            &records,
            Utc::now(),
        )
        .await?;
        let written = written
            .into_iter()
            .map(|(id, fid)| {
                self.counts.tally(true, false);
                (fid, id)
            })
            .collect();
        Ok(InPlace {
            looked_up: true,
            splitters,
            written,
        })
    }

    /// Writes the port writes still deferred when the listings are over and the rows found gone
    /// are deleted. One that still finds its slot held (the platform gives one number to two
    /// ports) keeps its local number, with every other field written, and is logged.
    pub(super) async fn write_deferred_ports(&mut self) -> Step {
        if self.pending_ports.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending_ports);
        let txn = crate::db::page_txn(self.db).await?;
        self.apply_ports(&txn, pending, true, Vec::new(), HashMap::new())
            .await?;
        self.save_progress_in(&txn).await?;
        txn.commit().await?;
        self.publish();
        Ok(())
    }

    /// Plans and writes port records; with `last`, nothing is deferred any more. The bindings of
    /// the ports found, and of the `written` ones (by [`Self::ports_in_place`]), are reconciled.
    async fn apply_ports<C: ConnectionTrait>(
        &mut self,
        txn: &C,
        records: Vec<RemotePort>,
        last: bool,
        written: Vec<i64>,
        known: HashMap<String, (i64, SplitterKind)>,
    ) -> Step<HashSet<String>> {
        // Splitters are `known` (looked up for the page already), or come with the port of a
        // record that stays on its splitter; the others are looked up by fid.
        let wanted: HashSet<String> = records.iter().map(|r| r.splitter_fid.clone()).collect();
        let mut splitters: HashMap<String, (i64, SplitterKind)> = known;
        let mut existing: HashMap<String, port::Model> = HashMap::new();
        if !self.empty.contains(&Table::Ports) && !records.is_empty() {
            let fids: Vec<String> = records.iter().map(|r| r.fid.clone()).collect();
            for (port, splitter_fid, kind) in
                plant::ports_with_splitters(txn, self.integration.id, &fids).await?
            {
                if wanted.contains(&splitter_fid) {
                    splitters.insert(splitter_fid, (port.splitter_id, kind));
                }
                existing.insert(port.fid.clone(), port);
            }
        }
        let unknown: Vec<String> = wanted
            .into_iter()
            .filter(|fid| !splitters.contains_key(fid))
            .collect();
        if !unknown.is_empty() {
            splitters.extend(self.splitters_by_fid(txn, unknown).await?);
        }
        let mut kept = HashSet::new();
        let mut changed: Vec<(RemotePort, i64)> = Vec::new();
        for rec in records {
            let Some((splitter_id, kind)) = splitters.get(&rec.splitter_fid) else {
                continue;
            };
            if !self.selected(kind_item(*kind)) {
                continue;
            }
            kept.insert(rec.fid.clone());
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
            if same {
                self.counts.tally(true, true);
            } else {
                changed.push((rec, *splitter_id));
            }
        }
        // A port written to the slot it holds is that slot's holder (one port a slot): only the
        // other slots are looked up.
        let mut held: HashMap<String, (i64, ports::Slot)> = HashMap::new();
        let mut asked: HashSet<ports::Slot> = HashSet::new();
        for (rec, splitter_id) in &changed {
            let slot = (*splitter_id, rec.number);
            match existing.get(&rec.fid) {
                Some(p) if (p.splitter_id, p.number) == slot => {
                    held.insert(rec.fid.clone(), (p.id, slot));
                }
                _ => {
                    asked.insert(slot);
                }
            }
        }
        let asked: Vec<ports::Slot> = asked.into_iter().collect();
        held.extend(self.held_ports(txn, &asked).await?);
        let moves: Vec<ports::Move> = changed
            .iter()
            .map(|(rec, splitter_id)| ports::Move {
                fid: rec.fid.clone(),
                to: (*splitter_id, rec.number),
            })
            .collect();
        let (now, later) = ports::plan(
            &moves,
            &held.iter().map(|(f, (_, s))| (f.clone(), *s)).collect(),
        );
        let mut writes = Vec::new();
        let mut targets: HashMap<ports::Slot, &str> = HashMap::new();
        let mut deferred = Vec::new();
        for i in later {
            match (last, existing.get(&changed[i].0.fid)) {
                // Kept where it is, the rest of it written.
                (true, Some(local)) => {
                    tracing::warn!(
                        port_fid = %changed[i].0.fid,
                        number = changed[i].0.number,
                        "the platform gives this port a number another port holds; its number is left as it was"
                    );
                    let mut rec = changed[i].0.clone();
                    rec.number = local.number;
                    writes.push(self.port_row(
                        &rec,
                        local.splitter_id,
                        existing.contains_key(&rec.fid),
                    ));
                }
                (true, None) => tracing::warn!(
                    port_fid = %changed[i].0.fid,
                    number = changed[i].0.number,
                    "the platform gives a new port a number another port holds; it is not stored"
                ),
                (false, _) => deferred.push(changed[i].0.clone()),
            }
        }
        for i in now {
            let (rec, splitter_id) = &changed[i];
            targets.insert((*splitter_id, rec.number), rec.fid.as_str());
            writes.push(self.port_row(rec, *splitter_id, existing.contains_key(&rec.fid)));
        }
        // Rows whose slot a write takes: by the plan they move in this transaction too, so the
        // negative number they wait on is never committed.
        let displaced: Vec<i64> = held
            .iter()
            .filter(|(fid, (_, slot))| targets.get(slot).is_some_and(|f| f != fid))
            .map(|(_, (id, _))| *id)
            .collect();
        plant::park_ports(txn, &displaced).await?;
        // A port that stays where it was (project, splitter, number) changes none of its
        // indexed columns: only the others are set.
        upsert_narrowly::<port::Entity, _>(
            txn,
            writes,
            vec![port::Column::IntegrationId, port::Column::Fid],
            &STATE_COLUMNS,
            |row| {
                existing
                    .get(row.fid.as_ref().as_str())
                    .filter(|p| {
                        row.project_id.as_ref() == &p.project_id
                            && row.splitter_id.as_ref() == &p.splitter_id
                            && row.number.as_ref() == &p.number
                    })
                    .map(|p| p.id)
            },
        )
        .await?;
        let mut page_ports = written;
        page_ports.extend(existing.values().map(|p| p.id));
        self.counts.conflicts += crate::store::bindings::reconcile_bindings(
            txn,
            &page_ports,
            self.live.started_at,
            self.db_now(),
        )
        .await? as i64;
        self.pending_ports = deferred;
        Ok(kept)
    }

    /// The integration's splitters with these fids: id and kind by fid.
    async fn splitters_by_fid<C: ConnectionTrait>(
        &self,
        txn: &C,
        fids: Vec<String>,
    ) -> Result<HashMap<String, (i64, SplitterKind)>> {
        Ok(splitter::Entity::find()
            .select_only()
            .column(splitter::Column::Fid)
            .column(splitter::Column::Id)
            .column(splitter::Column::Kind)
            .filter(splitter::Column::IntegrationId.eq(self.integration.id))
            .filter(plant::among(
                txn.get_database_backend(),
                splitter::Column::Fid,
                fids,
            ))
            .into_tuple::<(String, i64, SplitterKind)>()
            .all(txn)
            .await?
            .into_iter()
            .map(|(fid, id, kind)| (fid, (id, kind)))
            .collect())
    }

    /// The row of a port record, counted as created or updated.
    fn port_row(&mut self, rec: &RemotePort, splitter_id: i64, exists: bool) -> port::ActiveModel {
        self.counts.tally(exists, false);
        let customer = rec.customer.clone().unwrap_or_default();
        port::ActiveModel {
            integration_id: Set(self.integration.id),
            project_id: Set(self.project.id),
            splitter_id: Set(splitter_id),
            fid: Set(rec.fid.clone()),
            fid_num: Set(fid_num(&rec.fid)),
            number: Set(rec.number),
            status: Set(rec.status),
            customer_contract: Set(customer.contract),
            customer_document: Set(customer.document),
            customer_name: Set(customer.name),
            remote_updated_at: Set(rec.updated_at),
            synced_at: Set(Utc::now()),
            ..Default::default()
        }
    }

    /// The local ports on these slots (or more: every port of their splitters), fid, then id
    /// and slot. Only a port standing where a write lands can be in its way ([`ports::plan`]).
    /// A page that covers whole splitters (a full sync: about 14 slots per splitter) reads its
    /// splitters' ports, a few index ranges; a page of scattered changes (an incremental run:
    /// about one slot per splitter) reads its slots, since its splitters hold 16 times the rows.
    /// Measured at 20,000 boxes on PostgreSQL: by slots 0.61 s of a full sync against 0.15 s
    /// by splitters; by splitters 28 ms of a 1% incremental against 12 ms by slots.
    async fn held_ports<C: ConnectionTrait>(
        &self,
        txn: &C,
        slots: &[ports::Slot],
    ) -> Result<HashMap<String, (i64, ports::Slot)>> {
        let splitters: Vec<i64> = {
            let set: HashSet<i64> = slots.iter().map(|(s, _)| *s).collect();
            set.into_iter().collect()
        };
        let rows = if slots.len() >= 4 * splitters.len() {
            plant::ports_of_splitters(txn, &splitters).await?
        } else {
            plant::ports_at(txn, slots).await?
        };
        Ok(rows
            .into_iter()
            .map(|(id, splitter_id, number, fid)| (fid, (id, (splitter_id, number))))
            .collect())
    }
}
