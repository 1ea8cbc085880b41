//! PostgreSQL `LISTEN/NOTIFY`: the statements behind the event relay between instances.

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

use crate::{Error, Result};

/// Sends `payload` on `channel` (PostgreSQL only).
pub async fn notify(db: &DatabaseConnection, channel: &str, payload: &str) -> Result<()> {
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT pg_notify($1, $2)",
        [Value::from(channel), Value::from(payload)],
    ))
    .await?;
    Ok(())
}

/// A connection of its own that listens on `channel` (PostgreSQL only); it reconnects by itself
/// when the connection drops.
pub async fn listen(db: &DatabaseConnection, channel: &str) -> Result<PgListener> {
    let pool = db.get_postgres_connection_pool();
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(|e| Error::internal(anyhow::anyhow!("LISTEN connection: {e}")))?;
    listener
        .listen(channel)
        .await
        .map_err(|e| Error::internal(anyhow::anyhow!("LISTEN {channel}: {e}")))?;
    Ok(listener)
}
