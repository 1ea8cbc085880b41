//! OZmap's records as they come off the wire, read field by field: a record the client cannot
//! read is reported ([`Unreadable`]), never dropped silently, since a record missing from a
//! listing would be taken for a deleted one. Fields are read by name only (their order, extra
//! fields and the page size the server picks are its own business).

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::platform::Unreadable;

/// One page of a list answer: `{"total", "count", "start", "limit", "rows", "hasNextPage",
/// "nextUrl"}`, of which only `rows` is required.
#[derive(Debug, PartialEq)]
pub struct Envelope {
    /// Every match of the listing, when the server said.
    pub total: Option<u64>,
    /// The records of this page, unread.
    pub rows: Vec<Value>,
    /// False on the last page; absent on servers older than mid-2025.
    pub has_next_page: Option<bool>,
    /// The next page's path and query, relative to the API URL; opaque.
    pub next_url: Option<String>,
}

impl Envelope {
    /// Reads a list answer; `None` when it is not one (no `rows` array).
    pub fn read(body: Value) -> Option<Envelope> {
        let Value::Object(mut fields) = body else {
            return None;
        };
        let Some(Value::Array(rows)) = fields.remove("rows") else {
            return None;
        };
        Some(Envelope {
            total: fields.get("total").and_then(Value::as_u64),
            rows,
            has_next_page: fields.get("hasNextPage").and_then(Value::as_bool),
            next_url: fields
                .get("nextUrl")
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
        })
    }

    /// True when no page follows: `hasNextPage` false, or (older servers) an empty page.
    pub fn last(&self) -> bool {
        self.has_next_page == Some(false) || self.rows.is_empty()
    }
}

/// A reference to another record: its id, or the record itself when populated.
pub fn reference(value: &Value) -> Option<&str> {
    match value {
        Value::String(id) if !id.is_empty() => Some(id),
        Value::Object(record) => record.get("id").and_then(Value::as_str),
        _ => None,
    }
}

/// An ISO-8601 time (`2023-01-10T11:31:49.518Z`).
fn time(value: Option<&Value>) -> Option<DateTime<Utc>> {
    value
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
}

/// A splitter as the gateway needs it.
#[derive(Debug, PartialEq)]
pub struct Splitter {
    pub id: String,
    pub name: String,
    pub project: Option<String>,
    /// The box that houses it (`parent`).
    pub parent: Option<String>,
    pub is_drop: bool,
    /// `ratio.input` and `ratio.output`, when given.
    pub ratio: Option<(u32, u32)>,
    /// For each output, in order: whether something is plugged into it.
    pub outputs: Vec<bool>,
    /// For each port, in order: `blocked` (absent ports are not blocked).
    pub blocked: Vec<bool>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Splitter {
    /// Reads a splitter record; its id, name and `connectables.output` are required.
    pub fn read(record: &Value) -> Result<Splitter, Unreadable> {
        const FEATURE: &str = "splitters";
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or(Unreadable {
                feature: FEATURE,
                fid: None,
                field: "id",
            })?;
        let unreadable = |field| Unreadable {
            feature: FEATURE,
            fid: Some(id.to_owned()),
            field,
        };
        let name = record
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| unreadable("name"))?;
        let outputs = record
            .get("connectables")
            .and_then(|c| c.get("output"))
            .and_then(Value::as_array)
            .ok_or_else(|| unreadable("connectables.output"))?
            .iter()
            .map(|o| reference(o).is_some())
            .collect();
        let ratio = record.get("ratio").and_then(|r| {
            let side = |k| r.get(k).and_then(Value::as_u64).map(|n| n as u32);
            Some((side("input")?, side("output")?))
        });
        let blocked = record
            .get("ports")
            .and_then(Value::as_array)
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| p.get("blocked").and_then(Value::as_bool).unwrap_or(false))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Splitter {
            id: id.to_owned(),
            name: name.to_owned(),
            project: record.get("project").and_then(reference).map(str::to_owned),
            parent: record.get("parent").and_then(reference).map(str::to_owned),
            is_drop: record
                .get("isDrop")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ratio,
            outputs,
            blocked,
            updated_at: time(record.get("updatedAt")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_end_by_has_next_page_or_an_empty_page() {
        let page = Envelope::read(json!({
            "total": 48, "count": 3, "start": 0, "limit": 3, "rows": [{}, {}, {}],
            "hasNextPage": true, "nextUrl": "/api/v2/boxes?cursor=abc"
        }))
        .unwrap();
        assert_eq!(page.total, Some(48));
        assert!(!page.last());
        assert_eq!(page.next_url.as_deref(), Some("/api/v2/boxes?cursor=abc"));
        // An older server: no hasNextPage; the empty page ends the listing.
        let older = Envelope::read(json!({ "rows": [{}], "total": 1 })).unwrap();
        assert!(!older.last());
        assert!(Envelope::read(json!({ "rows": [] })).unwrap().last());
        assert!(
            Envelope::read(json!({ "rows": [{}], "hasNextPage": false }))
                .unwrap()
                .last()
        );
        assert_eq!(Envelope::read(json!({ "data": [] })), None);
        assert_eq!(Envelope::read(json!([1, 2])), None);
    }

    #[test]
    fn splitters_are_read_field_by_field() {
        let s = Splitter::read(&json!({
            "updatedAt": "2023-01-10T11:31:49.518Z", "kind": "Splitter", "isDrop": true,
            "ratio": { "input": 1, "output": 4 },
            "connectables": { "input": [null], "output": [null, "65a1f0c2e4b0a1b2c3d4e5f7", { "id": "f2" }, null] },
            "ports": [{ "index": 0, "blocked": false }, { "index": 1 }, { "index": 2 }, { "index": 3, "blocked": true }],
            "parent": { "id": "box1", "name": "CTO-01" }, "project": "p1",
            "name": "SPL-01", "id": "s1", "extra": 1
        }))
        .unwrap();
        assert_eq!(s.id, "s1");
        assert_eq!(s.parent.as_deref(), Some("box1"), "a populated reference");
        assert_eq!(s.outputs, [false, true, true, false]);
        assert_eq!(s.blocked, [false, false, false, true]);
        assert_eq!(s.ratio, Some((1, 4)));
        assert!(s.is_drop && s.updated_at.is_some());
        // No ports array (optional since 5688b10): nothing blocked.
        let bare = Splitter::read(
            &json!({ "id": "s2", "name": "x", "connectables": { "output": [null] } }),
        )
        .unwrap();
        assert!(bare.blocked.is_empty() && !bare.is_drop);
        let missing = Splitter::read(&json!({ "id": "s3", "name": "x" })).unwrap_err();
        assert_eq!(
            (missing.fid.as_deref(), missing.field),
            (Some("s3"), "connectables.output")
        );
        assert_eq!(
            Splitter::read(&json!({ "name": "x" })).unwrap_err().field,
            "id"
        );
    }
}
