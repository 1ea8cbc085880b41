//! A property of the sync engine against the simulator: random sequences of platform edits
//! (add, remove, move, renumber, change kind, break a record, touch) interleaved with FULL,
//! INCREMENTAL and element syncs and selection changes. After each FULL the local copy equals
//! the platform's selected plant, and no binding was orphaned whose port the platform still
//! has in that plant. On SQLite and PostgreSQL.
//!
//! `SYNC_PROPERTY_SEQUENCES` (default 100) sets the number of sequences and
//! `SYNC_PROPERTY_SEED` replays one run (the seed is printed); `SYNC_PROPERTY_ONLY=N` replays
//! only its sequence N.

mod common;

use std::collections::BTreeSet;

use common::world::*;
use common::{Engine, TestApp};
use futures::StreamExt;
use mapping_gateway::simulator::RunningSimulator;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};

/// Steps (an edit, then maybe a sync) of one sequence.
const STEPS: usize = 8;

struct Sequence<'a> {
    app: &'a TestApp,
    sim: RunningSimulator,
    id: String,
    project: i64,
    rng: StdRng,
    items: Vec<&'static str>,
    /// Bindings already orphaned (a binding stays orphaned until rebound or released, even if
    /// its port comes back into the selection).
    orphaned: BTreeSet<i64>,
}

fn now() -> Value {
    json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn status(app_value: &str) -> &'static str {
    match mapping_gateway::geosite::wire::port_status(Some(&json!(app_value))) {
        entity::port::PortStatus::Free => "FREE",
        entity::port::PortStatus::Occupied => "OCCUPIED",
        entity::port::PortStatus::Damaged => "DAMAGED",
        entity::port::PortStatus::Reserved => "RESERVED",
    }
}

impl Sequence<'_> {
    /// Sets columns of a record and its change time, as an edit on the platform does.
    fn edit(&self, feature: &str, fid: i64, fields: &[(&str, Value)]) {
        self.sim.state.edit(|store| {
            let table = store.tables.get_mut(feature).unwrap();
            let cols: Vec<(usize, Value)> = fields
                .iter()
                .map(|(c, v)| (table.col(c).unwrap(), v.clone()))
                .chain([(table.col("dataAlteracao").unwrap(), now())])
                .collect();
            let row = table.rows.get_mut(&fid).unwrap();
            for (c, v) in cols {
                row[c] = v;
            }
        });
    }

    fn all(&self, feature: &str) -> Vec<i64> {
        fids(&self.sim, feature, self.project, |_| true)
    }

    fn pick(&mut self, feature: &str) -> Option<i64> {
        self.all(feature).choose(&mut self.rng).copied()
    }

    fn ports_of(&self, splitter: i64) -> Vec<i64> {
        fids(&self.sim, "portaSplitter", self.project, |r| {
            r[1] == json!(splitter)
        })
    }

    /// The platform's plant, as the selection keeps it.
    fn platform(&self) -> Plant {
        let store = self.sim.state.store.read().unwrap();
        let p = json!(self.project);
        let mut boxes = BTreeSet::new();
        for (feature, item) in [("cto", "CTO"), ("caixaEmenda", "CEO")] {
            if self.items.contains(&item) {
                for r in store.tables[feature].rows.values().filter(|r| r[2] == p) {
                    boxes.insert((item.into(), r[0].to_string(), r[1].as_str().unwrap().into()));
                }
            }
        }
        let mut splitters = BTreeSet::new();
        for r in store.tables["splitter"].rows.values().filter(|r| r[2] == p) {
            let kind = if r[4] == json!("Atendimento") {
                "SERVICE"
            } else {
                "DISTRIBUTION"
            };
            if self.items.contains(&kind) {
                splitters.insert((r[0].to_string(), r[3].to_string(), kind.into()));
            }
        }
        let kept: BTreeSet<String> = splitters.iter().map(|s| s.0.clone()).collect();
        let ports = store.tables["portaSplitter"]
            .rows
            .values()
            .filter(|r| r[2] == p && kept.contains(&r[1].to_string()))
            .map(|r| {
                (
                    r[0].to_string(),
                    r[1].to_string(),
                    r[3].as_i64().unwrap_or(-1),
                    status(r[4].as_str().unwrap()).into(),
                )
            })
            .collect();
        Plant {
            boxes,
            splitters,
            ports,
        }
    }

    /// The local copy of this integration.
    async fn local(&self) -> Plant {
        local_plant(self.app, db_id(&self.id)).await
    }

    /// One random platform edit; a broken record is repaired after one sync, since the copy
    /// keeps it as it was.
    async fn edit_something(&mut self, trace: &mut Vec<String>) {
        let op = self.rng.gen_range(0..9);
        match op {
            0 => {
                // A new box with a service splitter of four ports.
                let (project, n) = (self.project, self.rng.gen_range(0..1000));
                let t = now();
                let fid = self.sim.state.edit(|s| {
                    let b = s.insert(
                        "cto",
                        &[
                            ("nome", json!(format!("CTO-NOVA-{n}"))),
                            ("fidProjeto", json!(project)),
                            ("geometry", json!("POINT (-38.5 -3.7)")),
                            ("dataAlteracao", t.clone()),
                        ],
                    );
                    let sp = s.insert(
                        "splitter",
                        &[
                            ("nome", json!("SPL")),
                            ("fidProjeto", json!(project)),
                            ("fidCaixa", json!(b)),
                            ("tipo", json!("Atendimento")),
                            ("relacao", json!("1:4")),
                            ("dataAlteracao", t.clone()),
                        ],
                    );
                    for number in 1..=4 {
                        s.insert(
                            "portaSplitter",
                            &[
                                ("fidSplitter", json!(sp)),
                                ("fidProjeto", json!(project)),
                                ("numero", json!(number)),
                                ("status", json!("LIVRE")),
                                ("dataAlteracao", t.clone()),
                            ],
                        );
                    }
                    b
                });
                trace.push(format!("add box {fid}"));
            }
            1 => {
                if let Some(port) = self.pick("portaSplitter") {
                    self.sim.state.edit(|s| {
                        s.tables
                            .get_mut("portaSplitter")
                            .unwrap()
                            .rows
                            .remove(&port)
                    });
                    trace.push(format!("remove port {port}"));
                }
            }
            2 => {
                if let Some(splitter) = self.pick("splitter") {
                    let ports = self.ports_of(splitter);
                    self.sim.state.edit(|s| {
                        s.tables.get_mut("splitter").unwrap().rows.remove(&splitter);
                        for p in &ports {
                            s.tables.get_mut("portaSplitter").unwrap().rows.remove(p);
                        }
                    });
                    trace.push(format!("remove splitter {splitter}"));
                }
            }
            3 => {
                let boxes = self.all("cto");
                if let (Some(splitter), Some(to)) =
                    (self.pick("splitter"), boxes.choose(&mut self.rng))
                {
                    self.edit("splitter", splitter, &[("fidCaixa", json!(to))]);
                    trace.push(format!("move splitter {splitter} to box {to}"));
                }
            }
            4 => {
                // Two ports of a splitter swap numbers, or one moves to another splitter.
                if let Some(splitter) = self.pick("splitter") {
                    let ports = self.ports_of(splitter);
                    if ports.len() >= 2 {
                        let (a, b) = (ports[0], ports[ports.len() - 1]);
                        let na = field(&self.sim, "portaSplitter", a, "numero");
                        let nb = field(&self.sim, "portaSplitter", b, "numero");
                        self.edit("portaSplitter", a, &[("numero", nb)]);
                        self.edit("portaSplitter", b, &[("numero", na)]);
                        trace.push(format!("swap numbers of ports {a} and {b}"));
                    }
                }
            }
            5 => {
                if let (Some(port), Some(to)) = (self.pick("portaSplitter"), self.pick("splitter"))
                {
                    let top = self
                        .ports_of(to)
                        .iter()
                        .map(|p| {
                            field(&self.sim, "portaSplitter", *p, "numero")
                                .as_i64()
                                .unwrap()
                        })
                        .max()
                        .unwrap_or(0);
                    self.edit(
                        "portaSplitter",
                        port,
                        &[("fidSplitter", json!(to)), ("numero", json!(top + 1))],
                    );
                    trace.push(format!("move port {port} to splitter {to} as {}", top + 1));
                }
            }
            6 => {
                if let Some(splitter) = self.pick("splitter") {
                    let kind =
                        if field(&self.sim, "splitter", splitter, "tipo") == json!("Atendimento") {
                            "Distribuição"
                        } else {
                            "Atendimento"
                        };
                    self.edit("splitter", splitter, &[("tipo", json!(kind))]);
                    trace.push(format!("splitter {splitter} becomes {kind}"));
                }
            }
            7 => {
                // Broken for one sync, then repaired.
                if let Some(port) = self.pick("portaSplitter") {
                    let number = field(&self.sim, "portaSplitter", port, "numero");
                    set_field(&self.sim, "portaSplitter", port, "numero", json!(null));
                    trace.push(format!("break port {port}"));
                    self.sync_something(trace, false).await;
                    set_field(&self.sim, "portaSplitter", port, "numero", number);
                }
            }
            _ => {
                let feature = ["cto", "splitter", "portaSplitter"]
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap();
                if let Some(fid) = self.pick(feature) {
                    self.edit(feature, fid, &[]);
                    trace.push(format!("touch {feature} {fid}"));
                }
            }
        }
    }

    /// A random sync or selection change; `check` compares the copy after a FULL run.
    async fn sync_something(&mut self, trace: &mut Vec<String>, check: bool) {
        match self.rng.gen_range(0..6) {
            0 | 1 => self.full(trace, check).await,
            2 | 3 => {
                trace.push("INCREMENTAL".into());
                let run = start(self.app, &self.id, "INCREMENTAL", true).await;
                let run = finished(self.app, run["id"].as_str().unwrap()).await;
                assert_eq!(run["status"], "SUCCEEDED", "{run}\n{}", trace.join("\n"));
                self.check_orphans(trace).await;
            }
            4 => {
                let Some(fid) = self.pick("cto") else { return };
                trace.push(format!("syncElement {fid}"));
                let q = "mutation($i: ID!, $f: String!) { syncElement(integrationId: $i, fid: $f) { id } }";
                let run = self
                    .app
                    .ok(q, json!({ "i": self.id, "f": fid.to_string() }))
                    .await;
                let run = finished(self.app, run["syncElement"]["id"].as_str().unwrap()).await;
                let guarded = run["error"]["code"] == "MASS_DELETION_GUARD";
                assert!(
                    run["status"] == "SUCCEEDED" || guarded,
                    "{run}\n{}",
                    trace.join("\n")
                );
                self.check_orphans(trace).await;
            }
            _ => {
                let mut items = vec!["SERVICE", "CTO"];
                for optional in ["DISTRIBUTION", "CEO"] {
                    if self.rng.gen_bool(0.5) {
                        items.push(optional);
                    }
                }
                trace.push(format!("select {items:?}"));
                self.app
                    .ok(
                        "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { id } }",
                        json!({ "i": self.id, "items": items }),
                    )
                    .await;
                self.items = items;
            }
        }
    }

    async fn full(&mut self, trace: &mut Vec<String>, check: bool) {
        trace.push("FULL".into());
        let run = start(self.app, &self.id, "FULL", true).await;
        let run = finished(self.app, run["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}\n{}", trace.join("\n"));
        self.check_orphans(trace).await;
        if check {
            self.check(trace).await;
        }
    }

    /// The copy equals the platform's selected plant.
    async fn check(&self, trace: &[String]) {
        let (local, platform) = (self.local().await, self.platform());
        assert_eq!(
            local,
            platform,
            "local (left) and platform (right)\n{}",
            trace.join("\n")
        );
    }

    /// Bindings the last run orphaned had ports the platform no longer has in the selected plant.
    async fn check_orphans(&mut self, trace: &[String]) {
        let platform = self.platform();
        let ports: BTreeSet<&str> = platform.ports.iter().map(|p| p.0.as_str()).collect();
        for b in entity::binding::Entity::find()
            .filter(entity::binding::Column::IntegrationId.eq(db_id(&self.id)))
            .all(&self.app.state.db)
            .await
            .unwrap()
        {
            if b.status == entity::binding::BindingStatus::Orphaned && self.orphaned.insert(b.id) {
                let fid = b.snapshot_port_fid.clone().unwrap_or_default();
                assert!(
                    !ports.contains(fid.as_str()),
                    "binding {} orphaned though port {fid} is there\n{}",
                    b.id,
                    trace.join("\n")
                );
            }
        }
    }
}

async fn sequences(engine: Engine) {
    let Some(app) = TestApp::start(engine).await else {
        return;
    };
    let count: usize = std::env::var("SYNC_PROPERTY_SEQUENCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("SYNC_PROPERTY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("SYNC_PROPERTY_SEED={seed} ({engine:?}, {count} sequences)");
    let mut rng = StdRng::seed_from_u64(seed);
    let only: Option<usize> = std::env::var("SYNC_PROPERTY_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    let seeds: Vec<(usize, u64, u64)> = (0..count)
        .map(|n| (n, rng.gen(), rng.gen()))
        .filter(|(n, _, _)| only.is_none_or(|o| o == *n))
        .collect();
    // A few sequences at a time, each on an integration and simulator of its own: most of a
    // sequence is waiting on round trips.
    futures::stream::iter(seeds)
        .for_each_concurrent(4, |(n, sim_seed, seq_seed)| {
            one_sequence(&app, n, sim_seed, seq_seed)
        })
        .await;
}

async fn one_sequence(app: &TestApp, n: usize, sim_seed: u64, seq_seed: u64) {
    let (sim, id, project) = common::linked_simulator(app, 10, sim_seed).await;
    let mut s = Sequence {
        app,
        sim,
        id,
        project,
        rng: StdRng::seed_from_u64(seq_seed),
        items: vec!["SERVICE", "CTO"],
        orphaned: BTreeSet::new(),
    };
    let mut trace = vec![format!("sequence {n}")];
    s.full(&mut trace, true).await;
    // A few confirmed bindings on service ports.
    // In id order, so that a seed replays the same bindings.
    let local_ports: Vec<entity::port::Model> = entity::port::Entity::find()
        .filter(entity::port::Column::IntegrationId.eq(db_id(&s.id)))
        .order_by_asc(entity::port::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap();
    for (i, p) in local_ports.choose_multiple(&mut s.rng, 3).enumerate() {
        bind(
            app,
            db_id(&s.id),
            Some(p.id),
            &format!("77{n:03}{i}"),
            "CONFIRMED",
        )
        .await;
    }
    for _ in 0..STEPS {
        s.edit_something(&mut trace).await;
        if s.rng.gen_bool(0.6) {
            s.sync_something(&mut trace, true).await;
        }
    }
    s.full(&mut trace, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_follows_random_platform_edits_sqlite() {
    sequences(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_follows_random_platform_edits_postgres() {
    sequences(Engine::Postgres).await;
}
