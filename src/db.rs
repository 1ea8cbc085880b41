//! Opening the database (SQLite or PostgreSQL) and applying migrations.

use std::path::PathBuf;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

/// Which engine a URL points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite, the zero-set-up default.
    Sqlite,
    /// PostgreSQL, for production and several instances.
    Postgres,
}

impl Engine {
    /// Recognises the engine from a database URL.
    pub fn of(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres://")
        }
    }
}

/// The file behind a `sqlite://FILE` URL; `None` for in-memory databases.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
        None
    } else {
        Some(PathBuf::from(path))
    }
}

/// Which share of the database a pool serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// HTTP requests and background work (syncs, the outbox, the relay).
    Main,
    /// Operations over WebSockets: a pool of their own, so that no number of sockets can take
    /// the connections HTTP requests and syncs need.
    Sockets,
}

impl Share {
    /// The page cache of each SQLite connection of the pool, in KiB: the sockets' share writes no
    /// sync and keeps SQLite's default.
    fn cache_kib(self) -> u32 {
        match self {
            Share::Main => SQLITE_CACHE_KIB,
            Share::Sockets => 2_000,
        }
    }

    /// Connections of the pool on each engine.
    fn size(self, engine: Engine) -> u32 {
        match (self, engine) {
            (Share::Main, Engine::Sqlite) => 8,
            (Share::Main, Engine::Postgres) => 16,
            (Share::Sockets, Engine::Sqlite) => 2,
            (Share::Sockets, Engine::Postgres) => 4,
        }
    }
}

/// Prepared statements each SQLite connection keeps (sqlx's default is 100). Every statement
/// is kept, under its text: a page of 500 rows written as one multi-row `INSERT` is a program of
/// about a megabyte, and each row count (a last page, an incremental run's pages) and each
/// inlined id list is a text of its own. With 100 a connection, and a long sync passing through
/// every connection of the pool, SQLite's kept programs reached 46 MB at 20,000 boxes, and an
/// OZmap sync of 200,000 boxes peaked at 211-288 MiB against 117-137 with this bound
/// (docs/BENCHMARKS.md, "The memory bound at 200,000 boxes"). The statements a request or a
/// sync page repeats are fewer, so they stay prepared (16 was too few: a page's repeated writes
/// were pushed out by its one-off lookups, and the full sync slowed by a tenth).
pub const SQLITE_STATEMENTS_KEPT: usize = 32;

/// The page cache of each SQLite connection of the main pool, in KiB (SQLite's default is 2,000
/// KiB), taken as pages are read. An incremental sync writes the pages of a listing already
/// fetched in one transaction (up to 2,000 scattered rows, `sync::engine::listing::
/// MERGED_RECORDS`): their lookups and writes touch about 4,000 pages of the file, which
/// SQLite's default spilled and read again. Measured at 200,000 boxes, 1% changed: 1.21-1.35 s against 1.42-1.52 s with the
/// default (docs/BENCHMARKS.md, "Incremental pages together").
pub const SQLITE_CACHE_KIB: u32 = 16 * 1024;

/// What a SQLite file's WAL holds before the connection that commits past it copies it into the
/// database (`wal_autocheckpoint`, set in pages of the file's size: SQLite's default is 1,000).
/// A sync copies them beside its writes instead ([`Checkpoints`]): with 1,000 pages of 4 KiB,
/// every third page of a 1% incremental sync paid a checkpoint in its commit, fsyncs included,
/// 460 ms of its 2.3 s at 200,000 boxes (docs/BENCHMARKS.md, "Checkpoints beside the writes").
/// This is the backstop for the writes that start none: the WAL stays under about 40 MiB.
pub const SQLITE_WAL_BYTES: i64 = 40 * 1024 * 1024;

/// The page size of a SQLite file this gateway creates (SQLite's default is 4,096). A changed
/// row costs the WAL, then the checkpoint, its whole page: an incremental run changes rows
/// scattered over the whole file, one or two a page, and a 2 KiB page writes half the bytes for
/// each. At 20,000 boxes a 1% run is 12% shorter (15% with 1 KiB pages, but those made a scan of
/// the ports table twice as long; 2 KiB, a tenth longer); a full run, which fills pages in
/// order, the same (docs/BENCHMARKS.md, "Pages of 2 KiB"). A file made with another size keeps
/// it: SQLite changes it only in a `VACUUM` outside WAL mode (docs/OPERATIONS.md).
pub const SQLITE_PAGE_BYTES: u32 = 2048;

/// Checkpoints of a SQLite file's WAL started beside a run of writes (a sync's pages), on
/// another connection of the pool and the other core, instead of inside one of their commits.
/// At most one is in flight; on PostgreSQL none is started. A passive checkpoint waits on no
/// writer or reader: it copies what is committed and leaves the rest to the next one.
#[derive(Clone, Debug, Default)]
pub struct Checkpoints(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Checkpoints {
    /// Starts a checkpoint of `db`'s WAL unless one is in flight.
    pub fn start(&self, db: &DatabaseConnection) {
        use std::sync::atomic::Ordering;
        if db.get_database_backend() != DbBackend::Sqlite || self.0.swap(true, Ordering::AcqRel) {
            return;
        }
        let (db, running) = (db.clone(), self.0.clone());
        tokio::spawn(async move {
            use sea_orm::ConnectionTrait;
            let statement = sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA wal_checkpoint(PASSIVE)",
            );
            if let Err(e) = db.query_all_raw(statement).await {
                tracing::warn!(error = %e, "a WAL checkpoint beside a sync's writes failed; SQLite's own at commit remains");
            }
            running.store(false, Ordering::Release);
        });
    }
}

/// Sets a new SQLite connection's `wal_autocheckpoint` to [`SQLITE_WAL_BYTES`] in the pages of
/// its file.
async fn wal_bound_in_pages(
    conn: &mut sea_orm::sqlx::SqliteConnection,
) -> Result<(), sea_orm::sqlx::Error> {
    use sea_orm::sqlx;
    let (page,): (i64,) = sqlx::query_as("PRAGMA page_size")
        .fetch_one(&mut *conn)
        .await?;
    let pages = SQLITE_WAL_BYTES / page.max(512);
    // A number this function computed: nothing of a client's in the text.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA wal_autocheckpoint = {pages}"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Connects to the database; a SQLite file is created when missing.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    connect_share(url, Share::Main).await
}

/// The pool WebSocket operations use: `None` for an in-memory SQLite database, which is one
/// connection that every part shares.
pub async fn connect_sockets(url: &str) -> anyhow::Result<Option<DatabaseConnection>> {
    if Engine::of(url)? == Engine::Sqlite && sqlite_file(url).is_none() {
        return Ok(None);
    }
    connect_share(url, Share::Sockets).await.map(Some)
}

async fn connect_share(url: &str, share: Share) -> anyhow::Result<DatabaseConnection> {
    let engine = Engine::of(url)?;
    let original = url;
    let mut url = url.to_owned();
    let mut options;
    match engine {
        Engine::Sqlite => {
            if let Some(path) = sqlite_file(&url) {
                restrict_files(&path)?;
            }
            let in_memory = sqlite_file(&url).is_none();
            if !in_memory && !url.contains("mode=") {
                url.push_str(if url.contains('?') {
                    "&mode=rwc"
                } else {
                    "?mode=rwc"
                });
            }
            options = ConnectOptions::new(url);
            // Every connection to `sqlite::memory:` is a database of its own: keep exactly one.
            options.max_connections(if in_memory { 1 } else { share.size(engine) });
            options.min_connections(1);
            // The pool's ping before handing a connection out is a round trip to the
            // connection's worker thread: an embedded file has no server or network to drop the
            // connection, and a failing one errs on its statement anyway.
            options.test_before_acquire(false);
            // Per-connection settings go on every connection the pool opens: a PRAGMA run once
            // after connecting reaches one of them only, and the others kept SQLite's
            // `synchronous = FULL` (a WAL fsync per commit, one per sync page).
            options.map_sqlx_sqlite_opts(move |o| {
                use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                // WAL lets readers go on while a sync writes; NORMAL sync is safe under WAL.
                // The page size first: it only counts before the file's first table.
                o.page_size(SQLITE_PAGE_BYTES)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .statement_cache_capacity(SQLITE_STATEMENTS_KEPT)
                    .pragma("cache_size", format!("-{}", share.cache_kib()))
            });
            // The WAL's bound is counted in the pages of the file, whatever their size.
            options.map_sqlx_sqlite_pool_opts(|pool| {
                pool.after_connect(|conn, _| Box::pin(wal_bound_in_pages(conn)))
            });
        }
        Engine::Postgres => {
            options = ConnectOptions::new(url);
            options.max_connections(share.size(engine));
            // A ping before each statement doubles a short read's round trips: only a connection
            // left idle long enough for a server, proxy or firewall to have dropped it is tried.
            options.test_before_acquire_if_idle_for(Duration::from_secs(30));
            // Sync pages look rows up with IN lists of hundreds of parameters. After five runs
            // PostgreSQL may cache a generic plan for such a statement, planned while the table
            // was still small, and keep scanning the whole table with it; planning each run with
            // its values keeps the index scan (measured: 180 ms -> 10 ms per page lookup).
            options
                .map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_custom_plan")]));
        }
    }
    options
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if engine == Engine::Postgres && share == Share::Main {
        probe_postgres(original).await?;
    }
    let db = Database::connect(options)
        .await
        .map_err(|e| anyhow::anyhow!(crate::text::without_source_lines(&e.to_string())))?;
    if db.get_database_backend() == DbBackend::Sqlite && matches!(engine, Engine::Sqlite) {
        if let Some(path) = sqlite_file(original) {
            // The -wal and -shm files exist now; they hold the same data.
            restrict_files(&path)?;
        }
    }
    Ok(db)
}

/// How long start-up waits for PostgreSQL to accept one connection before it says why not.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One connection to PostgreSQL, opened and closed before the pool is built: the pool retries a
/// refused connection until its acquire timeout and then reports only "pool timed out", while
/// this names the address and the server's or the network's own refusal within
/// [`PROBE_TIMEOUT`].
async fn probe_postgres(url: &str) -> anyhow::Result<()> {
    use sea_orm::sqlx::{postgres::PgConnectOptions, ConnectOptions as _, Connection as _};
    use std::str::FromStr as _;
    let address = url::Url::parse(url)
        .ok()
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or("localhost"),
                u.port().unwrap_or(5432)
            )
        })
        .unwrap_or_else(|| "the configured address".into());
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        anyhow::anyhow!(
            "DATABASE_URL is not a PostgreSQL URL ({}); write postgres://user:password@host:5432/database",
            crate::text::without_source_lines(&e.to_string())
        )
    })?;
    match tokio::time::timeout(PROBE_TIMEOUT, options.connect()).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(e)) => anyhow::bail!(
            "PostgreSQL at {address} refused the connection: {}",
            crate::text::without_source_lines(&e.to_string())
        ),
        Err(_) => anyhow::bail!(
            "PostgreSQL at {address} did not answer within {} s (is the address right, and the \
             server up?)",
            PROBE_TIMEOUT.as_secs()
        ),
    }
}

/// Creates a SQLite database file readable by its owner only (0600), and narrows an existing
/// one and its `-wal`/`-shm` companions to that: they hold integrations, bindings and key
/// digests.
fn restrict_files(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
        }
        for suffix in ["", "-wal", "-shm"] {
            crate::crypto::narrow_private(&PathBuf::from(format!("{}{suffix}", path.display())))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Refuses a database with pending migrations: only `migrate` (and `serve`, unless
/// `MIGRATE_ON_START=false`) changes the schema.
pub async fn require_current(db: &DatabaseConnection) -> anyhow::Result<()> {
    let pending = Migrator::get_pending_migrations(db)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the database's migrations: {e}"))?;
    if let Some(first) = pending.first() {
        anyhow::bail!(
            "the database has {} pending migration(s), from {}: run `mapping-gateway migrate` \
             first (this command never changes the schema)",
            pending.len(),
            first.name()
        );
    }
    Ok(())
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await?;
    fill_folded_names(db).await?;
    Ok(())
}

/// Fills `elements.name_folded` of rows written before the column existed (searches compare
/// against it), a thousand rows per transaction; nothing to do once every row has it.
async fn fill_folded_names(db: &DatabaseConnection) -> anyhow::Result<()> {
    use entity::element;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};
    loop {
        let rows: Vec<(i64, String)> = element::Entity::find()
            .select_only()
            .column(element::Column::Id)
            .column(element::Column::Name)
            .filter(element::Column::NameFolded.is_null())
            .limit(1000)
            .into_tuple()
            .all(db)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let txn = db.begin().await?;
        for (id, name) in rows {
            element::Entity::update_many()
                .col_expr(
                    element::Column::NameFolded,
                    sea_orm::sea_query::Expr::value(crate::text::fold(&name)),
                )
                .filter(element::Column::Id.eq(id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
    }
}

/// True when the database answers and no migration is pending (the `/readyz` check).
pub async fn ready(db: &DatabaseConnection) -> bool {
    if db.ping().await.is_err() {
        return false;
    }
    matches!(Migrator::get_pending_migrations(db).await, Ok(p) if p.is_empty())
}

/// The database's clock: what heartbeats are written with and stale runs are judged by, so
/// that instances whose clocks disagree still agree on which run went silent.
pub async fn clock<C: sea_orm::ConnectionTrait>(
    db: &C,
) -> crate::Result<chrono::DateTime<chrono::Utc>> {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            r#"SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t"#
        }
        _ => "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AS t",
    };
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await?
        .ok_or_else(|| crate::Error::internal(anyhow::anyhow!("the database has no clock")))?;
    let text: String = row.try_get("", "t")?;
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            crate::Error::internal(anyhow::anyhow!("unreadable database clock {text:?}: {e}"))
        })
}

/// Begins a transaction that writes. On SQLite it starts as `BEGIN IMMEDIATE`: a deferred
/// transaction that reads first and writes later fails at once with "database is locked" when
/// another connection wrote in between, while an immediate one waits for the write lock.
pub async fn write_txn<C: sea_orm::TransactionTrait>(
    db: &C,
) -> Result<C::Transaction, sea_orm::DbErr> {
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Begins a transaction that writes a sync's page (or another step of a run). On PostgreSQL it
/// commits without waiting for the disk (`synchronous_commit = off`) and runs its statements with
/// their generic plans (`plan_cache_mode = force_generic_plan`), set in one round trip:
/// - a crash can lose the last pages' commits (at most three times `wal_writer_delay`), never
///   their order, so the copy stays one the run was making; the run is then taken as abandoned
///   and the next run writes those pages again. The run's end (its cursors, its status) waits for
///   the disk as every other write does, which makes every page before it durable too;
/// - the statements of a page have the same shape on every page, and PostgreSQL planned the
///   custom plan of each again at every execution (0.9 ms of planning a page for the bindings'
///   reconciliation alone): their generic plans are the same index scans.
///
/// Measured in docs/BENCHMARKS.md ("PostgreSQL at SQLite's pace").
pub async fn page_txn(
    db: &sea_orm::DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    let txn = write_txn(db).await?;
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute_unprepared(
            "SET LOCAL synchronous_commit = off; SET LOCAL plan_cache_mode = force_generic_plan",
        )
        .await?;
    }
    Ok(txn)
}

/// Claims a SQLite file for this process: the gateway's instances coordinate on PostgreSQL
/// (notifications, leases read across processes), not on SQLite, so one process that runs syncs
/// or deliveries (`serve`, `sync`) may use a file at a time. The claim is an exclusive `flock`
/// on `<file>.lock`, which the kernel releases when the process ends, however it ends (a
/// `kill -9` leaves no stale claim). A second claim by the same process is granted (tests run
/// several instances in one process); PostgreSQL and in-memory URLs need none. The short
/// administrative commands (`keys`, `integrations list`, `migrate`) take no claim: SQLite
/// serializes their writes with the server's.
pub fn claim_sqlite_file(url: &str) -> anyhow::Result<()> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::io::AsRawFd;
    static CLAIMS: std::sync::Mutex<Vec<(PathBuf, std::fs::File)>> =
        std::sync::Mutex::new(Vec::new());
    let Some(path) = sqlite_file(url) else {
        return Ok(());
    };
    let mut lock_path = path.clone().into_os_string();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let mut claims = CLAIMS.lock().expect("claims lock");
    if claims.iter().any(|(p, _)| *p == lock_path) {
        return Ok(());
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", lock_path.display()))?;
    // SAFETY: flock on a descriptor this function owns; it only takes or refuses the lock.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        anyhow::bail!(
            "the SQLite database {} is in use by another mapping-gateway process{}: one process per SQLite file (run several instances on PostgreSQL)",
            path.display(),
            if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            }
        );
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    claims.push((lock_path, file));
    Ok(())
}
