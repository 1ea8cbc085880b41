//! The push outbox: writes to the platform queued in the same transaction as the binding change
//! that needs them, and delivered by a worker, at least once (a re-delivery writes the same
//! record, which the platform's `save` takes as it is), in order per port, with the backoff
//! kept in the database so that it survives restarts.
//!
//! A round's deliveries are claimed by moving their `next_attempt_at` forward by [`LEASE`] in one
//! conditional `UPDATE ... RETURNING` (each must still be PENDING and due): on either engine,
//! with any number of instances, each row matches exactly one claimer's update. An instance that dies
//! mid-delivery leaves the row to be claimed again when the lease ends, and the re-delivery
//! writes the same record. An inactive integration's deliveries wait.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::json;

use entity::binding;
use entity::push_outbox::{self, PushAction, PushStatus};

pub use super::wake::Outbox;
use crate::platform::CustomerRecord;
use crate::state::AppState;
use crate::{Error, Result};

/// How long a claimed delivery is its claimer's; past it, another instance may take it.
pub const LEASE: Duration = Duration::from_secs(60);
/// Longest wait between two attempts of one delivery.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the worker looks for due deliveries when nothing wakes it.
pub const POLL: Duration = Duration::from_secs(1);
/// Deliveries claimed per round.
const BATCH: u64 = 200;
/// Deliveries of a round in flight at once. They are of different ports (a round takes one per
/// port), so order per port holds; the platform client queues behind its own rate limits. With
/// rounds claimed and settled in one statement each, a burst of 10,000 confirmations is
/// delivered as fast as it is confirmed on both engines (docs/BENCHMARKS.md, "Deliveries").
const IN_FLIGHT: usize = 8;

/// The worker's platform clients, one per integration for as long as its row is unchanged: a
/// client keeps its session, so a burst of deliveries logs in once instead of once each.
#[derive(Default)]
pub struct Clients(std::sync::Mutex<std::collections::HashMap<i64, Client>>);

/// A client, and the `updated_at` of the integration row it was made from.
type Client = (DateTime<Utc>, Arc<dyn crate::platform::Platform>);

impl Clients {
    fn get(
        &self,
        app: &AppState,
        integration: &entity::integration::Model,
    ) -> Result<Arc<dyn crate::platform::Platform>> {
        let mut clients = self.0.lock().expect("clients lock");
        if let Some((seen, client)) = clients.get(&integration.id) {
            if *seen == integration.updated_at {
                return Ok(client.clone());
            }
        }
        let client = app.platform(integration)?;
        clients.insert(integration.id, (integration.updated_at, client.clone()));
        Ok(client)
    }
}

/// Queues a delivery for a binding, in the caller's transaction.
pub async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    b: &binding::Model,
    action: PushAction,
    port_fid: &str,
) -> Result<()> {
    let now = Utc::now();
    let payload = match action {
        PushAction::Push => {
            json!({ "contract": b.contract, "document": b.document, "name": b.name })
        }
        PushAction::Remove => json!({}),
    };
    push_outbox::ActiveModel {
        binding_id: Set(b.id),
        integration_id: Set(b.integration_id),
        action: Set(action),
        payload: Set(payload),
        status: Set(PushStatus::Pending),
        attempts: Set(0),
        last_error: Set(None),
        next_attempt_at: Set(now),
        created_at: Set(now),
        delivered_at: Set(None),
        port_fid: Set(Some(port_fid.to_owned())),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// Puts a binding's latest delivery back in the queue when it FAILED; returns it as it was
/// (`None` when there is no failed delivery).
pub async fn requeue_failed<C: ConnectionTrait>(
    txn: &C,
    binding_id: i64,
) -> Result<Option<push_outbox::Model>> {
    let Some(latest) = push_outbox::Entity::find()
        .filter(push_outbox::Column::BindingId.eq(binding_id))
        .order_by_desc(push_outbox::Column::Id)
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    if latest.status != PushStatus::Failed {
        return Ok(None);
    }
    let mut row: push_outbox::ActiveModel = latest.clone().into();
    row.status = Set(PushStatus::Pending);
    row.next_attempt_at = Set(Utc::now());
    row.update(txn).await?;
    Ok(Some(latest))
}

/// The wait before attempt `attempts + 1`: 1 s doubling up to [`MAX_BACKOFF`].
fn backoff(attempts: i32) -> chrono::Duration {
    let secs = Ord::min(
        1u64.checked_shl(attempts.clamp(0, 16) as u32)
            .unwrap_or(u64::MAX),
        MAX_BACKOFF.as_secs(),
    );
    chrono::Duration::seconds(secs as i64)
}

/// Due deliveries, oldest first, at most one per port (the oldest pending one: deliveries of a
/// port go out in order), of active integrations.
async fn due(app: &AppState, now: DateTime<Utc>) -> Result<Vec<push_outbox::Model>> {
    // The oldest pending delivery of each port, as one aggregate: a correlated NOT EXISTS
    // measured up to 360 ms a round on PostgreSQL with 3,000 pending (its plan followed the
    // table's growth badly), this a few milliseconds. A delivery without a port (none is
    // queued without one) is taken as it is, and fails with its reason.
    let oldest_per_port = Query::select()
        .expr(Expr::col(push_outbox::Column::Id).min())
        .from(push_outbox::Entity)
        .and_where(push_outbox::Column::Status.eq(PushStatus::Pending))
        .and_where(push_outbox::Column::PortFid.is_not_null())
        .group_by_col(push_outbox::Column::PortFid)
        .to_owned();
    let active = Query::select()
        .column(entity::integration::Column::Id)
        .from(entity::integration::Entity)
        .and_where(entity::integration::Column::Active.eq(true))
        .to_owned();
    Ok(push_outbox::Entity::find()
        .filter(push_outbox::Column::Status.eq(PushStatus::Pending))
        .filter(push_outbox::Column::NextAttemptAt.lte(now))
        .filter(push_outbox::Column::IntegrationId.in_subquery(active))
        .filter(
            sea_orm::Condition::any()
                .add(push_outbox::Column::Id.in_subquery(oldest_per_port))
                .add(push_outbox::Column::PortFid.is_null()),
        )
        .order_by_asc(push_outbox::Column::Id)
        .limit(BATCH)
        .all(&app.db)
        .await?)
}

/// Claims the deliveries read as due, in one conditional `UPDATE ... RETURNING`: a row still
/// PENDING and due is this caller's (its `next_attempt_at` moves a lease ahead and its attempts
/// go up), one that another instance claimed meanwhile is not. Returns the claimed rows.
async fn claim(
    app: &AppState,
    rows: &[push_outbox::Model],
    now: DateTime<Utc>,
) -> Result<Vec<push_outbox::Model>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let lease = chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(60));
    let mut claimed = push_outbox::Entity::update_many()
        .col_expr(push_outbox::Column::NextAttemptAt, Expr::value(now + lease))
        .col_expr(
            push_outbox::Column::Attempts,
            Expr::col(push_outbox::Column::Attempts).add(1),
        )
        .filter(push_outbox::Column::Id.is_in(rows.iter().map(|r| r.id)))
        .filter(push_outbox::Column::Status.eq(PushStatus::Pending))
        .filter(push_outbox::Column::NextAttemptAt.lte(now))
        .exec_with_returning(&app.db)
        .await?;
    claimed.sort_by_key(|r| r.id);
    Ok(claimed)
}

/// Writes one delivery on the platform.
async fn deliver(
    app: &AppState,
    clients: &Clients,
    integration: &entity::integration::Model,
    row: &push_outbox::Model,
) -> Result<()> {
    let platform = clients.get(app, integration)?;
    let fid = row
        .port_fid
        .as_deref()
        .ok_or_else(|| Error::internal(anyhow::anyhow!("delivery {} has no port", row.id)))?;
    let text = |key: &str| {
        row.payload
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let customer = match row.action {
        PushAction::Push => Some(CustomerRecord {
            contract: text("contract"),
            document: text("document"),
            name: text("name"),
        }),
        PushAction::Remove => None,
    };
    platform
        .set_port_customer(fid, customer.as_ref(), &integration.key)
        .await
}

/// Records the delivered ones of a round, in one statement.
async fn settle_delivered(app: &AppState, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    push_outbox::Entity::update_many()
        .filter(push_outbox::Column::Id.is_in(ids.iter().copied()))
        .col_expr(
            push_outbox::Column::Status,
            Expr::value(PushStatus::Delivered),
        )
        .col_expr(push_outbox::Column::DeliveredAt, Expr::value(Utc::now()))
        .col_expr(
            push_outbox::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .exec(&app.db)
        .await?;
    Ok(())
}

/// Records how a claimed delivery that did not go through went: failed for good (the platform
/// refused the record: a 4xx other than 401 and 429), or to be tried again after the backoff.
async fn settle_failed(app: &AppState, row: &push_outbox::Model, error: &Error) -> Result<()> {
    let attempts = row.attempts;
    let now = Utc::now();
    let update = push_outbox::Entity::update_many().filter(push_outbox::Column::Id.eq(row.id));
    let update = match error {
        e @ (Error::Validation { .. } | Error::NotFound(_)) => update
            .col_expr(push_outbox::Column::Status, Expr::value(PushStatus::Failed))
            .col_expr(push_outbox::Column::LastError, Expr::value(e.message())),
        e => update
            .col_expr(
                push_outbox::Column::NextAttemptAt,
                Expr::value(now + backoff(attempts)),
            )
            .col_expr(push_outbox::Column::LastError, Expr::value(e.message())),
    };
    update.exec(&app.db).await?;
    tracing::warn!(delivery = row.id, binding = row.binding_id, attempts, error = %error.message(), "delivery failed");
    Ok(())
}

/// One round: claims what is due (one statement), delivers it [`IN_FLIGHT`] at a time, and
/// records the delivered ones (one statement) and each failure; returns how many were
/// attempted. Each binding's event goes out once its delivery is recorded.
pub async fn run_once(app: &AppState, clients: &Clients) -> Result<usize> {
    use futures::StreamExt;
    let now = Utc::now();
    let claimed = claim(app, &due(app, now).await?, now).await?;
    // Each integration of the round is read once.
    let mut integrations = std::collections::HashMap::new();
    for row in &claimed {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            integrations.entry(row.integration_id)
        {
            slot.insert(crate::integrations::find(&app.db, row.integration_id).await);
        }
    }
    let integrations = &integrations;
    let outcomes: Vec<(push_outbox::Model, Result<()>)> = futures::stream::iter(claimed)
        .map(|row| async move {
            let outcome = match &integrations[&row.integration_id] {
                Ok(integration) => deliver(app, clients, integration, &row).await,
                Err(e) => Err(Error::internal(anyhow::anyhow!(
                    "integration {} unreadable: {}",
                    row.integration_id,
                    e.message()
                ))),
            };
            (row, outcome)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let delivered: Vec<i64> = outcomes
        .iter()
        .filter(|(_, outcome)| outcome.is_ok())
        .map(|(row, _)| row.id)
        .collect();
    settle_delivered(app, &delivered).await?;
    if !delivered.is_empty() {
        tracing::info!(deliveries = delivered.len(), "delivered to the platform");
    }
    for (row, outcome) in &outcomes {
        if let Err(e) = outcome {
            settle_failed(app, row, e).await?;
        }
    }
    let bindings: Vec<i64> = outcomes.iter().map(|(row, _)| row.binding_id).collect();
    super::announce_all(app, &bindings).await;
    Ok(outcomes.len())
}

/// The worker: a round whenever something is queued, and every [`POLL`] otherwise, for as long
/// as the process runs.
pub fn spawn(app: AppState) {
    let outbox: Arc<Outbox> = app.outbox.clone();
    tokio::spawn(async move {
        let clients = Clients::default();
        loop {
            match run_once(&app, &clients).await {
                // A full batch may have more behind it.
                Ok(n) if n as u64 >= BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e.message(), "the outbox round failed"),
            }
            let _ = tokio::time::timeout(POLL, outbox.wake.notified()).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0).num_seconds(), 1);
        assert_eq!(backoff(1).num_seconds(), 2);
        assert_eq!(backoff(5).num_seconds(), 32);
        assert_eq!(backoff(30).num_seconds(), 300);
        assert_eq!(backoff(-1).num_seconds(), 1);
    }
}
