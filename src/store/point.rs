//! Rows by primary key from an SQLite file, read on the caller's thread.
//!
//! Why: through sqlx a point read is a statement sent to the connection's worker thread, its row
//! sent back, and a ping on the way back to the pool: four hand-offs between threads, each a
//! futex wake and a context switch, where SQLite's own work is a few microseconds. Under load
//! those hand-offs were most of `port(id)`'s time (docs/BENCHMARKS.md, "Point reads on the
//! caller's thread"). Here a few connections of the gateway's own, opened on the file the pool
//! opened, answer `SELECT json_array(…) FROM t WHERE id = ?` with a cached prepared statement
//! while the caller holds the connection's lock: no thread is woken.
//!
//! What keeps it safe: the connections are `query_only` and never create a file; a connection
//! another caller holds is skipped; SQLite's busy handler is off, so a read that would have to
//! wait (a checkpoint resetting the WAL, a locked schema) does not wait on the runtime's thread
//! but is answered `None`, and so is any other failure of SQLite: the caller then reads through
//! the pool as before, which waits or reports the error as it always did. The rows decode
//! through the same JSON form as [`super::rows`]. PostgreSQL and in-memory SQLite databases have
//! no point reads here ([`PointReads::open`] gives `None`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use rusqlite::{Connection, OpenFlags};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, IdenStatic, Iterable};

use super::rows::Decode;
use crate::{Error, Result};

/// Statements kept prepared per connection: one per table read by id.
pub const STATEMENTS_KEPT: usize = 8;
/// SQLite's page cache per connection, in KiB (`PRAGMA cache_size` takes it negative).
pub const CACHE_KIB: i64 = 1024;

/// One connection and the text of its statement per table.
struct Slot {
    connection: Connection,
    statements: HashMap<&'static str, String>,
}

/// The point-read connections of one SQLite file.
pub struct PointReads {
    file: PathBuf,
    /// Opened on first use.
    connections: Box<[Mutex<Option<Slot>>]>,
    next: AtomicUsize,
    /// Set once a connection failed to open: every read then goes through the pool.
    disabled: OnceLock<()>,
}

impl std::fmt::Debug for PointReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointReads")
            .field("file", &self.file)
            .field("connections", &self.connections.len())
            .finish()
    }
}

impl PointReads {
    /// Point reads on the file `db` (an SQLite pool) has open; `None` for PostgreSQL or an
    /// in-memory database. The file's name comes from SQLite itself (`pragma_database_list`),
    /// so that these connections open exactly what the pool opened.
    pub async fn open(db: &DatabaseConnection) -> crate::Result<Option<Self>> {
        if db.get_database_backend() != DbBackend::Sqlite {
            return Ok(None);
        }
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                "SELECT file FROM pragma_database_list WHERE name = 'main'",
            ))
            .await?;
        let file: Option<String> = match row {
            Some(row) => row.try_get("", "file")?,
            None => None,
        };
        // An in-memory database has an empty file name.
        let Some(file) = file.filter(|f| !f.is_empty()) else {
            return Ok(None);
        };
        let count = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8);
        Ok(Some(PointReads {
            file: PathBuf::from(file),
            connections: (0..count).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            disabled: OnceLock::new(),
        }))
    }

    /// The row of `E` with this id, decoded by `decode`: `Some(Ok(None))` when there is none,
    /// `None` when it could not be read here (every connection busy, SQLite busy or failing),
    /// and the caller reads through the pool instead.
    pub fn row<E: EntityTrait>(
        &self,
        id: i64,
        decode: Decode<E::Model>,
    ) -> Option<crate::Result<Option<E::Model>>> {
        if self.disabled.get().is_some() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.connections.len();
        let mut slot = (0..n).find_map(|i| self.connections[(start + i) % n].try_lock().ok())?;
        if slot.is_none() {
            match self.connect() {
                Ok(connection) => {
                    *slot = Some(Slot {
                        connection,
                        statements: HashMap::new(),
                    })
                }
                Err(e) => {
                    tracing::warn!(error = %e, file = %self.file.display(),
                        "point reads cannot open the database file; reading through the pool");
                    let _ = self.disabled.set(());
                    return None;
                }
            }
        }
        let Slot {
            connection,
            statements,
        } = slot.as_mut()?;
        let sql = statements
            .entry(E::default().table_name())
            .or_insert_with(select_json::<E>);
        let text = match read(connection, sql, id) {
            Ok(text) => text,
            Err(e) => {
                tracing::debug!(error = %e, "point read through the pool instead");
                return None;
            }
        };
        drop(slot);
        let Some(text) = text else {
            return Some(Ok(None));
        };
        Some(
            decode(&format!("[{text}]"))
                .map(|mut rows| rows.pop())
                .map_err(|e| {
                    crate::Error::internal(anyhow::anyhow!(
                        "reading {} as JSON: {e}",
                        E::default().table_name()
                    ))
                }),
        )
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        // No CREATE: a file that is not there is an error, never a new empty database.
        let connection = Connection::open_with_flags(
            &self.file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.pragma_update(None, "query_only", true)?;
        connection.pragma_update(None, "cache_size", -CACHE_KIB)?;
        connection.busy_timeout(std::time::Duration::ZERO)?;
        connection.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
        Ok(connection)
    }
}

/// The statement that reads a row of `E` as SQLite's `json_array` of its columns in
/// declaration order (what [`super::rows`] decodes).
fn select_json<E: EntityTrait>() -> String {
    let columns: Vec<String> = E::Column::iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect();
    format!(
        "SELECT json_array({}) FROM \"{}\" WHERE \"id\" = ?1",
        columns.join(", "),
        E::default().table_name()
    )
}

/// The one text column of the row `sql` finds for `id`, if any.
fn read(connection: &Connection, sql: &str, id: i64) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    connection
        .prepare_cached(sql)?
        .query_row([id], |row| row.get::<_, String>(0))
        .optional()
}

/// A model by id, or `NOT_FOUND` naming it by its kind (`Binding`) and opaque id.
/// The API's hottest path, shaped by measurement (`cargo bench --bench gateway -- read`): the
/// statement runs on a task of its own, so the pool's and connection's handshakes wake that small
/// task, not the whole request's future, and the row is read with `all()`, cheaper than `one()`.
pub async fn by_id<E>(db: &DatabaseConnection, kind: &str, id: i64) -> Result<E::Model>
where
    E: EntityTrait,
    E::Model: Send + 'static,
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<i64>,
{
    let db = db.clone();
    let mut rows = tokio::spawn(async move { E::find_by_id(id).all(&db).await })
        .await
        .map_err(|e| Error::internal(anyhow::anyhow!("the lookup's task failed: {e}")))??;
    rows.pop().ok_or_else(|| missing(kind, id))
}

/// As [`by_id`], read on the caller's thread when `points` can (an SQLite file), through the
/// pool otherwise.
pub async fn by_id_here<E>(
    points: Option<&PointReads>,
    db: &DatabaseConnection,
    kind: &str,
    id: i64,
) -> Result<E::Model>
where
    E: EntityTrait,
    E::Model: serde::de::DeserializeOwned + Send + 'static,
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<i64>,
{
    match points.and_then(|p| p.row::<E>(id, super::rows::decoder())) {
        Some(found) => found?.ok_or_else(|| missing(kind, id)),
        None => by_id::<E>(db, kind, id).await,
    }
}

/// `NOT_FOUND` naming the row by its kind (`Binding`) and opaque id.
fn missing(kind: &str, id: i64) -> Error {
    Error::NotFound(format!(
        "{kind} with id \"{}\"",
        crate::ids::opaque(kind, id)
    ))
}
