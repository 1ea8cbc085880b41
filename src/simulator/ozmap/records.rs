//! The simulated installation seen as OZmap records: the same store the Geosite front serves,
//! rendered as projects, boxes (box types CTO and CEO), POPs, poles, splitters with their
//! `connectables` and `ports`, properties and FTTH clients. A port carries a property when it is
//! occupied by a customer (or its property was left without a client); a damaged port has a
//! fiber plugged and no property.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::simulator::store::{Store, Table};
use crate::simulator::values;

/// The id tag of each kind of record: object ids are `{tag:08x}{fid:016x}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// Projects, boxes, POPs, poles and splitters: the store's fid (unique across features).
    Plain = 0,
    /// The property on a port.
    Property = 0x7072_6f70,
    /// The FTTH client on a port.
    Client = 0x636c_6e74,
    /// The fiber plugged into a port.
    Fiber = 0x6669_6272,
    /// Box types.
    BoxType = 0x7479_7065,
}

/// The object id of a store fid: the tag in 8 hex digits, the fid in 16. Written digit by
/// digit: listings render hundreds of thousands of them, and `format!` was a tenth of the
/// simulator's time.
pub fn oid(tag: Tag, fid: i64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let (tag, fid) = (tag as u32 as u64, fid as u64);
    let mut out = [0u8; 24];
    for (i, digit) in out.iter_mut().enumerate() {
        let nibble = if i < 8 {
            tag >> (4 * (7 - i))
        } else {
            fid >> (4 * (23 - i))
        };
        *digit = HEX[(nibble & 0xf) as usize];
    }
    out.iter().map(|b| *b as char).collect()
}

/// The fid of an object id of this tag.
pub fn fid_of(tag: Tag, id: &str) -> Option<i64> {
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (t, f) = id.split_at(8);
    (u32::from_str_radix(t, 16).ok()? == tag as u32)
        .then(|| i64::from_str_radix(f, 16).ok())
        .flatten()
}

/// Box types: (fid, code, level).
pub const BOX_TYPES: [(i64, &str, i64); 2] = [(1, "CTO", 3), (2, "CEO", 2)];

/// The routes the simulator lists.
pub const ROUTES: [&str; 8] = [
    "projects",
    "boxes",
    "box-types",
    "pops",
    "poles",
    "splitters",
    "properties",
    "ftth-clients",
];

/// A time as OZmap writes it (milliseconds, `Z`).
pub fn time(value: &Value) -> Value {
    values::text(value)
        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        .map_or(Value::Null, |t| {
            json!(t.to_rfc3339_opts(SecondsFormat::Millis, true))
        })
}

/// What rendering needs besides the store: ports by splitter, and the ports whose property was
/// left without a client.
pub struct View<'a> {
    pub store: &'a Store,
    pub ports_by_splitter: &'a HashMap<i64, Vec<i64>>,
    pub detached: &'a HashSet<i64>,
    /// Ids of clients attached to ports other than the port's own (`oid(Client, port)`).
    pub port_client: &'a HashMap<i64, String>,
    /// Clients on no property, by id.
    pub loose_clients: &'a std::collections::BTreeMap<String, Value>,
    /// Observation texts as written, by port.
    pub notes: &'a HashMap<i64, String>,
}

/// The CPF or CNPJ digits of an observation text: the first run of 11 or 14 digits once dots,
/// dashes, slashes and spaces are taken out (check digits are the gateway's business).
pub fn document_in(text: &str) -> Option<String> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, '.' | '-' | '/' | ' '))
        .collect();
    compact
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 11 || run.len() == 14)
        .map(str::to_owned)
}

fn table<'a>(store: &'a Store, feature: &str) -> &'a Table {
    &store.tables[feature]
}

fn get<'a>(t: &Table, row: &'a [Value], column: &str) -> &'a Value {
    t.col(column).map_or(&Value::Null, |i| &row[i])
}

/// Ports by splitter fid, in port number order.
pub fn index_ports(store: &Store) -> HashMap<i64, Vec<i64>> {
    let t = table(store, "portaSplitter");
    let mut by: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    for (fid, row) in &t.rows {
        if let Some(s) = values::int(get(t, row, "fidSplitter")) {
            let n = values::int(get(t, row, "numero")).unwrap_or(0);
            by.entry(s).or_default().push((n, *fid));
        }
    }
    by.into_iter()
        .map(|(s, mut ports)| {
            ports.sort();
            (s, ports.into_iter().map(|(_, f)| f).collect())
        })
        .collect()
}

/// The `[lng, lat]` of a WKT point.
fn coords(geometry: &Value) -> Option<(f64, f64)> {
    let text = geometry.as_str()?;
    let inner = text.trim().strip_prefix("POINT")?.trim();
    let inner = inner.strip_prefix('(')?.strip_suffix(')')?;
    let mut parts = inner.split_whitespace().map(|p| p.parse::<f64>().ok());
    Some((parts.next()??, parts.next()??))
}

fn place(t: &Table, fid: i64, row: &[Value], kind: &str) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(oid(Tag::Plain, fid)));
    out.insert("kind".into(), json!(kind));
    out.insert("name".into(), get(t, row, "nome").clone());
    if let Some((lng, lat)) = coords(get(t, row, "geometry")) {
        out.insert("coords".into(), json!([lng, lat]));
        out.insert("lat".into(), json!(lat));
        out.insert("lng".into(), json!(lng));
    }
    out.insert("updatedAt".into(), time(get(t, row, "dataAlteracao")));
    out
}

/// Whether a port row names a customer (a contract, a document or a name): its client.
pub fn has_client(t: &Table, port: &[Value]) -> bool {
    ["contrato", "documento", "nomeCliente"]
        .iter()
        .any(|c| !get(t, port, c).is_null())
}

/// When the records the simulator never changes (box types) were made.
const GENESIS: &str = "2024-01-01T00:00:00.000Z";

fn project_ref(t: &Table, row: &[Value]) -> Value {
    values::int(get(t, row, "fidProjeto")).map_or(Value::Null, |p| json!(oid(Tag::Plain, p)))
}

impl View<'_> {
    /// `[lng, lat]` of a box (CTO or CEO), as a property at it has them.
    fn box_coords(&self, fid: i64) -> Option<Value> {
        ["cto", "caixaEmenda"].into_iter().find_map(|f| {
            let t = table(self.store, f);
            let (lng, lat) = coords(get(t, t.rows.get(&fid)?, "geometry"))?;
            Some(json!([lng, lat]))
        })
    }

    /// Every record of a route, in id order.
    pub fn all(&self, route: &str) -> Vec<Value> {
        match route {
            "box-types" => BOX_TYPES
                .iter()
                .map(|(fid, code, level)| {
                    json!({ "id": oid(Tag::BoxType, *fid), "code": code, "prefix": code,
                            "brand": "Simulada", "default_level": level,
                            "config": { "base": { "color": "#1f77b4" }, "regular": { "fill": true } },
                            "createdAt": GENESIS, "updatedAt": GENESIS })
                })
                .collect(),
            "projects" | "boxes" | "pops" | "poles" | "splitters" => {
                let features: &[&str] = match route {
                    "projects" => &["projeto"],
                    "boxes" => &["cto", "caixaEmenda"],
                    "pops" => &["estacao"],
                    "poles" => &["poste"],
                    _ => &["splitter"],
                };
                let mut fids: Vec<(i64, &str)> = features
                    .iter()
                    .flat_map(|f| table(self.store, f).rows.keys().map(move |k| (*k, *f)))
                    .collect();
                fids.sort();
                fids.into_iter()
                    .filter_map(|(fid, f)| self.render(f, fid))
                    .collect()
            }
            "properties" | "ftth-clients" => {
                let mut all = Vec::new();
                self.each(route, |record| all.push(record));
                if route == "ftth-clients" {
                    all.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
                }
                all
            }
            _ => Vec::new(),
        }
    }

    /// A record by its id.
    pub fn by_id(&self, route: &str, id: &str) -> Option<Value> {
        match route {
            "properties" => self.property(fid_of(Tag::Property, id)?, true),
            "ftth-clients" => self
                .loose_clients
                .get(id)
                .cloned()
                .or_else(|| self.client(self.port_of_client(id)?)),
            "box-types" => self.all(route).into_iter().find(|t| t["id"] == json!(id)),
            _ => {
                let fid = fid_of(Tag::Plain, id)?;
                let feature = match route {
                    "projects" => "projeto",
                    "boxes" => ["cto", "caixaEmenda"]
                        .into_iter()
                        .find(|f| table(self.store, f).rows.contains_key(&fid))?,
                    "pops" => "estacao",
                    "poles" => "poste",
                    "splitters" => "splitter",
                    _ => return None,
                };
                self.render(feature, fid)
            }
        }
    }

    fn render(&self, feature: &str, fid: i64) -> Option<Value> {
        let t = table(self.store, feature);
        let row = t.rows.get(&fid)?;
        let mut out = match feature {
            "projeto" => {
                let mut p = serde_json::Map::new();
                p.insert("id".into(), json!(oid(Tag::Plain, fid)));
                p.insert("name".into(), get(t, row, "nome").clone());
                p.insert("lat".into(), json!(0));
                p.insert("lng".into(), json!(0));
                p.insert(
                    "hierarchyLevels".into(),
                    json!({ "box": { "POP": 1, "CE": 2, "CTO": 3 } }),
                );
                p.insert("defaultPonPotency".into(), json!(5));
                p.insert(
                    "drop".into(),
                    json!({ "maxDistance": 250, "defaultSize": 40 }),
                );
                p.insert(
                    "area".into(),
                    json!({ "type": "Polygon", "coordinates": [[[-38.6, -3.8], [-38.4, -3.8], [-38.4, -3.6], [-38.6, -3.6], [-38.6, -3.8]]] }),
                );
                p.insert("updatedAt".into(), time(get(t, row, "dataAlteracao")));
                p
            }
            "cto" | "caixaEmenda" => {
                let mut b = place(t, fid, row, "Box");
                let (type_fid, level) = if feature == "cto" { (1, 3) } else { (2, 2) };
                b.insert("project".into(), project_ref(t, row));
                b.insert("boxType".into(), json!(oid(Tag::BoxType, type_fid)));
                b.insert("hierarchyLevel".into(), json!(level));
                b.insert("implanted".into(), json!(true));
                // Each pole was generated right after the box that hangs on it.
                let pole = table(self.store, "poste")
                    .rows
                    .contains_key(&(fid + 1))
                    .then(|| json!(oid(Tag::Plain, fid + 1)));
                b.insert("pole".into(), pole.unwrap_or(Value::Null));
                b
            }
            "estacao" => {
                let mut p = place(t, fid, row, "Pop");
                p.insert("project".into(), project_ref(t, row));
                p.insert("hierarchyLevel".into(), json!(1));
                p.insert("implanted".into(), json!(true));
                p.insert("pole".into(), Value::Null);
                p.insert("popType".into(), json!(oid(Tag::BoxType, 90)));
                p.insert("structureOrder".into(), json!([]));
                p
            }
            "poste" => {
                let mut p = place(t, fid, row, "POLE");
                p.insert("poleType".into(), json!(oid(Tag::BoxType, 91)));
                p
            }
            "splitter" => return Some(self.splitter(fid, row)),
            _ => return None,
        };
        out.insert("createdAt".into(), out["updatedAt"].clone());
        Some(Value::Object(out))
    }

    fn splitter(&self, fid: i64, row: &[Value]) -> Value {
        let t = table(self.store, "splitter");
        let ports_t = table(self.store, "portaSplitter");
        let ports: Vec<&Vec<Value>> = self
            .ports_by_splitter
            .get(&fid)
            .map(|fids| fids.iter().filter_map(|f| ports_t.rows.get(f)).collect())
            .unwrap_or_default();
        let declared = values::text(get(t, row, "relacao"))
            .and_then(|r| {
                r.split_once(':')
                    .and_then(|(_, o)| o.trim().parse::<usize>().ok())
            })
            .unwrap_or(0);
        let highest = ports
            .iter()
            .filter_map(|p| values::int(get(ports_t, p, "numero")))
            .max()
            .unwrap_or(0)
            .max(0) as usize;
        let count = declared.max(highest);
        let mut output = vec![Value::Null; count];
        let mut port_list: Vec<Value> = (0..count)
            .map(|i| json!({ "id": format!("{}-{i}", oid(Tag::Plain, fid)), "index": i, "blocked": false }))
            .collect();
        let mut updated = time(get(t, row, "dataAlteracao"));
        let ports_fids = self
            .ports_by_splitter
            .get(&fid)
            .cloned()
            .unwrap_or_default();
        for (port_fid, port) in ports_fids.iter().zip(&ports) {
            let Some(n) = values::int(get(ports_t, port, "numero")).filter(|n| *n >= 1) else {
                continue;
            };
            let i = (n - 1) as usize;
            let status = values::text(get(ports_t, port, "status")).unwrap_or_default();
            if status == "OCUPADA" || status == "DANIFICADA" {
                output[i] = json!(oid(Tag::Fiber, *port_fid));
            }
            port_list[i]["blocked"] = json!(status == "RESERVADA");
            let changed = time(get(ports_t, port, "dataAlteracao"));
            if changed.as_str() > updated.as_str() {
                updated = changed;
            }
        }
        let service = values::text(get(t, row, "tipo")).as_deref() == Some("Atendimento");
        json!({
            "id": oid(Tag::Plain, fid), "kind": "Splitter",
            "name": get(t, row, "nome"),
            "parent": values::int(get(t, row, "fidCaixa")).map(|b| oid(Tag::Plain, b)),
            "project": project_ref(t, row),
            "isDrop": service, "implanted": true,
            "ratio": { "input": 1, "output": count },
            "attenuation": vec![(count.max(1) as f64).log2() * 3.5; count.max(1)],
            "splitterType": oid(Tag::BoxType, 100 + count as i64),
            "connectables": { "input": [null], "output": output },
            "ports": port_list,
            "createdAt": time(get(t, row, "dataAlteracao")),
            "updatedAt": updated,
        })
    }

    /// Whether a port carries a property, and whether it has a client.
    fn has_property(&self, port: &[Value]) -> (bool, bool) {
        let t = table(self.store, "portaSplitter");
        let occupied = values::text(get(t, port, "status")).as_deref() == Some("OCUPADA");
        let client = has_client(t, port);
        (occupied && client, client)
    }

    /// The property on port `fid`, its client populated or as an id.
    pub fn property(&self, fid: i64, populate: bool) -> Option<Value> {
        let t = table(self.store, "portaSplitter");
        let port = t.rows.get(&fid)?;
        let (with_client, client) = self.has_property(port);
        let occupied = values::text(get(t, port, "status")).as_deref() == Some("OCUPADA");
        let without_client = occupied && self.detached.contains(&fid);
        if !(with_client || without_client) {
            return None;
        }
        let splitter = values::int(get(t, port, "fidSplitter"))?;
        let box_fid = table(self.store, "splitter")
            .rows
            .get(&splitter)
            .and_then(|s| values::int(get(table(self.store, "splitter"), s, "fidCaixa")));
        let client = match (client, populate) {
            (false, _) => Value::Null,
            (true, true) => self.client(fid)?,
            (true, false) => json!(self.client_id(fid)),
        };
        Some(json!({
            "id": oid(Tag::Property, fid), "kind": "Property",
            "project": project_ref(t, port),
            "box": box_fid.map(|b| oid(Tag::Plain, b)),
            "coords": box_fid.and_then(|b| self.box_coords(b)),
            "client": client,
            "connections": [{
                "id": oid(Tag::Plain, splitter), "kind": "Splitter",
                "name": format!("Porta {}", values::int(get(t, port, "numero")).unwrap_or(0)),
                "port": get(t, port, "numero"), "implanted": true,
                "fiber": oid(Tag::Fiber, fid),
            }],
            "external_id": get(t, port, "origem"),
            "createdAt": time(get(t, port, "dataAlteracao")),
            "updatedAt": time(get(t, port, "dataAlteracao")),
        }))
    }

    /// The id of the client on port `fid` (whether or not the port has one now).
    pub fn client_id(&self, fid: i64) -> String {
        self.port_client
            .get(&fid)
            .cloned()
            .unwrap_or_else(|| oid(Tag::Client, fid))
    }

    /// The port whose client has this id.
    pub fn port_of_client(&self, id: &str) -> Option<i64> {
        if let Some((port, _)) = self.port_client.iter().find(|(_, c)| *c == id) {
            return Some(*port);
        }
        fid_of(Tag::Client, id).filter(|p| !self.port_client.contains_key(p))
    }

    /// The FTTH client on port `fid`.
    pub fn client(&self, fid: i64) -> Option<Value> {
        let t = table(self.store, "portaSplitter");
        let port = t.rows.get(&fid)?;
        if !has_client(t, port) {
            return None;
        }
        let code = get(t, port, "contrato");
        let document = values::text(get(t, port, "documento"));
        let digits = document
            .as_deref()
            .map(|d| d.chars().filter(char::is_ascii_digit).collect::<String>());
        // A note written for this port's client, while it still names the port's document.
        let observation = match self.notes.get(&fid) {
            Some(note) if document_in(note) == digits => note.clone(),
            _ => document
                .map(|d| format!("CPF/CNPJ {d}"))
                .unwrap_or_default(),
        };
        Some(json!({
            "id": self.client_id(fid), "kind": "FTTHClient",
            "code": values::text(code), "name": get(t, port, "nomeCliente"),
            "observation": observation, "status": 0, "implanted": true, "tags": [],
            "createdAt": time(get(t, port, "dataAlteracao")),
            "updatedAt": time(get(t, port, "dataAlteracao")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_the_tag_and_the_fid_in_hex() {
        for fid in [0, 1, 42, 0xdead_beef, (1 << 40) + 7, i64::MAX] {
            let id = oid(Tag::Client, fid);
            assert_eq!(id, format!("{:08x}{:016x}", Tag::Client as u32, fid));
            assert_eq!(fid_of(Tag::Client, &id), Some(fid));
        }
    }

    #[test]
    fn object_ids_carry_their_kind() {
        let id = oid(Tag::Property, 42);
        assert_eq!(id.len(), 24);
        assert_eq!(fid_of(Tag::Property, &id), Some(42));
        assert_eq!(fid_of(Tag::Client, &id), None);
        assert_eq!(fid_of(Tag::Plain, &oid(Tag::Plain, 7)), Some(7));
        assert_eq!(fid_of(Tag::Plain, "xyz"), None);
    }
}
