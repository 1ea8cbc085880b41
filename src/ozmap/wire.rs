//! OZmap's records as they come off the wire, read field by field: a record the client cannot
//! read is reported ([`Unreadable`]), never dropped silently, since a record missing from a
//! listing would be taken for a deleted one. Fields are read by name only (their order, extra
//! fields and the page size the server picks are its own business).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::platform::Unreadable;

/// One page of a list answer: `{"total", "count", "start", "limit", "rows", "hasNextPage",
/// "nextUrl"}`, of which only `rows` is required. Its rows stay JSON text until each is read:
/// a page of 500 splitters is 620 KB of text but ten times that as a tree of values.
#[derive(Debug)]
pub struct Envelope {
    /// Every match of the listing, when the server said.
    pub total: Option<u64>,
    /// The records of this page, unread.
    pub rows: Vec<Box<RawValue>>,
    /// False on the last page; absent on servers older than mid-2025.
    pub has_next_page: Option<bool>,
    /// The next page's path and query, relative to the API URL; opaque.
    pub next_url: Option<String>,
}

impl Envelope {
    /// Reads a list answer; `None` when it is not one (not an object with a `rows` array).
    pub fn read(body: &str) -> Option<Envelope> {
        /// The fields as sent; all but `rows` of any type (one of another type is ignored).
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields<'a> {
            #[serde(borrow)]
            rows: &'a RawValue,
            total: Option<Value>,
            has_next_page: Option<Value>,
            next_url: Option<Value>,
        }
        if !body.trim_start().starts_with('{') {
            return None;
        }
        let fields: Fields = serde_json::from_str(body).ok()?;
        Some(Envelope {
            rows: serde_json::from_str(fields.rows.get()).ok()?,
            total: fields.total.as_ref().and_then(Value::as_u64),
            has_next_page: fields.has_next_page.as_ref().and_then(Value::as_bool),
            next_url: fields
                .next_url
                .as_ref()
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
        let id = id_of(FEATURE, record)?;
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

/// The id of a record, or the [`Unreadable`] that says it has none.
fn id_of<'a>(feature: &'static str, record: &'a Value) -> Result<&'a str, Unreadable> {
    record
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or(Unreadable {
            feature,
            fid: None,
            field: "id",
        })
}

fn text(record: &Value, field: &str) -> Option<String> {
    record.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// A box, POP or pole.
#[derive(Debug, PartialEq)]
pub struct Place {
    pub id: String,
    pub name: String,
    pub project: Option<String>,
    /// Box type (boxes only; may be null).
    pub box_type: Option<String>,
    pub hierarchy_level: Option<i64>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// The pole a box hangs on.
    pub pole: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Place {
    /// Reads a box (`feature` `boxes`), POP (`pops`) or pole (`poles`); id and name required.
    /// The location is `coords: [lng, lat]` (longitude first), else `lat`/`lng`.
    pub fn read(feature: &'static str, record: &Value) -> Result<Place, Unreadable> {
        let id = id_of(feature, record)?;
        let name = text(record, "name").ok_or_else(|| Unreadable {
            feature,
            fid: Some(id.to_owned()),
            field: "name",
        })?;
        let coords = record
            .get("coords")
            .and_then(Value::as_array)
            .and_then(|c| Some((c.first()?.as_f64()?, c.get(1)?.as_f64()?)));
        let (longitude, latitude) = match coords {
            Some((lng, lat)) => (Some(lng), Some(lat)),
            None => (
                record.get("lng").and_then(Value::as_f64),
                record.get("lat").and_then(Value::as_f64),
            ),
        };
        Ok(Place {
            id: id.to_owned(),
            name,
            project: record.get("project").and_then(reference).map(str::to_owned),
            box_type: record.get("boxType").and_then(reference).map(str::to_owned),
            hierarchy_level: record.get("hierarchyLevel").and_then(Value::as_i64),
            latitude,
            longitude,
            pole: record.get("pole").and_then(reference).map(str::to_owned),
            updated_at: time(record.get("updatedAt")),
        })
    }
}

/// A box type: what tells a CTO from a CEO.
#[derive(Debug, PartialEq)]
pub struct BoxType {
    pub id: String,
    pub code: Option<String>,
    pub prefix: Option<String>,
}

impl BoxType {
    pub fn read(record: &Value) -> Result<BoxType, Unreadable> {
        Ok(BoxType {
            id: id_of("box-types", record)?.to_owned(),
            code: text(record, "code"),
            prefix: text(record, "prefix"),
        })
    }
}

/// An FTTH client, populated in a property.
#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    pub id: String,
    /// The ISP's contract.
    pub code: Option<String>,
    pub name: Option<String>,
    /// Free text; the gateway keeps the CPF/CNPJ here.
    pub observation: Option<String>,
}

impl Client {
    /// A client record (an object with an `id`).
    pub fn read(record: &Value) -> Option<Client> {
        let c = record.as_object()?;
        let text = |f: &str| c.get(f).and_then(Value::as_str).map(str::to_owned);
        Some(Client {
            id: text("id")?,
            code: text("code"),
            name: text("name"),
            observation: text("observation"),
        })
    }
}

/// A property (a customer's premises) and the ports it is connected to.
#[derive(Debug, PartialEq)]
pub struct Property {
    pub id: String,
    /// The client, when populated (`populate=client`) and present.
    pub client: Option<Client>,
    /// The id of a client the answer named without populating it: to be read by id.
    pub client_ref: Option<String>,
    /// `(splitter id, port N)` of each connection.
    pub connections: Vec<(String, i32)>,
    pub external_id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Property {
    /// Reads a property; a connection without a splitter id or a positive port is skipped.
    pub fn read(record: &Value) -> Result<Property, Unreadable> {
        let id = id_of("properties", record)?;
        let client = record.get("client").and_then(Client::read);
        // A client the server did not populate (its id only): never read as no customer.
        let client_ref = record
            .get("client")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let connections = record
            .get("connections")
            .and_then(Value::as_array)
            .map(|all| {
                all.iter()
                    .filter_map(|c| {
                        let splitter = c.get("id").and_then(Value::as_str)?;
                        let port = i32::try_from(c.get("port")?.as_i64()?).ok()?;
                        (port > 0).then(|| (splitter.to_owned(), port))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Property {
            id: id.to_owned(),
            client,
            client_ref,
            connections,
            external_id: text(record, "external_id"),
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
        let read = |body: Value| Envelope::read(&body.to_string());
        let page = read(json!({
            "total": 48, "count": 3, "start": 0, "limit": 3, "rows": [{}, {}, {}],
            "hasNextPage": true, "nextUrl": "/api/v2/boxes?cursor=abc"
        }))
        .unwrap();
        assert_eq!(page.total, Some(48));
        assert!(!page.last());
        assert_eq!(page.next_url.as_deref(), Some("/api/v2/boxes?cursor=abc"));
        // An older server: no hasNextPage; the empty page ends the listing.
        let older = read(json!({ "rows": [{}], "total": 1 })).unwrap();
        assert!(!older.last());
        assert!(read(json!({ "rows": [] })).unwrap().last());
        assert!(read(json!({ "rows": [{}], "hasNextPage": false }))
            .unwrap()
            .last());
        assert!(read(json!({ "data": [] })).is_none());
        assert!(read(json!({ "rows": null })).is_none());
        assert!(read(json!([1, 2])).is_none());
        // A field of another type than expected is ignored, as when the answer was a tree.
        let odd = read(json!({ "rows": [{}], "total": "many", "hasNextPage": "no" })).unwrap();
        assert_eq!((odd.total, odd.has_next_page), (None, None));
    }

    #[test]
    fn places_properties_and_clients() {
        let b = Place::read(
            "boxes",
            &json!({
                "id": "b1", "name": "CTO-01", "kind": "Box", "project": { "id": "p1" },
                "boxType": "t1", "hierarchyLevel": 3, "coords": [-38.5267, -3.7319],
                "lat": 0.0, "lng": 0.0, "pole": null, "updatedAt": "2024-05-01T03:55:00.000Z"
            }),
        )
        .unwrap();
        assert_eq!(
            (b.latitude, b.longitude),
            (Some(-3.7319), Some(-38.5267)),
            "coords are [lng, lat]"
        );
        assert_eq!(
            (b.project.as_deref(), b.box_type.as_deref()),
            (Some("p1"), Some("t1"))
        );
        let p = Place::read(
            "pops",
            &json!({ "id": "x", "name": "POP", "lat": 1.5, "lng": 2.5 }),
        )
        .unwrap();
        assert_eq!((p.latitude, p.longitude), (Some(1.5), Some(2.5)));
        assert_eq!(
            Place::read("poles", &json!({ "id": "x" }))
                .unwrap_err()
                .field,
            "name"
        );
        let t = BoxType::read(&json!({ "id": "t1", "code": "CTX", "prefix": "CTO" })).unwrap();
        assert_eq!(
            (t.code.as_deref(), t.prefix.as_deref()),
            (Some("CTX"), Some("CTO"))
        );

        let prop = Property::read(&json!({
            "id": "pr1", "external_id": "geo:990001",
            "client": { "id": "c1", "code": "990001", "name": "Maria", "observation": "CPF/CNPJ 52998224725" },
            "connections": [{ "id": "s1", "kind": "Splitter", "port": 2 }, { "id": "s2", "port": 0 }, { "port": 1 }]
        }))
        .unwrap();
        assert_eq!(prop.connections, [("s1".to_owned(), 2)]);
        assert_eq!(
            prop.client.as_ref().and_then(|c| c.code.as_deref()),
            Some("990001")
        );
        // A client not populated (an id only) or absent is no client.
        let unpopulated = Property::read(&json!({ "id": "pr2", "client": "c1" })).unwrap();
        assert!(unpopulated.client.is_none() && unpopulated.connections.is_empty());
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
