//! The push outbox: writes to the platform queued in the same transaction as the binding change
//! that needs them, and delivered by a worker, at least once (a re-delivery writes the same
//! record, which the platform's `save` takes as it is), in order per port, with the backoff
//! kept in the database so that it survives restarts.
//!
//! A delivery is claimed by moving its `next_attempt_at` forward by [`LEASE`] in one
//! conditional `UPDATE` (it must still be PENDING and due at the time read): on either engine,
//! with any number of instances, exactly one claimer's update matches. An instance that dies
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
const BATCH: u64 = 50;
/// Deliveries of a round in flight at once. They are of different ports (a round takes one per
/// port), so order per port holds; the platform client queues behind its own rate limits. With
/// one at a time, 10,000 confirmed bindings took 41.9 s to deliver on SQLite (4.2 ms each,
/// mostly waiting on the loopback round trip and the database); see docs/BENCHMARKS.md.
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

/// Puts a binding's latest delivery back in the queue when it FAILED; false when there is none.
pub async fn requeue_failed<C: ConnectionTrait>(txn: &C, binding_id: i64) -> Result<bool> {
    let Some(latest) = push_outbox::Entity::find()
        .filter(push_outbox::Column::BindingId.eq(binding_id))
        .order_by_desc(push_outbox::Column::Id)
        .one(txn)
        .await?
    else {
        return Ok(false);
    };
    if latest.status != PushStatus::Failed {
        return Ok(false);
    }
    let mut row: push_outbox::ActiveModel = latest.into();
    row.status = Set(PushStatus::Pending);
    row.next_attempt_at = Set(Utc::now());
    row.update(txn).await?;
    Ok(true)
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
    let older_pending = Query::select()
        .expr(Expr::val(1))
        .from_as(push_outbox::Entity, "o2")
        .and_where(
            Expr::col(("o2", push_outbox::Column::PortFid))
                .equals((push_outbox::Entity, push_outbox::Column::PortFid)),
        )
        .and_where(
            Expr::col(("o2", push_outbox::Column::Status))
                .eq(sea_orm::ActiveEnum::to_value(&PushStatus::Pending)),
        )
        .and_where(
            Expr::col(("o2", push_outbox::Column::Id))
                .lt(Expr::col((push_outbox::Entity, push_outbox::Column::Id))),
        )
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
        .filter(Expr::exists(older_pending).not())
        .order_by_asc(push_outbox::Column::Id)
        .limit(BATCH)
        .all(&app.db)
        .await?)
}

/// Claims a delivery read as due: true when this caller's update won.
async fn claim(app: &AppState, row: &push_outbox::Model, now: DateTime<Utc>) -> Result<bool> {
    let lease = chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::seconds(60));
    let claimed = push_outbox::Entity::update_many()
        .col_expr(push_outbox::Column::NextAttemptAt, Expr::value(now + lease))
        .col_expr(
            push_outbox::Column::Attempts,
            Expr::col(push_outbox::Column::Attempts).add(1),
        )
        .filter(push_outbox::Column::Id.eq(row.id))
        .filter(push_outbox::Column::Status.eq(PushStatus::Pending))
        .filter(push_outbox::Column::NextAttemptAt.eq(row.next_attempt_at))
        .exec(&app.db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

/// Writes one delivery on the platform.
async fn deliver(app: &AppState, clients: &Clients, row: &push_outbox::Model) -> Result<()> {
    let integration = crate::integrations::find(&app.db, row.integration_id).await?;
    let platform = clients.get(app, &integration)?;
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

/// Records how a claimed delivery went: delivered, failed for good (the platform refused the
/// record: a 4xx other than 401 and 429), or to be tried again after the backoff.
async fn settle(app: &AppState, row: &push_outbox::Model, outcome: Result<()>) -> Result<()> {
    let attempts = row.attempts + 1;
    let now = Utc::now();
    let mut update = push_outbox::Entity::update_many()
        .filter(push_outbox::Column::Id.eq(row.id))
        .col_expr(push_outbox::Column::Attempts, Expr::value(attempts));
    update = match &outcome {
        Ok(()) => update
            .col_expr(
                push_outbox::Column::Status,
                Expr::value(PushStatus::Delivered),
            )
            .col_expr(push_outbox::Column::DeliveredAt, Expr::value(now))
            .col_expr(
                push_outbox::Column::LastError,
                Expr::value(Option::<String>::None),
            ),
        Err(e @ (Error::Validation { .. } | Error::NotFound(_))) => update
            .col_expr(push_outbox::Column::Status, Expr::value(PushStatus::Failed))
            .col_expr(push_outbox::Column::LastError, Expr::value(e.message())),
        Err(e) => update
            .col_expr(
                push_outbox::Column::NextAttemptAt,
                Expr::value(now + backoff(attempts)),
            )
            .col_expr(push_outbox::Column::LastError, Expr::value(e.message())),
    };
    update.exec(&app.db).await?;
    super::announce(app, row.binding_id).await;
    match &outcome {
        Ok(()) => tracing::info!(
            delivery = row.id,
            binding = row.binding_id,
            "delivered to the platform"
        ),
        Err(e) => {
            tracing::warn!(delivery = row.id, binding = row.binding_id, attempts, error = %e.message(), "delivery failed")
        }
    }
    Ok(())
}

/// One round: claims and delivers what is due, [`IN_FLIGHT`] at a time; returns how many were
/// attempted.
pub async fn run_once(app: &AppState, clients: &Clients) -> Result<usize> {
    use futures::StreamExt;
    let now = Utc::now();
    let attempts = futures::stream::iter(due(app, now).await?)
        .map(|row| async move {
            if !claim(app, &row, now).await? {
                return Ok(false);
            }
            let outcome = deliver(app, clients, &row).await;
            settle(app, &row, outcome).await?;
            Ok::<bool, Error>(true)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let mut attempted = 0;
    for attempt in attempts {
        attempted += usize::from(attempt?);
    }
    Ok(attempted)
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
