//! Operations on the local copy of the plant that more than one feature needs: counting,
//! linking and deleting rows by id in chunks. What a sync does to bindings (orphaning,
//! reconciliation) is in `store::bindings`.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

use crate::Result;

/// Largest id list per statement: well under PostgreSQL's 65,535 bind parameters, and ids are
/// inlined as integers anyway.
pub const CHUNK: usize = 1000;

pub(super) fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

/// The `n`th (1-based) bind placeholder of the engine: `$n` on PostgreSQL, `?` on SQLite.
pub fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// `column IN (values)`, for a sync's per-page lookups, as one parameter: on PostgreSQL an array
/// (`column = ANY($1)`), on SQLite a JSON list (`column IN (SELECT value FROM json_each(?))`).
/// The statement's text is then the same for every page, so its prepared form is reused, where
/// an IN list of 500 parameters is parsed and planned again whenever the page's count changes
/// (an incremental run's pages all differ).
pub fn among<Col, T>(backend: DbBackend, column: Col, values: Vec<T>) -> sea_orm::sea_query::Expr
where
    Col: sea_orm::ColumnTrait,
    T: Into<Value>
        + sea_orm::sea_query::value::postgres_array::NotU8
        + sea_orm::sea_query::ValueType,
{
    use sea_orm::sea_query::{extension::postgres::PgFunc, BinOper, Expr, ExprTrait};
    match backend {
        DbBackend::Postgres => Expr::col(column).eq(PgFunc::any(Expr::val(values))),
        _ => {
            let values: Vec<Value> = values.into_iter().map(Into::into).collect();
            match json_list(&values) {
                Some(list) => Expr::col(column).binary(
                    BinOper::In,
                    // sea-query puts the parentheses of `IN (…)` around it.
                    Expr::cust_with_values("SELECT value FROM json_each(?)", [list]),
                ),
                None => column.is_in(values),
            }
        }
    }
}

/// Integers and texts as the text of a JSON list; `None` for other values.
fn json_list(values: &[Value]) -> Option<String> {
    let items = values
        .iter()
        .map(|v| match v {
            Value::BigInt(Some(n)) => Some(serde_json::Value::from(*n)),
            Value::Int(Some(n)) => Some(serde_json::Value::from(*n)),
            Value::String(Some(s)) => Some(serde_json::Value::from(s.as_str())),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some(serde_json::Value::Array(items).to_string())
}

/// Whether `table` holds any row of the integration.
pub async fn holds_any<C: ConnectionTrait>(
    db: &C,
    table: &str,
    integration_id: i64,
) -> Result<bool> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT 1 AS one FROM {table} WHERE integration_id = {} LIMIT 1",
        placeholder(backend, 1)
    );
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(integration_id)],
        ))
        .await?;
    Ok(row.is_some())
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

/// Refreshes a table's planner statistics (PostgreSQL `ANALYZE`). Best effort: a role that does
/// not own the table gets a warning from PostgreSQL and nothing changes, and a failure is logged,
/// never the run's.
pub async fn analyze<C: ConnectionTrait>(db: &C, table: &'static str) {
    if let Err(e) = db.execute_unprepared(&format!("ANALYZE {table}")).await {
        tracing::debug!(table, error = %e, "could not refresh the table's statistics");
    }
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

/// Which local rows a fid range is read from.
#[derive(Clone, Copy, Debug)]
pub enum RowScope<'a> {
    /// Every row of the table in this project.
    Project(i64),
    /// The project's elements of one item (stored name).
    Item(i64, &'a str),
}

/// Which rows of a scope, by their fid.
#[derive(Clone, Copy, Debug)]
pub enum FidRange {
    /// Numeric fids in (lo, hi]; `None` is unbounded.
    Numbered(Option<i64>, Option<i64>),
    /// Fids that are not numbers (a platform's object ids).
    Unnumbered,
}

/// Rows of a range read per statement by [`gone_in_range`].
const RANGE_CHUNK: i64 = 5_000;

/// Ids of the rows of `table` in `scope` whose fid falls in `range` and that `keep` does not
/// keep. Read in chunks of [`RANGE_CHUNK`] rows by id: an unnumbered range is every row of an
/// OZmap project's table (300,000 ports at 20,000 boxes), which read at once held the whole
/// result set in memory.
pub async fn gone_in_range<C: ConnectionTrait>(
    db: &C,
    table: &str,
    scope: RowScope<'_>,
    range: FidRange,
    keep: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<i64>> {
    let backend = db.get_database_backend();
    let mut gone = Vec::new();
    let mut after = i64::MIN;
    loop {
        let mut values: Vec<Value> = Vec::new();
        let mut bind = |v: Value| {
            values.push(v);
            placeholder(backend, values.len())
        };
        let mut condition = match scope {
            RowScope::Project(project) => format!("project_id = {}", bind(project.into())),
            RowScope::Item(project, item) => format!(
                "project_id = {} AND item = {}",
                bind(project.into()),
                bind(item.into())
            ),
        };
        match range {
            FidRange::Unnumbered => condition.push_str(" AND fid_num IS NULL"),
            FidRange::Numbered(lo, hi) => {
                condition.push_str(" AND fid_num IS NOT NULL");
                if let Some(lo) = lo {
                    condition.push_str(&format!(" AND fid_num > {}", bind(lo.into())));
                }
                if let Some(hi) = hi {
                    condition.push_str(&format!(" AND fid_num <= {}", bind(hi.into())));
                }
            }
        }
        condition.push_str(&format!(" AND id > {}", bind(after.into())));
        let sql = format!(
            "SELECT id, fid FROM {table} WHERE {condition} ORDER BY id LIMIT {RANGE_CHUNK}"
        );
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        let read = rows.len() as i64;
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            let fid: String = row.try_get("", "fid")?;
            after = id;
            if !keep(&fid) {
                gone.push(id);
            }
        }
        if read < RANGE_CHUNK {
            return Ok(gone);
        }
    }
}

/// The ports now at these slots (splitter id, port number): id, splitter id, number and fid.
/// What a page's renumbering plan needs to know of the local ports: only a port standing where a
/// write lands can be in its way (for a page of scattered changes, every port of the page's
/// splitters is about 16 times the rows; `sync::engine` picks one or the other). On
/// PostgreSQL the slots are two array parameters, so the statement is the same for every page;
/// on SQLite a `VALUES` list of at most [`CHUNK`] slots joined to the slot index.
pub async fn ports_at<C: ConnectionTrait>(
    db: &C,
    slots: &[(i64, i32)],
) -> Result<Vec<(i64, i64, i32, String)>> {
    let backend = db.get_database_backend();
    let mut out = Vec::new();
    let chunk_size = match backend {
        DbBackend::Postgres => usize::MAX,
        _ => CHUNK,
    };
    for chunk in slots.chunks(chunk_size) {
        let statement = match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                "SELECT p.id, p.splitter_id, p.number, p.fid \
                 FROM unnest($1::bigint[], $2::int[]) AS t(s, n) \
                 JOIN ports p ON p.splitter_id = t.s AND p.number = t.n",
                [
                    Value::from(chunk.iter().map(|(s, _)| *s).collect::<Vec<i64>>()),
                    Value::from(chunk.iter().map(|(_, n)| *n).collect::<Vec<i32>>()),
                ],
            ),
            _ => {
                // Integers only, inlined like the id lists here; CROSS JOIN keeps SQLite from
                // scanning the table for the list.
                let values = chunk
                    .iter()
                    .map(|(s, n)| format!("({s}, {n})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Statement::from_string(
                    backend,
                    format!(
                        "SELECT p.id, p.splitter_id, p.number, p.fid FROM (VALUES {values}) t \
                         CROSS JOIN ports p ON p.splitter_id = t.column1 AND p.number = t.column2"
                    ),
                )
            }
        };
        for row in db.query_all_raw(statement).await? {
            out.push((
                row.try_get("", "id")?,
                row.try_get("", "splitter_id")?,
                row.try_get("", "number")?,
                row.try_get("", "fid")?,
            ));
        }
    }
    Ok(out)
}

/// Every port of these splitters: id, splitter id, number and fid (see [`ports_at`]). On
/// PostgreSQL one array parameter; on SQLite id lists of at most [`CHUNK`].
pub async fn ports_of_splitters<C: ConnectionTrait>(
    db: &C,
    splitter_ids: &[i64],
) -> Result<Vec<(i64, i64, i32, String)>> {
    use entity::port;
    use sea_orm::{EntityTrait, QueryFilter, QuerySelect};
    let backend = db.get_database_backend();
    let chunk_size = match backend {
        DbBackend::Postgres => usize::MAX,
        _ => CHUNK,
    };
    let mut out = Vec::new();
    for chunk in splitter_ids.chunks(chunk_size) {
        out.extend(
            port::Entity::find()
                .select_only()
                .column(port::Column::Id)
                .column(port::Column::SplitterId)
                .column(port::Column::Number)
                .column(port::Column::Fid)
                .filter(among(backend, port::Column::SplitterId, chunk.to_vec()))
                .into_tuple::<(i64, i64, i32, String)>()
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

/// The integration's ports with these fids, each with its splitter's fid and kind, read as one
/// JSON array: what a sync page compares its port records with, and where each record whose
/// port stays on its splitter finds that splitter without a lookup by fid (a page of an
/// incremental run names about one splitter per record).
pub async fn ports_with_splitters<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    fids: &[String],
) -> Result<Vec<(entity::port::Model, String, entity::splitter::SplitterKind)>> {
    use super::rows::{self, Json};
    let backend = db.get_database_backend();
    let Json {
        aggregate,
        array,
        cast,
    } = Json::of(backend);
    let port = rows::row_array::<entity::port::Entity>(backend, "p.");
    let (among, list) = match backend {
        DbBackend::Postgres => (
            format!("= ANY({})", placeholder(backend, 2)),
            Value::from(fids.to_vec()),
        ),
        _ => (
            "IN (SELECT value FROM json_each(?))".to_owned(),
            Value::from(serde_json::Value::from(fids).to_string()),
        ),
    };
    let sql = format!(
        "SELECT {aggregate}({array}({port}, s.fid, s.kind)){cast} AS rows \
         FROM ports p JOIN splitters s ON s.id = p.splitter_id \
         WHERE p.integration_id = {} AND p.fid {among}",
        placeholder(backend, 1)
    );
    let statement = Statement::from_sql_and_values(backend, sql, [integration_id.into(), list]);
    rows::read(db, statement, |text| serde_json::from_str(text), "ports").await
}

/// Moves these ports to the number `-id`, out of the way of a renumbering written in the same
/// transaction.
pub async fn park_ports<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<()> {
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "UPDATE ports SET number = -id WHERE id IN ({})",
            id_list(chunk)
        );
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Deletes the ports of these splitters; returns how many went.
pub async fn delete_ports_of_splitters<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<u64> {
    let mut total = 0;
    for chunk in ids.chunks(CHUNK) {
        let sql = format!(
            "DELETE FROM ports WHERE splitter_id IN ({})",
            id_list(chunk)
        );
        total += db.execute_unprepared(&sql).await?.rows_affected();
    }
    Ok(total)
}

/// Deletes a project's plant rows; ports go first, so that nothing waits on `SET NULL`.
pub async fn delete_project_plant<C: ConnectionTrait>(db: &C, project_id: i64) -> Result<()> {
    for table in ["ports", "splitters", "elements"] {
        let sql = format!("DELETE FROM {table} WHERE project_id = {project_id}");
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Links the integration's splitters without a box to the box (element of one of `box_items`,
/// stored names) whose fid they name, once that box is synced; with `only`, the splitters that
/// name one of those box fids (the boxes a run created), else every unlinked one.
pub async fn link_boxes<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    box_items: [crate::catalog::ElementItem; 2],
    only: Option<&[String]>,
) -> Result<()> {
    let backend = db.get_database_backend();
    let mut values = vec![
        Value::from(box_items[0].as_str()),
        Value::from(box_items[1].as_str()),
        Value::from(integration_id),
    ];
    let among = match only {
        None => String::new(),
        Some(fids) if backend == DbBackend::Postgres => {
            values.push(Value::from(fids.to_vec()));
            " AND box_fid = ANY($4)".to_owned()
        }
        Some(fids) => {
            values.extend(fids.iter().map(|f| Value::from(f.as_str())));
            format!(" AND box_fid IN ({})", vec!["?"; fids.len()].join(", "))
        }
    };
    let sql = format!(
        "UPDATE splitters SET element_id = (SELECT e.id FROM elements e \
           WHERE e.integration_id = splitters.integration_id AND e.fid = splitters.box_fid \
           AND e.item IN ({}, {}) ORDER BY e.id LIMIT 1) \
         WHERE integration_id = {} AND element_id IS NULL AND box_fid IS NOT NULL{among}",
        placeholder(backend, 1),
        placeholder(backend, 2),
        placeholder(backend, 3),
    );
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, EntityTrait, QueryFilter, QueryTrait};

    use super::among;

    #[test]
    fn a_page_of_values_is_one_parameter() {
        let sql = |backend, fids: Vec<String>| {
            entity::port::Entity::find()
                .filter(among(backend, entity::port::Column::Fid, fids))
                .build(backend)
        };
        let one = sql(DbBackend::Sqlite, vec!["a".into()]);
        let three = sql(
            DbBackend::Sqlite,
            vec!["a".into(), "b\"".into(), "c".into()],
        );
        assert_eq!(one.sql, three.sql, "the same text for every count");
        assert!(
            three
                .sql
                .ends_with("\"fid\" IN (SELECT value FROM json_each(?))"),
            "{}",
            three.sql
        );
        assert_eq!(
            three.values.unwrap().0,
            [sea_orm::Value::from(r#"["a","b\"","c"]"#)]
        );
        let pg = sql(DbBackend::Postgres, vec!["a".into(), "b".into()]);
        assert!(pg.sql.ends_with("\"fid\" = ANY($1)"), "{}", pg.sql);
    }
}
