//! Tolerant parsing of Geosite's wire format: numbers that arrive as strings, three ways of
//! giving a location, accents and case in `tipo`, and the HTTP `Date` clock.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::platform::{
    PortStatus, RemoteCustomer, RemoteElement, RemotePort, RemoteProject, RemoteSplitter,
    SplitterKind,
};

/// A JSON record as the platform sends it.
pub type Record = Map<String, Value>;

/// An integer that may arrive as a number or a string.
pub fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A float that may arrive as a number or a string.
pub fn float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().replace(',', ".").parse().ok(),
        _ => None,
    }
}

/// An identifier (`fid`, `fidProjeto`): numbers and strings become the same text.
pub fn id(value: &Value) -> Option<String> {
    match value {
        Value::Number(_) => int(value).map(|n| n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(
            int(value)
                .map(|n| n.to_string())
                .unwrap_or_else(|| s.trim().to_owned()),
        ),
        _ => None,
    }
}

/// A non-empty string, from a string or a number.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An identifier as the platform wants it in a filter: a number when it looks like one.
pub fn id_value(id: &str) -> Value {
    id.parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(id))
}

/// An ISO-8601 time; a zone-less time is taken as UTC.
pub fn time(value: &Value) -> Option<DateTime<Utc>> {
    let s = value.as_str()?.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .map(|n| n.and_utc())
        })
}

pub use crate::transport::http_date;

/// Formats a time as the HTTP `Date` header wants it.
pub fn format_http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Latitude and longitude from a WKT `geometry`, `x`/`y` (x = longitude), or
/// `latitude`/`longitude`, in that order of preference.
pub fn location(record: &Record) -> Option<(f64, f64)> {
    if let Some(wkt_text) = record.get("geometry").and_then(Value::as_str) {
        if let Some(point) = wkt_point(wkt_text) {
            return Some(point);
        }
    }
    let pair = |lat: &str, lng: &str| Some((float(record.get(lat)?)?, float(record.get(lng)?)?));
    pair("y", "x").or_else(|| pair("latitude", "longitude"))
}

/// Parses `POINT (lng lat)` with the `wkt` crate; returns (lat, lng).
fn wkt_point(text: &str) -> Option<(f64, f64)> {
    use std::str::FromStr;
    match wkt::Wkt::<f64>::from_str(text).ok()? {
        wkt::Wkt::Point(p) => {
            let c = p.coord()?;
            Some((c.y, c.x))
        }
        _ => None,
    }
}

/// Lowercase without accents, for comparing platform labels.
pub use crate::text::fold;

/// `Atendimento` (any case, any accents) is a service splitter; anything else distribution.
pub fn splitter_kind(tipo: Option<&Value>) -> SplitterKind {
    match tipo.and_then(Value::as_str).map(fold) {
        Some(t) if t == "atendimento" => SplitterKind::Service,
        _ => SplitterKind::Distribution,
    }
}

/// Output ports of a ratio such as `1:16`; 0 when it cannot be read.
pub fn ratio_outputs(ratio: &str) -> i32 {
    ratio
        .split(':')
        .nth(1)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Port status; an unknown status counts as reserved, so it is never offered as free.
pub fn port_status(value: Option<&Value>) -> PortStatus {
    match value.and_then(Value::as_str).map(fold).as_deref() {
        Some("livre") => PortStatus::Free,
        Some("ocupada") | Some("ocupado") => PortStatus::Occupied,
        Some("danificada") | Some("danificado") => PortStatus::Damaged,
        _ => PortStatus::Reserved,
    }
}

/// A required field of a record, or the field's name when it is missing or unreadable.
fn need<T>(r: &Record, field: &'static str, read: fn(&Value) -> Option<T>) -> Parsed<T> {
    r.get(field).and_then(read).ok_or(field)
}

/// A parsed record, or the name of the field that could not be read.
pub type Parsed<T> = Result<T, &'static str>;

/// A project record.
pub fn project(r: &Record) -> Parsed<RemoteProject> {
    Ok(RemoteProject {
        remote_id: need(r, "fid", id)?,
        name: r.get("nome").and_then(text).unwrap_or_default(),
        updated_at: r.get("dataAlteracao").and_then(time),
    })
}

/// A box or point record (`cto`, `caixaEmenda`, `estacao`, `poste`).
pub fn element(r: &Record) -> Parsed<RemoteElement> {
    let location = location(r);
    Ok(RemoteElement {
        fid: need(r, "fid", id)?,
        name: r.get("nome").and_then(text).unwrap_or_default(),
        project_id: r.get("fidProjeto").and_then(id),
        latitude: location.map(|l| l.0),
        longitude: location.map(|l| l.1),
        updated_at: r.get("dataAlteracao").and_then(time),
    })
}

/// A splitter record.
pub fn splitter(r: &Record) -> Parsed<RemoteSplitter> {
    // A splitter whose kind cannot be read is not taken for a distribution one: that would
    // delete a service splitter, and its ports, from a copy that selects only those.
    if !r.get("tipo").is_some_and(Value::is_string) {
        return Err("tipo");
    }
    let ratio = r.get("relacao").and_then(text).unwrap_or_default();
    Ok(RemoteSplitter {
        fid: need(r, "fid", id)?,
        name: r.get("nome").and_then(text).unwrap_or_default(),
        project_id: r.get("fidProjeto").and_then(id),
        box_fid: r.get("fidCaixa").and_then(id),
        kind: splitter_kind(r.get("tipo")),
        port_count: ratio_outputs(&ratio),
        ratio,
        updated_at: r.get("dataAlteracao").and_then(time),
    })
}

/// A splitter port record.
pub fn port(r: &Record) -> Parsed<RemotePort> {
    let customer = RemoteCustomer {
        contract: r.get("contrato").and_then(text),
        document: r.get("documento").and_then(text),
        name: r.get("nomeCliente").and_then(text),
    };
    let has_customer =
        customer.contract.is_some() || customer.document.is_some() || customer.name.is_some();
    let number = need(r, "numero", int)?;
    Ok(RemotePort {
        fid: need(r, "fid", id)?,
        splitter_fid: need(r, "fidSplitter", id)?,
        project_id: r.get("fidProjeto").and_then(id),
        number: i32::try_from(number).map_err(|_| "numero")?,
        status: port_status(r.get("status")),
        customer: has_customer.then_some(customer),
        updated_at: r.get("dataAlteracao").and_then(time),
    })
}

/// `success` as a boolean, whether sent as `true` or `"true"`.
pub fn success(body: &Value) -> bool {
    match body.get("success") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn numbers_as_strings() {
        assert_eq!(int(&json!("42")), Some(42));
        assert_eq!(int(&json!(42)), Some(42));
        assert_eq!(int(&json!(17.0)), Some(17));
        assert_eq!(id(&json!("17")), Some("17".into()));
        assert_eq!(id(&json!(17)), Some("17".into()));
        assert_eq!(id(&json!(" 0017 ")), Some("17".into()));
        assert_eq!(float(&json!("-3,5")), Some(-3.5));
    }

    #[test]
    fn three_ways_of_location() {
        let wkt = rec(json!({ "geometry": "POINT (-38.59606 -3.76439)" }));
        assert_eq!(location(&wkt), Some((-3.76439, -38.59606)));
        let xy = rec(json!({ "x": "-38.5", "y": -3.7 }));
        assert_eq!(location(&xy), Some((-3.7, -38.5)));
        let ll = rec(json!({ "latitude": -3.7, "longitude": "-38.5" }));
        assert_eq!(location(&ll), Some((-3.7, -38.5)));
        assert_eq!(
            location(&rec(json!({ "geometry": "LINESTRING (1 2, 3 4)" }))),
            None
        );
    }

    #[test]
    fn splitter_kind_ignores_case_and_accents() {
        for t in ["Atendimento", "ATENDIMENTO", " atendimento ", "Atendímento"] {
            assert_eq!(splitter_kind(Some(&json!(t))), SplitterKind::Service, "{t}");
        }
        for t in ["Distribuição", "distribuicao", ""] {
            assert_eq!(splitter_kind(Some(&json!(t))), SplitterKind::Distribution);
        }
        assert_eq!(ratio_outputs("1:16"), 16);
        assert_eq!(ratio_outputs("bad"), 0);
    }

    #[test]
    fn ports_and_times() {
        let p = port(&rec(json!({
            "fid": "9", "fidSplitter": 3, "numero": "2", "status": "OCUPADA",
            "contrato": 123, "documento": "529.982.247-25", "nomeCliente": "Ana",
            "dataAlteracao": "2023-11-20T01:00:00Z"
        })))
        .unwrap();
        assert_eq!(
            (p.fid.as_str(), p.splitter_fid.as_str(), p.number),
            ("9", "3", 2)
        );
        assert_eq!(p.status, PortStatus::Occupied);
        assert_eq!(p.customer.unwrap().contract.as_deref(), Some("123"));
        assert_eq!(
            p.updated_at.unwrap().to_rfc3339(),
            "2023-11-20T01:00:00+00:00"
        );
        let free = port(&rec(
            json!({ "fid": 1, "fidSplitter": 1, "numero": 1, "status": "livre", "contrato": null }),
        ))
        .unwrap();
        assert_eq!(free.status, PortStatus::Free);
        assert!(free.customer.is_none());
        let unnumbered = json!({ "fid": 4, "fidSplitter": 1, "numero": null });
        assert_eq!(port(&rec(unnumbered)), Err("numero"));
        assert_eq!(
            port(&rec(json!({ "fidSplitter": 1, "numero": 1 }))),
            Err("fid")
        );
        let t = http_date("Sun, 29 Nov 2026 10:00:00 GMT").unwrap();
        assert_eq!(format_http_date(t), "Sun, 29 Nov 2026 10:00:00 GMT");
        assert!(time(&json!("2023-11-20 01:00:00")).is_some());
    }
}
