//! Turning a listing page into upserts: what changed is written, what did not is counted.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect,
};

use entity::{element, splitter};

use super::listing::{Batch, Table};
use super::{Engine, Step};
use crate::catalog::ElementItem;
use crate::platform::{RemoteElement, RemoteSplitter, SplitterKind};
use crate::store::plant;
use crate::Result;

pub(super) fn kind_item(kind: SplitterKind) -> ElementItem {
    match kind {
        SplitterKind::Service => ElementItem::Service,
        SplitterKind::Distribution => ElementItem::Distribution,
    }
}

/// The boxes a run created, whose fids unlinked splitters may name ([`Engine::link_boxes`]):
/// their fids while there are at most [`NewBoxes::FEW`], else only that there were many.
#[derive(Debug, Default)]
pub(super) struct NewBoxes {
    fids: Vec<String>,
    many: bool,
}

impl NewBoxes {
    const FEW: usize = 1000;

    fn add(&mut self, fid: &str) {
        if self.many {
            return;
        }
        if self.fids.len() < Self::FEW {
            self.fids.push(fid.to_owned());
        } else {
            self.many = true;
            self.fids = Vec::new();
        }
    }
}

/// The number a fid is, when it is the plain decimal text of one (`17`; not `017` nor `+17`):
/// the key of fid ranges. Other fids (an object id made of digits only, `000000000000000000000017`,
/// included) are unnumbered and found gone by what a full listing kept.
pub(super) fn fid_num(fid: &str) -> Option<i64> {
    let n: i64 = fid.parse().ok()?;
    (n.to_string() == fid).then_some(n)
}

impl<'a> Engine<'a> {
    pub(super) async fn write_batch<'b, C: ConnectionTrait>(
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
    pub(super) async fn write_elements<'r, C: ConnectionTrait>(
        &mut self,
        txn: &C,
        item: ElementItem,
        records: &'r [RemoteElement],
    ) -> Step<HashSet<&'r str>> {
        let existing: HashMap<String, element::Model> = if self.empty.contains(&Table::Elements) {
            HashMap::new()
        } else {
            let fids: Vec<String> = records.iter().map(|r| r.fid.clone()).collect();
            element::Entity::find()
                .filter(element::Column::IntegrationId.eq(self.integration.id))
                .filter(element::Column::Item.eq(item))
                .filter(plant::among(
                    txn.get_database_backend(),
                    element::Column::Fid,
                    fids,
                ))
                .all(txn)
                .await?
                .into_iter()
                .map(|e| (e.fid.clone(), e))
                .collect()
        };
        let now = Utc::now();
        let mut writes = Vec::new();
        for rec in records {
            let same = existing.get(&rec.fid).is_some_and(|e| {
                e.project_id == self.project.id
                    && e.name == rec.name
                    && e.name_folded.is_some()
                    && e.latitude == rec.latitude
                    && e.longitude == rec.longitude
                    && e.remote_updated_at == rec.updated_at
            });
            if !self.counts.tally(existing.contains_key(&rec.fid), same) {
                continue;
            }
            if matches!(item, ElementItem::Cto | ElementItem::Ceo)
                && !existing.contains_key(&rec.fid)
            {
                self.new_boxes.add(&rec.fid);
            }
            writes.push(element::ActiveModel {
                integration_id: Set(self.integration.id),
                project_id: Set(self.project.id),
                item: Set(item),
                fid: Set(rec.fid.clone()),
                fid_num: Set(fid_num(&rec.fid)),
                name: Set(rec.name.clone()),
                name_folded: Set(Some(crate::text::fold(&rec.name))),
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
    /// Upserts the splitters of selected kinds; returns the fids kept. A listed splitter whose
    /// kind is not selected (its kind changed on the platform) is doomed if it exists locally.
    pub(super) async fn write_splitters<'r, C: ConnectionTrait>(
        &mut self,
        txn: &C,
        records: &'r [RemoteSplitter],
    ) -> Step<HashSet<&'r str>> {
        let existing: HashMap<String, splitter::Model> = if self.empty.contains(&Table::Splitters) {
            HashMap::new()
        } else {
            let fids: Vec<String> = records.iter().map(|r| r.fid.clone()).collect();
            splitter::Entity::find()
                .filter(splitter::Column::IntegrationId.eq(self.integration.id))
                .filter(plant::among(
                    txn.get_database_backend(),
                    splitter::Column::Fid,
                    fids,
                ))
                .all(txn)
                .await?
                .into_iter()
                .map(|s| (s.fid.clone(), s))
                .collect()
        };
        let box_fids: Vec<String> = records.iter().filter_map(|r| r.box_fid.clone()).collect();
        let boxes: HashMap<String, i64> = element::Entity::find()
            .select_only()
            .column(element::Column::Fid)
            .column(element::Column::Id)
            .filter(element::Column::IntegrationId.eq(self.integration.id))
            .filter(element::Column::Item.is_in([ElementItem::Cto, ElementItem::Ceo]))
            .filter(plant::among(
                txn.get_database_backend(),
                element::Column::Fid,
                box_fids,
            ))
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
            if self.mode == super::Mode::Incremental
                && existing.get(&rec.fid).is_none_or(|s| s.kind != rec.kind)
            {
                self.new_splitters.push(rec.fid.clone());
            }
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
    /// Links splitters to boxes synced after them (or re-selected), fenced like a page: only
    /// when the run created boxes, and then only the splitters naming them while they are few.
    /// Every unlinked splitter was checked at every run before (4,698 of them, 88 ms of an
    /// incremental run with nothing changed at 200,000 boxes on PostgreSQL).
    pub(super) async fn link_boxes(&mut self) -> Step {
        if !self.new_boxes.many && self.new_boxes.fids.is_empty() {
            return Ok(());
        }
        let txn = crate::db::page_txn(self.db).await?;
        crate::store::plant::link_boxes(
            &txn,
            self.integration.id,
            [ElementItem::Cto, ElementItem::Ceo],
            (!self.new_boxes.many).then_some(self.new_boxes.fids.as_slice()),
        )
        .await?;
        self.save_progress_in(&txn).await?;
        txn.commit().await?;
        self.publish();
        Ok(())
    }
}

/// Inserts rows, or updates every other column of the row with the same `key`.
///
/// On PostgreSQL a page goes in as one statement with one parameter, the page's rows in JSON
/// (`json_to_recordset`): the multi-row `VALUES` form binds a parameter per value (6,500 for a
/// page of 500 ports), which PostgreSQL parses, types and plans one by one
/// (docs/BENCHMARKS.md, "Sync at the speed of the wire").
/// On SQLite, multi-row statements of up to 500 rows (well under its bind-parameter limit),
/// padded to one of a few sizes by repeating their last row (the repeat updates the row to what
/// it just wrote): sqlx keeps the prepared statement of each size, where a statement of each
/// row count was parsed and planned again (an incremental run's pages all differ, and a page's
/// statement took 2-3 times as long to prepare as to run).
pub(super) async fn upsert<E, C>(
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
    let update: Vec<E::Column> = E::Column::iter()
        .filter(|c| c.as_str() != "id" && !key_names.contains(&c.as_str()))
        .collect();
    upsert_setting::<E, C>(txn, rows, key, update).await
}

/// [`upsert`] that updates only the `update` columns of a row already there: for rows whose
/// indexed columns are known not to change, SQLite then leaves their indexes alone (it rewrites
/// the entries of every index a `SET` names, equal or not), a page of the table less to write.
pub(super) async fn upsert_setting<E, C>(
    txn: &C,
    rows: Vec<E::ActiveModel>,
    key: Vec<E::Column>,
    update: Vec<E::Column>,
) -> Result<()>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    use sea_orm::IdenStatic;
    if rows.is_empty() {
        return Ok(());
    }
    let key_names: Vec<&str> = key.iter().map(|c| c.as_str()).collect();
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        return upsert_json::<E, C>(txn, rows, &key_names, &update).await;
    }
    let conflict = OnConflict::columns(key).update_columns(update).to_owned();
    for mut chunk in chunked(rows, 500) {
        if let Some(last) = chunk.last().cloned() {
            chunk.resize(statement_rows(chunk.len()), last);
        }
        E::insert_many(chunk)
            .on_conflict(conflict.clone())
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The PostgreSQL form of [`upsert`]: the page as one JSON parameter, spread into rows by
/// `json_to_recordset` (which, unlike bound arrays, carries NULLs). The JSON is written as text
/// at once, its keys the columns' positions (`c0`, `c1`, …): PostgreSQL parses every byte of it,
/// and a page of ports is 40% shorter so.
async fn upsert_json<E, C>(
    txn: &C,
    rows: Vec<E::ActiveModel>,
    key: &[&str],
    update: &[E::Column],
) -> Result<()>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    use sea_orm::{IdenStatic, Iterable};
    use std::io::Write;
    let columns: Vec<E::Column> = E::Column::iter().filter(|c| c.as_str() != "id").collect();
    let mut types: Vec<&str> = Vec::new();
    let mut page: Vec<u8> = Vec::with_capacity(rows.len() * 24 * columns.len());
    page.push(b'[');
    for (r, row) in rows.iter().enumerate() {
        if r > 0 {
            page.push(b',');
        }
        page.push(b'{');
        for (i, column) in columns.iter().enumerate() {
            let value = row.get(*column).into_value().ok_or_else(|| {
                crate::Error::internal(anyhow::anyhow!(
                    "column {} of a synced row was not set",
                    column.as_str()
                ))
            })?;
            let (ty, json) = json_value(&value)?;
            if types.len() == i {
                types.push(ty);
            }
            if i > 0 {
                page.push(b',');
            }
            write!(page, "\"c{i}\":").map_err(crate::Error::internal)?;
            serde_json::to_writer(&mut page, &json).map_err(crate::Error::internal)?;
        }
        page.push(b'}');
    }
    page.push(b']');
    let page = String::from_utf8(page).map_err(crate::Error::internal)?;
    let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
    let positions: Vec<String> = (0..names.len()).map(|i| format!("c{i}")).collect();
    let record: Vec<String> = positions
        .iter()
        .zip(&types)
        .map(|(n, t)| format!("{n} {t}"))
        .collect();
    let set: Vec<String> = update
        .iter()
        .map(|c| format!("{0} = EXCLUDED.{0}", c.as_str()))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({cols}) SELECT {positions} FROM json_to_recordset($1::json) AS r({record}) \
         ON CONFLICT ({key}) DO UPDATE SET {set}",
        table = E::default().table_name(),
        cols = names.join(", "),
        positions = positions.join(", "),
        record = record.join(", "),
        key = key.join(", "),
        set = set.join(", "),
    );
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        sql,
        [sea_orm::Value::from(page)],
    ))
    .await?;
    Ok(())
}

/// A synced column's SQL type and its value in JSON.
fn json_value(v: &sea_orm::Value) -> Result<(&'static str, serde_json::Value)> {
    use sea_orm::Value;
    use serde_json::Value as Json;
    Ok(match v {
        Value::BigInt(n) => ("bigint", n.map_or(Json::Null, Json::from)),
        Value::Int(n) => ("integer", n.map_or(Json::Null, Json::from)),
        Value::Double(f) => ("double precision", f.map_or(Json::Null, Json::from)),
        Value::String(s) => ("text", s.clone().map_or(Json::Null, Json::from)),
        Value::ChronoDateTimeUtc(t) => (
            "timestamptz",
            t.map_or(Json::Null, |t| {
                Json::from(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }),
        ),
        other => {
            return Err(crate::Error::internal(anyhow::anyhow!(
                "no JSON form for a synced value {other:?}"
            )))
        }
    })
}

/// The rows of the SQLite statement that writes `n` rows (at most 500): the next power of two,
/// or 500.
fn statement_rows(n: usize) -> usize {
    n.next_power_of_two().min(500)
}

fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(size).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_chunks_of_at_most_the_size() {
        let chunks = chunked((0..1001).collect::<Vec<_>>(), 500);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [500, 500, 1]
        );
        assert!(chunked(Vec::<i32>::new(), 500).is_empty());
    }

    #[test]
    fn statements_come_in_a_few_sizes() {
        let sizes: std::collections::BTreeSet<usize> = (1..=500).map(statement_rows).collect();
        assert_eq!(sizes.len(), 10);
        assert!((1..=500).all(|n| statement_rows(n) >= n && statement_rows(n) <= 500));
        assert_eq!(
            (statement_rows(1), statement_rows(257), statement_rows(500)),
            (1, 500, 500)
        );
    }

    #[test]
    fn new_boxes_are_named_while_few() {
        let mut boxes = NewBoxes::default();
        boxes.add("1");
        assert_eq!((boxes.fids.len(), boxes.many), (1, false));
        for n in 0..NewBoxes::FEW + 5 {
            boxes.add(&n.to_string());
        }
        assert!(boxes.many);
        assert!(boxes.fids.is_empty());
    }

    #[test]
    fn fids_and_kinds() {
        assert_eq!(fid_num("17"), Some(17));
        assert_eq!(fid_num("CTO-17"), None);
        assert_eq!(fid_num("000000000000000000000017"), None);
        assert_eq!(fid_num("+17"), None);
        assert_eq!(fid_num("-3"), Some(-3));
        assert_eq!(kind_item(SplitterKind::Service), ElementItem::Service);
        assert_eq!(
            kind_item(SplitterKind::Distribution),
            ElementItem::Distribution
        );
    }
}
