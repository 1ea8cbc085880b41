//! An incremental run's ports that stay where they are: their new state written by one
//! statement that finds each row by its fid and returns the rows it wrote, with no read before it.
//!
//! An incremental page names ports scattered over the whole table (1% of 200,000 boxes' ports
//! are on about half the ports' pages). Read first and updated by id after, each changed port's
//! index and heap pages were visited twice, by two statements, and its row went to the gateway
//! and back: on PostgreSQL, with pages mostly outside `shared_buffers`, the read was about a
//! third of a 1% run (docs/BENCHMARKS.md, "Ports written where they stand").
//!
//! The records' splitters are looked up first, once for the page ([`super::port_writes`]): a
//! record of a splitter not known here or of a kind not selected is dropped there, as the
//! general way would skip it, without its port being looked for (a third of an incremental
//! page's ports at the simulator's mix of kinds). A record whose port is not found on its slot
//! (new, moved, renumbered) or whose state is unchanged is not written here and goes the general
//! way, which reads, plans the renumberings and counts the unchanged.

use sea_orm::{ActiveEnum, ConnectionTrait, DbBackend, Statement, Value};
use serde::Serialize;

use crate::platform::RemotePort;
use crate::Result;

/// A record as the statement reads it.
#[derive(Serialize)]
struct Row<'r> {
    f: &'r str,
    /// The id of the splitter the record names, looked up by its fid before.
    s: i64,
    n: i32,
    st: String,
    c: Option<&'r str>,
    d: Option<&'r str>,
    m: Option<&'r str>,
    /// Written as sqlx writes a time to SQLite, so that SQLite's text compares equal.
    u: Option<String>,
}

/// Sets the state of the ports these records keep on their slot (the project's port with that
/// fid, on the splitter given with the record, which the caller found by the record's splitter
/// fid and of a selected kind, with that number) where it changed; returns the id and fid of
/// each port written.
pub(super) async fn write_ports_in_place<C: ConnectionTrait>(
    txn: &C,
    integration_id: i64,
    project_id: i64,
    records: &[(&RemotePort, i64)],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(i64, String)>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = records
        .iter()
        .map(|(r, splitter_id)| {
            let customer = r.customer.as_ref();
            Row {
                f: &r.fid,
                s: *splitter_id,
                n: r.number,
                st: r.status.to_value(),
                c: customer.and_then(|c| c.contract.as_deref()),
                d: customer.and_then(|c| c.document.as_deref()),
                m: customer.and_then(|c| c.name.as_deref()),
                u: r.updated_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)),
            }
        })
        .collect();
    let page = serde_json::to_string(&rows).map_err(crate::Error::internal)?;
    let backend = txn.get_database_backend();
    let sql = if backend == DbBackend::Postgres {
        "UPDATE ports AS t SET status = r.st, customer_contract = r.c, customer_document = r.d, \
           customer_name = r.m, remote_updated_at = r.u, synced_at = $1 \
         FROM json_to_recordset($2::json) AS r(f varchar, s bigint, n integer, st varchar, \
           c varchar, d varchar, m varchar, u timestamptz) \
         WHERE t.integration_id = $3 AND t.fid = r.f AND t.splitter_id = r.s \
           AND t.number = r.n AND t.project_id = $4 \
           AND (t.status, t.customer_contract, t.customer_document, t.customer_name, \
             t.remote_updated_at) IS DISTINCT FROM (r.st, r.c, r.d, r.m, r.u) \
         RETURNING t.id, t.fid"
    } else {
        // SQLite would walk the ports first and the records inside: the rows to write are found
        // first, in the order written (`CROSS JOIN`), then updated by id.
        "WITH m AS MATERIALIZED (SELECT p.id AS id, r.value AS v FROM jsonb_each(?2) AS r \
           CROSS JOIN ports AS p \
           WHERE p.integration_id = ?3 AND p.fid = r.value ->> 'f' \
             AND p.splitter_id = r.value ->> 's' AND p.number = r.value ->> 'n' \
             AND p.project_id = ?4 \
             AND (p.status, p.customer_contract, p.customer_document, p.customer_name, \
               p.remote_updated_at) IS NOT (r.value ->> 'st', r.value ->> 'c', \
               r.value ->> 'd', r.value ->> 'm', r.value ->> 'u')) \
         UPDATE ports SET status = m.v ->> 'st', customer_contract = m.v ->> 'c', \
           customer_document = m.v ->> 'd', customer_name = m.v ->> 'm', \
           remote_updated_at = m.v ->> 'u', synced_at = ?1 \
         FROM m WHERE ports.id = m.id RETURNING ports.id, ports.fid"
    };
    let statement = Statement::from_sql_and_values(
        backend,
        sql,
        [
            Value::from(now),
            Value::from(page),
            Value::from(integration_id),
            Value::from(project_id),
        ],
    );
    let mut written = Vec::new();
    for row in txn.query_all_raw(statement).await? {
        written.push((row.try_get_by_index(0)?, row.try_get_by_index(1)?));
    }
    Ok(written)
}
