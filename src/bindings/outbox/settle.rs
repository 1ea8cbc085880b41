//! Settling a claimed delivery: one `UPDATE` per outcome, fenced by the round's claim token (it
//! matches only while the token is still on the row and the row PENDING), so a claimer whose
//! lease was taken over records nothing; `attempts` counts platform calls that were made.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};

use entity::binding::{self, BindingStatus};
use entity::push_outbox::{self, PushStatus};

use super::backoff;
use crate::platform::RemoteCustomer;
use crate::state::AppState;
use crate::{Error, Result};

/// How soon a delivery held by a conflict is looked at again (a sync may have cleared it).
const HOLD_RECHECK: chrono::Duration = chrono::Duration::seconds(5);

/// How one claimed delivery ended in this round.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Written on the platform.
    Delivered,
    /// Not written, as nothing of ours was there to write over; `attempted` when the platform
    /// was asked.
    Skipped { reason: String, attempted: bool },
    /// Not wanted any more: the binding moved on.
    Superseded(String),
    /// Waits: the port carries another customer (as last synced, or as read by the round or
    /// the write itself); `conflict` is recorded on the binding with the delivery's own update.
    Held {
        reason: String,
        conflict: Option<Conflict>,
    },
    /// The platform call failed.
    Failed(Error),
}

/// Another customer met on a binding's port by a delivery, to record on the binding together
/// with the held delivery: a reader never sees one without the other.
#[derive(Debug)]
pub(super) struct Conflict {
    pub(super) binding_id: i64,
    /// The port the delivery read: the conflict is recorded only while the binding is still
    /// CONFIRMED on it (a binding moved meanwhile is not marked with its old port's customer).
    pub(super) port_id: i64,
    pub(super) customer: RemoteCustomer,
    pub(super) seen_at: DateTime<Utc>,
}

/// Records how a claimed delivery went, with one `UPDATE` that matches only while the round's
/// token is still on the row and the row PENDING; returns false when the claim was lost (the
/// lease was taken over, or the delivery superseded or settled by a sync).
pub(super) async fn settle(
    app: &AppState,
    row: &push_outbox::Model,
    token: &str,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<bool> {
    use push_outbox::Column as C;
    let none = Option::<String>::None;
    let attempted = matches!(
        outcome,
        Outcome::Delivered
            | Outcome::Failed(_)
            | Outcome::Skipped {
                attempted: true,
                ..
            }
    );
    let horizon = horizon(app);
    let mut update = push_outbox::Entity::update_many()
        .filter(C::Id.eq(row.id))
        .filter(C::ClaimToken.eq(token))
        .filter(C::Status.eq(PushStatus::Pending))
        .col_expr(C::ClaimToken, Expr::value(none.clone()));
    if attempted {
        update = update
            .col_expr(C::Attempts, Expr::col(C::Attempts).add(1))
            .col_expr(C::FirstAttemptAt, first_attempt(now));
    }
    let update = match outcome {
        Outcome::Delivered => update
            .col_expr(C::Status, Expr::value(PushStatus::Delivered))
            .col_expr(C::DeliveredAt, Expr::value(now))
            .col_expr(C::LastError, Expr::value(none)),
        Outcome::Skipped { reason, .. } => update
            .col_expr(C::Status, Expr::value(PushStatus::Skipped))
            .col_expr(C::LastError, Expr::value(reason.clone())),
        Outcome::Superseded(reason) => update
            .col_expr(C::Status, Expr::value(PushStatus::Superseded))
            .col_expr(C::LastError, Expr::value(reason.clone())),
        // A push held past the give-up horizon (counted from when it was queued) fails with
        // its reason: it stays visible, and `retryPush` takes it once the port is free.
        Outcome::Held { reason, .. } if now - row.created_at >= horizon => update
            .col_expr(C::Status, Expr::value(PushStatus::Failed))
            .col_expr(
                C::LastError,
                Expr::value(format!(
                    "gave up after {} s {reason}",
                    (now - row.created_at).num_seconds()
                )),
            ),
        Outcome::Held { reason, .. } => update
            .col_expr(C::NextAttemptAt, Expr::value(now + HOLD_RECHECK))
            .col_expr(C::LastError, Expr::value(reason.clone())),
        Outcome::Failed(error) => match failure(app, row, error, now) {
            Failure::Final(reason) => update
                .col_expr(C::Status, Expr::value(PushStatus::Failed))
                .col_expr(C::LastError, Expr::value(reason)),
            Failure::Retry(at, reason) => update
                .col_expr(C::NextAttemptAt, Expr::value(at))
                .col_expr(C::LastError, Expr::value(reason)),
        },
    };
    let matched = match outcome {
        Outcome::Held {
            conflict: Some(conflict),
            ..
        } => {
            let txn = app.db.begin().await?;
            let matched = update.exec(&txn).await?.rows_affected == 1;
            if matched {
                record_conflict(&txn, conflict).await?;
            }
            txn.commit().await?;
            matched
        }
        _ => update.exec(&app.db).await?.rows_affected == 1,
    };
    if matched {
        log_settled(app, row, outcome, now);
    }
    if !matched {
        tracing::warn!(
            delivery = row.id,
            "the claim on a delivery was lost before it settled; its outcome is not recorded"
        );
    }
    Ok(matched)
}

/// What becomes of a failed attempt.
enum Failure {
    /// Given up: FAILED, with this reason.
    Final(String),
    /// Tried again at this time; the error, for `lastError`.
    Retry(DateTime<Utc>, String),
}

/// A refusal by the platform fails at once; anything else is retried with backoff until the
/// give-up horizon, counted from the first attempt.
fn failure(app: &AppState, row: &push_outbox::Model, error: &Error, now: DateTime<Utc>) -> Failure {
    let horizon = horizon(app);
    let attempts = row.attempts + 1;
    let first = row.first_attempt_at.unwrap_or(now);
    let refused = matches!(
        error,
        Error::Validation { .. } | Error::NotFound(_) | Error::PlatformAuth(_)
    );
    if refused {
        Failure::Final(error.message())
    } else if now - first >= horizon {
        Failure::Final(format!(
            "gave up after {attempts} attempts over {} s: {}",
            (now - first).num_seconds(),
            error.message()
        ))
    } else {
        Failure::Retry(now + backoff(attempts - 1), error.message())
    }
}

/// The line an operator reads about a settled attempt: ERROR for a final failure, WARN for one
/// that will be retried (saying when), INFO for a push held or skipped; each with the binding's
/// and the integration's opaque ids and the platform port.
fn log_settled(app: &AppState, row: &push_outbox::Model, outcome: &Outcome, now: DateTime<Utc>) {
    let binding = crate::ids::binding(row.binding_id);
    let integration = crate::ids::integration(row.integration_id);
    let port = row.port_fid.as_deref().unwrap_or_default();
    let action = row.action.to_string();
    let attempts = row.attempts + 1;
    match outcome {
        Outcome::Failed(error) => match failure(app, row, error, now) {
            Failure::Final(reason) => tracing::error!(
                %binding, %integration, port, %action, attempts, error = %reason,
                "delivery failed for good; retryPush sends it again"
            ),
            Failure::Retry(at, reason) => tracing::warn!(
                %binding, %integration, port, %action, attempts, error = %reason,
                retry_at = %at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "delivery failed; retrying at {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        },
        Outcome::Held { reason, .. } if now - row.created_at >= horizon(app) => tracing::error!(
            %binding, %integration, port, %action, error = %reason,
            "delivery held past the give-up horizon: FAILED"
        ),
        Outcome::Held { reason, .. } | Outcome::Skipped { reason, .. } => tracing::info!(
            %binding, %integration, port, %action, %reason, "delivery not written"
        ),
        Outcome::Delivered | Outcome::Superseded(_) => {}
    }
}

fn horizon(app: &AppState) -> chrono::Duration {
    chrono::Duration::from_std(app.settings.delivery.give_up_after).unwrap_or(chrono::Duration::MAX)
}

/// Records the customer a delivery met on the binding, in one `UPDATE` fenced on the port it
/// read and the binding still CONFIRMED.
async fn record_conflict(txn: &impl ConnectionTrait, conflict: &Conflict) -> Result<()> {
    use binding::Column as C;
    binding::Entity::update_many()
        .col_expr(
            C::ConflictContract,
            Expr::value(conflict.customer.contract.clone()),
        )
        .col_expr(
            C::ConflictDocument,
            Expr::value(conflict.customer.document.clone()),
        )
        .col_expr(C::ConflictSeenAt, Expr::value(conflict.seen_at))
        .filter(C::Id.eq(conflict.binding_id))
        .filter(C::PortId.eq(conflict.port_id))
        .filter(C::Status.eq(BindingStatus::Confirmed))
        .exec(txn)
        .await?;
    Ok(())
}

/// Records deliveries written together, in one statement fenced like [`settle`]; returns the
/// bindings of those whose claim held.
pub(super) async fn settle_delivered(
    app: &AppState,
    rows: &[(push_outbox::Model, Outcome)],
    token: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    use push_outbox::Column as C;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let settled = push_outbox::Entity::update_many()
        .filter(C::Id.is_in(rows.iter().map(|(row, _)| row.id)))
        .filter(C::ClaimToken.eq(token))
        .filter(C::Status.eq(PushStatus::Pending))
        .col_expr(C::ClaimToken, Expr::value(Option::<String>::None))
        .col_expr(C::Attempts, Expr::col(C::Attempts).add(1))
        .col_expr(C::FirstAttemptAt, first_attempt(now))
        .col_expr(C::Status, Expr::value(PushStatus::Delivered))
        .col_expr(C::DeliveredAt, Expr::value(now))
        .col_expr(C::LastError, Expr::value(Option::<String>::None))
        .exec_with_returning(&app.db)
        .await?;
    if settled.len() < rows.len() {
        tracing::warn!(
            lost = rows.len() - settled.len(),
            "claims on delivered deliveries were lost before they settled"
        );
    }
    Ok(settled.into_iter().map(|r| r.binding_id).collect())
}

/// `first_attempt_at`, set by the first attempt and kept by the later ones.
fn first_attempt(now: DateTime<Utc>) -> sea_orm::sea_query::SimpleExpr {
    sea_orm::sea_query::Func::coalesce([
        Expr::col(push_outbox::Column::FirstAttemptAt),
        Expr::value(now),
    ])
    .into()
}
