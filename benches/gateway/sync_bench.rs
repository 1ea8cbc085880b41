//! The sync benchmark: the engine's full and incremental runs against a plain-insert baseline.

use std::process::{Command, Stdio};
use std::time::Duration;

use futures::TryStreamExt;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use mapping_gateway::catalog::ElementItem;
use mapping_gateway::platform::{ListQuery, SplitterKind};
use mapping_gateway::state::AppState;

use super::common::*;

/// The baseline: fetch the same listings, insert every page with one plain multi-row INSERT.
pub(crate) async fn baseline(state: &AppState, sim: &str) -> anyhow::Result<Value> {
    use entity::{element, port, splitter};
    let id = integration(state, sim).await?;
    let project = mapping_gateway::projects::of(&state.db, id)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
        .expect("project");
    let row = mapping_gateway::integrations::find(&state.db, id)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;
    let platform = state
        .platform(&row)
        .map_err(mapping_gateway::Error::into_anyhow)?;
    let query = ListQuery {
        project_id: Some(project.remote_id.clone()),
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let mut written = 0u64;
    let mut listing = platform.elements(ElementItem::Cto, query.clone());
    while let Some(page) = listing
        .try_next()
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
    {
        let rows: Vec<element::ActiveModel> = page
            .records
            .into_iter()
            .map(|r| element::ActiveModel {
                integration_id: Set(id),
                project_id: Set(project.id),
                item: Set(entity::element_item::ElementItem::Cto),
                fid_num: Set(r.fid.parse().ok()),
                fid: Set(r.fid),
                name: Set(r.name),
                latitude: Set(r.latitude),
                longitude: Set(r.longitude),
                remote_updated_at: Set(r.updated_at),
                synced_at: Set(now),
                ..Default::default()
            })
            .collect();
        written += rows.len() as u64;
        if !rows.is_empty() {
            element::Entity::insert_many(rows).exec(&state.db).await?;
        }
    }
    let mut listing = platform.splitters(query.clone());
    while let Some(page) = listing
        .try_next()
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
    {
        let rows: Vec<splitter::ActiveModel> = page
            .records
            .into_iter()
            .filter(|r| r.kind == SplitterKind::Service)
            .map(|r| splitter::ActiveModel {
                integration_id: Set(id),
                project_id: Set(project.id),
                fid_num: Set(r.fid.parse().ok()),
                fid: Set(r.fid),
                name: Set(r.name),
                kind: Set(SplitterKind::Service),
                ratio: Set(r.ratio),
                port_count: Set(r.port_count),
                box_fid: Set(r.box_fid),
                element_id: Set(None),
                remote_updated_at: Set(r.updated_at),
                synced_at: Set(now),
                ..Default::default()
            })
            .collect();
        written += rows.len() as u64;
        if !rows.is_empty() {
            splitter::Entity::insert_many(rows).exec(&state.db).await?;
        }
    }
    let ids: std::collections::HashMap<String, i64> = splitter::Entity::find()
        .filter(splitter::Column::IntegrationId.eq(id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|s| (s.fid, s.id))
        .collect();
    let mut listing = platform.ports(query);
    while let Some(page) = listing
        .try_next()
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
    {
        let rows: Vec<port::ActiveModel> = page
            .records
            .into_iter()
            .filter_map(|r| {
                let splitter_id = *ids.get(&r.splitter_fid)?;
                let c = r.customer.unwrap_or_default();
                Some(port::ActiveModel {
                    integration_id: Set(id),
                    project_id: Set(project.id),
                    splitter_id: Set(splitter_id),
                    fid_num: Set(r.fid.parse().ok()),
                    fid: Set(r.fid),
                    number: Set(r.number),
                    status: Set(r.status),
                    customer_contract: Set(c.contract),
                    customer_document: Set(c.document),
                    customer_name: Set(c.name),
                    remote_updated_at: Set(r.updated_at),
                    synced_at: Set(now),
                    ..Default::default()
                })
            })
            .collect();
        written += rows.len() as u64;
        if !rows.is_empty() {
            port::Entity::insert_many(rows).exec(&state.db).await?;
        }
    }
    Ok(json!({ "written": written }))
}

pub(crate) fn phase(kind: &str, sim: &str, db: &str, key: &str) -> anyhow::Result<Value> {
    let out = Command::new(std::env::current_exe()?)
        .args(["phase", kind, "--sim", sim, "--db", db, "--master-key", key])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "phase {kind} failed");
    let line = String::from_utf8_lossy(&out.stdout);
    Ok(serde_json::from_str(
        line.lines().last().unwrap_or_default(),
    )?)
}

pub(crate) async fn orchestrate(
    sizes: Vec<usize>,
    engines: Vec<String>,
    pg: Option<String>,
) -> anyhow::Result<()> {
    let key = mapping_gateway::crypto::MasterKey::generate().1;
    println!("| boxes | engine | records | baseline s | full s | full/baseline | full peak RSS MiB | baseline peak RSS MiB | incremental s | incremental/full |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for boxes in sizes {
        let (_simulator, sim) = spawn_simulator(boxes)?;
        for engine in &engines {
            let db = fresh_db(engine, pg.as_deref(), &format!("base_{boxes}")).await?;
            let base = phase("baseline", &sim, &db, &key)?;
            let db = fresh_db(engine, pg.as_deref(), &format!("full_{boxes}")).await?;
            let full = phase("full", &sim, &db, &key)?;
            let client = reqwest::Client::new();
            for feature in ["cto", "splitter", "portaSplitter"] {
                client
                    .post(format!("{sim}/_sim/touch"))
                    .json(&json!({ "feature": feature, "share": 0.01 }))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            // Let the touched records' time move past the platform clock's second.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let incr = phase("incremental", &sim, &db, &key)?;
            let secs = |v: &Value| v["secs"].as_f64().unwrap_or(0.0);
            let mib = |v: &Value| v["peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0;
            println!(
                "| {boxes} | {engine} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.2} | {:.3} |",
                base["counts"]["written"],
                secs(&base),
                secs(&full),
                secs(&full) / secs(&base),
                mib(&full),
                mib(&base),
                secs(&incr),
                secs(&incr) / secs(&full),
            );
            eprintln!(
                "  full: {}  incremental: {}",
                full["counts"], incr["counts"]
            );
        }
    }
    Ok(())
}
