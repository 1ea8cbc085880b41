//! Writing a page's rows: one multi-row upsert per statement on SQLite, the page as one JSON
//! parameter on PostgreSQL.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait};

use crate::Result;

/// Inserts rows, or updates every other column of the row with the same `key`.
///
/// On PostgreSQL a page goes in as one statement with one parameter, the page's rows in JSON
/// (`json_to_recordset`): the multi-row `VALUES` form binds a parameter per value (6,500 for a
/// page of 500 ports), which PostgreSQL parses, types and plans one by one
/// (docs/BENCHMARKS.md, "Sync at the speed of the wire").
/// On SQLite, multi-row statements of up to 500 rows (well under its bind-parameter limit),
/// padded to one of a few sizes by repeating their last row (the repeat updates the row to what
/// it just wrote): sqlx keeps the prepared statement of each size, where a statement of each
/// row count was parsed and planned again (an incremental run's pages all differ, and a page's
/// statement took 2-3 times as long to prepare as to run).
pub(super) async fn upsert<E, C>(
    txn: &C,
    rows: Vec<E::ActiveModel>,
    key: impl IntoIterator<Item = E::Column>,
) -> Result<()>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    use sea_orm::{IdenStatic, Iterable};
    let key: Vec<E::Column> = key.into_iter().collect();
    let key_names: Vec<&str> = key.iter().map(|c| c.as_str()).collect();
    let update: Vec<E::Column> = E::Column::iter()
        .filter(|c| c.as_str() != "id" && !key_names.contains(&c.as_str()))
        .collect();
    upsert_setting::<E, C>(txn, rows, key, update).await
}

/// Upserts `rows` keyed by `key`: those for which `stays` holds (a row already there whose
/// indexed columns do not change) set only the `state` columns ([`upsert_setting`]), the others
/// every column ([`upsert`]).
pub(super) async fn upsert_narrowly<E, C>(
    txn: &C,
    rows: Vec<E::ActiveModel>,
    key: Vec<E::Column>,
    state: &[E::Column],
    stays: impl Fn(&E::ActiveModel) -> bool,
) -> Result<()>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    let (stay, go): (Vec<_>, Vec<_>) = rows.into_iter().partition(|row| stays(row));
    upsert::<E, C>(txn, go, key.clone()).await?;
    upsert_setting::<E, C>(txn, stay, key, state.to_vec()).await
}

/// [`upsert`] that updates only the `update` columns of a row already there: for rows whose
/// indexed columns are known not to change, SQLite then leaves their indexes alone (it rewrites
/// the entries of every index a `SET` names, equal or not), a page of the table less to write.
pub(super) async fn upsert_setting<E, C>(
    txn: &C,
    rows: Vec<E::ActiveModel>,
    key: Vec<E::Column>,
    update: Vec<E::Column>,
) -> Result<()>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    use sea_orm::IdenStatic;
    if rows.is_empty() {
        return Ok(());
    }
    let key_names: Vec<&str> = key.iter().map(|c| c.as_str()).collect();
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        return upsert_json::<E, C>(txn, rows, &key_names, &update).await;
    }
    let conflict = OnConflict::columns(key).update_columns(update).to_owned();
    for mut chunk in chunked(rows, 500) {
        if let Some(last) = chunk.last().cloned() {
            chunk.resize(statement_rows(chunk.len()), last);
        }
        E::insert_many(chunk)
            .on_conflict(conflict.clone())
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The PostgreSQL form of [`upsert`]: the page as one JSON parameter, spread into rows by
/// `json_to_recordset` (which, unlike bound arrays, carries NULLs). The JSON is written as text
/// at once, its keys the columns' positions (`c0`, `c1`, …): PostgreSQL parses every byte of it,
/// and a page of ports is 40% shorter so.
async fn upsert_json<E, C>(
    txn: &C,
    rows: Vec<E::ActiveModel>,
    key: &[&str],
    update: &[E::Column],
) -> Result<()>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    use sea_orm::{IdenStatic, Iterable};
    use std::io::Write;
    let columns: Vec<E::Column> = E::Column::iter().filter(|c| c.as_str() != "id").collect();
    let mut types: Vec<&str> = Vec::new();
    let mut page: Vec<u8> = Vec::with_capacity(rows.len() * 24 * columns.len());
    page.push(b'[');
    for (r, row) in rows.iter().enumerate() {
        if r > 0 {
            page.push(b',');
        }
        page.push(b'{');
        for (i, column) in columns.iter().enumerate() {
            let value = row.get(*column).into_value().ok_or_else(|| {
                crate::Error::internal(anyhow::anyhow!(
                    "column {} of a synced row was not set",
                    column.as_str()
                ))
            })?;
            let (ty, json) = json_value(&value)?;
            if types.len() == i {
                types.push(ty);
            }
            if i > 0 {
                page.push(b',');
            }
            write!(page, "\"c{i}\":").map_err(crate::Error::internal)?;
            serde_json::to_writer(&mut page, &json).map_err(crate::Error::internal)?;
        }
        page.push(b'}');
    }
    page.push(b']');
    let page = String::from_utf8(page).map_err(crate::Error::internal)?;
    let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
    let positions: Vec<String> = (0..names.len()).map(|i| format!("c{i}")).collect();
    let record: Vec<String> = positions
        .iter()
        .zip(&types)
        .map(|(n, t)| format!("{n} {t}"))
        .collect();
    let set: Vec<String> = update
        .iter()
        .map(|c| format!("{0} = EXCLUDED.{0}", c.as_str()))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({cols}) SELECT {positions} FROM json_to_recordset($1::json) AS r({record}) \
         ON CONFLICT ({key}) DO UPDATE SET {set}",
        table = E::default().table_name(),
        cols = names.join(", "),
        positions = positions.join(", "),
        record = record.join(", "),
        key = key.join(", "),
        set = set.join(", "),
    );
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        sql,
        [sea_orm::Value::from(page)],
    ))
    .await?;
    Ok(())
}

/// A synced column's SQL type and its value in JSON.
fn json_value(v: &sea_orm::Value) -> Result<(&'static str, serde_json::Value)> {
    use sea_orm::Value;
    use serde_json::Value as Json;
    Ok(match v {
        Value::BigInt(n) => ("bigint", n.map_or(Json::Null, Json::from)),
        Value::Int(n) => ("integer", n.map_or(Json::Null, Json::from)),
        Value::Double(f) => ("double precision", f.map_or(Json::Null, Json::from)),
        Value::String(s) => ("text", s.clone().map_or(Json::Null, Json::from)),
        Value::ChronoDateTimeUtc(t) => (
            "timestamptz",
            t.map_or(Json::Null, |t| {
                Json::from(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }),
        ),
        other => {
            return Err(crate::Error::internal(anyhow::anyhow!(
                "no JSON form for a synced value {other:?}"
            )))
        }
    })
}

/// The rows of the SQLite statement that writes `n` rows (at most 500): the next power of two,
/// or 500.
fn statement_rows(n: usize) -> usize {
    n.next_power_of_two().min(500)
}

fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(size).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_chunks_of_at_most_the_size() {
        let chunks = chunked((0..1001).collect::<Vec<_>>(), 500);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [500, 500, 1]
        );
        assert!(chunked(Vec::<i32>::new(), 500).is_empty());
    }

    #[test]
    fn statements_come_in_a_few_sizes() {
        let sizes: std::collections::BTreeSet<usize> = (1..=500).map(statement_rows).collect();
        assert_eq!(sizes.len(), 10);
        assert!((1..=500).all(|n| statement_rows(n) >= n && statement_rows(n) <= 500));
        assert_eq!(
            (statement_rows(1), statement_rows(257), statement_rows(500)),
            (1, 500, 500)
        );
    }
}
