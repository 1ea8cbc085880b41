//! The ports' reference to their splitter holds on both engines: a foreign key on SQLite,
//! triggers on PostgreSQL (migration 17: one check per statement of inserts; migration 20: a
//! check per row an update moves to another splitter, none for the rows that stay). No port
//! names a missing splitter, a deleted splitter takes its ports, and a port written or moved
//! while its splitter is deleted leaves no orphan, whichever of the two goes first.

mod common;

use common::world::synced;
use common::{Engine, TestApp};
use mapping_gateway::store::plant::placeholder;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement, TransactionTrait, Value,
};

/// Runs `sql` with `values` bound to its `{}` placeholders, in order.
fn statement(db: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    let backend = db.get_database_backend();
    let mut text = String::new();
    for (i, part) in sql.split("{}").enumerate() {
        if i > 0 {
            text.push_str(&placeholder(backend, i));
        }
        text.push_str(part);
    }
    Statement::from_sql_and_values(backend, text, values)
}

async fn number(db: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> i64 {
    db.query_one_raw(statement(db, sql, values))
        .await
        .unwrap()
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .unwrap()
}

/// Ports whose splitter does not exist.
async fn orphans(db: &impl ConnectionTrait) -> i64 {
    number(
        db,
        "SELECT count(*) FROM ports WHERE NOT EXISTS \
         (SELECT 1 FROM splitters s WHERE s.id = ports.splitter_id)",
        vec![],
    )
    .await
}

/// Writes a new port on `splitter`, numbered past any the platform gives.
async fn insert_port(
    db: &impl ConnectionTrait,
    splitter: i64,
    fid: &str,
) -> Result<u64, sea_orm::DbErr> {
    db.execute_raw(statement(
        db,
        "INSERT INTO ports (integration_id, project_id, splitter_id, fid, number, status, synced_at) \
         SELECT integration_id, project_id, id, {}, 900, 'FREE', {} FROM splitters WHERE id = {}",
        vec![fid.into(), chrono::Utc::now().into(), splitter.into()],
    ))
    .await
    .map(|r| r.rows_affected())
}

/// A splitter with ports, and its port count.
async fn a_splitter(db: &impl ConnectionTrait) -> (i64, i64) {
    let splitter = number(db, "SELECT min(splitter_id) FROM ports", vec![]).await;
    let ports = number(
        db,
        "SELECT count(*) FROM ports WHERE splitter_id = {}",
        vec![splitter.into()],
    )
    .await;
    assert!(ports > 0);
    (splitter, ports)
}

/// A connection of its own (a transaction holds it), to race the app's pool.
async fn second_connection(app: &TestApp) -> DatabaseConnection {
    sea_orm::Database::connect(app.db_config.database_url.as_str())
        .await
        .expect("a second connection")
}

/// Waits until a statement of this database waits on a lock, or `done` says the other side
/// finished without waiting (the lock the test is about was not taken).
async fn blocked_or_done(db: &DatabaseConnection, done: &tokio::task::JoinHandle<()>) {
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let waiting = number(
                db,
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                vec![],
            )
            .await;
            if waiting > 0 || done.is_finished() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the other transaction waited or finished within 20 s");
}

/// A PostgreSQL gateway synced with 20 boxes, one of its splitters, and a transaction begun on
/// a connection of its own; `None` without PostgreSQL.
struct Raced {
    app: TestApp,
    _sim: mapping_gateway::simulator::RunningSimulator,
    splitter: i64,
    writer: DatabaseTransaction,
    _writer_db: DatabaseConnection,
}

async fn raced() -> Option<Raced> {
    let app = TestApp::start(Engine::Postgres).await?;
    let (sim, _id) = synced(&app, 20, &["SERVICE", "CTO", "CEO"]).await;
    let (splitter, _) = a_splitter(&app.state.db).await;
    let writer_db = second_connection(&app).await;
    let writer = writer_db.begin().await.unwrap();
    Some(Raced {
        app,
        _sim: sim,
        splitter,
        writer,
        _writer_db: writer_db,
    })
}

/// Deletes `splitter` from another connection while `writer` holds a write naming it: the
/// deletion waits for the writer (the splitter is locked as a foreign key locks it), and once both
/// are done no port outlives its splitter.
async fn deleted_while_written(app: &TestApp, splitter: i64, writer: DatabaseTransaction) {
    let deleter_db = second_connection(app).await;
    let deletion = tokio::spawn(async move {
        deleter_db
            .execute_raw(statement(
                &deleter_db,
                "DELETE FROM splitters WHERE id = {}",
                vec![splitter.into()],
            ))
            .await
            .unwrap();
    });
    blocked_or_done(&app.state.db, &deletion).await;
    assert!(!deletion.is_finished(), "the deletion waits for the writer");
    writer.commit().await.unwrap();
    deletion.await.unwrap();
    assert_eq!(
        orphans(&app.state.db).await,
        0,
        "a port outlived its splitter"
    );
}

on_both_engines! {
    /// A port naming a missing splitter is refused, written or moved; deleting a splitter
    /// deletes its ports and no other.
    async fn ports_name_splitters_that_exist(app: TestApp) {
        let (_sim, _id) = synced(&app, 20, &["SERVICE", "CTO", "CEO"]).await;
        let db = &app.state.db;
        let before = number(db, "SELECT count(*) FROM ports", vec![]).await;
        let missing = number(db, "SELECT max(id) + 1000 FROM splitters", vec![]).await;
        let refused = db
            .execute_raw(statement(
                db,
                "INSERT INTO ports (integration_id, project_id, splitter_id, fid, number, status, synced_at) \
                 SELECT integration_id, project_id, {}, 'nowhere', 1, 'FREE', synced_at FROM ports LIMIT 1",
                vec![missing.into()],
            ))
            .await;
        assert!(refused.is_err(), "a port on a missing splitter was written");
        let moved = db
            .execute_raw(statement(
                db,
                "UPDATE ports SET splitter_id = {} WHERE id = (SELECT min(id) FROM ports)",
                vec![missing.into()],
            ))
            .await;
        assert!(moved.is_err(), "a port was moved to a missing splitter");
        let (splitter, ports) = a_splitter(db).await;
        db.execute_raw(statement(db, "DELETE FROM splitters WHERE id = {}", vec![splitter.into()]))
            .await
            .unwrap();
        assert_eq!(
            number(db, "SELECT count(*) FROM ports", vec![]).await,
            before - ports,
            "the splitter's ports went, and only they"
        );
        assert_eq!(orphans(db).await, 0);
    }
}

/// A port written on a splitter that another transaction then deletes: the deletion waits for
/// the writer (its splitter is locked as a foreign key locks it) and takes the new port too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_splitter_deleted_while_a_port_is_written_takes_it() {
    let Some(Raced {
        app,
        splitter,
        writer,
        ..
    }) = raced().await
    else {
        return;
    };
    assert_eq!(insert_port(&writer, splitter, "raced-1").await.unwrap(), 1);
    deleted_while_written(&app, splitter, writer).await;
}

/// A splitter being deleted, and a port written on it meanwhile: the writer waits for the
/// deletion and is refused (SQLSTATE 23503, as a foreign key refuses it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_written_on_a_splitter_being_deleted_is_refused() {
    let Some(app) = TestApp::start(Engine::Postgres).await else {
        return;
    };
    let (_sim, _id) = synced(&app, 20, &["SERVICE", "CTO", "CEO"]).await;
    let (splitter, _) = a_splitter(&app.state.db).await;
    let deleter_db = second_connection(&app).await;
    let deleter = deleter_db.begin().await.unwrap();
    deleter
        .execute_raw(statement(
            &deleter,
            "DELETE FROM splitters WHERE id = {}",
            vec![splitter.into()],
        ))
        .await
        .unwrap();
    let writer_db = second_connection(&app).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let write = tokio::spawn(async move {
        let _ = tx.send(insert_port(&writer_db, splitter, "raced-2").await);
    });
    blocked_or_done(&app.state.db, &write).await;
    deleter.commit().await.unwrap();
    write.await.unwrap();
    match rx.await.unwrap() {
        // The row to copy from was gone when the writer read: nothing written.
        Ok(rows) => assert_eq!(rows, 0),
        Err(e) => assert!(e.to_string().contains("splitter"), "{e}"),
    }
    assert_eq!(
        orphans(&app.state.db).await,
        0,
        "a port was written on a deleted splitter"
    );
}

/// A port moved to a splitter that another transaction then deletes: the deletion waits for the
/// mover (the new splitter is locked as a foreign key locks it) and takes the port with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_splitter_deleted_while_a_port_moves_to_it_takes_it() {
    let Some(Raced {
        app,
        splitter,
        writer: mover,
        ..
    }) = raced().await
    else {
        return;
    };
    let moved = mover
        .execute_raw(statement(
            &mover,
            "UPDATE ports SET splitter_id = {}, number = 901 \
             WHERE id = (SELECT min(id) FROM ports WHERE splitter_id <> {})",
            vec![splitter.into(), splitter.into()],
        ))
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 1);
    deleted_while_written(&app, splitter, mover).await;
}

/// A port whose state changes but not its splitter leaves the splitter unlocked (migration 20):
/// an incremental run rewrites thousands of ports in place, and locking each one's splitter
/// wrote a lock record and dirtied a page per splitter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_stays_on_its_splitter_leaves_it_unlocked() {
    let Some(Raced {
        app,
        splitter,
        writer,
        ..
    }) = raced().await
    else {
        return;
    };
    let written = writer
        .execute_raw(statement(
            &writer,
            "UPDATE ports SET status = 'RESERVED', splitter_id = splitter_id \
             WHERE id = (SELECT min(id) FROM ports WHERE splitter_id = {})",
            vec![splitter.into()],
        ))
        .await
        .unwrap();
    assert_eq!(written.rows_affected(), 1);
    let other = second_connection(&app).await;
    let locked = other
        .execute_raw(statement(
            &other,
            "SELECT id FROM splitters WHERE id = {} FOR UPDATE NOWAIT",
            vec![splitter.into()],
        ))
        .await;
    assert!(
        locked.is_ok(),
        "the splitter of a port that stays was locked: {locked:?}"
    );
    writer.rollback().await.unwrap();
}
