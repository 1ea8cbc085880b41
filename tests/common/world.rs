//! Helpers of the sync suites: a linked simulator with a client of its own, starting and
//! waiting for runs, reading the local copy and the simulator's records.
#![allow(dead_code)]

use std::collections::BTreeSet;

use chrono::Utc;
use mapping_gateway::geosite::GeositeClient;
use mapping_gateway::simulator::RunningSimulator;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use super::TestApp;

pub const RUN_FIELDS: &str = "id status mode trigger cursorBefore cursorAfter elementFid
    counts { fetched created updated deleted unchanged orphaned conflicts } error { code message }";

pub struct World {
    pub sim: RunningSimulator,
    pub geo: GeositeClient,
    pub id: String,
    pub project: i64,
}

impl World {
    /// The platform id of a store record, as the gateway sees it.
    pub fn fid(&self, feature: &str, fid: i64) -> String {
        self.sim.remote_fid(feature, fid)
    }

    /// The store fid of a platform id.
    pub fn store_fid(&self, feature: &str, remote: &str) -> i64 {
        super::store_fid(&self.sim, feature, remote)
    }

    /// Edits a platform record (its change time moves), on either platform.
    pub fn save(&self, feature: &str, fid: i64, fields: &[(&str, Value)]) {
        super::edit(&self.sim, feature, fid, fields)
    }

    /// Records a full sync deletes when `delete_port` takes this port away: the port, or on
    /// OZmap its splitter and every port of it.
    pub fn gone_with_port(&self, remote: &str) -> u64 {
        use mapping_gateway::simulator::SimPlatform;
        if self.sim.platform == SimPlatform::Geosite {
            return 1;
        }
        let fid = self.store_fid("portaSplitter", remote);
        let splitter = field(&self.sim, "portaSplitter", fid, "fidSplitter");
        let store = self.sim.state.store.read().unwrap();
        let t = &store.tables["portaSplitter"];
        let c = t.col("fidSplitter").unwrap();
        1 + t.rows.values().filter(|r| r[c] == splitter).count() as u64
    }

    /// Records an edit of one port changes besides the port: on OZmap its splitter, whose
    /// change time moves with its ports'.
    pub fn with_port_edit(&self) -> u64 {
        match self.sim.platform {
            mapping_gateway::simulator::SimPlatform::Geosite => 0,
            mapping_gateway::simulator::SimPlatform::Ozmap => 1,
        }
    }

    /// The listing a `failListPage` fault breaks to fail a port listing, and the page: on
    /// OZmap the properties read for each page of splitters.
    pub fn ports_listing(&self) -> (&'static str, u32) {
        match self.sim.platform {
            mapping_gateway::simulator::SimPlatform::Geosite => ("portaSplitter", 3),
            mapping_gateway::simulator::SimPlatform::Ozmap => ("properties", 1),
        }
    }

    /// Takes a port off the platform: on Geosite the port record; on OZmap, where a port is an
    /// output of its splitter and cannot leave alone, the splitter with its ports.
    pub fn delete_port(&self, remote: &str) {
        use mapping_gateway::simulator::SimPlatform;
        let fid = self.store_fid("portaSplitter", remote);
        if self.sim.platform == SimPlatform::Geosite {
            return self.delete("portaSplitter", fid);
        }
        let splitter = field(&self.sim, "portaSplitter", fid, "fidSplitter");
        let splitter = splitter.as_i64().unwrap();
        let ports: Vec<i64> = {
            let store = self.sim.state.store.read().unwrap();
            let t = &store.tables["portaSplitter"];
            let c = t.col("fidSplitter").unwrap();
            t.rows
                .iter()
                .filter(|(_, r)| r[c] == json!(splitter))
                .map(|(f, _)| *f)
                .collect()
        };
        for port in ports {
            self.delete("portaSplitter", port);
        }
        self.delete("splitter", splitter);
    }

    /// Deletes a platform record, on either platform.
    pub fn delete(&self, feature: &str, fid: i64) {
        super::remove(&self.sim, feature, fid)
    }
}

pub async fn world(app: &TestApp, boxes: usize) -> World {
    let (sim, id, project) = super::linked_simulator(app, boxes, 11).await;
    let geo = GeositeClient::new(
        &sim.url,
        "integracao",
        "geosite",
        mapping_gateway::geosite::ClientOptions {
            network: super::loopback_allowed(),
            ..Default::default()
        },
    )
    .unwrap();
    World {
        sim,
        geo,
        id,
        project,
    }
}

pub async fn start(app: &TestApp, id: &str, mode: &str, allow: bool) -> Value {
    app.ok(
        &format!("mutation($i: ID!, $m: SyncMode!, $a: Boolean!) {{ startSync(integrationId: $i, mode: $m, allowMassDeletion: $a) {{ {RUN_FIELDS} }} }}"),
        json!({ "i": id, "m": mode, "a": allow }),
    )
    .await["startSync"]
        .clone()
}

/// Waits until the run has ended; returns it.
pub async fn finished(app: &TestApp, run_id: &str) -> Value {
    app.wait_run(run_id, RUN_FIELDS).await
}

pub async fn sync(app: &TestApp, id: &str, mode: &str) -> Value {
    let run = start(app, id, mode, false).await;
    finished(app, run["id"].as_str().unwrap()).await
}

pub async fn succeeded(app: &TestApp, id: &str, mode: &str) -> Value {
    let run = sync(app, id, mode).await;
    if run["status"] != "SUCCEEDED" {
        let logs = super::captured_logs();
        let failures: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
        panic!("{run}\n{}", failures.join("\n"));
    }
    run
}

/// Local rows of a table.
pub async fn local(app: &TestApp, table: &str) -> u64 {
    mapping_gateway::store::plant::count(&app.state.db, table, "1 = 1")
        .await
        .unwrap()
}

/// What the simulator holds for a project: (CTOs, service splitters, their ports).
pub fn expected(sim: &RunningSimulator, project: i64) -> (u64, u64, u64) {
    let store = sim.state.store.read().unwrap();
    let ctos = store.tables["cto"]
        .rows
        .values()
        .filter(|r| r[2] == json!(project))
        .count();
    let splitters = &store.tables["splitter"];
    let service: Vec<i64> = splitters
        .rows
        .values()
        .filter(|r| r[2] == json!(project) && r[4] == json!("Atendimento"))
        .map(|r| r[0].as_i64().unwrap())
        .collect();
    let ports = store.tables["portaSplitter"]
        .rows
        .values()
        .filter(|r| r[1].as_i64().is_some_and(|s| service.contains(&s)))
        .count();
    (ctos as u64, service.len() as u64, ports as u64)
}

pub async fn cursors(app: &TestApp) -> Vec<Option<chrono::DateTime<Utc>>> {
    entity::element_selection::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.cursor)
        .collect()
}

/// A platform record's fid from the simulator: the first row of `feature` in the project
/// matching `pick`.
pub fn pick(
    sim: &RunningSimulator,
    feature: &str,
    project: i64,
    f: impl Fn(&[Value]) -> bool,
) -> i64 {
    let store = sim.state.store.read().unwrap();
    let t = &store.tables[feature];
    let c = t.col("fidProjeto").unwrap();
    t.rows
        .values()
        .find(|r| r[c] == json!(project) && f(r))
        .map(|r| r[0].as_i64().unwrap())
        .unwrap()
}

pub fn service_port(sim: &RunningSimulator, project: i64) -> i64 {
    let service: Vec<i64> = {
        let store = sim.state.store.read().unwrap();
        store.tables["splitter"]
            .rows
            .values()
            .filter(|r| r[2] == json!(project) && r[4] == json!("Atendimento"))
            .map(|r| r[0].as_i64().unwrap())
            .collect()
    };
    pick(sim, "portaSplitter", project, |r| {
        r[1].as_i64().is_some_and(|s| service.contains(&s))
    })
}

/// Whether the local copy has the port of platform id `fid`.
pub async fn entity_exists_port(app: &TestApp, fid: &str) -> bool {
    entity::port::Entity::find()
        .filter(entity::port::Column::Fid.eq(fid))
        .count(&app.state.db)
        .await
        .unwrap()
        > 0
}

pub async fn bind(
    app: &TestApp,
    integration_id: i64,
    port_id: Option<i64>,
    contract: &str,
    status: &str,
) -> i64 {
    super::insert_binding(
        app,
        integration_id,
        port_id,
        contract,
        "52998224725",
        status,
    )
    .await
}

/// A simulator of `boxes` boxes linked to `app`, with `items` selected and one full sync done;
/// returns the simulator and the integration id.
pub async fn synced(app: &TestApp, boxes: usize, items: &[&str]) -> (RunningSimulator, String) {
    let (sim, id, _) = super::linked_simulator(app, boxes, 21).await;
    app.ok(
        "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { id } }",
        json!({ "i": id, "items": items }),
    )
    .await;
    succeeded(app, &id, "FULL").await;
    (sim, id)
}

/// The database id of an integration from its GraphQL id.
pub fn db_id(id: &str) -> i64 {
    mapping_gateway::graphql::ids::decode(
        mapping_gateway::graphql::ids::INTEGRATION,
        &async_graphql::ID(id.into()),
    )
    .unwrap()
}

/// Sets one column of a platform record in the simulator's store, as a broken or edited
/// installation would have it (without touching `dataAlteracao`).
pub fn set_field(sim: &RunningSimulator, feature: &str, fid: i64, column: &str, value: Value) {
    sim.state.edit(|store| {
        let table = store.tables.get_mut(feature).unwrap();
        let c = table.col(column).unwrap();
        table.rows.get_mut(&fid).unwrap()[c] = value;
    });
}

/// A column of a platform record in the simulator's store.
pub fn field(sim: &RunningSimulator, feature: &str, fid: i64, column: &str) -> Value {
    let store = sim.state.store.read().unwrap();
    let table = &store.tables[feature];
    table.rows[&fid][table.col(column).unwrap()].clone()
}

/// The platform fids of `feature` in the project matching `f`.
pub fn fids(
    sim: &RunningSimulator,
    feature: &str,
    project: i64,
    f: impl Fn(&[Value]) -> bool,
) -> Vec<i64> {
    let store = sim.state.store.read().unwrap();
    let t = &store.tables[feature];
    let c = t.col("fidProjeto").unwrap();
    t.rows
        .values()
        .filter(|r| r[c] == json!(project) && f(r))
        .map(|r| r[0].as_i64().unwrap())
        .collect()
}

/// The local port of a platform fid.
pub async fn port_of(app: &TestApp, fid: i64) -> Option<entity::port::Model> {
    entity::port::Entity::find()
        .filter(entity::port::Column::Fid.eq(fid.to_string()))
        .one(&app.state.db)
        .await
        .unwrap()
}

/// The local splitter of a platform fid.
pub async fn splitter_of(app: &TestApp, fid: i64) -> Option<entity::splitter::Model> {
    entity::splitter::Entity::find()
        .filter(entity::splitter::Column::Fid.eq(fid.to_string()))
        .one(&app.state.db)
        .await
        .unwrap()
}

/// A binding's row.
pub async fn binding_row(app: &TestApp, id: i64) -> entity::binding::Model {
    entity::binding::Entity::find_by_id(id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
}

/// Starts a FULL run whose platform answers `latency_ms` late; returns its GraphQL id and database id once it has
/// fetched its first page.
pub async fn slow_run(app: &TestApp, w: &World, latency_ms: u64) -> (String, i64) {
    w.sim.state.set_faults(mapping_gateway::simulator::Faults {
        latency_ms,
        ..Default::default()
    });
    let run = start(app, &w.id, "FULL", false).await;
    let id = run["id"].as_str().unwrap().to_owned();
    let db_id = mapping_gateway::graphql::ids::decode(
        mapping_gateway::graphql::ids::SYNC_RUN,
        &async_graphql::ID(id.clone()),
    )
    .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            let row = entity::sync_run::Entity::find_by_id(db_id)
                .one(&app.state.db)
                .await
                .unwrap()
                .unwrap();
            if row.fetched > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the run fetches a page");
    (id, db_id)
}

/// What the plant looks like, platform or local: boxes (item, fid, name), splitters (fid, box
/// fid, kind) and ports (fid, splitter fid, number, status).
#[derive(Debug, PartialEq, Eq)]
pub struct Plant {
    pub boxes: BTreeSet<(String, String, String)>,
    pub splitters: BTreeSet<(String, String, String)>,
    pub ports: BTreeSet<(String, String, i64, String)>,
}

/// The local copy of an integration's plant.
pub async fn local_plant(app: &TestApp, integration: i64) -> Plant {
    let db = &app.state.db;
    let boxes = entity::element::Entity::find()
        .filter(entity::element::Column::IntegrationId.eq(integration))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.item.to_string(), e.fid, e.name))
        .collect();
    let splitters: Vec<entity::splitter::Model> = entity::splitter::Entity::find()
        .filter(entity::splitter::Column::IntegrationId.eq(integration))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let fid_of: std::collections::HashMap<i64, String> =
        splitters.iter().map(|s| (s.id, s.fid.clone())).collect();
    let ports = entity::port::Entity::find()
        .filter(entity::port::Column::IntegrationId.eq(integration))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.fid,
                fid_of[&p.splitter_id].clone(),
                p.number as i64,
                p.status.to_string(),
            )
        })
        .collect();
    let splitters = splitters
        .into_iter()
        .map(|s| {
            (
                s.fid,
                s.box_fid.unwrap_or_else(|| "null".into()),
                s.kind.to_string(),
            )
        })
        .collect();
    Plant {
        boxes,
        splitters,
        ports,
    }
}
