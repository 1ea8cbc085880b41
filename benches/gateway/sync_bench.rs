//! The sync benchmark: the engine's full and incremental runs against three baselines: plain
//! inserts page by page, fetch-only (the wire), and the fastest raw write of the same rows.

use std::process::{Command, Stdio};
use std::time::Duration;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

use entity::{element, port, splitter};
use mapping_gateway::catalog::ElementItem;
use mapping_gateway::platform::{
    ListQuery, RemoteElement, RemotePort, RemoteSplitter, SplitterKind,
};
use mapping_gateway::state::AppState;

use super::common::*;

/// The records a sync of the benchmark project lists, page by page: the CTO elements, the
/// splitters, the ports, in that order (the engine's order).
pub(crate) enum Page {
    Elements(Vec<RemoteElement>),
    Splitters(Vec<RemoteSplitter>),
    Ports(Vec<RemotePort>),
}

impl Page {
    fn len(&self) -> usize {
        match self {
            Page::Elements(r) => r.len(),
            Page::Splitters(r) => r.len(),
            Page::Ports(r) => r.len(),
        }
    }
}

/// Where the baselines write: the benchmark integration and its project.
pub(crate) struct Target {
    pub(crate) integration: i64,
    pub(crate) project: i64,
    platform: std::sync::Arc<dyn mapping_gateway::platform::Platform>,
    query: ListQuery,
}

pub(crate) async fn target(state: &AppState, sim: &str) -> anyhow::Result<Target> {
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
    Ok(Target {
        integration: id,
        project: project.id,
        platform,
        query: ListQuery {
            project_id: Some(project.remote_id.clone()),
            ..Default::default()
        },
    })
}

/// Every page of the three listings, one after the other, fetched as the stream is polled.
pub(crate) fn pages(
    target: &Target,
) -> impl futures::Stream<Item = anyhow::Result<Page>> + Send + 'static {
    use futures::StreamExt;
    let p = &target.platform;
    let q = &target.query;
    p.elements(ElementItem::Cto, q.clone())
        .map_ok(|page| Page::Elements(page.records))
        .chain(
            p.splitters(q.clone())
                .map_ok(|page| Page::Splitters(page.records)),
        )
        .chain(p.ports(q.clone()).map_ok(|page| Page::Ports(page.records)))
        .map_err(mapping_gateway::Error::into_anyhow)
}

/// The fetch-only baseline: the same listings read and parsed, nothing written (the wire's
/// limit, with the simulator on loopback).
pub(crate) async fn fetch_only(state: &AppState, sim: &str) -> anyhow::Result<Value> {
    let target = target(state, sim).await?;
    let mut listed = 0u64;
    let mut pages = std::pin::pin!(pages(&target));
    while let Some(page) = pages.try_next().await? {
        listed += page.len() as u64;
    }
    Ok(json!({ "listed": listed }))
}

fn element_row(t: &Target, r: RemoteElement, now: DateTime<Utc>) -> element::ActiveModel {
    element::ActiveModel {
        integration_id: Set(t.integration),
        project_id: Set(t.project),
        item: Set(entity::element_item::ElementItem::Cto),
        fid_num: Set(r.fid.parse().ok()),
        fid: Set(r.fid),
        name_folded: Set(Some(mapping_gateway::text::fold(&r.name))),
        name: Set(r.name),
        latitude: Set(r.latitude),
        longitude: Set(r.longitude),
        remote_updated_at: Set(r.updated_at),
        synced_at: Set(now),
        ..Default::default()
    }
}

/// Service splitters only, as the benchmark's selection has it.
fn splitter_rows(
    t: &Target,
    rs: Vec<RemoteSplitter>,
    now: DateTime<Utc>,
) -> Vec<splitter::ActiveModel> {
    rs.into_iter()
        .filter(|r| r.kind == SplitterKind::Service)
        .map(|r| splitter::ActiveModel {
            integration_id: Set(t.integration),
            project_id: Set(t.project),
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
        .collect()
}

/// Ports of known splitters.
fn port_rows(
    t: &Target,
    rs: Vec<RemotePort>,
    splitters: &HashMap<String, i64>,
    now: DateTime<Utc>,
) -> Vec<port::ActiveModel> {
    rs.into_iter()
        .filter_map(|r| {
            let splitter_id = *splitters.get(&r.splitter_fid)?;
            let c = r.customer.unwrap_or_default();
            Some(port::ActiveModel {
                integration_id: Set(t.integration),
                project_id: Set(t.project),
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
        .collect()
}

async fn splitter_ids(state: &AppState, t: &Target) -> anyhow::Result<HashMap<String, i64>> {
    Ok(splitter::Entity::find()
        .filter(splitter::Column::IntegrationId.eq(t.integration))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|s| (s.fid, s.id))
        .collect())
}

/// The plain baseline: fetch the same listings, insert every page with one plain multi-row
/// INSERT, fetching and writing one after the other.
pub(crate) async fn baseline(state: &AppState, sim: &str) -> anyhow::Result<Value> {
    let t = target(state, sim).await?;
    let now = Utc::now();
    let mut written = 0u64;
    let mut ids: Option<HashMap<String, i64>> = None;
    let mut pages = std::pin::pin!(pages(&t));
    while let Some(page) = pages.try_next().await? {
        let n = match page {
            Page::Elements(rs) => {
                insert(
                    state,
                    rs.into_iter().map(|r| element_row(&t, r, now)).collect(),
                )
                .await?
            }
            Page::Splitters(rs) => insert(state, splitter_rows(&t, rs, now)).await?,
            Page::Ports(rs) => {
                if ids.is_none() {
                    ids = Some(splitter_ids(state, &t).await?);
                }
                let rows = port_rows(&t, rs, ids.as_ref().expect("read above"), now);
                insert(state, rows).await?
            }
        };
        written += n as u64;
    }
    Ok(json!({ "written": written }))
}

/// Rows per INSERT: SQLite takes at most 32,766 parameters a statement, and an OZmap page of
/// 500 splitters brings up to 8,000 ports.
const ROWS_PER_INSERT: usize = 2_000;

async fn insert<A>(state: &AppState, mut rows: Vec<A>) -> anyhow::Result<usize>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let n = rows.len();
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(ROWS_PER_INSERT));
        <A::Entity as EntityTrait>::insert_many(std::mem::replace(&mut rows, rest))
            .exec(&state.db)
            .await?;
    }
    Ok(n)
}

/// The raw-write baseline: every page fetched first (not timed), then the same rows written the
/// fastest way the engine offers (see `raw_write`); `secs` is the write's alone.
pub(crate) async fn raw(state: &AppState, sim: &str) -> anyhow::Result<Value> {
    let t = target(state, sim).await?;
    let fetched: Vec<Page> = pages(&t).try_collect().await?;
    let now = Utc::now();
    let started = std::time::Instant::now();
    let mut written = 0u64;
    let mut port_pages = Vec::new();
    let mut writer = super::raw_write::Writer::new(&state.db).await?;
    for page in fetched {
        match page {
            Page::Elements(rs) => {
                let rows: Vec<_> = rs.into_iter().map(|r| element_row(&t, r, now)).collect();
                written += writer.page(rows).await? as u64;
            }
            Page::Splitters(rs) => written += writer.page(splitter_rows(&t, rs, now)).await? as u64,
            Page::Ports(rs) => port_pages.push(rs),
        }
    }
    writer.commit_splitters().await?;
    let ids = splitter_ids(state, &t).await?;
    for rs in port_pages {
        written += writer.page(port_rows(&t, rs, &ids, now)).await? as u64;
    }
    writer.finish().await?;
    Ok(json!({ "written": written, "timed_secs": started.elapsed().as_secs_f64() }))
}

/// The platform's side of an incremental run: the same listings as [`fetch_only`], asked for
/// what changed since the cursors the last run left (less the overlap, as the engine asks), read
/// and parsed with nothing written. Run on the database of the full sync, before the measured
/// incremental run (it moves no cursor).
pub(crate) async fn fetch_incremental(state: &AppState, sim: &str) -> anyhow::Result<Value> {
    let mut target = target(state, sim).await?;
    let cursor = entity::element_selection::Entity::find()
        .filter(entity::element_selection::Column::IntegrationId.eq(target.integration))
        .all(&state.db)
        .await?
        .into_iter()
        .filter_map(|s| s.cursor)
        .min()
        .ok_or_else(|| anyhow::anyhow!("no cursor: run the full sync first"))?;
    target.query.changed_since = Some(cursor - state.settings.sync.overlap);
    let mut listed = 0u64;
    let mut pages = std::pin::pin!(pages(&target));
    while let Some(page) = pages.try_next().await? {
        listed += page.len() as u64;
    }
    Ok(json!({ "listed": listed }))
}

/// One measured phase in a process of its own, against a simulator playing `platform`.
pub(crate) fn phase_on(
    kind: &str,
    sim: &str,
    db: &str,
    key: &str,
    platform: &str,
) -> anyhow::Result<Value> {
    let out = Command::new(std::env::current_exe()?)
        .args(["phase", kind, "--sim", sim, "--db", db, "--master-key", key])
        .env("RUST_LOG", "warn")
        .env("BENCH_PLATFORM", platform)
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
    platforms: Vec<String>,
) -> anyhow::Result<()> {
    let key = mapping_gateway::crypto::MasterKey::generate().1;
    // Full sync seconds by (boxes, engine) on the first platform: the others' ratio to it.
    let mut first_full: std::collections::HashMap<(usize, String), f64> = Default::default();
    let mut ratios = Vec::new();
    println!("| platform | boxes | engine | records | baseline s | fetch-only s | raw write s | full s | full/baseline | full/(fetch+raw) | full/max(fetch,raw) | full peak RSS MiB | baseline peak RSS MiB | incremental, nothing changed s | incremental, 1% changed s | incremental/full | its fetch-only s | running gateway: 1% changed s | running: 1%/full |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (boxes, engine, platform_name, platform) in cells(&sizes, &engines, &platforms)? {
        let phase = |kind: &str, sim: &str, db: &str, key: &str| {
            phase_on(kind, sim, db, key, platform_name)
        };
        // A simulator of its own per engine: the records one engine's run touched would
        // otherwise show up, changed, in the other engine's incremental runs.
        let (_simulator, sim) = crate::common::spawn_simulator_on(boxes, platform)?;
        let db = fresh_db(engine, pg.as_deref(), &format!("base_{boxes}")).await?;
        let base = phase("baseline", &sim, &db, &key)?;
        let db = fresh_db(engine, pg.as_deref(), &format!("fetch_{boxes}")).await?;
        let fetch = phase("fetch", &sim, &db, &key)?;
        let db = fresh_db(engine, pg.as_deref(), &format!("raw_{boxes}")).await?;
        let raw = phase("raw", &sim, &db, &key)?;
        let db = fresh_db(engine, pg.as_deref(), &format!("full_{boxes}")).await?;
        let full = phase("full", &sim, &db, &key)?;
        // Right after: nothing changed (the simulator's records are over an hour old, so
        // the overlap brings none back).
        let noop = phase("incremental", &sim, &db, &key)?;
        touch_one_percent(&reqwest::Client::new(), &sim).await?;
        let incr_fetch = phase("fetch-incremental", &sim, &db, &key)?;
        let incr = phase("incremental", &sim, &db, &key)?;
        let running = phase("incremental-running", &sim, &db, &key)?;
        let secs = |v: &Value| v["secs"].as_f64().unwrap_or(0.0);
        let mib = |v: &Value| v["peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0;
        let (f, w) = (secs(&fetch), secs(&raw));
        match first_full.get(&(boxes, engine.clone())) {
            None => {
                first_full.insert((boxes, engine.clone()), secs(&full));
            }
            Some(first) => ratios.push(format!(
                "{platform_name} full / {} full, {boxes} boxes, {engine}: {:.2}",
                platforms[0],
                secs(&full) / first
            )),
        }
        println!(
        "| {platform_name} | {boxes} | {engine} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
        base["counts"]["written"],
        secs(&base),
        f,
        w,
        secs(&full),
        secs(&full) / secs(&base),
        secs(&full) / (f + w),
        secs(&full) / f.max(w),
        mib(&full),
        mib(&base),
        secs(&noop),
        secs(&incr),
        secs(&incr) / secs(&full),
        secs(&incr_fetch),
        secs(&running),
        secs(&running) / secs(&full),
    );
        eprintln!(
            "  full: {}  incremental: {}  fetched: {}  raw: {}",
            full["counts"], incr["counts"], fetch["counts"]["listed"], raw["counts"]["written"]
        );
    }
    for ratio in ratios {
        println!("{ratio}");
    }
    Ok(())
}

/// Every (boxes, engine, platform) a run measures, in order, the platform read.
pub(crate) fn cells<'a>(
    sizes: &[usize],
    engines: &'a [String],
    platforms: &'a [String],
) -> anyhow::Result<
    Vec<(
        usize,
        &'a String,
        &'a String,
        mapping_gateway::simulator::SimPlatform,
    )>,
> {
    let mut out = Vec::new();
    for boxes in sizes {
        for engine in engines {
            for name in platforms {
                let platform = mapping_gateway::simulator::SimPlatform::parse(name)
                    .ok_or_else(|| anyhow::anyhow!("unknown platform {name}"))?;
                out.push((*boxes, engine, name, platform));
            }
        }
    }
    Ok(out)
}

/// Changes 1% of the boxes, splitters and ports on the simulator at `sim`, then lets their
/// time move past the platform clock's second.
pub(crate) async fn touch_one_percent(client: &reqwest::Client, sim: &str) -> anyhow::Result<()> {
    for feature in ["cto", "splitter", "portaSplitter"] {
        client
            .post(format!("{sim}/_sim/touch"))
            .json(&json!({ "feature": feature, "share": 0.01 }))
            .send()
            .await?
            .error_for_status()?;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Ok(())
}

/// An incremental run of a running gateway: one process runs an incremental sync first (a
/// warm-up: it relists what the run before changed, inside the cursor's overlap), then, once 1%
/// of the records changed on the simulator, the measured one. Its pool's connections, prepared
/// statements, platform session and column lists are then what a server's scheduled runs find:
/// made by an earlier run. The warm-up reads no more of the plant than it relists.
/// `timed_secs` is the measured run's.
pub(crate) async fn running(state: &AppState, sim: &str) -> anyhow::Result<Value> {
    let warm_up = engine_run(state, sim, mapping_gateway::sync::Mode::Incremental).await?;
    touch_one_percent(&reqwest::Client::new(), sim).await?;
    let started = std::time::Instant::now();
    let changed = engine_run(state, sim, mapping_gateway::sync::Mode::Incremental).await?;
    Ok(json!({
        "timed_secs": started.elapsed().as_secs_f64(),
        "warm_up": warm_up,
        "changed": changed,
    }))
}
