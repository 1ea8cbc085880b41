//! The simulator's records: one table per feature, rows keyed by fid, a fixed column list each,
//! and ExtJS-style filters and sorters evaluated over them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::values;

/// Columns of each feature, as `desc` reports them.
pub fn columns_of(feature: &str) -> Option<&'static [&'static str]> {
    Some(match feature {
        "projeto" => &["fid", "nome", "dataAlteracao"],
        "cto" | "caixaEmenda" | "estacao" | "poste" => {
            &["fid", "nome", "fidProjeto", "geometry", "dataAlteracao"]
        }
        "splitter" => &[
            "fid",
            "nome",
            "fidProjeto",
            "fidCaixa",
            "tipo",
            "relacao",
            "dataAlteracao",
        ],
        "portaSplitter" => &[
            "fid",
            "fidSplitter",
            "fidProjeto",
            "numero",
            "status",
            "contrato",
            "documento",
            "nomeCliente",
            "origem",
            "dataAlteracao",
        ],
        _ => return None,
    })
}

/// Every feature the simulator serves.
pub const FEATURES: [&str; 7] = [
    "projeto",
    "cto",
    "caixaEmenda",
    "estacao",
    "poste",
    "splitter",
    "portaSplitter",
];

/// The records of one feature.
#[derive(Debug, Default)]
pub struct Table {
    /// Column names, in row order.
    pub columns: &'static [&'static str],
    /// Rows by fid; values follow `columns`.
    pub rows: BTreeMap<i64, Vec<Value>>,
}

impl Table {
    /// An empty table of a feature.
    pub fn new(feature: &str) -> Self {
        Table {
            columns: columns_of(feature).unwrap_or(&[]),
            rows: BTreeMap::new(),
        }
    }

    /// Index of a column.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| *c == name)
    }

    /// A row as a JSON object with the given columns (all when empty).
    pub fn to_json(&self, row: &[Value], wanted: &[&str]) -> Value {
        let mut out = Map::new();
        for (i, col) in self.columns.iter().enumerate() {
            if wanted.is_empty() || wanted.contains(col) {
                out.insert((*col).to_owned(), row[i].clone());
            }
        }
        Value::Object(out)
    }
}

/// One condition of a `filter`.
#[derive(Debug, Clone)]
pub struct Condition {
    column: usize,
    operator: String,
    value: Value,
}

/// Parses a filter against a table; an unknown property or operator is an error message.
pub fn parse_filter(table: &Table, filter: &Value) -> Result<Vec<Condition>, String> {
    let Some(items) = filter.as_array() else {
        return Err("filter must be a JSON array".into());
    };
    items
        .iter()
        .map(|item| {
            let property = item
                .get("property")
                .and_then(Value::as_str)
                .ok_or("filter item without property")?;
            let column = table
                .col(property)
                .ok_or_else(|| format!("unknown property {property}"))?;
            let operator = item
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or("=")
                .to_owned();
            if !["=", "!=", ">", ">=", "<", "<=", "in", "like"].contains(&operator.as_str()) {
                return Err(format!("unknown operator {operator}"));
            }
            Ok(Condition {
                column,
                operator,
                value: item.get("value").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

fn as_time(v: &Value) -> Option<DateTime<Utc>> {
    values::time(v)
}

/// Compares a stored value with a filter value: as numbers, else as times, else as text.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if a.is_null() || b.is_null() {
        return None;
    }
    if let (Some(x), Some(y)) = (values::float(a), values::float(b)) {
        return x.partial_cmp(&y);
    }
    if let (Some(x), Some(y)) = (as_time(a), as_time(b)) {
        return Some(x.cmp(&y));
    }
    let x = values::text(a)?;
    let y = values::text(b)?;
    Some(x.cmp(&y))
}

/// The change time a filter asks records to be after (`dataAlteracao >` or `>=` a time), and
/// whether strictly: what [`super::changes`] narrows a listing by.
pub fn change_bound(table: &Table, conditions: &[Condition]) -> Option<(DateTime<Utc>, bool)> {
    let column = table.col(super::changes::COLUMN)?;
    conditions.iter().find_map(|c| {
        if c.column != column || !(c.operator == ">" || c.operator == ">=") {
            return None;
        }
        if values::float(&c.value).is_some() {
            return None;
        }
        Some((values::time(&c.value)?, c.operator == ">"))
    })
}

/// Splits off the keyset bound: the conditions other than `fid >`/`fid >=`, and the smallest
/// fid those bounds allow.
pub fn split_fid_bound(conditions: &[Condition]) -> (Vec<Condition>, i64) {
    let is_bound = |c: &Condition| c.column == 0 && (c.operator == ">" || c.operator == ">=");
    let bound: Vec<Condition> = conditions.iter().filter(|c| is_bound(c)).cloned().collect();
    let base = conditions
        .iter()
        .filter(|c| !is_bound(c))
        .cloned()
        .collect();
    (base, fid_lower_bound(&bound))
}

/// A cache key for a filter without its keyset bound.
pub fn filter_key(filter: &Value) -> String {
    let items: Vec<&Value> = filter
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| {
                    !(i.get("property") == Some(&Value::from("fid"))
                        && matches!(
                            i.get("operator").and_then(Value::as_str),
                            Some(">") | Some(">=")
                        ))
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::to_string(&items).unwrap_or_default()
}

/// The smallest fid a row can have and still meet `fid >`/`fid >=` conditions (column 0).
pub fn fid_lower_bound(conditions: &[Condition]) -> i64 {
    conditions
        .iter()
        .filter(|c| c.column == 0)
        .filter_map(|c| {
            let v = values::int(&c.value)?;
            match c.operator.as_str() {
                ">" => Some(v.saturating_add(1)),
                ">=" | "=" => Some(v),
                _ => None,
            }
        })
        .max()
        .unwrap_or(i64::MIN)
}

/// True when a row meets every condition.
pub fn matches(row: &[Value], conditions: &[Condition]) -> bool {
    conditions.iter().all(|c| {
        let v = &row[c.column];
        match c.operator.as_str() {
            "=" => {
                compare(v, &c.value) == Some(Ordering::Equal) || (v.is_null() && c.value.is_null())
            }
            "!=" => compare(v, &c.value) != Some(Ordering::Equal),
            ">" => compare(v, &c.value) == Some(Ordering::Greater),
            ">=" => matches!(
                compare(v, &c.value),
                Some(Ordering::Greater | Ordering::Equal)
            ),
            "<" => compare(v, &c.value) == Some(Ordering::Less),
            "<=" => matches!(compare(v, &c.value), Some(Ordering::Less | Ordering::Equal)),
            "in" => c
                .value
                .as_array()
                .is_some_and(|vs| vs.iter().any(|x| compare(v, x) == Some(Ordering::Equal))),
            "like" => {
                let needle = values::text(&c.value)
                    .unwrap_or_default()
                    .trim_matches('%')
                    .to_lowercase();
                values::text(v).is_some_and(|t| t.to_lowercase().contains(&needle))
            }
            _ => false,
        }
    })
}

/// A sort key of a `sorter`.
#[derive(Debug, Clone)]
pub struct SortKey {
    column: usize,
    descending: bool,
}

/// Parses a sorter; unknown properties are an error message.
pub fn parse_sorter(table: &Table, sorter: &Value) -> Result<Vec<SortKey>, String> {
    let Some(items) = sorter.as_array() else {
        return Err("sorter must be a JSON array".into());
    };
    items
        .iter()
        .map(|item| {
            let property = item
                .get("property")
                .and_then(Value::as_str)
                .ok_or("sorter item without property")?;
            Ok(SortKey {
                column: table
                    .col(property)
                    .ok_or_else(|| format!("unknown property {property}"))?,
                descending: item
                    .get("direction")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.eq_ignore_ascii_case("DESC")),
            })
        })
        .collect()
}

/// Orders two rows by the sort keys.
pub fn order(a: &[Value], b: &[Value], keys: &[SortKey]) -> Ordering {
    for key in keys {
        let o = compare(&a[key.column], &b[key.column]).unwrap_or(Ordering::Equal);
        let o = if key.descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Every table of the simulated installation.
#[derive(Debug, Default)]
pub struct Store {
    /// Tables by feature name.
    pub tables: HashMap<&'static str, Table>,
    /// The next fid to hand out (fids are unique across features).
    pub next_fid: i64,
}

impl Store {
    /// An empty installation.
    pub fn new() -> Self {
        Store {
            tables: FEATURES.iter().map(|f| (*f, Table::new(f))).collect(),
            next_fid: 1,
        }
    }

    /// Inserts a row built from `(column, value)` pairs; returns its fid.
    pub fn insert(&mut self, feature: &'static str, fields: &[(&str, Value)]) -> i64 {
        let fid = self.next_fid;
        self.next_fid += 1;
        let table = self.tables.get_mut(feature).expect("known feature");
        let mut row = vec![Value::Null; table.columns.len()];
        row[0] = Value::from(fid);
        for (name, value) in fields {
            if let Some(i) = table.col(name) {
                row[i] = value.clone();
            }
        }
        table.rows.insert(fid, row);
        fid
    }
}
