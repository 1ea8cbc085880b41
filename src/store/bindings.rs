//! What a sync or an unlink does to bindings, in SQL: orphaning the bindings of ports about to
//! disappear, and reconciling bindings with the platform customers a page of ports carries.
//!
//! A binding is never deleted here: an active one (PENDING or CONFIRMED) whose port goes away
//! becomes ORPHANED, with a snapshot of where it was (box fid and name, splitter fid, port fid and
//! number), and its `port_id` is cleared. Every statement is conditional on the binding's status,
//! so a binding that a person changed meanwhile is left as that person left it.

use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use super::plant::{id_list, placeholder, CHUNK};
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

/// The SQL condition "port `p` carries a customer who is not binding `b`'s": the same rule as
/// `platform::holder` (contract first; the document's digits when the platform has no contract;
/// a customer with a name only is someone else's).
pub fn other_customer(p: &str, b: &str) -> String {
    let digits = [".", "-", "/", " "]
        .iter()
        .fold(format!("{p}.customer_document"), |expr, sep| {
            format!("REPLACE({expr}, '{sep}', '')")
        });
    format!(
        "(({p}.customer_contract IS NOT NULL AND {p}.customer_contract <> {b}.contract) \
         OR ({p}.customer_contract IS NULL AND {p}.customer_document IS NOT NULL \
             AND {digits} <> {b}.document) \
         OR ({p}.customer_contract IS NULL AND {p}.customer_document IS NULL \
             AND {p}.customer_name IS NOT NULL))"
    )
}

/// Orphans the active bindings of the ports in `scope`, in the caller's transaction (which then
/// deletes the ports); returns their ids. One conditional `UPDATE ... RETURNING` per chunk: a
/// binding released or cancelled meanwhile is not active any more and stays as it is. On
/// PostgreSQL the doomed ports are locked first (`FOR UPDATE`): a bind or rebind takes its port
/// `FOR KEY SHARE`, so either it committed before (and its binding is orphaned here) or it waits
/// and then finds the port gone; none ends active on a deleted port.
pub async fn orphan_bindings<C: ConnectionTrait>(db: &C, scope: &PortScope) -> Result<Vec<i64>> {
    let backend = db.get_database_backend();
    let now = Utc::now();
    let active = super::lookup::active_statuses_sql();
    let mut orphaned = Vec::new();
    for doomed in scope.chunks() {
        if backend == DbBackend::Postgres {
            db.execute_unprepared(&format!("{doomed} FOR UPDATE"))
                .await?;
        }
        let p1 = placeholder(backend, 1);
        let p2 = placeholder(backend, 2);
        let sql = format!(
            "UPDATE bindings SET \
               snapshot_port_fid = (SELECT p.fid FROM ports p WHERE p.id = bindings.port_id), \
               snapshot_port_number = (SELECT p.number FROM ports p WHERE p.id = bindings.port_id), \
               snapshot_splitter_fid = (SELECT s.fid FROM ports p JOIN splitters s ON s.id = p.splitter_id WHERE p.id = bindings.port_id), \
               snapshot_box_fid = (SELECT s.box_fid FROM ports p JOIN splitters s ON s.id = p.splitter_id WHERE p.id = bindings.port_id), \
               snapshot_box_name = COALESCE((SELECT e.name FROM ports p JOIN splitters s ON s.id = p.splitter_id JOIN elements e ON e.id = s.element_id WHERE p.id = bindings.port_id), snapshot_box_name), \
               status = '{status}', port_id = NULL, orphaned_at = {p1}, updated_at = {p2} \
             WHERE status IN ({active}) AND port_id IN ({doomed}) RETURNING id",
            status = sea_orm::ActiveEnum::to_value(&entity::binding::BindingStatus::Orphaned),
        );
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [Value::from(now), Value::from(now)],
            ))
            .await?;
        for row in rows {
            orphaned.push(row.try_get::<i64>("", "id")?);
        }
    }
    orphaned.sort_unstable();
    Ok(orphaned)
}

/// The splitters among `ids` with an active binding on one of their ports, as (id, fid): those a
/// purge asks the platform about before deleting, since their kind may have changed back.
pub async fn bound_splitters<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
) -> Result<Vec<(i64, String)>> {
    let active = super::lookup::active_statuses_sql();
    let mut out = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "SELECT s.id, s.fid FROM splitters s WHERE s.id IN ({}) AND EXISTS (\
               SELECT 1 FROM ports p JOIN bindings b ON b.port_id = p.id \
               WHERE p.splitter_id = s.id AND b.status IN ({active}))",
            id_list(chunk)
        );
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await?;
        for row in rows {
            out.push((
                row.try_get::<i64>("", "id")?,
                row.try_get::<String>("", "fid")?,
            ));
        }
    }
    Ok(out)
}

/// How far apart the clocks of two instances may be: a delivery stamped up to this long before
/// a run began may have landed after the run read its port.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// After a page of ports is written: marks done the pending pushes whose contract the platform
/// now shows on their port (when no older delivery of that port is pending, or delivered while
/// the run may have been reading; never one a delivery round has in flight, which settles it
/// itself: settled here, it would let a removal queued behind it go out first, and the write in
/// flight land after that removal), clears the conflicts that agree again, and records a conflict on
/// each active binding whose port carries another customer on the platform ([`other_customer`]:
/// contract, then document; neither side is changed). Returns how many bindings this run found in conflict for the first time (`since`
/// is when the run started, so a binding is counted once per run).
///
/// On PostgreSQL the three updates are one statement (data-modifying `WITH`, the page's
/// ports one array parameter), prepared once for every page: as three statements with
/// inlined ids they took 1.1 ms a page, 0.8 s of a 20,000-box full sync. The two updates of
/// `bindings` touch disjoint rows (the port's contract agrees, or it differs), as PostgreSQL
/// requires of one statement. SQLite runs them one after the other, the ports one JSON
/// parameter.
///
/// `port_ids` are the page's ports that existed before it was written: a port the page creates
/// has no binding yet. An incremental run's page names a port or two of each splitter, so these
/// are looked up by port, not by splitter (at 200,000 boxes a page's splitters hold about 5,600
/// ports: 73 of a 1% run's 1,100 ms went to reading them with no binding to find).
///
/// `now` is the database's clock (leases are compared on it).
pub async fn reconcile_bindings<C: ConnectionTrait>(
    db: &C,
    port_ids: &[i64],
    since: chrono::DateTime<Utc>,
    now: chrono::DateTime<Utc>,
) -> Result<u64> {
    use entity::binding::BindingStatus;
    use entity::push_outbox::{PushAction, PushStatus};
    use sea_orm::ActiveEnum;
    let backend = db.get_database_backend();
    // Deliveries stamped after this may have landed after a page of the run was read.
    let read_after = since - CLOCK_SKEW;
    let confirmed = BindingStatus::Confirmed.to_value();
    let active = super::lookup::active_statuses_sql();
    let other = other_customer("p", "bindings");
    let statements = |ports: &str| {
        // Done only when no older delivery of the same port is still pending (a removal queued
        // before it could still clear the port after this sync saw our contract on it), nor
        // delivered since the run began, give or take the clocks of two instances (it may have
        // landed after this page was read): a removal, or another binding's push. An older
        // push of the same binding wrote what the sync saw.
        let done = format!(
            "UPDATE push_outbox SET status = '{delivered}', delivered_at = {p1}, last_error = NULL, \
               claim_token = NULL \
             WHERE status = '{pending}' AND action = '{push}' \
             AND (claim_token IS NULL OR next_attempt_at <= {p1}) AND binding_id IN ( \
               SELECT b.id FROM bindings b JOIN ports p ON p.id = b.port_id \
               WHERE b.status = '{confirmed}' AND p.customer_contract = b.contract \
               AND p.fid = push_outbox.port_fid AND p.id IN ({ports})) \
             AND NOT EXISTS (SELECT 1 FROM push_outbox o \
               WHERE o.integration_id = push_outbox.integration_id \
               AND o.port_fid = push_outbox.port_fid AND o.id < push_outbox.id \
               AND (o.status = '{pending}' OR (o.status = '{delivered}' AND o.delivered_at >= {p4} \
                 AND (o.action <> '{push}' OR o.binding_id <> push_outbox.binding_id))))",
            delivered = PushStatus::Delivered.to_value(),
            pending = PushStatus::Pending.to_value(),
            push = PushAction::Push.to_value(),
            p1 = placeholder(backend, 1),
            p4 = placeholder(backend, 4),
        );
        let agree = format!(
            "UPDATE bindings SET conflict_contract = NULL, conflict_document = NULL, \
               conflict_seen_at = NULL \
             WHERE conflict_seen_at IS NOT NULL AND port_id IN ({ports}) AND EXISTS ( \
               SELECT 1 FROM ports p WHERE p.id = bindings.port_id AND NOT {other})"
        );
        let disagree = format!(
            "UPDATE bindings SET \
               conflict_contract = (SELECT p.customer_contract FROM ports p WHERE p.id = bindings.port_id), \
               conflict_document = (SELECT p.customer_document FROM ports p WHERE p.id = bindings.port_id), \
               conflict_seen_at = {p1} \
             WHERE status IN ({active}) AND port_id IN ({ports}) \
             AND (conflict_seen_at IS NULL OR conflict_seen_at < {p2}) AND EXISTS ( \
               SELECT 1 FROM ports p WHERE p.id = bindings.port_id AND {other})",
            p1 = placeholder(backend, 1),
            p2 = placeholder(backend, 2),
        );
        (done, agree, disagree)
    };
    if port_ids.is_empty() {
        return Ok(0);
    }
    if backend == DbBackend::Postgres {
        let (done, agree, disagree) = statements("SELECT unnest($3::bigint[])");
        let sql = format!(
            "WITH done AS ({done} RETURNING 1), agree AS ({agree} RETURNING 1), \
             disagree AS ({disagree} RETURNING 1) SELECT count(*) AS n FROM disagree"
        );
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [
                    Value::from(now),
                    Value::from(since),
                    Value::from(port_ids.to_vec()),
                    Value::from(read_after),
                ],
            ))
            .await?;
        return Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0) as u64);
    }
    // The page's ports as one JSON parameter: the same three texts for every page, prepared
    // once. SQLite's `?` take their values in the order they appear in the text.
    let (done, agree, disagree) = statements("SELECT value FROM json_each(?)");
    let ids = Value::from(format!("[{}]", id_list(port_ids)));
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        done,
        [
            Value::from(now),
            Value::from(now),
            ids.clone(),
            Value::from(read_after),
        ],
    ))
    .await?;
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        agree,
        [ids.clone()],
    ))
    .await?;
    Ok(db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            disagree,
            [Value::from(now), ids, Value::from(since)],
        ))
        .await?
        .rows_affected())
}
