//! Many rows of one table read as a single JSON array that the database builds, for the levels
//! of an element tree that hold thousands of rows.
//!
//! Why: sqlx-sqlite copies every column of every row (`sqlite3_value_dup`) and hands each row
//! from its worker thread to the caller through a channel, and SeaORM then looks each column up
//! by name. For the 9,648 ports of a 500-box page that took 30 to 45 ms where SQLite itself
//! spends 3.5 ms; the same rows as one `json_group_array` took 7 ms to read and 6 ms more to
//! parse into the same models (docs/BENCHMARKS.md, "Tree levels as JSON"). PostgreSQL builds
//! the array with `json_agg` and reads it the same way, but there sqlx reads rows on the
//! caller's task and the same tree measured 78 ms as rows and 90 ms as JSON, so [`many`] reads
//! JSON on SQLite only ([`all`] works, and is tested, on both). A sync page's existing ports
//! read the same way: 28.5 -> 15.2 ms for the 8 pages of a 1% incremental sync of 20,000 boxes.
//!
//! Columns go into each row's array in the entity's declaration order (`Column::iter()`), which
//! is also the order in which serde's derived `Deserialize` reads a struct from an array, so a
//! model deserializes without naming its fields twice. Stored enums read through their
//! `DeriveActiveEnum` names (`entity::as_stored!`): an unknown one is an error.

use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{
    ColumnTrait, ColumnType, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, Iterable,
    QueryFilter, QueryOrder,
};
use serde::de::DeserializeOwned;

use crate::Result;

/// Reads a JSON array of rows into models; made by [`decoder`] for a model that deserializes,
/// and held by loaders whose other entities do not.
pub type Decode<M> = fn(&str) -> serde_json::Result<Vec<M>>;

/// The decoder of `M`'s rows.
pub fn decoder<M: DeserializeOwned>() -> Decode<M> {
    |text| serde_json::from_str(text)
}

/// Rows of `E` that meet `condition`, in `order`, read the way that measured faster on the
/// engine: as one JSON array on SQLite when `json` can decode them, as rows otherwise.
pub async fn many<E: EntityTrait>(
    db: &impl ConnectionTrait,
    condition: sea_orm::Condition,
    order: &[E::Column],
    json: Option<Decode<E::Model>>,
) -> Result<Vec<E::Model>> {
    if let (Some(decode), DbBackend::Sqlite) = (json, db.get_database_backend()) {
        return all::<E>(db, condition, order, decode).await;
    }
    let mut select = E::find().filter(condition);
    for column in order {
        select = select.order_by_asc(*column);
    }
    Ok(select.all(db).await?)
}

/// Rows of `E` that meet `condition`, in `order`, as models, read as one JSON array.
pub async fn all<E: EntityTrait>(
    db: &impl ConnectionTrait,
    condition: sea_orm::Condition,
    order: &[E::Column],
    decode: Decode<E::Model>,
) -> Result<Vec<E::Model>> {
    // SQLite writes a REAL into JSON with 15 significant digits (a coordinate would come back
    // rounded): tables with such columns are read as rows.
    if let Some(real) = E::Column::iter().find(|c| {
        matches!(
            c.def().get_column_type(),
            ColumnType::Float | ColumnType::Double | ColumnType::Decimal(_)
        )
    }) {
        return Err(crate::Error::internal(anyhow::anyhow!(
            "{}.{} is a floating-point column: read the table as rows",
            E::default().table_name(),
            real.as_str()
        )));
    }
    let quoted = |c: &E::Column| format!("\"{}\"", c.as_str());
    let order: Vec<String> = order.iter().map(quoted).collect();
    let order = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    let Json {
        aggregate, cast, ..
    } = Json::of(db.get_database_backend());
    let row = row_array::<E>(db.get_database_backend(), "");
    let statement = Query::select()
        .expr_as(
            Expr::cust(format!("{aggregate}({row}{order}){cast}")),
            Alias::new("rows"),
        )
        .from(E::default())
        .cond_where(condition)
        .to_owned();
    read(
        db,
        db.get_database_backend().build(&statement),
        decode,
        E::default().table_name(),
    )
    .await
}

/// The functions that build JSON on `backend`.
pub(crate) struct Json {
    /// Rows into one array.
    pub(crate) aggregate: &'static str,
    /// Values into one array.
    pub(crate) array: &'static str,
    /// What makes the aggregate text (PostgreSQL's `json` has no text decoding in sqlx).
    pub(crate) cast: &'static str,
}

impl Json {
    pub(crate) fn of(backend: DbBackend) -> Self {
        match backend {
            DbBackend::Postgres => Json {
                aggregate: "json_agg",
                array: "json_build_array",
                cast: "::text",
            },
            _ => Json {
                aggregate: "json_group_array",
                array: "json_array",
                cast: "",
            },
        }
    }
}

/// A row of `E` as a JSON array of its columns in declaration order, each column read from
/// `prefix` (a table alias and a dot, or nothing).
pub(crate) fn row_array<E: EntityTrait>(backend: DbBackend, prefix: &str) -> String {
    let columns: Vec<String> = E::Column::iter()
        .map(|c| format!("{prefix}\"{}\"", c.as_str()))
        .collect();
    format!("{}({})", Json::of(backend).array, columns.join(", "))
}

/// Runs `statement`, whose one row holds the JSON array `rows`, and decodes it; `what` names it
/// in an error.
pub(crate) async fn read<T>(
    db: &impl ConnectionTrait,
    statement: sea_orm::Statement,
    decode: fn(&str) -> serde_json::Result<Vec<T>>,
    what: &str,
) -> Result<Vec<T>> {
    let text: Option<String> = match db.query_one_raw(statement).await? {
        Some(row) => row.try_get("", "rows")?,
        None => None,
    };
    // PostgreSQL's aggregate of no rows is NULL; SQLite's is `[]`.
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    decode(&text)
        .map_err(|e| crate::Error::internal(anyhow::anyhow!("reading {what} as JSON: {e}")))
}
