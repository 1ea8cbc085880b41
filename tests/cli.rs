//! The command line as a person uses it: `sync` and `integrations list` through their exit
//! codes and output, against the simulator over real HTTP; and the logs they write.

mod common;

use common::*;
use serde_json::json;

/// Runs the binary with the app's database, loopback platforms admitted and JSON logs.
async fn gateway(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mapping-gateway"));
    cmd.args(args)
        .env("DATABASE_URL", &app.db_config.database_url)
        .env("ALLOWED_PLATFORM_NETWORKS", "127.0.0.0/8")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "mapping_gateway=info");
    match &app.db_config.master_key {
        Some(key) => cmd.env("MASTER_KEY", key),
        None => cmd.env_remove("MASTER_KEY"),
    };
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("the command ends within 120 s")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn sync_runs_from_the_command_line(engine: Engine) {
    let Some(app) = TestApp::start(engine).await else {
        return;
    };
    let (sim, id, _) = linked_simulator(&app, 30, 11).await;
    let name = app
        .ok(
            "query($i: ID!) { integration(id: $i) { name } }",
            json!({ "i": id }),
        )
        .await["integration"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    // By name, FULL: the counts at the end, progress on stderr, exit 0.
    let (code, out, err) = gateway(&app, &["sync", "--integration", &name, "--mode", "FULL"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.starts_with("SUCCEEDED in "), "{out}");
    let (boxes, splitters, ports) = world::expected(&sim, sim.state.summary.projects[0]);
    assert!(
        out.contains(&format!("{} created", boxes + splitters + ports)),
        "every record of the project was created: {out}"
    );
    assert!(
        err.contains("FULL sync of") && err.contains("started (run"),
        "{err}"
    );
    assert!(
        err.contains("APPLYING"),
        "progress lines, one per listing: {err}"
    );
    // Logs to a pipe: JSON lines without colour codes, with the run's fields.
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI escapes in piped logs: {err}"
    );
    let run_line = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON log line"))
        .find(|l| l["span"]["run_id"].is_number())
        .unwrap_or_else(|| panic!("a log line inside the run's span: {err}"));
    assert!(run_line["span"]["integration_id"].is_number(), "{run_line}");

    let runs = app
        .ok(
            "query($i: ID!) { syncRuns(integrationId: $i, first: 5) { edges { node { mode status trigger } } } }",
            json!({ "i": id }),
        )
        .await;
    let newest = &runs["syncRuns"]["edges"][0]["node"];
    assert_eq!(
        (newest["mode"].as_str(), newest["status"].as_str()),
        (Some("FULL"), Some("SUCCEEDED")),
        "{runs}"
    );

    // By the API's id, INCREMENTAL (the default mode): nothing new.
    let (code, out, err) = gateway(&app, &["sync", "--integration", &id]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0 created"), "{out}");

    // `integrations list` shows it with its last run.
    let (code, out, _) = gateway(&app, &["integrations", "list"]).await;
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.starts_with(&id) && line.contains("INCREMENTAL SUCCEEDED"),
        "{line}"
    );
    // With the time the run ended and the last success, both as RFC 3339 in UTC.
    let times: Vec<&str> = line
        .split_whitespace()
        .filter(|w| chrono::DateTime::parse_from_rfc3339(w).is_ok())
        .collect();
    assert_eq!(times.len(), 2, "{line}");
    assert!(
        out.lines().next().unwrap().contains("LAST SUCCESS"),
        "{out}"
    );

    // An unknown integration: one clear line, exit 2.
    let (code, _, err) = gateway(&app, &["sync", "--integration", "Nenhuma"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no integration named or numbered \"Nenhuma\""),
        "{err}"
    );
    let (code, _, err) = gateway(&app, &["sync", "--integration", &id, "--mode", "HALF"]).await;
    assert_eq!(code, 2, "{err}");

    // While another run is going (a slow platform keeps it in flight): refused, exit 3.
    reqwest::Client::new()
        .put(format!("{}/_sim/faults", sim.url))
        .json(&json!({ "latencyMs": 1500 }))
        .send()
        .await
        .unwrap();
    let run = world::start(&app, &id, "FULL", false).await;
    let (code, out, err) = gateway(&app, &["sync", "--integration", &name]).await;
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("is already running"), "{err}");
    app.ok(
        "mutation($r: ID!) { cancelSync(runId: $r) { id } }",
        json!({ "r": run["id"] }),
    )
    .await;
    app.wait_run(run["id"].as_str().unwrap(), "id").await;
}

each_engine!(sync_runs_from_the_command_line);

/// `serve` logging to a pipe as JSON: no colour codes, and an operation's lines carry its name;
/// and serving without transparent huge pages.
async fn json_logs_name_the_operation(engine: Engine) {
    let Some(db) = fresh_database(engine).await else {
        return;
    };
    let admin = format!("mgw_{}", "a1".repeat(16));
    let (mut gateway, base) = serve_on(
        &db,
        &admin,
        &[
            ("LOG_FORMAT", "json".into()),
            ("RUST_LOG", "mapping_gateway=info".into()),
        ],
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(&admin)
        .json(&json!({
            "query": "mutation CriarIntegracao { createIntegration(input: { name: \"Logada\", gateway: GEOSITE, apiUrl: \"https://logada.example\", username: \"u\", password: \"segredo-de-teste\" }) { id } }",
            "operationName": "CriarIntegracao",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("errors").is_none(), "{answer}");
    // The serving process keeps its memory in 4 KiB pages (mapping_gateway::memory).
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", gateway.child.id())) {
        if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
            assert!(
                line.ends_with('0'),
                "transparent huge pages are off: {line}"
            );
        }
    }
    gateway.terminate();
    let (_, err) = gateway.exited(std::time::Duration::from_secs(30)).await;
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI escapes in piped logs: {err}"
    );
    assert!(
        !err.contains("segredo-de-teste"),
        "the password is never logged"
    );
    let created = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "integration created")
        .unwrap_or_else(|| panic!("the creation is logged: {err}"));
    assert_eq!(created["span"]["operation"], "CriarIntegracao", "{created}");
    assert!(created["span"]["key_id"].is_number(), "{created}");
    assert!(created["fields"]["integration_id"].is_number(), "{created}");
    if engine == Engine::Postgres {
        drop_database(&db.database_url);
    }
}

each_engine!(json_logs_name_the_operation);

/// One SQLite file, one gateway process that syncs or delivers: a second `serve`, or a `sync`,
/// on the file a served gateway uses is refused at start with one line naming the file and a
/// non-zero exit; once the first is killed (-9), its claim is gone with it and the file serves
/// again.
#[tokio::test]
async fn a_sqlite_file_is_served_by_one_process() {
    let db = fresh_database(Engine::Sqlite).await.expect("sqlite");
    let admin = format!("mgw_{}", mapping_gateway::crypto::random_hex(16));
    let (mut first, _) = serve_on(&db, &admin, &[]);
    let file = mapping_gateway::db::sqlite_file(&db.database_url).unwrap();
    for args in [&["serve"][..], &["sync", "--integration", "1"][..]] {
        let out = run_gateway(args, &db);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} refused: {err}");
        let line = err
            .lines()
            .find(|l| l.contains("in use by another mapping-gateway process"))
            .unwrap_or_else(|| panic!("{args:?}: {err}"));
        assert!(line.contains(&file.display().to_string()), "{line}");
        assert!(line.contains("PostgreSQL"), "{line}");
    }
    // Administrative commands run beside it.
    let out = run_gateway(&["keys", "list"], &db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let (_again, base) = serve_on(&db, &admin, &[]);
    assert!(base.starts_with("http://"));
    drop_database(&db.database_url);
}

/// `--help` shows which variables a command reads, never their values: a secret in the
/// environment (the database password, the master key, the ADMIN key, the metrics token) is not
/// printed.
#[test]
fn help_prints_no_secret_from_the_environment() {
    let secrets = [
        ("DATABASE_URL", "postgres://gw:pw-5f3a9c@db/gw"),
        ("MASTER_KEY", "mk-7d1e02b4"),
        ("ADMIN_API_KEY", "mgw_ak-93c5e1"),
        ("METRICS_TOKEN", "mt-26b8f4"),
    ];
    for command in [
        &["--help"][..],
        &["serve", "--help"],
        &["sync", "--help"],
        &["keys", "--help"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mapping-gateway"))
            .args(command)
            .envs(secrets)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{command:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for (name, value) in secrets {
            let secret = value.rsplit(['-', ':']).next().unwrap();
            assert!(!text.contains(secret), "{command:?} prints {name}: {text}");
        }
    }
}
