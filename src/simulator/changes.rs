//! The change-time index of the simulator's tables: what a platform's database keeps on its
//! change-time column (Geosite's `dataAlteracao`, which OZmap answers as `updatedAt`), so that a
//! listing of what changed since a time reads the rows changed, not the whole table. Without
//! it an incremental run with nothing changed cost the simulator a scan of every record (about
//! a second at 200,000 boxes, 2.65 million ports), more than the gateway's whole run.
//!
//! Built per table and store version when first asked, at start, and after `/_sim/touch`. It
//! only narrows: the rows it names are still checked against the whole filter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::store::{Store, Table};
use super::values;

/// The column a record's change time is in.
pub const COLUMN: &str = "dataAlteracao";

/// A record's change time, as an index keeps it.
pub enum Stamp {
    /// A time.
    At(DateTime<Utc>),
    /// Something else (a number, text that is not a time): a filter compares it by other rules,
    /// so the record is always a candidate.
    Odd,
}

/// Records by change time; `K` names a record (a fid, an object id).
#[derive(Debug)]
pub struct ChangeIndex<K = i64> {
    by_time: Vec<(DateTime<Utc>, K)>,
    odd: Vec<K>,
}

impl<K: Ord + Clone> ChangeIndex<K> {
    /// The index of records and their stamps (a record without a change time is left out: no
    /// comparison with nothing holds).
    pub fn new(entries: impl IntoIterator<Item = (K, Stamp)>) -> Self {
        let mut index = ChangeIndex {
            by_time: Vec::new(),
            odd: Vec::new(),
        };
        for (key, stamp) in entries {
            match stamp {
                Stamp::At(t) => index.by_time.push((t, key)),
                Stamp::Odd => index.odd.push(key),
            }
        }
        index.by_time.sort_unstable();
        index
    }

    /// The records that may have changed after `since` (at or after it unless `strict`), in
    /// key order.
    pub fn since(&self, since: DateTime<Utc>, strict: bool) -> Vec<K> {
        let start = self
            .by_time
            .partition_point(|(t, _)| if strict { *t <= since } else { *t < since });
        let mut keys: Vec<K> = self.by_time[start..]
            .iter()
            .map(|(_, k)| k.clone())
            .collect();
        keys.extend(self.odd.iter().cloned());
        keys.sort_unstable();
        keys
    }
}

impl ChangeIndex<i64> {
    /// The index of a table's rows by fid, when it has a change-time column.
    pub fn build(table: &Table) -> Option<Self> {
        let column = table.col(COLUMN)?;
        Some(Self::new(table.rows.iter().filter_map(|(fid, row)| {
            let value = &row[column];
            if value.is_null() {
                return None;
            }
            let stamp = match values::time(value).filter(|_| values::float(value).is_none()) {
                Some(t) => Stamp::At(t),
                None => Stamp::Odd,
            };
            Some((*fid, stamp))
        })))
    }
}

/// The indexes of a store's tables, each at the store version it was built at.
#[derive(Default)]
pub struct ChangeIndexes(Mutex<HashMap<String, (u64, Arc<ChangeIndex>)>>);

impl ChangeIndexes {
    /// The index of `feature` at `version`, built now if it is missing or older.
    pub fn get(&self, table: &Table, feature: &str, version: u64) -> Option<Arc<ChangeIndex>> {
        if let Some((v, index)) = self.0.lock().unwrap().get(feature) {
            if *v == version {
                return Some(index.clone());
            }
        }
        let index = Arc::new(ChangeIndex::build(table)?);
        self.0
            .lock()
            .unwrap()
            .insert(feature.to_owned(), (version, index.clone()));
        Some(index)
    }

    /// Builds every table's index at `version`.
    pub fn warm(&self, store: &Store, version: u64) {
        for (feature, table) in &store.tables {
            self.get(table, feature, version);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_rows_changed_since_the_time_and_odd_ones_are_candidates() {
        let mut table = Table::new("cto");
        let c = table.col(COLUMN).expect("cto has a change time");
        let width = table.columns.len();
        for (fid, value) in [
            (1, json!("2024-05-01T03:00:00Z")),
            (2, json!("2024-05-01 04:00:00")),
            (3, json!(null)),
            (4, json!("not a time")),
            (5, json!("2024-05-01T05:00:00.000Z")),
        ] {
            let mut row = vec![json!(null); width];
            row[c] = value;
            table.rows.insert(fid, row);
        }
        let index = ChangeIndex::build(&table).unwrap();
        let at = |s: &str| values::time(&json!(s)).unwrap();
        assert_eq!(index.since(at("2024-05-01T04:00:00Z"), false), [2, 4, 5]);
        assert_eq!(index.since(at("2024-05-01T04:00:00Z"), true), [4, 5]);
        assert_eq!(index.since(at("2024-06-01T00:00:00Z"), true), [4]);
        assert_eq!(index.since(at("2020-01-01T00:00:00Z"), true), [1, 2, 4, 5]);
    }
}
