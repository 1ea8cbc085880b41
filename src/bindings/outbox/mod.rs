//! The push outbox: writes to the platform queued in the same transaction as the binding change
//! that needs them, and delivered by a worker ([`worker`]): in order per `(integration, port)`
//! and per `(integration, contract)`, each written once in effect, with the backoff kept in the database so that it survives
//! restarts.
//!
//! - **Order**: a round takes, per `(integration_id, port_fid)` and per `(integration_id,
//!   contract)`, only the oldest PENDING delivery (a customer moving ports is removed from the
//!   old one before being written on the new one);
//!   a newer delivery of the same binding and port supersedes an older one that is not in flight
//!   ([`enqueue`]), so a stale push or removal never lands after a newer one.
//! - **Fencing**: a round claims its deliveries with one conditional `UPDATE ... RETURNING` that
//!   stamps them with the round's token and a short lease ([`Delivery::lease`]), renews the lease
//!   while they are in flight, and settles each with an `UPDATE` that matches only while the
//!   token is still its own: a claimer whose lease another instance took over can neither
//!   overwrite that instance's outcome nor count an attempt twice. A dead instance's deliveries
//!   come back when its lease ends.
//! - **Ending**: a refusal of the platform (4xx other than 401/429, or authentication still
//!   refused after a new login) fails a delivery at once; transient failures back off up to
//!   [`MAX_BACKOFF`] and give up after [`Delivery::give_up_after`] since the first attempt.

mod fresh;
mod settle;
mod worker;

pub use super::wake::{Delivery, Outbox, DEFAULT_GIVE_UP_AFTER, DEFAULT_LEASE};
pub use worker::{run_once, Clients};

use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait,
    QueryFilter, QueryOrder,
};
use serde_json::json;

use entity::binding;
use entity::push_outbox::{self, PushAction, PushStatus};

use crate::state::AppState;
use crate::Result;
use worker::BATCH;

/// Longest wait between two attempts of one delivery.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the worker looks for due deliveries when nothing wakes it.
pub const POLL: Duration = Duration::from_secs(1);

/// Queues a delivery for a binding, in the caller's transaction. An older PENDING delivery of
/// the same binding and port that is not in flight (unclaimed, or its lease over) is superseded
/// by it: the port's queue keeps only the binding's latest wish. One in flight is left to
/// settle; this one waits behind it (a round takes the oldest pending delivery of a port).
/// Stamped on the database's clock, which leases are compared on.
pub async fn enqueue<C: ConnectionTrait>(
    txn: &C,
    b: &binding::Model,
    action: PushAction,
    port_fid: &str,
) -> Result<()> {
    let now = crate::db::clock(txn).await?;
    push_outbox::Entity::update_many()
        .col_expr(
            push_outbox::Column::Status,
            Expr::value(PushStatus::Superseded),
        )
        .col_expr(
            push_outbox::Column::ClaimToken,
            Expr::value(Option::<String>::None),
        )
        .filter(push_outbox::Column::BindingId.eq(b.id))
        .filter(push_outbox::Column::PortFid.eq(port_fid))
        .filter(push_outbox::Column::Status.eq(PushStatus::Pending))
        .filter(
            Condition::any()
                .add(push_outbox::Column::ClaimToken.is_null())
                .add(push_outbox::Column::NextAttemptAt.lte(now)),
        )
        .exec(txn)
        .await?;
    let payload = match action {
        PushAction::Push => {
            json!({ "contract": b.contract, "document": b.document, "name": b.name })
        }
        // Whose customer the removal may clear.
        PushAction::Remove => json!({ "contract": b.contract, "document": b.document }),
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
        claim_token: Set(None),
        first_attempt_at: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// A binding's deliveries, oldest first.
pub async fn of_binding<C: ConnectionTrait>(
    db: &C,
    binding_id: i64,
) -> Result<Vec<push_outbox::Model>> {
    Ok(push_outbox::Entity::find()
        .filter(push_outbox::Column::BindingId.eq(binding_id))
        .order_by_asc(push_outbox::Column::Id)
        .all(db)
        .await?)
}

/// Marks a FAILED delivery as superseded by its retry; false when it is not FAILED any more
/// (another retry took it first).
pub async fn retire_failed<C: ConnectionTrait>(db: &C, id: i64) -> Result<bool> {
    let done = push_outbox::Entity::update_many()
        .col_expr(
            push_outbox::Column::Status,
            Expr::value(PushStatus::Superseded),
        )
        .filter(push_outbox::Column::Id.eq(id))
        .filter(push_outbox::Column::Status.eq(PushStatus::Failed))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
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

/// The worker: a round whenever something is queued, and every [`POLL`] otherwise, for as long
/// as the process runs.
pub fn spawn(app: AppState) {
    let outbox: std::sync::Arc<Outbox> = app.outbox.clone();
    tokio::spawn(async move {
        let clients = Clients::default();
        let mut failures: u32 = 0;
        loop {
            let wait = match run_once(&app, &clients).await {
                // A full batch may have more behind it.
                Ok(n) if n as u64 >= BATCH => continue,
                Ok(_) => {
                    if failures > 0 {
                        tracing::info!(failed_rounds = failures, "the outbox works again");
                    }
                    failures = 0;
                    POLL
                }
                Err(e) => {
                    // A database outage fails every round: the log says why, and says it less
                    // often the longer it lasts (up to every 10 s).
                    failures += 1;
                    let wait = POLL
                        .saturating_mul(1 << std::cmp::Ord::min(failures, 5))
                        .min(std::time::Duration::from_secs(10));
                    tracing::warn!(
                        error = %e.for_log(),
                        failed_rounds = failures,
                        next_round_in_secs = wait.as_secs(),
                        "the outbox round failed"
                    );
                    wait
                }
            };
            let _ = tokio::time::timeout(wait, outbox.wake.notified()).await;
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
