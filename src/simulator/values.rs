//! How the simulator reads the values it keeps: its own reading, written apart from the
//! clients' wire helpers, so that a mistake in a client's reading of the platform cannot be
//! shared by the simulator that tests it.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

/// A whole number kept as a number or as its text.
pub fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A number kept as a number or as its text (a decimal comma taken as a point).
pub fn float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().replace(',', ".").parse().ok(),
        _ => None,
    }
}

/// Non-blank text (trimmed), or a number's text.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A time kept as RFC 3339 text, or as a zone-less date and time taken as UTC.
pub fn time(value: &Value) -> Option<DateTime<Utc>> {
    let s = value.as_str()?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let s = s.replace('T', " ");
    NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// The `Date` header's form of a time (RFC 9110's IMF-fixdate).
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Latitude and longitude of a record: its `geometry` point (`POINT(x y)`, x the longitude),
/// else `y`/`x`, else `latitude`/`longitude`.
pub fn location(record: &Map<String, Value>) -> Option<(f64, f64)> {
    if let Some(point) = record
        .get("geometry")
        .and_then(Value::as_str)
        .and_then(point)
    {
        return Some(point);
    }
    let pair = |lat: &str, lng: &str| Some((float(record.get(lat)?)?, float(record.get(lng)?)?));
    pair("y", "x").or_else(|| pair("latitude", "longitude"))
}

/// `POINT(x y)` (any case, any spacing) as (latitude, longitude).
fn point(wkt: &str) -> Option<(f64, f64)> {
    let upper = wkt.trim().to_ascii_uppercase();
    let inner = upper
        .strip_prefix("POINT")?
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?;
    let mut numbers = inner.split_whitespace().map(|n| n.parse::<f64>().ok());
    let (x, y) = (numbers.next()??, numbers.next()??);
    Some((y, x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kept_values_read_back() {
        assert_eq!(int(&json!("42")), Some(42));
        assert_eq!(int(&json!(7.0)), Some(7));
        assert_eq!(int(&json!(7.5)), None);
        assert_eq!(float(&json!("-3,5")), Some(-3.5));
        assert_eq!(text(&json!("  ")), None);
        assert_eq!(text(&json!(12)), Some("12".into()));
        assert_eq!(
            time(&json!("2024-05-01 03:55:00")),
            time(&json!("2024-05-01T03:55:00Z"))
        );
        let record = json!({ "geometry": "POINT (-38.5 -3.7)" });
        assert_eq!(location(record.as_object().unwrap()), Some((-3.7, -38.5)));
        let record = json!({ "x": "-38.5", "y": -3.7 });
        assert_eq!(location(record.as_object().unwrap()), Some((-3.7, -38.5)));
    }
}
