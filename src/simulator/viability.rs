//! `/viabilidade/caixas`: boxes within a radius of a point, with their port counts.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::authorize;
use super::faults::chaos;
use super::{store, values, Answer, SimState};

#[derive(Deserialize)]
pub(super) struct ViabilityParams {
    raio: f64,
    latitude: f64,
    longitude: f64,
}

pub(super) async fn viability(
    State(state): State<Arc<SimState>>,
    Query(params): Query<ViabilityParams>,
    headers: HeaderMap,
) -> Answer {
    chaos(&state).await?;
    authorize(&state, &headers)?;
    let store = state.store.read().unwrap();
    let splitters = &store.tables["splitter"];
    let ports = &store.tables["portaSplitter"];
    let (s_box, p_split, p_status) = (
        splitters.col("fidCaixa").expect("col"),
        ports.col("fidSplitter").expect("col"),
        ports.col("status").expect("col"),
    );
    let mut boxes = Vec::new();
    for (feature, label) in [("cto", "CTO"), ("caixaEmenda", "CEO")] {
        let table = &store.tables[feature];
        for row in table.rows.values() {
            let Some((lat, lng)) =
                values::location(table.to_json(row, &[]).as_object().expect("object"))
            else {
                continue;
            };
            let distance = crate::geo::haversine_m(params.latitude, params.longitude, lat, lng);
            if distance > params.raio {
                continue;
            }
            let fid = row[0].clone();
            let split_fids: Vec<&Value> = splitters
                .rows
                .values()
                .filter(|s| store::compare(&s[s_box], &fid) == Some(std::cmp::Ordering::Equal))
                .map(|s| &s[0])
                .collect();
            let (mut total, mut free, mut occupied) = (0, 0, 0);
            for p in ports.rows.values() {
                if split_fids
                    .iter()
                    .any(|f| store::compare(&p[p_split], f) == Some(std::cmp::Ordering::Equal))
                {
                    total += 1;
                    match p[p_status].as_str() {
                        Some("LIVRE") => free += 1,
                        Some("OCUPADA") => occupied += 1,
                        _ => {}
                    }
                }
            }
            let name = row[1].as_str().unwrap_or_default();
            boxes.push(json!({
                "fid": fid, "tipoCodigo": format!("{label}: {name}"),
                "distancia": (distance * 10.0).round() / 10.0,
                "qtdPortasSplitter": total, "qtdPortasSplitterDisp": free,
                "qtdPortasSplitterOcup": occupied,
                "geometryCaixaEmenda": row[3].clone(),
            }));
        }
    }
    boxes.sort_by(|a, b| {
        a["distancia"]
            .as_f64()
            .partial_cmp(&b["distancia"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Ok(Json(json!({ "success": "true", "caixas": boxes })).into_response())
}
