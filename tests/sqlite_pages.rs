//! A SQLite file made before the gateway created its files with `db::SQLITE_PAGE_BYTES` pages
//! (with SQLite's default of 4 KiB) keeps its pages and works; its WAL's backstop checkpoint
//! still comes at `db::SQLITE_WAL_BYTES`, counted in its own pages. (A new file's pages are
//! checked with the other connection settings, `startup::every_sqlite_connection_has_the_settings`.)

mod common;

use mapping_gateway::db::SQLITE_WAL_BYTES;
use sea_orm::sqlx;

#[tokio::test]
async fn a_file_made_with_other_pages_keeps_them_and_works() {
    let dir = std::env::temp_dir().join(common::unique("mgw-pages-"));
    std::fs::create_dir_all(&dir).unwrap();
    let old = dir.join("old.db");
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE kept (x INTEGER);")
            .unwrap();
        let size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(size, 4096, "SQLite's default");
    }
    let url = format!("sqlite://{}", old.display());
    for _ in 0..2 {
        // Opened (and migrated) twice: the second time as a file the gateway's tables are in.
        let db = mapping_gateway::db::connect(&url).await.expect("connects");
        mapping_gateway::db::migrate(&db).await.expect("migrates");
        let pool = db.get_sqlite_connection_pool();
        // Two connections held at once: the second is a new one, set up as the first was.
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut conn = pool.acquire().await.expect("a connection");
            let (page,): (i64,) = sqlx::query_as("PRAGMA page_size")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let (bound,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!((page, bound), (4096, SQLITE_WAL_BYTES / 4096));
            held.push(conn);
        }
        drop(held);
        sqlx::query("INSERT INTO kept (x) VALUES (1)")
            .execute(pool)
            .await
            .unwrap();
        db.close().await.unwrap();
    }
    let conn = rusqlite::Connection::open(&old).unwrap();
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM kept", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 2);
    let _ = std::fs::remove_dir_all(&dir);
}
