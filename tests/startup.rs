//! What holds before any request: migrations up, down and up again on each engine, the committed
//! schema.graphql matching the code and describing everything, and bad configuration stopping
//! start-up with one line.

mod common;

use common::Engine;

/// Migrations go up, all the way down, and up again on each engine.
async fn migrations_up_down_up(engine: Engine) {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::ConnectionTrait;
    let Some(config) = common::fresh_database(engine).await else {
        return;
    };
    let db = mapping_gateway::db::connect(&config.database_url)
        .await
        .unwrap();
    Migrator::up(&db, None).await.unwrap();
    let count_tables = |db: sea_orm::DatabaseConnection| async move {
        let sql = match db.get_database_backend() {
            sea_orm::DbBackend::Sqlite => "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('integrations','ports','bindings','sync_runs','api_keys','push_outbox','history_entries')",
            _ => "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('integrations','ports','bindings','sync_runs','api_keys','push_outbox','history_entries')",
        };
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    assert_eq!(count_tables(db.clone()).await, 7);
    Migrator::down(&db, None).await.unwrap();
    assert_eq!(count_tables(db.clone()).await, 0);
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(count_tables(db.clone()).await, 7);
    assert!(mapping_gateway::db::ready(&db).await);
    db.close().await.unwrap();
    if engine == Engine::Postgres {
        common::drop_database(&config.database_url);
    }
}

each_engine!(migrations_up_down_up);

/// Every connection of the SQLite pool runs with WAL, `synchronous = NORMAL`, foreign keys on
/// and the WAL's bound, not only the first one opened: eight transactions held at once are eight
/// connections.
#[tokio::test]
async fn every_sqlite_connection_has_the_settings() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let config = common::fresh_database(Engine::Sqlite)
        .await
        .expect("SQLite");
    let db = mapping_gateway::db::connect(&config.database_url)
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(db.begin().await.unwrap());
    }
    for txn in &held {
        let pragma = |name: &'static str| async move {
            txn.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                format!("PRAGMA {name}"),
            ))
            .await
            .unwrap()
            .unwrap()
        };
        let mode: String = pragma("journal_mode").await.try_get_by_index(0).unwrap();
        assert_eq!(mode, "wal");
        let synchronous: i64 = pragma("synchronous").await.try_get_by_index(0).unwrap();
        assert_eq!(synchronous, 1, "NORMAL");
        let foreign_keys: i64 = pragma("foreign_keys").await.try_get_by_index(0).unwrap();
        assert_eq!(foreign_keys, 1);
        // A file the gateway created: its pages, and the WAL's bound counted in them.
        let page: i64 = pragma("page_size").await.try_get_by_index(0).unwrap();
        assert_eq!(page, i64::from(mapping_gateway::db::SQLITE_PAGE_BYTES));
        let bound: i64 = pragma("wal_autocheckpoint")
            .await
            .try_get_by_index(0)
            .unwrap();
        assert_eq!(bound, mapping_gateway::db::SQLITE_WAL_BYTES / page);
    }
}

#[test]
fn schema_file_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .unwrap_or_default();
    let generated = mapping_gateway::graphql::sdl();
    assert!(
        committed == generated,
        "schema.graphql is out of date; regenerate it with:\n\n    cargo run -- schema > schema.graphql\n"
    );
}

#[test]
fn every_type_field_and_argument_is_described() {
    let sdl = mapping_gateway::graphql::sdl();
    // In the SDL a description precedes its item, as a `"""` block or a one-line `"..."`.
    // Every type, input, enum, field, argument and enum value must have one.
    let mut missing = Vec::new();
    let mut in_block = false;
    let mut described = false;
    for line in sdl.lines().map(str::trim) {
        if in_block {
            if line.ends_with("\"\"\"") {
                in_block = false;
                described = true;
            }
            continue;
        }
        if line.starts_with("\"\"\"") {
            if line.len() > 3 && line.ends_with("\"\"\"") {
                described = true;
            } else {
                in_block = true;
            }
            continue;
        }
        if line.starts_with('"') {
            described = true;
            continue;
        }
        let structural = line.is_empty()
            || line == "}"
            || line.starts_with(')')
            || line.starts_with("schema")
            || line.starts_with("directive")
            || line.starts_with("query:")
            || line.starts_with("mutation:")
            || line.starts_with("subscription:");
        if !structural && !described {
            missing.push(line.to_owned());
        }
        described = false;
    }
    assert!(
        missing.is_empty(),
        "undocumented items:\n{}",
        missing.join("\n")
    );
}

#[test]
fn bad_configuration_stops_start_up_with_one_line() {
    let db = mapping_gateway::config::DbConfig {
        database_url: "postgres://nobody@127.0.0.1:1/none".into(),
        master_key: None,
    };
    let out = common::run_gateway(&["serve", "--listen", "127.0.0.1:0"], &db);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: MASTER_KEY is required with PostgreSQL"),
        "{stderr}"
    );
    let db = mapping_gateway::config::DbConfig {
        database_url: "mysql://x".into(),
        master_key: None,
    };
    let out = common::run_gateway(&["migrate"], &db);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .starts_with("error: DATABASE_URL must start with"));
    let db = mapping_gateway::config::DbConfig {
        database_url: "sqlite::memory:".into(),
        master_key: Some("too-short".into()),
    };
    let out = common::run_gateway(&["serve", "--listen", "127.0.0.1:0"], &db);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("MASTER_KEY"));
}

/// The errors an operator meets first name the setting and say what to do: a database that
/// refuses connections (its address, the refusal, no wait for a pool), a wrong cron, a listen
/// address that is not one, a catch-up window that is not a duration.
#[test]
fn start_up_errors_name_the_setting_and_an_example() {
    let key = mapping_gateway::crypto::MasterKey::generate().1;
    let closed = mapping_gateway::config::DbConfig {
        database_url: "postgres://mgw:secret-pw@127.0.0.1:1/none".into(),
        master_key: Some(key.clone()),
    };
    let out = common::run_gateway(&["serve", "--listen", "127.0.0.1:0"], &closed);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("PostgreSQL at 127.0.0.1:1 refused the connection"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("pool timed out") && !stderr.contains("secret-pw"),
        "{stderr}"
    );

    let sqlite = mapping_gateway::config::DbConfig {
        database_url: "sqlite::memory:".into(),
        master_key: Some(key),
    };
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["serve", "--sync-cron", "0 25 * * *"],
            &["SYNC_CRON", "hour 0-23", "0 4 * * *"],
        ),
        (
            &["serve", "--listen", "gateway.example:80"],
            &["LISTEN", "127.0.0.1:8080"],
        ),
        (&["serve", "--sync-catch-up", "soon"], &["1h"]),
        (
            &["serve", "--sync-timezone", "Mars/Olympus"],
            &["SYNC_TIMEZONE", "America/Sao_Paulo"],
        ),
    ];
    for (args, wanted) in cases {
        let out = common::run_gateway(args, &sqlite);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        for word in wanted {
            assert!(stderr.contains(word), "{args:?}: {word:?} in {stderr}");
        }
    }
}

/// A wrong PostgreSQL password is told without the server's source lines.
#[tokio::test]
async fn a_refused_database_password_is_told_plainly() {
    let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
        return;
    };
    let mut wrong = url::Url::parse(&url).unwrap();
    wrong.set_password(Some("not-the-password")).unwrap();
    let db = mapping_gateway::config::DbConfig {
        database_url: wrong.to_string(),
        master_key: Some(mapping_gateway::crypto::MasterKey::generate().1),
    };
    let out = common::run_gateway(&["integrations", "list"], &db);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains(" at line "), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}

/// Only `migrate` (and `serve`, unless `MIGRATE_ON_START=false`) changes the schema: every other
/// command refuses a database with pending migrations with one line saying what to run, and
/// `migrate`, `keys` and `integrations list` need no MASTER_KEY.
async fn migrations_only_on_purpose(engine: Engine) {
    use migration::{Migrator, MigratorTrait};
    let Some(db) = common::fresh_database(engine).await else {
        return;
    };
    let keyless = mapping_gateway::config::DbConfig {
        master_key: None,
        ..db.clone()
    };
    let refused =
        |args: &[&str], config: &mapping_gateway::config::DbConfig, env: &[(&str, &str)]| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mapping-gateway"));
            cmd.args(args)
                .env("DATABASE_URL", &config.database_url)
                .env_remove("ADMIN_API_KEY");
            match &config.master_key {
                Some(key) => cmd.env("MASTER_KEY", key),
                None => cmd.env_remove("MASTER_KEY"),
            };
            for (k, v) in env {
                cmd.env(k, v);
            }
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert!(
                stderr.contains("pending migration") && stderr.contains("mapping-gateway migrate"),
                "{args:?}: {stderr}"
            );
        };
    let never_migrated = async || {
        let conn = mapping_gateway::db::connect(&db.database_url)
            .await
            .unwrap();
        let pending = Migrator::get_pending_migrations(&conn).await.unwrap().len();
        conn.close().await.ok();
        pending
    };
    let all = never_migrated().await;
    assert!(all > 10);
    refused(&["keys", "list"], &keyless, &[]);
    refused(&["integrations", "list"], &keyless, &[]);
    refused(&["sync", "--integration", "x"], &db, &[]);
    refused(
        &["serve", "--listen", "127.0.0.1:0"],
        &db,
        &[("MIGRATE_ON_START", "false")],
    );
    assert_eq!(never_migrated().await, all, "nothing changed the schema");

    let out = common::run_gateway(&["migrate"], &keyless);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(never_migrated().await, 0);
    for args in [&["keys", "list"][..], &["integrations", "list"][..]] {
        let out = common::run_gateway(args, &keyless);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    }
    // A newer binary's migration not applied yet: refused the same way.
    let conn = mapping_gateway::db::connect(&db.database_url)
        .await
        .unwrap();
    Migrator::down(&conn, Some(1)).await.unwrap();
    conn.close().await.ok();
    refused(&["integrations", "list"], &keyless, &[]);
    if engine == Engine::Postgres {
        common::drop_database(&db.database_url);
    }
}

each_engine!(migrations_only_on_purpose);

/// The systemd unit passes `systemd-analyze verify` without a warning (its `ExecStart` pointed
/// at the built binary, its env file made optional) and keeps what the deployment relies on.
#[test]
fn the_systemd_unit_verifies() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let unit =
        std::fs::read_to_string(format!("{dir}/deploy/systemd/mapping-gateway.service")).unwrap();
    for line in [
        "User=mapping-gateway",
        "EnvironmentFile=/etc/mapping-gateway/env",
        "ExecStart=/usr/bin/mapping-gateway serve",
        "Restart=on-failure",
        "StateDirectory=mapping-gateway",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
    let Ok(analyze) = which("systemd-analyze") else {
        assert!(
            std::env::var("CI").is_err(),
            "systemd-analyze is missing in CI"
        );
        return;
    };
    let local = unit
        .replace(
            "ExecStart=/usr/bin/mapping-gateway",
            &format!("ExecStart={}", env!("CARGO_BIN_EXE_mapping-gateway")),
        )
        .replace(
            "EnvironmentFile=/etc/mapping-gateway/env",
            "EnvironmentFile=-/etc/mapping-gateway/env",
        );
    let path = std::env::temp_dir().join(format!("{}.service", common::unique("mgw-unit-")));
    std::fs::write(&path, local).unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{stderr}");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        !stderr.lines().any(|l| l.contains(&name)),
        "warnings about the unit: {stderr}"
    );
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or(())
}

/// A new `ADMIN_API_KEY` value revokes the key made from the previous one, and a chosen secret
/// shows a `mgw_` prefix made from its digest, none of the secret itself.
async fn a_new_admin_api_key_replaces_the_old_one(engine: Engine) {
    let Some(db) = common::fresh_database(engine).await else {
        return;
    };
    let first = format!("mgw_{}", mapping_gateway::crypto::random_hex(16));
    let second = "chosen-by-the-isp-0123456789abcdefghij";
    let status = |base: String, key: String| async move {
        reqwest::Client::new()
            .post(format!("{base}/graphql"))
            .bearer_auth(key)
            .json(&serde_json::json!({ "query": "{ gateways { kind } }" }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    {
        let (_gateway, base) = common::serve_on(&db, &first, &[]);
        assert_eq!(status(base, first.clone()).await, 200);
    }
    let (_gateway, base) = common::serve_on(&db, second, &[]);
    assert_eq!(status(base.clone(), second.to_owned()).await, 200);
    assert_eq!(
        status(base, first.clone()).await,
        401,
        "the old value no longer works"
    );
    let out = common::run_gateway(&["keys", "list"], &db);
    let list = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = list
        .lines()
        .filter(|l| l.ends_with("ADMIN_API_KEY"))
        .collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(
        rows.iter()
            .any(|r| r.contains(&first[..8]) && r.contains("revoked")),
        "{list}"
    );
    let active = rows.iter().find(|r| r.contains("active")).unwrap();
    assert!(
        active.contains("mgw_") && !active.contains("chosen"),
        "{list}"
    );
    if engine == Engine::Postgres {
        common::drop_database(&db.database_url);
    }
}

each_engine!(a_new_admin_api_key_replaces_the_old_one);
