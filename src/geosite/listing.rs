//! Reading: column discovery, keyset-paged listings streamed page by page, and viability.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::wire::{self, Record};
use super::{Feature, GeositeClient, ViabilityBox};
use crate::platform::{ListPage, ListQuery, Listing, Unreadable};
use crate::{Error, Result};

impl GeositeClient {
    /// The columns of a feature that the gateway reads and the installation has (`desc`).
    pub(super) async fn columns(&self, feature: Feature) -> Result<Vec<String>> {
        if let Some(c) = self.inner.columns.lock().unwrap().get(&feature) {
            return Ok(c.clone());
        }
        let reply = self.get(&format!("{}/desc", feature.path()), &[]).await?;
        let available: Vec<String> = reply
            .body
            .get("columns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let columns: Vec<String> = if available.is_empty() {
            feature
                .wanted_columns()
                .iter()
                .map(|c| c.to_string())
                .collect()
        } else {
            feature
                .wanted_columns()
                .iter()
                .filter(|c| available.iter().any(|a| a == *c))
                .map(|c| c.to_string())
                .collect()
        };
        self.inner
            .columns
            .lock()
            .unwrap()
            .insert(feature, columns.clone());
        Ok(columns)
    }
    /// Streams the records of a feature that match `filter`, page by page.
    pub fn list_raw(&self, feature: Feature, filter: Vec<Value>) -> Listing<Record> {
        struct State {
            client: GeositeClient,
            feature: Feature,
            filter: Vec<Value>,
            after_fid: Option<i64>,
            total: Option<u64>,
            budget: Option<crate::platform::RowBudget>,
            done: bool,
        }
        let state = State {
            client: self.clone(),
            feature,
            filter,
            after_fid: None,
            total: None,
            budget: None,
            done: false,
        };
        Box::pin(futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            let page = st
                .client
                .list_page(st.feature, &st.filter, st.after_fid)
                .await;
            match page {
                Err(e) => {
                    st.done = true;
                    Some((Err(e), st))
                }
                Ok((records, remaining, clock)) => {
                    let total = *st.total.get_or_insert(remaining);
                    let last = records
                        .iter()
                        .filter_map(|r| r.get("fid").and_then(wire::int))
                        .max();
                    let budget = st
                        .budget
                        .get_or_insert_with(|| crate::platform::RowBudget::new(Some(remaining)))
                        .take(records.len(), st.feature.path());
                    // Keyset pages move forward: a page that does not is a platform going in
                    // circles.
                    let stuck = matches!((last, st.after_fid), (Some(l), Some(a)) if l <= a);
                    let refused = budget.err().or_else(|| {
                        stuck.then(|| {
                            Error::PlatformUnavailable(format!(
                                "the listing of {} did not move past fid {}; it was stopped",
                                st.feature.path(),
                                st.after_fid.unwrap_or_default()
                            ))
                        })
                    });
                    if let Some(e) = refused {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    // Keyset pages: `remaining` counts this page and all after it.
                    if records.is_empty() || remaining <= records.len() as u64 || last.is_none() {
                        st.done = true;
                    }
                    st.after_fid = last.or(st.after_fid);
                    Some((
                        Ok(ListPage {
                            records,
                            total,
                            clock,
                            unreadable: Vec::new(),
                        }),
                        st,
                    ))
                }
            }
        }))
    }
    /// One keyset page: records with `fid > after`, the count of all that remain, the clock.
    pub(super) async fn list_page(
        &self,
        feature: Feature,
        filter: &[Value],
        after: Option<i64>,
    ) -> Result<(Vec<Record>, u64, Option<DateTime<Utc>>)> {
        let columns = self.columns(feature).await?;
        let mut filter = filter.to_vec();
        if let Some(after) = after {
            filter.push(json!({ "property": "fid", "operator": ">", "value": after }));
        }
        let query = [
            ("columns", columns.join(",")),
            ("filter", Value::Array(filter).to_string()),
            (
                "sorter",
                json!([{ "property": "fid", "direction": "ASC" }]).to_string(),
            ),
            ("limit", self.options().page_size.to_string()),
            ("start", "0".to_string()),
        ];
        let reply = self
            .get(&format!("{}/list", feature.path()), &query)
            .await?;
        let records: Vec<Record> = reply
            .body
            .get("records")
            .and_then(Value::as_array)
            .map(|rs| rs.iter().filter_map(|r| r.as_object().cloned()).collect())
            .unwrap_or_default();
        let total = reply
            .body
            .get("total")
            .and_then(wire::int)
            .map(|t| t.max(0) as u64)
            .unwrap_or(records.len() as u64);
        Ok((records, total, reply.clock))
    }
    /// Streams typed records; a record that cannot be read is reported in its page's
    /// `unreadable` (with its fid when that much can be read), never dropped silently.
    pub(super) fn list_typed<T: Send + 'static>(
        &self,
        feature: Feature,
        filter: Vec<Value>,
        parse: fn(&Record) -> wire::Parsed<T>,
    ) -> Listing<T> {
        use futures::StreamExt;
        Box::pin(self.list_raw(feature, filter).map(move |page| {
            page.map(|p| {
                let mut records = Vec::with_capacity(p.records.len());
                let mut unreadable = Vec::new();
                for r in &p.records {
                    match parse(r) {
                        Ok(record) => records.push(record),
                        Err(field) => {
                            let fid = r.get("fid").and_then(wire::id);
                            tracing::warn!(
                                feature = feature.path(),
                                ?fid,
                                field,
                                "unreadable record"
                            );
                            unreadable.push(Unreadable {
                                feature: feature.path(),
                                fid,
                                field,
                            });
                        }
                    }
                }
                ListPage {
                    records,
                    total: p.total,
                    clock: p.clock,
                    unreadable,
                }
            })
        }))
    }
    /// Boxes within `radius_m` of a point, with port counts (`/viabilidade/caixas`).
    pub async fn viability(
        &self,
        latitude: f64,
        longitude: f64,
        radius_m: f64,
    ) -> Result<Vec<ViabilityBox>> {
        let reply = self
            .get(
                "viabilidade/caixas",
                &[
                    ("raio", radius_m.to_string()),
                    ("latitude", latitude.to_string()),
                    ("longitude", longitude.to_string()),
                ],
            )
            .await?;
        if !wire::success(&reply.body) {
            return Err(Error::PlatformUnavailable(
                "viability answered without success".into(),
            ));
        }
        let boxes = reply
            .body
            .get("caixas")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(boxes
            .iter()
            .filter_map(|b| {
                let count = |k: &str| b.get(k).and_then(wire::int).unwrap_or(0);
                let location = b
                    .get("geometryCaixaEmenda")
                    .and_then(Value::as_str)
                    .and_then(|g| {
                        let mut r = Record::new();
                        r.insert("geometry".into(), Value::from(g));
                        wire::location(&r)
                    });
                Some(ViabilityBox {
                    fid: wire::id(b.get("fid")?)?,
                    label: b.get("tipoCodigo").and_then(wire::text).unwrap_or_default(),
                    distance_m: b.get("distancia").and_then(wire::float).unwrap_or(0.0),
                    ports: count("qtdPortasSplitter"),
                    free_ports: count("qtdPortasSplitterDisp"),
                    occupied_ports: count("qtdPortasSplitterOcup"),
                    location,
                })
            })
            .collect())
    }
}

/// The filter of a listing, in Geosite's ExtJS style.
pub(super) fn filter_of(query: &ListQuery, project_column: bool) -> Vec<Value> {
    let mut filter = Vec::new();
    if let (true, Some(p)) = (project_column, &query.project_id) {
        filter
            .push(json!({ "property": "fidProjeto", "operator": "=", "value": wire::id_value(p) }));
    }
    if let Some(since) = query.changed_since {
        filter.push(json!({
            "property": "dataAlteracao", "operator": ">=",
            "value": since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }));
    }
    if let Some(fid) = &query.fid {
        filter.push(json!({ "property": "fid", "operator": "=", "value": wire::id_value(fid) }));
    }
    if let Some(fids) = &query.fids {
        let values: Vec<Value> = fids.iter().map(|f| wire::id_value(f)).collect();
        filter.push(json!({ "property": "fid", "operator": "in", "value": values }));
    }
    if let Some(box_fid) = &query.box_fid {
        filter.push(
            json!({ "property": "fidCaixa", "operator": "=", "value": wire::id_value(box_fid) }),
        );
    }
    if let Some(splitters) = &query.splitter_fids {
        let values: Vec<Value> = splitters.iter().map(|s| wire::id_value(s)).collect();
        filter.push(json!({ "property": "fidSplitter", "operator": "in", "value": values }));
    }
    filter
}
