//! OZmap filters and sorts over JSON records: `[{"property", "operator", "value"}]` (AND), a
//! dotted property reaching into arrays (`connections.id` matches any connection), and
//! `[{"property", "direction": 1 | -1}]`.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One condition.
#[derive(Debug)]
pub struct Condition {
    path: Vec<String>,
    operator: String,
    value: Value,
}

const OPERATORS: [&str; 11] = [
    "=", "!=", "ne", "<", "<=", ">", ">=", "in", "notin", "like", "exists",
];

/// Reads a filter: a flat list of conditions.
pub fn parse(filter: &Value) -> Result<Vec<Condition>, String> {
    let items = match filter {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err("filter must be a list".into()),
    };
    items
        .iter()
        .map(|item| {
            let property = item
                .get("property")
                .and_then(Value::as_str)
                .ok_or("a filter item without property")?;
            let operator = item.get("operator").and_then(Value::as_str).unwrap_or("=");
            if !OPERATORS.contains(&operator) {
                return Err(format!("unknown operator {operator}"));
            }
            let value = item.get("value").cloned().unwrap_or(Value::Null);
            if matches!(operator, "in" | "notin") && !value.is_array() {
                return Err(format!("{operator} wants a list"));
            }
            Ok(Condition {
                path: property.split('.').map(str::to_owned).collect(),
                operator: operator.to_owned(),
                value,
            })
        })
        .collect()
}

/// Which ids a filter names, when it names some.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    /// The records' own ids (`id`).
    Ids,
    /// The splitters properties are connected to (`connections.id`).
    Splitters,
}

/// The ids a filter restricts its records to, by `=` or `in` on `id` or `connections.id`: a
/// listing may read those records only (the rest of the filter still applies).
pub fn named_ids(filter: &Value) -> Option<(Named, Vec<String>)> {
    filter.as_array()?.iter().find_map(|item| {
        let named = match item.get("property")?.as_str()? {
            "id" => Named::Ids,
            "connections.id" => Named::Splitters,
            _ => return None,
        };
        let ids = match (item.get("operator")?.as_str()?, item.get("value")?) {
            ("=", Value::String(id)) => vec![id.clone()],
            ("in", Value::Array(ids)) => ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => return None,
        };
        Some((named, ids))
    })
}

/// The change time a filter asks records to be after (`updatedAt >` or `>=` a time), and
/// whether strictly: what the simulator's change index narrows a listing by.
pub fn change_bound(filter: &Value) -> Option<(DateTime<Utc>, bool)> {
    filter.as_array()?.iter().find_map(|item| {
        if item.get("property")?.as_str()? != "updatedAt" {
            return None;
        }
        let operator = item.get("operator")?.as_str()?;
        if operator != ">" && operator != ">=" {
            return None;
        }
        Some((time(item.get("value")?)?, operator == ">"))
    })
}

/// A record's `updatedAt` as the change index keeps it; `None` when it has none (no comparison
/// holds then).
pub fn stamp(record: &Value) -> Option<crate::simulator::changes::Stamp> {
    use crate::simulator::changes::Stamp;
    match record.get("updatedAt") {
        None | Some(Value::Null) => None,
        Some(v) => Some(time(v).map_or(Stamp::Odd, Stamp::At)),
    }
}

/// The filter without the condition [`named_ids`] read its ids from.
pub fn without_named(filter: &Value) -> Value {
    let Some(items) = filter.as_array() else {
        return filter.clone();
    };
    let mut found = false;
    let named = |item: &Value| named_ids(&Value::Array(vec![item.clone()])).is_some();
    Value::Array(
        items
            .iter()
            .filter(|item| {
                let skip = !found && named(item);
                found |= skip;
                !skip
            })
            .cloned()
            .collect(),
    )
}

/// The values at a dotted path; arrays on the way yield each element's.
fn values<'a>(record: &'a Value, path: &[String]) -> Vec<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return match record {
            Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
    };
    match record {
        Value::Array(items) => items.iter().flat_map(|i| values(i, path)).collect(),
        Value::Object(map) => match map.get(first) {
            // A populated reference stands for its id.
            Some(Value::Object(inner)) if rest.is_empty() => {
                inner.get("id").map(|id| vec![id]).unwrap_or_default()
            }
            Some(v) => values(v, rest),
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(|t| t.parse().ok())
}

/// Compares two values: times as times, numbers as numbers, text as text.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (time(a), time(b)) {
        return Some(x.cmp(&y));
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

fn holds(v: &Value, c: &Condition) -> bool {
    let eq = |x: &Value| compare(v, x) == Some(Ordering::Equal);
    match c.operator.as_str() {
        "=" => eq(&c.value),
        "!=" | "ne" => !eq(&c.value),
        "<" => compare(v, &c.value) == Some(Ordering::Less),
        "<=" => matches!(compare(v, &c.value), Some(Ordering::Less | Ordering::Equal)),
        ">" => compare(v, &c.value) == Some(Ordering::Greater),
        ">=" => matches!(
            compare(v, &c.value),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        "in" => c.value.as_array().is_some_and(|vs| vs.iter().any(eq)),
        "notin" => c.value.as_array().is_some_and(|vs| !vs.iter().any(eq)),
        "like" => {
            let needle = c.value.as_str().unwrap_or_default().to_lowercase();
            v.as_str()
                .is_some_and(|t| t.to_lowercase().contains(&needle))
        }
        _ => false,
    }
}

/// True when a record meets every condition.
pub fn matches(record: &Value, conditions: &[Condition]) -> bool {
    conditions.iter().all(|c| {
        let found = values(record, &c.path);
        match c.operator.as_str() {
            "exists" => {
                let present = found.iter().any(|v| !v.is_null());
                present == c.value.as_bool().unwrap_or(true)
            }
            "!=" | "ne" | "notin" => found.iter().all(|v| holds(v, c)),
            _ => found.iter().any(|v| holds(v, c)),
        }
    })
}

/// One sort key.
#[derive(Debug)]
pub struct SortKey {
    path: Vec<String>,
    descending: bool,
}

/// Reads a sort list.
pub fn parse_sort(sort: &Value) -> Result<Vec<SortKey>, String> {
    let items = match sort {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err("sort must be a list".into()),
    };
    items
        .iter()
        .map(|item| {
            let property = item
                .get("property")
                .and_then(Value::as_str)
                .ok_or("a sort item without property")?;
            let direction = item.get("direction").and_then(Value::as_i64).unwrap_or(1);
            Ok(SortKey {
                path: property.split('.').map(str::to_owned).collect(),
                descending: direction < 0,
            })
        })
        .collect()
}

/// Orders two records by the keys.
pub fn order(a: &Value, b: &Value, keys: &[SortKey]) -> Ordering {
    for key in keys {
        let (x, y) = (values(a, &key.path), values(b, &key.path));
        let o = match (x.first(), y.first()) {
            (Some(x), Some(y)) => compare(x, y).unwrap_or(Ordering::Equal),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let o = if key.descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_reach_into_arrays_and_times_compare_as_times() {
        let r = json!({ "id": "p1", "client": { "id": "c1" },
            "connections": [{ "id": "s1", "port": 2 }, { "id": "s2", "port": 1 }],
            "updatedAt": "2024-05-01T03:55:00.000Z" });
        let f = |v| parse(&v).unwrap();
        assert!(matches(
            &r,
            &f(json!([{ "property": "connections.id", "operator": "in", "value": ["s2"] }]))
        ));
        assert!(matches(
            &r,
            &f(json!([{ "property": "client", "operator": "=", "value": "c1" }]))
        ));
        assert!(matches(
            &r,
            &f(
                json!([{ "property": "updatedAt", "operator": ">=", "value": "2024-05-01T03:55:00Z" }])
            )
        ));
        assert!(!matches(
            &r,
            &f(
                json!([{ "property": "updatedAt", "operator": ">", "value": "2024-05-01T03:55:00Z" }])
            )
        ));
        assert!(!matches(
            &r,
            &f(json!([{ "property": "connections.id", "operator": "=", "value": "s3" }]))
        ));
        assert!(parse(&json!([{ "property": "x", "operator": "~" }])).is_err());
    }
}
