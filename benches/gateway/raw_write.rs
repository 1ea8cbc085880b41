//! The fastest raw write of a sync's rows that each engine offers, for the raw-write baseline:
//! on PostgreSQL `COPY ... FROM STDIN` (text format), one page per transaction as a sync commits
//! them; on SQLite one prepared multi-row `INSERT` reused for every chunk, in one transaction
//! (two: the port rows need the splitter ids, read once the splitters are committed).

use sea_orm::sqlx::{self, Connection};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityName, Iterable, TransactionTrait, Value,
};

/// Rows per SQLite statement: 64 rows of up to 14 columns stay under SQLite's 32,766
/// bind-parameter limit with room to spare, and one prepared text serves every full chunk.
const SQLITE_CHUNK: usize = 64;

pub(crate) enum Writer {
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    Sqlite {
        db: DatabaseConnection,
        txn: Option<DatabaseTransaction>,
    },
}

/// A table's columns (all but the generated id) and one page of rows of values.
struct Rows {
    table: String,
    columns: Vec<String>,
    values: Vec<Vec<Value>>,
}

fn rows_of<A: ActiveModelTrait>(models: Vec<A>) -> Rows {
    use sea_orm::IdenStatic;
    let columns: Vec<<A::Entity as sea_orm::EntityTrait>::Column> =
        <A::Entity as sea_orm::EntityTrait>::Column::iter()
            .filter(|c| c.as_str() != "id")
            .collect();
    let values = models
        .iter()
        .map(|m| {
            columns
                .iter()
                .map(|c| m.get(*c).into_value().expect("every column but id is set"))
                .collect()
        })
        .collect();
    Rows {
        table: A::Entity::default().table_name().to_owned(),
        columns: columns.iter().map(|c| c.as_str().to_owned()).collect(),
        values,
    }
}

/// One value in COPY's text format.
fn copy_text(out: &mut String, v: &Value) -> anyhow::Result<()> {
    use std::fmt::Write;
    match v {
        Value::BigInt(Some(n)) => write!(out, "{n}")?,
        Value::Int(Some(n)) => write!(out, "{n}")?,
        Value::Double(Some(f)) => write!(out, "{f}")?,
        Value::ChronoDateTimeUtc(Some(t)) => out.push_str(&t.to_rfc3339()),
        Value::String(Some(s)) => {
            for ch in s.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
        Value::BigInt(None)
        | Value::Int(None)
        | Value::Double(None)
        | Value::ChronoDateTimeUtc(None)
        | Value::String(None) => out.push_str("\\N"),
        other => anyhow::bail!("no COPY text for {other:?}"),
    }
    Ok(())
}

impl Writer {
    pub(crate) async fn new(db: &DatabaseConnection) -> anyhow::Result<Self> {
        Ok(match db.get_database_backend() {
            DbBackend::Postgres => {
                Writer::Postgres(db.get_postgres_connection_pool().acquire().await?)
            }
            _ => Writer::Sqlite {
                db: db.clone(),
                txn: Some(db.begin().await?),
            },
        })
    }

    /// Writes one page of rows; returns how many.
    pub(crate) async fn page<A: ActiveModelTrait>(
        &mut self,
        models: Vec<A>,
    ) -> anyhow::Result<usize> {
        let n = models.len();
        if n == 0 {
            return Ok(0);
        }
        let rows = rows_of(models);
        match self {
            Writer::Postgres(conn) => {
                let mut text = String::with_capacity(n * 128);
                for row in &rows.values {
                    for (i, v) in row.iter().enumerate() {
                        if i > 0 {
                            text.push('\t');
                        }
                        copy_text(&mut text, v)?;
                    }
                    text.push('\n');
                }
                let mut tx = conn.begin().await?;
                let mut copy = tx
                    .copy_in_raw(&format!(
                        "COPY {} ({}) FROM STDIN",
                        rows.table,
                        rows.columns.join(", ")
                    ))
                    .await?;
                copy.send(text.into_bytes()).await?;
                copy.finish().await?;
                tx.commit().await?;
            }
            Writer::Sqlite { txn, .. } => {
                let txn = txn.as_ref().expect("open until finish");
                let row = format!("({})", vec!["?"; rows.columns.len()].join(", "));
                for chunk in rows.values.chunks(SQLITE_CHUNK) {
                    let sql = format!(
                        "INSERT INTO {} ({}) VALUES {}",
                        rows.table,
                        rows.columns.join(", "),
                        vec![row.as_str(); chunk.len()].join(", ")
                    );
                    let values: Vec<Value> = chunk.iter().flatten().cloned().collect();
                    txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                        DbBackend::Sqlite,
                        sql,
                        values,
                    ))
                    .await?;
                }
            }
        }
        Ok(n)
    }

    /// Makes the splitters written so far visible to other connections.
    pub(crate) async fn commit_splitters(&mut self) -> anyhow::Result<()> {
        if let Writer::Sqlite { db, txn } = self {
            if let Some(t) = txn.take() {
                t.commit().await?;
            }
            *txn = Some(db.begin().await?);
        }
        Ok(())
    }

    pub(crate) async fn finish(self) -> anyhow::Result<()> {
        if let Writer::Sqlite { txn: Some(t), .. } = self {
            t.commit().await?;
        }
        Ok(())
    }
}
