//! A sync copies SQLite's WAL into the database file beside its pages' writes, instead of
//! leaving it to the commit that crosses SQLite's mark (`db::SQLITE_WAL_BYTES`, far more pages
//! than a small sync writes): what a run wrote reaches the file itself while the gateway runs.
//! (The tests' pages are 40 records: a sync of 30 boxes commits a dozen port pages.)

mod common;

use std::time::Duration;

use common::world::*;
use common::{Engine, TestApp};
use sea_orm::{EntityTrait, PaginatorTrait};

/// The ports in the database file alone (no WAL beside it), copied while the gateway holds it
/// open; `None` while the copy is not a readable database with the table.
fn ports_in_file_alone(path: &std::path::Path) -> Option<u64> {
    let dir = std::env::temp_dir().join(common::unique("mgw-file-alone-"));
    std::fs::create_dir_all(&dir).ok()?;
    let copy = dir.join("copy.db");
    let counted = std::fs::copy(path, &copy).ok().and_then(|_| {
        let conn = rusqlite::Connection::open(&copy).ok()?;
        conn.query_row("SELECT count(*) FROM ports", [], |r| r.get::<_, i64>(0))
            .ok()
    });
    let _ = std::fs::remove_dir_all(&dir);
    counted.map(|n| n as u64)
}

on_both_engines! {
    async fn a_syncs_pages_reach_the_database_file_while_the_gateway_runs(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let ports = entity::port::Entity::find().count(&app.state.db).await.unwrap();
        assert!(ports > 0, "the sync wrote ports");
        let Engine::Sqlite = app.engine else {
            // PostgreSQL writes its own files: the run's rows are what there is to see.
            return;
        };
        let path = std::path::PathBuf::from(
            app.db_config.database_url.strip_prefix("sqlite://").unwrap(),
        );
        // A checkpoint runs beside what follows its page: wait for one. (Each copies what no
        // reader still needs, so the last page may wait for the next run's first.)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let alone = ports_in_file_alone(&path);
            if alone.is_some_and(|n| n > 0) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the database file alone holds {alone:?} of the {ports} ports the sync wrote"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
