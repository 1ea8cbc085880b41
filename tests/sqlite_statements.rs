//! SQLite keeps a bounded number of prepared statements per connection: every statement sqlx
//! runs is kept under its text, and a sync writes pages of many row counts (each a program of
//! up to a megabyte), so an unbounded cache is memory that grows with the shapes seen.
//!
//! A binary of its own: SQLite's memory counter is per process.

use sea_orm::sqlx;

/// Bytes SQLite has allocated, in every connection of this process.
fn sqlite_memory() -> i64 {
    // SAFETY: reads SQLite's global counter; callable at any time from any thread.
    unsafe { rusqlite::ffi::sqlite3_memory_used() }
}

/// A statement of `rows` rows of ten bound values each: a text of its own for each row count,
/// as a sync's multi-row page writes are.
fn rows_of(rows: usize) -> String {
    format!(
        "SELECT * FROM (VALUES {})",
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ")
    )
}

async fn run(conn: &mut sqlx::SqliteConnection, rows: usize) {
    let sql = rows_of(rows);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
    for i in 0..rows * 10 {
        query = query.bind(i as i64);
    }
    let got = query.fetch_all(&mut *conn).await.expect("statement runs");
    assert_eq!(got.len(), rows);
}

#[tokio::test]
async fn a_connection_keeps_a_bounded_number_of_prepared_statements() {
    // One connection (an in-memory database is one), set up as the gateway sets up every
    // SQLite connection.
    let db = mapping_gateway::db::connect("sqlite::memory:")
        .await
        .expect("connects");
    let pool = db.get_sqlite_connection_pool();
    let mut conn = pool.acquire().await.expect("a connection");
    let base = sqlite_memory();
    run(&mut conn, 300).await;
    let one = sqlite_memory() - base;
    assert!(one > 0, "SQLite counts its memory");
    let shapes = 3 * mapping_gateway::db::SQLITE_STATEMENTS_KEPT;
    for n in 1..shapes {
        run(&mut conn, 300 + n).await;
    }
    let kept = sqlite_memory() - base;
    // Each statement is about `one`; the cache may hold its capacity of them, and one more in
    // hand, not all that ran.
    let most = (mapping_gateway::db::SQLITE_STATEMENTS_KEPT as i64 + 6) * one * 12 / 10;
    assert!(
        kept <= most,
        "{shapes} statements of about {one} bytes each keep {kept} bytes (at most {most})"
    );
}
