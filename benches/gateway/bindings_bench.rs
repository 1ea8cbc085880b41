//! The delivery benchmark: a burst of confirmed bindings, delivered to the simulator by the
//! outbox worker.
//!
//! The gateway runs in this process (with its worker, as `serve` runs it); the simulator in a
//! child process. After a full sync, `n` PENDING bindings are made on FREE service ports (not
//! measured), then all are confirmed at once, 16 at a time through the domain's `change`, and
//! the clock runs until every push is DELIVERED. The simulator's own counters give the platform
//! requests and logins the deliveries cost.
//!
//! The baseline, in the same run: the same records written straight through one platform client
//! (the wire's limit), one at a time and 8 at a time, with no database in the way.

use std::time::Instant;

use futures::StreamExt;
use rand::Rng;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use serde_json::{json, Value};

use mapping_gateway::access::Actor;
use mapping_gateway::bindings::{self, CustomerInput};
use mapping_gateway::config::DbConfig;
use mapping_gateway::platform::{CustomerRecord, PortChange};
use mapping_gateway::server;
use mapping_gateway::sync::Mode;

use super::common::*;

async fn sim_stats(http: &reqwest::Client, sim: &str) -> anyhow::Result<(u64, u64)> {
    let stats: Value = http
        .get(format!("{sim}/_sim/stats"))
        .send()
        .await?
        .json()
        .await?;
    Ok((
        stats["calls"].as_u64().unwrap_or(0),
        stats["logins"].as_u64().unwrap_or(0),
    ))
}

pub(crate) async fn bindings_bench(
    boxes: usize,
    n: usize,
    engine: &str,
    pg: Option<&str>,
) -> anyhow::Result<()> {
    let (_sim_process, sim) = spawn_simulator(boxes)?;
    let config = DbConfig {
        database_url: fresh_db(engine, pg, "bindings_bench").await?,
        master_key: Some(mapping_gateway::crypto::MasterKey::generate().1),
    };
    let state = server::open_with(&config, local_settings()).await?;
    engine_run(&state, &sim, Mode::Full).await?;
    let integration_id = integration(&state, &sim).await?;
    let integration = mapping_gateway::integrations::find(&state.db, integration_id)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;

    // FREE ports of service splitters: the ones a binding may take.
    let service: Vec<i64> = entity::splitter::Entity::find()
        .filter(entity::splitter::Column::Kind.eq(entity::splitter::SplitterKind::Service))
        .select_only()
        .column(entity::splitter::Column::Id)
        .into_tuple()
        .all(&state.db)
        .await?;
    let ports: Vec<entity::port::Model> = entity::port::Entity::find()
        .filter(entity::port::Column::Status.eq(entity::port::PortStatus::Free))
        .filter(entity::port::Column::SplitterId.is_in(service))
        .limit(n as u64)
        .all(&state.db)
        .await?;
    anyhow::ensure!(
        ports.len() == n,
        "only {} free service ports in {boxes} boxes: use more boxes",
        ports.len()
    );

    let actor = Actor::system("bench");
    let started = Instant::now();
    let made: Vec<_> = futures::stream::iter(ports.iter().enumerate())
        .map(|(i, port)| {
            let (state, actor) = (&state, &actor);
            async move {
                let document: cpf::Cpf = rand::thread_rng().gen();
                bindings::bind(
                    state,
                    actor,
                    port.id,
                    CustomerInput {
                        document: document.as_str().to_owned(),
                        contract: format!("B{i:06}"),
                        name: format!("Cliente {i}"),
                        address: None,
                        plan: None,
                    },
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let made = made
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(mapping_gateway::Error::into_anyhow)?;
    eprintln!(
        "{n} PENDING bindings made in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let http = reqwest::Client::new();
    let (calls_before, logins_before) = sim_stats(&http, &sim).await?;
    let burst = Instant::now();
    let confirmed: Vec<_> = futures::stream::iter(made.iter())
        .map(|b| {
            let (state, actor) = (&state, &actor);
            async move { bindings::change(state, actor, b.id, bindings::Change::Confirm).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for c in confirmed {
        c.map_err(mapping_gateway::Error::into_anyhow)?;
    }
    let confirm_secs = burst.elapsed().as_secs_f64();
    loop {
        let delivered = entity::push_outbox::Entity::find()
            .filter(
                entity::push_outbox::Column::Status.eq(entity::push_outbox::PushStatus::Delivered),
            )
            .count(&state.db)
            .await?;
        if delivered as usize >= n {
            break;
        }
        anyhow::ensure!(
            burst.elapsed().as_secs() < 600,
            "only {delivered} of {n} delivered after 600 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let delivered_secs = burst.elapsed().as_secs_f64();
    let (calls_after, logins_after) = sim_stats(&http, &sim).await?;
    let calls = calls_after - calls_before;
    let logins = logins_after - logins_before;

    // The baseline: the same records through one client, straight to the platform.
    let platform = state
        .platform(&integration)
        .map_err(mapping_gateway::Error::into_anyhow)?;
    let records: Vec<(String, CustomerRecord)> = made
        .iter()
        .zip(&ports)
        .map(|(b, p)| {
            (
                p.fid.clone(),
                CustomerRecord {
                    contract: b.contract.clone(),
                    document: b.document.clone(),
                    name: b.name.clone(),
                },
            )
        })
        .collect();
    let mut raw = Vec::new();
    for in_flight in [1usize, 8] {
        let t = Instant::now();
        let written: Vec<_> = futures::stream::iter(records.iter())
            .map(|(fid, record)| {
                let (platform, key) = (&platform, &integration.key);
                async move {
                    platform
                        .set_port_customer(fid, PortChange::Occupy(record), key)
                        .await
                }
            })
            .buffer_unordered(in_flight)
            .collect()
            .await;
        for w in written {
            w.map_err(mapping_gateway::Error::into_anyhow)?;
        }
        raw.push(t.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        json!({
            "engine": engine, "bindings": n, "boxes": boxes,
            "confirm_burst_s": confirm_secs,
            "all_delivered_s": delivered_secs,
            "delivered_after_last_confirm_s": delivered_secs - confirm_secs,
            "deliveries_per_s": n as f64 / delivered_secs,
            "platform_requests": calls, "requests_per_delivery": calls as f64 / n as f64,
            "logins": logins,
            "raw_writes_1_s": raw[0], "raw_writes_8_s": raw[1],
            "ratio_to_raw_8": delivered_secs / raw[1],
        })
    );
    println!(
        "| {engine} | {n} | {confirm_secs:.2} s | {delivered_secs:.2} s ({:.2} s after the last confirm) | {:.3} ({calls} requests, {logins} logins) | {:.2} s / {:.2} s | {:.2} |",
        delivered_secs - confirm_secs,
        calls as f64 / n as f64,
        raw[0],
        raw[1],
        delivered_secs / raw[1]
    );
    Ok(())
}
