//! The scale table (`scale`): every size on every engine and platform, full and incremental
//! runs, peak RSS and the database's size on disk.

use serde_json::Value;

use super::common::*;
use super::sync_bench::{cells, phase_on, touch_one_percent};

/// The platform requests the simulator at `sim` has answered so far.
async fn calls(client: &reqwest::Client, sim: &str) -> anyhow::Result<u64> {
    let stats: Value = client
        .get(format!("{sim}/_sim/stats"))
        .send()
        .await?
        .json()
        .await?;
    Ok(stats["calls"].as_u64().unwrap_or(0))
}

/// The database's size on disk, in MiB: SQLite's file with its WAL, PostgreSQL's database.
async fn size_on_disk(db: &str) -> anyhow::Result<f64> {
    let bytes = match db.strip_prefix("sqlite://") {
        Some(path) => ["", "-wal", "-shm"]
            .iter()
            .filter_map(|end| std::fs::metadata(format!("{path}{end}")).ok())
            .map(|m| m.len() as f64)
            .sum(),
        None => {
            use sea_orm::ConnectionTrait;
            let conn = sea_orm::Database::connect(db).await?;
            conn.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_database_size(current_database())::float8 AS bytes",
            ))
            .await?
            .map(|r| r.try_get::<f64>("", "bytes"))
            .transpose()?
            .unwrap_or(0.0)
        }
    };
    Ok(bytes / 1024.0 / 1024.0)
}

/// The scale table (`scale`): for each size, engine and platform, a full run into a fresh
/// database, an incremental run with nothing changed, one after 1% of the boxes, splitters and
/// ports changed, the platform requests of each incremental run, the full run's peak RSS and
/// the database's size on disk after it, and a running gateway's 1% run (an incremental run in
/// the same process before it, [`crate::sync_bench::running`]). Each run in a child process of
/// its own.
pub(crate) async fn scale(
    sizes: Vec<usize>,
    engines: Vec<String>,
    pg: Option<String>,
    platforms: Vec<String>,
) -> anyhow::Result<()> {
    let key = mapping_gateway::crypto::MasterKey::generate().1;
    let client = reqwest::Client::new();
    println!("| platform | boxes | engine | records written | full s | peak RSS MiB | database MiB | incremental, nothing changed s (requests) | incremental, 1% changed s (requests) | 1% / full | running gateway: 1% changed s | running: 1% / full |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (boxes, engine, platform_name, platform) in cells(&sizes, &engines, &platforms)? {
        let phase = |kind: &str, db: &str, sim: &str| phase_on(kind, sim, db, &key, platform_name);
        let (_simulator, sim) = crate::common::spawn_simulator_on(boxes, platform)?;
        let db = fresh_db(engine, pg.as_deref(), &format!("scale_{boxes}")).await?;
        let full = phase("full", &db, &sim)?;
        let size = size_on_disk(&db).await?;
        let before = calls(&client, &sim).await?;
        let noop = phase("incremental", &db, &sim)?;
        let noop_calls = calls(&client, &sim).await? - before;
        touch_one_percent(&client, &sim).await?;
        let before = calls(&client, &sim).await?;
        let changed = phase("incremental", &db, &sim)?;
        let changed_calls = calls(&client, &sim).await? - before;
        let running = phase("incremental-running", &db, &sim)?;
        let secs = |v: &Value| v["secs"].as_f64().unwrap_or(0.0);
        let written = full["counts"]["created"].as_i64().unwrap_or(0)
            + full["counts"]["updated"].as_i64().unwrap_or(0);
        println!(
            "| {platform_name} | {boxes} | {engine} | {written} | {:.2} | {:.0} | {size:.0} | {:.3} ({noop_calls}) | {:.3} ({changed_calls}) | {:.3} | {:.3} | {:.3} |",
            secs(&full),
            full["peak_rss_kb"].as_f64().unwrap_or(0.0) / 1024.0,
            secs(&noop),
            secs(&changed),
            secs(&changed) / secs(&full),
            secs(&running),
            secs(&running) / secs(&full),
        );
    }
    Ok(())
}
