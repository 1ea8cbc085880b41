//! The master key through the command line: a wrong one stops start-up with one line naming it,
//! `rotate-master-key` re-seals every secret (a dry run first, and twice is harmless), and
//! afterwards the gateway starts with the new key, refuses the old one and still syncs.

mod common;

use common::served::{start_full, wait_for_status};
use common::Engine;
use mapping_gateway::config::DbConfig;
use mapping_gateway::crypto::MasterKey;

/// Runs the binary to its end with this database, its key and more environment.
fn run(args: &[&str], db: &DbConfig, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mapping-gateway"));
    cmd.args(args)
        .env("DATABASE_URL", &db.database_url)
        .env("MASTER_KEY", db.master_key.as_deref().unwrap())
        .env_remove("NEW_MASTER_KEY")
        .env_remove("ADMIN_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `serve` with this key is refused at start, with one line naming MASTER_KEY.
fn refused(db: &DbConfig) {
    let (code, _, stderr) = run(&["serve", "--listen", "127.0.0.1:0"], db, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("MASTER_KEY does not open this database's secrets"),
        "{stderr}"
    );
}

async fn the_master_key_is_checked_and_rotated(engine: Engine) {
    let Some(fresh) = common::fresh_database(engine).await else {
        return;
    };
    let (old_key, new_key) = (MasterKey::generate().1, MasterKey::generate().1);
    let old = DbConfig {
        master_key: Some(old_key.clone()),
        ..fresh.clone()
    };
    let new = DbConfig {
        master_key: Some(new_key.clone()),
        ..fresh.clone()
    };
    let sim = common::simulator(mapping_gateway::simulator::SimConfig {
        boxes: 5,
        seed: 81,
        ..Default::default()
    })
    .await;
    let admin = format!("mgw_{}", mapping_gateway::crypto::random_hex(16));
    let id = {
        let (_gateway, base) = common::serve_on(&old, &admin, &[]);
        common::link_over_http(&base, &admin, &sim).await
    };
    refused(&new);

    let rotate = ["rotate-master-key"];
    let env = [("NEW_MASTER_KEY", new_key.as_str())];
    let (code, out, err) = run(&["rotate-master-key", "--dry-run"], &old, &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("would re-seal 1 platform password"), "{out}");
    refused(&new);

    let (code, out, err) = run(&rotate, &old, &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("re-sealed 1 platform password"), "{out}");
    assert!(
        !out.contains(&new_key) && !err.contains(&new_key),
        "the key is never printed"
    );
    let (code, out, err) = run(&rotate, &old, &env);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("nothing to re-seal"),
        "twice is harmless: {out}"
    );

    refused(&old);
    let (_gateway, base) = common::serve_on(&new, &admin, &[]);
    let run_id = start_full(&base, &admin, &id).await;
    wait_for_status(&base, &admin, &run_id, "SUCCEEDED").await;
    if engine == Engine::Postgres {
        common::drop_database(&fresh.database_url);
    }
}

each_engine!(the_master_key_is_checked_and_rotated);
