//! What an operator sees of failures, on a served gateway as in production (JSON logs): a failed
//! sync and failed and retried deliveries in the log lines, the metrics and the API's health and
//! filters; the access log; on PostgreSQL, a second instance exporting the same health.

mod common;

use common::served::{
    bind_and_confirm, free_service_ports, linked_and_synced, metrics, sample, start_full,
    wait_for_status,
};
use common::{graphql_at, Engine, Process};
use mapping_gateway::config::DbConfig;
use mapping_gateway::simulator::Faults;
use serde_json::{json, Value};

/// A log line as JSON, when it is one.
fn parsed(line: &str) -> Option<Value> {
    serde_json::from_str(line).ok()
}

/// Waits for a JSON log line at `level` whose `fields` hold every pair of `fields`.
async fn logged(process: &Process, level: &str, fields: &[(&str, &str)]) -> Value {
    let line = process
        .log_line(&format!("{level} {fields:?}"), |line| {
            parsed(line).is_some_and(|v| {
                v["level"] == level
                    && fields
                        .iter()
                        .all(|(k, want)| v["fields"][*k].as_str() == Some(*want))
            })
        })
        .await;
    parsed(&line).unwrap()
}

async fn binding_ids(base: &str, admin: &str, filter: Value) -> Vec<String> {
    let mut ids: Vec<String> = graphql_at(
        base,
        admin,
        "query Stuck($f: BindingFilterInput) { bindings(filter: $f, first: 50) { edges { node { id } } } }",
        json!({ "f": filter }),
    )
    .await["bindings"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn serve(db: &DbConfig, admin: &str, extra: &[(&str, String)]) -> (Process, String) {
    let mut env = vec![("LOG_FORMAT", "json".to_owned())];
    env.extend(extra.iter().cloned());
    common::serve_on(db, admin, &env)
}

async fn a_failed_night_and_stuck_pushes_are_seen_without_reading_code(engine: Engine) {
    let Some(db) = common::fresh_database(engine).await else {
        return;
    };
    let sim = common::simulator(mapping_gateway::simulator::SimConfig {
        boxes: 20,
        seed: 71,
        ..Default::default()
    })
    .await;
    let admin = format!("mgw_{}", mapping_gateway::crypto::random_hex(16));
    let (gateway, base) = serve(&db, &admin, &[]);
    let id = linked_and_synced(&base, &admin, &sim).await;

    // A night that fails: the platform refuses the password.
    let update = "mutation($i: ID!, $p: String!) { updateIntegration(id: $i, input: { password: $p }) { id } }";
    graphql_at(
        &base,
        &admin,
        update,
        json!({ "i": id, "p": "senha-errada" }),
    )
    .await;
    let run = start_full(&base, &admin, &id).await;
    let failed = wait_for_status(&base, &admin, &run, "FAILED").await;
    assert_eq!(failed["error"]["code"], "PLATFORM_AUTH", "{failed}");
    let line = logged(
        &gateway,
        "ERROR",
        &[
            ("message", "sync failed"),
            ("integration", id.as_str()),
            ("run", run.as_str().unwrap()),
            ("code", "PLATFORM_AUTH"),
        ],
    )
    .await;
    let error = line["fields"]["error"].as_str().unwrap();
    assert!(error.contains("401"), "the reason is in the line: {line}");
    assert!(
        !error.contains("credentials: the platform refused the credentials"),
        "{error}"
    );
    graphql_at(&base, &admin, update, json!({ "i": id, "p": "geosite" })).await;

    // A push the platform refuses for good (its port is gone), and one it keeps failing.
    let ports = free_service_ports(&base, &admin, &id).await;
    let (gone_port, gone_fid) = &ports[0];
    common::remove(&sim, "portaSplitter", gone_fid.parse().unwrap());
    let refused = bind_and_confirm(&base, &admin, gone_port, "OPS-1").await;
    let refused = refused.as_str().unwrap();
    logged(
        &gateway,
        "ERROR",
        &[
            ("binding", refused),
            ("integration", id.as_str()),
            ("port", gone_fid.as_str()),
        ],
    )
    .await;
    sim.state.set_faults(Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let retried = bind_and_confirm(&base, &admin, &ports[1].0, "OPS-2").await;
    let retried = retried.as_str().unwrap();
    let line = logged(
        &gateway,
        "WARN",
        &[("binding", retried), ("port", ports[1].1.as_str())],
    )
    .await;
    let at = line["fields"]["retry_at"].as_str().unwrap();
    assert!(
        line["fields"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("retrying at {at}")),
        "{line}"
    );

    // Found in the API: by push status, and in the integration's health.
    assert_eq!(
        binding_ids(&base, &admin, json!({ "pushStatus": ["FAILED"] })).await,
        vec![refused.to_owned()]
    );
    assert_eq!(
        binding_ids(
            &base,
            &admin,
            json!({ "pushStatus": ["PENDING"], "held": false })
        )
        .await,
        vec![retried.to_owned()]
    );
    assert!(binding_ids(&base, &admin, json!({ "held": true }))
        .await
        .is_empty());
    assert_eq!(
        binding_ids(
            &base,
            &admin,
            json!({ "pushStatus": ["DELIVERED", "SKIPPED"] })
        )
        .await,
        Vec::<String>::new()
    );
    let health = graphql_at(
        &base,
        &admin,
        "query Health($i: ID!) { integration(id: $i) { health { lastSuccessAt lastRun { id status error { code message } } pendingDeliveries heldDeliveries failedDeliveries oldestPendingAt } } }",
        json!({ "i": id }),
    )
    .await["integration"]["health"]
        .clone();
    assert_eq!(health["lastRun"]["id"], run, "{health}");
    assert_eq!(health["lastRun"]["status"], "FAILED");
    assert_eq!(health["lastRun"]["error"]["code"], "PLATFORM_AUTH");
    assert!(health["lastSuccessAt"].is_string(), "{health}");
    assert_eq!(
        (
            &health["pendingDeliveries"],
            &health["heldDeliveries"],
            &health["failedDeliveries"]
        ),
        (&json!(1), &json!(0), &json!(1)),
        "{health}"
    );
    assert!(health["oldestPendingAt"].is_string(), "{health}");

    // Counted in the metrics, labelled by integration.
    let text = metrics(&base).await;
    let i = ("integration", id.as_str());
    for (status, n) in [("pending", 1.0), ("held", 0.0), ("failed", 1.0)] {
        assert_eq!(
            sample(&text, "mgw_deliveries", &[i, ("status", status)]),
            Some(n),
            "{status}"
        );
    }
    assert!(sample(&text, "mgw_delivery_oldest_pending_age_seconds", &[i]).unwrap() >= 0.0);
    assert_eq!(
        sample(
            &text,
            "mgw_sync_last_run_status",
            &[i, ("status", "FAILED")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "mgw_sync_last_run_status",
            &[i, ("status", "SUCCEEDED")]
        ),
        Some(0.0)
    );
    assert!(sample(&text, "mgw_sync_last_success_timestamp_seconds", &[i]).unwrap() > 1.7e9);
    assert_eq!(
        sample(
            &text,
            "mgw_sync_runs_total",
            &[i, ("mode", "FULL"), ("status", "FAILED")]
        ),
        Some(1.0)
    );
    assert!(sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert_eq!(
        sample(
            &text,
            "mgw_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    // The access log: one line per request, with the operation's name and the key, never its
    // variables; and one per WebSocket operation.
    let secret = "CONTRATO-SIGILOSO-77";
    binding_ids(&base, &admin, json!({ "contract": secret })).await;
    let access = logged(
        &gateway,
        "INFO",
        &[
            ("operation", "Stuck"),
            ("path", "/graphql"),
            ("method", "POST"),
        ],
    )
    .await;
    assert_eq!(access["target"], "mapping_gateway::access");
    assert_eq!(access["fields"]["status"], 200);
    assert!(access["fields"]["key"].is_number(), "{access}");
    assert!(access["fields"]["duration_ms"].is_number(), "{access}");
    logged(&gateway, "INFO", &[("method", "WS"), ("ended", "complete")]).await;
    assert!(
        gateway.log_lines().iter().all(|l| !l.contains(secret)),
        "variables are never logged"
    );

    // Another instance on the same PostgreSQL exports the same health.
    if engine == Engine::Postgres {
        let (_other, other) = serve(&db, &admin, &[("ACCESS_LOG", "false".into())]);
        let text = metrics(&other).await;
        assert_eq!(
            sample(&text, "mgw_deliveries", &[i, ("status", "failed")]),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "mgw_deliveries", &[i, ("status", "pending")]),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "mgw_sync_last_run_status",
                &[i, ("status", "FAILED")]
            ),
            Some(1.0)
        );
        binding_ids(&other, &admin, json!({})).await;
        assert!(
            _other
                .log_lines()
                .iter()
                .all(|l| !l.contains("mapping_gateway::access")),
            "ACCESS_LOG=false writes no access line"
        );
    }
    sim.state.set_faults(Faults::default());
    drop(gateway);
    if engine == Engine::Postgres {
        common::drop_database(&db.database_url);
    }
}

each_engine!(a_failed_night_and_stuck_pushes_are_seen_without_reading_code);

mod messages {
    use super::*;
    use common::bindings::{bind_port, customer, free_service_ports, synced_world};
    use common::TestApp;

    on_both_engines! {
        /// Messages quote opaque ids, give OZmap's URL rule with the URL to use, and say a
        /// refused key once, with the platform's answer.
        async fn messages_say_what_to_do(app: TestApp) {
            let refused = app
                .post(
                    Some(&app.admin_key),
                    "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }",
                    json!({ "input": {
                        "name": "OZ", "gateway": "OZMAP", "apiUrl": "https://isp.ozmap.example/api/v2",
                        "username": "x", "password": "k",
                    }}),
                )
                .await
                .1;
            let error = &refused["errors"][0];
            assert_eq!(error["extensions"]["code"], "VALIDATION", "{refused}");
            assert!(
                error["message"].as_str().unwrap().contains("use https://isp.ozmap.example"),
                "{refused}"
            );

            let w = synced_world(&app).await;
            let ports = free_service_ports(&app, 1).await;
            let first = bind_port(&app, &ports[0].0, customer("MSG-1", "52998224725")).await;
            let again = app
                .post(
                    Some(&app.admin_key),
                    "mutation($p: ID!, $c: BindingCustomerInput!) { bindPort(portId: $p, customer: $c) { id } }",
                    json!({ "p": ports[0].0, "c": customer("MSG-2", "11222333000181") }),
                )
                .await
                .1;
            let message = again["errors"][0]["message"].as_str().unwrap();
            assert!(
                message.contains(first["id"].as_str().unwrap()),
                "the opaque id of the binding that holds the port: {message}"
            );

            let wrong = app.create_integration_with("Senha errada", &w.sim.url, "errada").await;
            let test = app.test_integration(&wrong).await;
            assert_eq!(test["code"], "PLATFORM_AUTH", "{test}");
            let message = test["message"].as_str().unwrap();
            assert!(message.contains("401"), "{message}");
            assert_eq!(message.matches("refused").count(), 1, "said once: {message}");
        }
    }
}

mod dashboard {
    use super::*;
    use common::TestApp;

    /// The metric names an expression uses: its words that start as the gateway's (`mgw_`) or
    /// the process collector's (`process_`) do.
    fn metric_names(expr: &str) -> Vec<String> {
        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("mgw_") || w.starts_with("process_"))
            .map(str::to_owned)
            .collect()
    }

    on_both_engines! {
        /// Every expression of the Grafana dashboard and of the alert rules names metrics that a
        /// live gateway exports (after a sync, a missed slot and some requests).
        async fn the_dashboard_and_the_alerts_name_exported_metrics(app: TestApp) {
            use chrono::TimeZone;
            let w = common::world::world(&app, 10).await;
            common::world::succeeded(&app, &w.id, "FULL").await;
            let late = chrono::Utc.with_ymd_and_hms(2030, 1, 2, 12, 0, 0).unwrap();
            assert!(mapping_gateway::sync::scheduler::tick(&app.state, late).await.unwrap().is_empty());
            let text = reqwest::get(format!("{}/metrics", app.url)).await.unwrap().text().await.unwrap();
            let families: Vec<(&str, &str)> = text
                .lines()
                .filter_map(|l| l.strip_prefix("# TYPE "))
                .filter_map(|l| l.split_once(' '))
                .collect();
            let exported = |name: &str| {
                families.iter().any(|(family, kind)| {
                    *family == name
                        || (*kind == "histogram"
                            && ["_bucket", "_sum", "_count"]
                                .iter()
                                .any(|suffix| name == format!("{family}{suffix}")))
                })
            };
            let dashboard: Value = serde_json::from_str(
                &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/mapping-gateway.json")).unwrap(),
            )
            .unwrap();
            let mut exprs: Vec<String> = dashboard["panels"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["targets"].as_array().unwrap().iter())
                .map(|t| t["expr"].as_str().unwrap().to_owned())
                .collect();
            assert!(exprs.len() >= 15, "{exprs:?}");
            let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yml")).unwrap();
            exprs.extend(rules.lines().filter_map(|l| l.trim().strip_prefix("expr: ")).map(str::to_owned));
            let mut checked = 0;
            for expr in &exprs {
                for name in metric_names(expr) {
                    assert!(exported(&name), "{name} (in {expr}) is not exported:\n{text}");
                    checked += 1;
                }
            }
            assert!(checked >= 20, "{checked} names checked");
        }
    }
}

/// Two instances on PostgreSQL, neither running the scheduler: the one running a sync is
/// killed, and the other marks the run `INSTANCE_LOST` by its own timer, with nobody asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_instance_s_run_is_found_by_the_sweep_alone() {
    let Some((db, sim, admin)) = common::shared_postgres(20, 73).await else {
        return;
    };
    let (mut a, base_a) = serve(&db, &admin, &[]);
    let (b, base_b) = serve(&db, &admin, &[]);
    let id = common::link_over_http(&base_a, &admin, &sim).await;
    sim.state.set_faults(Faults {
        latency_ms: 400,
        ..Default::default()
    });
    let run = start_full(&base_a, &admin, &id).await;
    wait_for_status(&base_b, &admin, &run, "RUNNING").await;
    a.child.kill().unwrap(); // SIGKILL: no end is recorded.
    a.child.wait().unwrap();
    let lost = wait_for_status(&base_b, &admin, &run, "FAILED").await;
    assert_eq!(lost["error"]["code"], "INSTANCE_LOST", "{lost}");
    logged(
        &b,
        "ERROR",
        &[("code", "INSTANCE_LOST"), ("run", run.as_str().unwrap())],
    )
    .await;
    sim.state.set_faults(Faults::default());
    common::drop_database(&db.database_url);
}

mod sqlite_memory {
    use super::*;
    use common::TestApp;

    on_both_engines! {
        /// SQLite's own heap is exported: more than nothing once an SQLite gateway has read
        /// its plant (its connections' page caches and statements); on PostgreSQL it is there
        /// too (a number, whatever other tests of the process hold).
        async fn sqlite_s_memory_is_exported(app: TestApp) {
            let (_sim, id) = common::world::synced(&app, 3, &["SERVICE", "CTO"]).await;
            app.ok(
                "query($i: ID!) { elements(integrationId: $i, first: 5) { edges { node { splitters { ports { status } } } } } }",
                json!({ "i": id }),
            )
            .await;
            let text = reqwest::get(format!("{}/metrics", app.url)).await.unwrap().text().await.unwrap();
            let bytes: i64 = text
                .lines()
                .find_map(|l| l.strip_prefix("mgw_sqlite_memory_bytes "))
                .unwrap_or_else(|| panic!("no mgw_sqlite_memory_bytes in {text}"))
                .trim()
                .parse()
                .unwrap();
            if app.engine == Engine::Sqlite {
                assert!(bytes > 100_000, "SQLite holds {bytes} bytes");
            }
        }
    }
}
