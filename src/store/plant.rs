//! Operations on the local copy of the plant that more than one feature needs: orphaning the
//! bindings of ports about to disappear, and deleting rows by id in chunks.
//!
//! A binding is never deleted here: an active one (PENDING or CONFIRMED) whose port goes away
//! becomes ORPHANED, with a snapshot of where it was (box fid and name, splitter fid, port fid and
//! number), and its `port_id` is cleared.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::Result;

/// Which ports are about to disappear, as a SQL condition over the `ports` table. Only integer
/// ids ever go into these strings.
#[derive(Clone, Debug)]
pub enum PortScope {
    /// Every port of a project.
    Project(i64),
    /// Ports with these ids.
    Ports(Vec<i64>),
    /// Ports of splitters with these ids.
    Splitters(Vec<i64>),
}

/// Largest id list per statement: well under PostgreSQL's 65,535 bind parameters, and ids are
/// inlined as integers anyway.
pub const CHUNK: usize = 1000;

fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// The `n`th (1-based) bind placeholder of the engine: `$n` on PostgreSQL, `?` on SQLite.
pub fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

impl PortScope {
    fn chunks(&self) -> Vec<String> {
        match self {
            PortScope::Project(id) => vec![format!("SELECT id FROM ports WHERE project_id = {id}")],
            PortScope::Ports(ids) => ids
                .chunks(CHUNK)
                .map(|c| format!("SELECT id FROM ports WHERE id IN ({})", id_list(c)))
                .collect(),
            PortScope::Splitters(ids) => ids
                .chunks(CHUNK)
                .map(|c| format!("SELECT id FROM ports WHERE splitter_id IN ({})", id_list(c)))
                .collect(),
        }
    }
}

/// Orphans the active bindings of the ports in `scope`; returns how many.
pub async fn orphan_bindings<C: ConnectionTrait>(db: &C, scope: &PortScope) -> Result<u64> {
    let backend = db.get_database_backend();
    let now = Utc::now();
    let mut total = 0;
    for doomed in scope.chunks() {
        let p1 = placeholder(backend, 1);
        let p2 = placeholder(backend, 2);
        let sql = format!(
            "UPDATE bindings SET \
               snapshot_port_fid = (SELECT p.fid FROM ports p WHERE p.id = bindings.port_id), \
               snapshot_port_number = (SELECT p.number FROM ports p WHERE p.id = bindings.port_id), \
               snapshot_splitter_fid = (SELECT s.fid FROM ports p JOIN splitters s ON s.id = p.splitter_id WHERE p.id = bindings.port_id), \
               snapshot_box_fid = (SELECT s.box_fid FROM ports p JOIN splitters s ON s.id = p.splitter_id WHERE p.id = bindings.port_id), \
               snapshot_box_name = COALESCE((SELECT e.name FROM ports p JOIN splitters s ON s.id = p.splitter_id JOIN elements e ON e.id = s.element_id WHERE p.id = bindings.port_id), snapshot_box_name), \
               status = '{orphaned}', port_id = NULL, orphaned_at = {p1}, updated_at = {p2} \
             WHERE status IN ({active}) AND port_id IN ({doomed})",
            orphaned = sea_orm::ActiveEnum::to_value(&entity::binding::BindingStatus::Orphaned),
            active = super::lookup::active_statuses_sql(),
        );
        let result = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [Value::from(now), Value::from(now)],
            ))
            .await?;
        total += result.rows_affected();
    }
    Ok(total)
}

/// Deletes rows of `table` by id, in chunks; returns how many went.
pub async fn delete_ids<C: ConnectionTrait>(db: &C, table: &str, ids: &[i64]) -> Result<u64> {
    let mut total = 0;
    for chunk in ids.chunks(CHUNK) {
        let sql = format!("DELETE FROM {table} WHERE id IN ({})", id_list(chunk));
        total += db.execute_unprepared(&sql).await?.rows_affected();
    }
    Ok(total)
}

/// Counts rows of a table matching a condition on integer columns only.
pub async fn count<C: ConnectionTrait>(db: &C, table: &str, condition: &str) -> Result<u64> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}"),
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0) as u64)
}
