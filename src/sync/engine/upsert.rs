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

/// Upserts `rows` keyed by `key`: those for which `stays` gives the id of the row already there
/// (one whose indexed columns do not change) get only their `state` columns set, found by that
/// id ([`update_by_id`]); the others are upserted setting every column ([`upsert`]).
pub(super) async fn upsert_narrowly<E, C>(
    txn: &C,
    rows: Vec<E::ActiveModel>,
    key: Vec<E::Column>,
    state: &[E::Column],
    stays: impl Fn(&E::ActiveModel) -> Option<i64>,
) -> Result<()>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    C: ConnectionTrait,
{
    let mut stay = Vec::new();
    let mut go = Vec::new();
    for row in rows {
        match stays(&row) {
            Some(id) => stay.push((id, row)),
            None => go.push(row),
        }
    }
    upsert::<E, C>(txn, go, key).await?;
    update_by_id::<E, C>(txn, stay, state).await
}

/// Sets the `columns` of rows already there, each found by its id: one probe of the table by
/// its primary key, where an upsert probes its conflict target's unique index first (and on
/// PostgreSQL locks the row it found, a WAL record more, before updating it). SQLite leaves the
/// indexes alone as no indexed column is set; PostgreSQL writes the new version on the same page
/// when there is room (migration `m20261207_000019_room_for_updates`). The rows go as one JSON
/// parameter, in one statement whose text is the same for every page.
async fn update_by_id<E, C>(
    txn: &C,
    rows: Vec<(i64, E::ActiveModel)>,
    columns: &[E::Column],
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
    let backend = txn.get_database_backend();
    let table = E::default().table_name().to_owned();
    let (ids, rows): (Vec<i64>, Vec<E::ActiveModel>) = rows.into_iter().unzip();
    let (page, types) = json_rows::<E>(&rows, columns, Some(&ids))?;
    let sql = if backend == sea_orm::DbBackend::Postgres {
        let set: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = r.c{}", c.as_str(), i + 1))
            .collect();
        let record: Vec<String> = types
            .iter()
            .enumerate()
            .map(|(i, t)| format!("c{i} {t}"))
            .collect();
        format!(
            "UPDATE {table} AS t SET {set} FROM json_to_recordset($1::json) AS r({record}) \
             WHERE t.id = r.c0",
            set = set.join(", "),
            record = record.join(", "),
        )
    } else {
        let set: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = r.value ->> 'c{}'", c.as_str(), i + 1))
            .collect();
        format!(
            "UPDATE {table} SET {set} FROM jsonb_each(?) AS r WHERE {table}.id = r.value ->> 'c0'",
            set = set.join(", "),
        )
    };
    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
        backend,
        sql,
        [sea_orm::Value::from(page)],
    ))
    .await?;
    Ok(())
}

/// [`upsert`]'s statements: inserts `rows`, or sets the `update` columns of the row already there
/// with the same `key`.
async fn upsert_setting<E, C>(
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
    let columns: Vec<E::Column> = E::Column::iter().filter(|c| c.as_str() != "id").collect();
    let (page, types) = json_rows::<E>(&rows, &columns, None)?;
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

/// `rows` as one JSON array of objects, their keys the columns' positions (`c0`, `c1`, …: a page
/// of ports is 40% shorter so than with the columns' names), with the PostgreSQL type of each
/// position. With `ids`, `c0` is each row's id and the `columns` follow it.
fn json_rows<E>(
    rows: &[E::ActiveModel],
    columns: &[E::Column],
    ids: Option<&[i64]>,
) -> Result<(String, Vec<&'static str>)>
where
    E: EntityTrait,
    E::ActiveModel: ActiveModelTrait<Entity = E>,
{
    use sea_orm::IdenStatic;
    use std::io::Write;
    let first = usize::from(ids.is_some());
    let mut types: Vec<&str> = if ids.is_some() {
        vec!["bigint"]
    } else {
        Vec::new()
    };
    let mut page: Vec<u8> = Vec::with_capacity(rows.len() * 24 * (columns.len() + first));
    page.push(b'[');
    for (r, row) in rows.iter().enumerate() {
        if r > 0 {
            page.push(b',');
        }
        page.push(b'{');
        if let Some(ids) = ids {
            write!(page, "\"c0\":{}", ids[r]).map_err(crate::Error::internal)?;
        }
        for (i, column) in columns.iter().enumerate() {
            let value = row.get(*column).into_value().ok_or_else(|| {
                crate::Error::internal(anyhow::anyhow!(
                    "column {} of a synced row was not set",
                    column.as_str()
                ))
            })?;
            let (ty, json) = json_value(&value)?;
            let i = i + first;
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
    Ok((page, types))
}

/// A synced column's SQL type and its value in JSON. A time is written as sqlx writes it to
/// SQLite (`2026-12-07T17:02:12.633+00:00`), which PostgreSQL reads as well: the text SQLite
/// keeps is then the same whichever statement wrote it.
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
                Json::from(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false))
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
