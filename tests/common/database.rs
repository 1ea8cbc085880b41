//! Test databases: a fresh one per test on each engine, dropped again on PostgreSQL.

use mapping_gateway::config::DbConfig;

/// Which engine a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Random lowercase hex, for unique names.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", mapping_gateway::crypto::random_hex(6))
}

/// A fresh, empty database of the engine, or `None` when PostgreSQL is not configured outside CI.
pub async fn fresh_database(engine: Engine) -> Option<DbConfig> {
    match engine {
        Engine::Sqlite => {
            let dir = std::env::temp_dir().join(unique("mgw-test-"));
            std::fs::create_dir_all(&dir).unwrap();
            Some(DbConfig {
                database_url: format!("sqlite://{}", dir.join("gateway.db").display()),
                master_key: None,
            })
        }
        Engine::Postgres => {
            let Ok(base) = std::env::var("TEST_POSTGRES_URL") else {
                // In CI a missing PostgreSQL is a failure, not a skip.
                assert!(
                    std::env::var("CI").is_err(),
                    "TEST_POSTGRES_URL must be set in CI"
                );
                eprintln!("TEST_POSTGRES_URL not set: skipping the PostgreSQL variant");
                return None;
            };
            let admin = sea_orm::Database::connect(&base)
                .await
                .unwrap_or_else(|e| panic!("TEST_POSTGRES_URL is set but unreachable: {e}"));
            let name = unique("mgw_test_");
            sea_orm::ConnectionTrait::execute_unprepared(
                &admin,
                &format!("CREATE DATABASE {name}"),
            )
            .await
            .expect("create test database");
            admin.close().await.ok();
            let (prefix, _) = base.rsplit_once('/').expect("database URL with a path");
            Some(DbConfig {
                database_url: format!("{prefix}/{name}"),
                master_key: Some(mapping_gateway::crypto::MasterKey::generate().1),
            })
        }
    }
}

/// Drops a test's PostgreSQL database (its connections are closed by force), so that test runs
/// leave nothing behind. Runs on a thread of its own: a Drop cannot await.
pub fn drop_database(database_url: &str) {
    let (Ok(admin), Some((_, name))) = (
        std::env::var("TEST_POSTGRES_URL"),
        database_url.rsplit_once('/'),
    ) else {
        return;
    };
    let name = name.to_owned();
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            let db = sea_orm::Database::connect(&admin).await.ok()?;
            sea_orm::ConnectionTrait::execute_unprepared(
                &db,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await
            .ok()?;
            db.close().await.ok()
        })
    })
    .join();
    if !matches!(dropped, Ok(Some(()))) {
        eprintln!("could not drop the test database {database_url}");
    }
}
