//! Hostile input, driven through the API and the binary: platform URLs that reach internal
//! addresses, a URL moved to steal the stored password, hostile text, other spellings of ids and
//! cursors, and how the gateway stores what it keeps.

mod common;

use std::time::Duration;

use common::{unique, Engine, TestApp};
use mapping_gateway::access::Role;
use mapping_gateway::config::Limits;
use serde_json::{json, Value};

/// Settings with no network admitted: the production default.
fn strict_settings() -> mapping_gateway::server::Options {
    let mut settings = common::test_settings();
    settings.platform.network = Default::default();
    settings
}

async fn create_status(app: &TestApp, api_url: &str) -> (Option<String>, Value) {
    let (_, body) = app
        .post(
            Some(&app.admin_key),
            "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }",
            json!({ "input": { "name": unique("n"), "gateway": "GEOSITE", "apiUrl": api_url, "username": "u", "password": "p" } }),
        )
        .await;
    (
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_owned),
        body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_urls_may_not_reach_internal_addresses() {
    let app = TestApp::start_configured(Engine::Sqlite, Limits::default(), strict_settings())
        .await
        .unwrap();
    for url in [
        "http://127.0.0.1:18299/steal",
        "http://169.254.169.254/",
        "http://2130706433/",
        "http://0x7f.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://10.0.0.5/api",
        "http://192.168.1.1/",
        "http://[fd00::5]/",
        "http://0.0.0.0:8080/",
    ] {
        let (code, body) = create_status(&app, url).await;
        assert_eq!(code.as_deref(), Some("VALIDATION"), "{url}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "apiUrl", "{url}");
    }
    // A name is checked where it resolves: `localhost` passes on save, and the connection test
    // is refused without a single byte sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (code, body) = create_status(&app, &format!("http://localhost:{port}/api")).await;
    assert_eq!(code, None, "{body}");
    let id = body["data"]["createIntegration"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let test = app.test_integration(&id).await;
    assert_eq!(test["ok"], false);
    assert_eq!(test["code"], "PLATFORM_UNAVAILABLE");
    assert!(
        test["message"]
            .as_str()
            .unwrap()
            .contains("internal address"),
        "{test}"
    );
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(
        accepted.is_err(),
        "the gateway connected to an internal address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_networks_admit_on_premises_platforms() {
    let mut settings = strict_settings();
    settings.platform.network = std::sync::Arc::new(
        mapping_gateway::outbound::NetworkPolicy::with_networks(&["10.20.0.0/16", "127.0.0.1/32"])
            .unwrap(),
    );
    let app = TestApp::start_configured(Engine::Sqlite, Limits::default(), settings)
        .await
        .unwrap();
    assert_eq!(create_status(&app, "http://10.20.4.5/api").await.0, None);
    assert_eq!(create_status(&app, "http://127.0.0.1:9/api").await.0, None);
    assert_eq!(
        create_status(&app, "http://10.21.0.1/api")
            .await
            .0
            .as_deref(),
        Some("VALIDATION")
    );
    assert_eq!(
        create_status(&app, "http://127.0.0.2/api")
            .await
            .0
            .as_deref(),
        Some("VALIDATION")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_url_or_user_needs_the_password() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    let (sim, id, _) = common::linked_simulator(&app, 5, 1).await;
    // An attacker's listener on another port of an admitted host.
    let thief = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let steal = format!("http://{}/steal", thief.local_addr().unwrap());
    let update = "mutation($id: ID!, $input: UpdateIntegrationInput!) { updateIntegration(id: $id, input: $input) { apiUrl username } }";
    for input in [json!({ "apiUrl": steal }), json!({ "username": "outro" })] {
        let (_, body) = app
            .post(
                Some(&app.admin_key),
                update,
                json!({ "id": id, "input": input }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "VALIDATION",
            "{body}"
        );
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "password",
            "{body}"
        );
    }
    let test = "mutation($id: ID!) { testIntegration(id: $id) { ok } }";
    assert_eq!(
        app.ok(test, json!({ "id": id })).await["testIntegration"]["ok"],
        true
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), thief.accept())
            .await
            .is_err()
    );
    // The same URL spelled otherwise keeps the password; another path on the same host does
    // not; with the password, anything goes.
    let moved = app
        .ok(
            update,
            json!({ "id": id, "input": { "apiUrl": format!("{}/", sim.url) } }),
        )
        .await;
    assert_eq!(moved["updateIntegration"]["apiUrl"], sim.url);
    // A query string or fragment would move the login's path unseen: refused outright, with
    // the password or without.
    for tail in ["?../../tenantB/collect#", "#x", "/api?x=1"] {
        for input in [
            json!({ "apiUrl": format!("{}{tail}", sim.url) }),
            json!({ "apiUrl": format!("{}{tail}", sim.url), "password": "novo" }),
        ] {
            let (_, body) = app
                .post(
                    Some(&app.admin_key),
                    update,
                    json!({ "id": id, "input": input }),
                )
                .await;
            assert_eq!(
                body["errors"][0]["extensions"]["field"], "apiUrl",
                "{tail}: {body}"
            );
            assert!(
                body["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("query string or fragment"),
                "{body}"
            );
        }
    }
    let (_, body) = app
        .post(
            Some(&app.admin_key),
            update,
            json!({ "id": id, "input": { "apiUrl": format!("{}/outro", sim.url) } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "password",
        "{body}"
    );
    app.ok(
        update,
        json!({ "id": id, "input": { "apiUrl": steal, "password": "novo" } }),
    )
    .await;
    // https to http (same host, the https port): the password and allowInsecure, recorded.
    let secure = app
        .create_integration("Segura", "https://segura.example/api")
        .await;
    let down = "http://segura.example:443/api";
    for input in [
        json!({ "apiUrl": down }),
        json!({ "apiUrl": down, "password": "p2" }),
    ] {
        let (_, body) = app
            .post(
                Some(&app.admin_key),
                update,
                json!({ "id": secure, "input": input }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "VALIDATION",
            "{body}"
        );
    }
    let (_, body) = app
        .post(
            Some(&app.admin_key),
            update,
            json!({ "id": secure, "input": { "apiUrl": down, "password": "p2" } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "allowInsecure",
        "{body}"
    );
    let moved = app
        .ok(update, json!({ "id": secure, "input": { "apiUrl": down, "password": "p2", "allowInsecure": true } }))
        .await;
    assert_eq!(moved["updateIntegration"]["apiUrl"], down);
    let history = app
        .ok("query($i: ID!) { history(integrationId: $i, first: 1) { edges { node { summary } } } }", json!({ "i": secure }))
        .await;
    let summary = history["history"]["edges"][0]["node"]["summary"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(summary.contains("from https to http"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_platforms_get_one_message_whether_a_port_is_open_or_closed() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    // Closed: a port that was bound and released.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // Open: accepts and hangs up without a word.
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open_addr = open.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = open.accept().await {
            drop(s);
        }
    });
    let mut messages = Vec::new();
    for addr in [closed, open_addr] {
        let id = app
            .create_integration(&unique("porta "), &format!("http://{addr}/api"))
            .await;
        let test = app.test_integration(&id).await;
        assert_eq!(test["ok"], false);
        assert_eq!(test["code"], "PLATFORM_UNAVAILABLE");
        messages.push(test["message"].as_str().unwrap().to_owned());
    }
    assert_eq!(messages[0], messages[1]);
}

on_both_engines! {
    async fn hostile_text_is_refused(app: TestApp) {
        let create = "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }";
        let base = json!({ "name": "ok", "gateway": "GEOSITE", "apiUrl": "https://x.example", "username": "u", "password": "p" });
        let with = |field: &str, value: Value| {
            let mut input = base.clone();
            input[field] = value;
            json!({ "input": input })
        };
        for (field, value) in [
            ("name", json!("linha\nnova")),
            ("name", json!("nul\u{0}")),
            ("name", json!("\u{1b}[31mvermelho")),
            ("name", json!("rtl \u{202E}fdp.exe")),
            ("name", json!("n".repeat(121))),
            ("username", json!("u\r\nX-Injected: 1")),
            ("username", json!("u".repeat(10_000))),
            ("password", json!("p".repeat(5_000))),
            ("apiUrl", json!(format!("https://x.example/{}", "a".repeat(5_000)))),
        ] {
            let (_, body) = app.post(Some(&app.admin_key), create, with(field, value)).await;
            assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION", "{field}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        }
        let id = app.create_integration("Agenda", "https://x.example").await;
        let q = "mutation($id: ID!, $s: ScheduleInput!) { updateIntegration(id: $id, input: { schedule: $s }) { id } }";
        for cron in ["0 0 4 * * * 2026", "*/30 * * * * *", &"0 4 * * * ".repeat(2_000), "0 4 * *\n*"] {
            let (_, body) = app.post(Some(&app.admin_key), q, json!({ "id": id, "s": { "cron": cron, "timezone": "UTC" } })).await;
            assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION", "{cron:?}: {body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], "cron");
        }
        // Nothing of it was stored.
        let all = app.ok("{ integrations { name username } }", json!({})).await;
        assert_eq!(all["integrations"], json!([{ "name": "Agenda", "username": "integracao" }]));
    }

    async fn ids_and_cursors_have_one_spelling(app: TestApp) {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let id = app.create_integration("Canônica", "https://x.example").await;
        let one = "query($id: ID!) { integration(id: $id) { name } }";
        assert_eq!(app.ok(one, json!({ "id": id })).await["integration"]["name"], "Canônica");
        for other in [b64("Integration:01"), b64("Integration:+1"), b64("Integration: 1"), format!("{id}=="), b64("Integration:0")] {
            assert_eq!(app.error_code(Some(&app.admin_key), one, json!({ "id": other })).await, "NOT_FOUND", "{other}");
        }
        let q = "query($id: ID!, $after: String) { history(integrationId: $id, after: $after) { totalCount } }";
        for cursor in [b64("history:-1"), b64("history:0"), b64("history:01"), "%%".into()] {
            assert_eq!(app.error_code(Some(&app.admin_key), q, json!({ "id": id, "after": cursor })).await, "VALIDATION", "{cursor}");
        }
    }

    async fn key_use_is_recorded_without_holding_up_requests(app: TestApp) {
        use sea_orm::{ConnectionTrait, EntityTrait};
        let new = mapping_gateway::access::create_key(&app.state.db, "recente", Role::Viewer).await.unwrap();
        assert!(new.key.prefix.chars().count() <= 8, "{}", new.key.prefix);
        assert!(new.secret.starts_with(&new.key.prefix));
        // Another writer holds the key's row (PostgreSQL) or the whole database (SQLite).
        let blocker = mapping_gateway::db::write_txn(&app.state.db).await.unwrap();
        match app.engine {
            Engine::Sqlite => {
                blocker
                    .execute_unprepared("UPDATE history_entries SET summary = summary WHERE 1 = 0")
                    .await
                    .unwrap();
            }
            Engine::Postgres => {
                blocker
                    .execute_unprepared(&format!("SELECT * FROM api_keys WHERE id = {} FOR UPDATE", new.key.id))
                    .await
                    .unwrap();
            }
        }
        // The read is answered, whatever happens to the bookkeeping write.
        let answered = tokio::time::timeout(
            Duration::from_secs(20),
            app.ok_as(&new.secret, "{ gateways { kind } }", json!({})),
        )
        .await
        .expect("a read does not wait for the key's bookkeeping");
        assert_eq!(answered["gateways"][0]["kind"], "GEOSITE");
        blocker.rollback().await.unwrap();
        // Once the writer is gone, the next request records the use.
        app.ok_as(&new.secret, "{ gateways { kind } }", json!({})).await;
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let row = entity::api_key::Entity::find_by_id(new.key.id).one(&app.state.db).await.unwrap().unwrap();
                if row.last_used_at.is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("last_used_at is written eventually");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    app.create_integration("Privada", "https://x.example").await;
    let path = mapping_gateway::db::sqlite_file(&app.db_config.database_url).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}

/// Files that hold secrets opened to everyone between two starts (the database and its
/// companions, the master key, the demo key) are narrowed back to 0600 by the next start, which
/// names each one in a warning.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_secret_file_is_narrowed_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(unique("mgw-narrow-"));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("gw.db");
    let env = [
        ("DATABASE_URL", format!("sqlite://{}", db.display())),
        ("RUST_LOG", "warn".to_string()),
    ];
    let args = [
        "serve",
        "--demo",
        "--demo-boxes",
        "20",
        "--listen",
        "127.0.0.1:0",
    ];
    let files: Vec<std::path::PathBuf> = ["", "-wal", "-shm", ".master-key", ".demo-key"]
        .iter()
        .map(|suffix| dir.join(format!("gw.db{suffix}")))
        .collect();
    let mut opened: Vec<std::path::PathBuf> = Vec::new();
    for start in 0..2 {
        let mut gateway = common::Process::start(&args, &env);
        gateway.until("GraphiQL:");
        for file in &files {
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                mode,
                0o600,
                "{} is {mode:o} on start {start}",
                file.display()
            );
        }
        gateway.terminate();
        let (status, stderr) = gateway.exited(Duration::from_secs(30)).await;
        assert!(status.success(), "{stderr}");
        if start == 1 {
            assert!(opened.len() >= 3, "{opened:?}");
            for file in &opened {
                assert!(
                    stderr
                        .lines()
                        .any(|l| l.contains("narrowed") && l.contains(&*file.to_string_lossy())),
                    "no warning names {}: {stderr}",
                    file.display()
                );
            }
        }
        // SQLite removes its companions on a clean stop; whatever is left is opened.
        opened = files.iter().filter(|f| f.exists()).cloned().collect();
        for file in &opened {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_short_admin_api_key_stops_start_up() {
    let dir = std::env::temp_dir().join(unique("mgw-adm-"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mapping-gateway"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("gw.db").display()),
        )
        .env("ADMIN_API_KEY", "sixteen-chars-ok")
        .env_remove("MASTER_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
}

/// A fid is an identifier: a 100,000-character one, or one with anything but letters, digits
/// and `- _ . /`, is refused before any work (no platform call, no run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fids_are_bounded_and_plain() {
    let app = TestApp::start(Engine::Sqlite).await.unwrap();
    let id = app.create_integration("Fids", "https://fids.example").await;
    let sync = "mutation($i: ID!, $f: String!) { syncElement(integrationId: $i, fid: $f) { id } }";
    let lookup = "query($i: ID!, $f: String!) { elementByFid(integrationId: $i, fid: $f) { id } }";
    for fid in [
        "1".repeat(100_000),
        "12 34".into(),
        "12;DROP".into(),
        "\u{200B}".into(),
    ] {
        for query in [sync, lookup] {
            let (_, body) = app
                .post(Some(&app.admin_key), query, json!({ "i": id, "f": fid }))
                .await;
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "VALIDATION",
                "{body}"
            );
            assert_eq!(body["errors"][0]["extensions"]["field"], "fid", "{body}");
        }
    }
    let runs = "query($i: ID!) { syncRuns(integrationId: $i) { totalCount } }";
    assert_eq!(
        app.ok(runs, json!({ "i": id })).await["syncRuns"]["totalCount"],
        0
    );
}
