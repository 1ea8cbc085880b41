//! What an operator watches, read from the database so that every instance sees the same: each
//! integration's last ended run and last success, and its deliveries waiting, held or failed.
//! `Integration.health` answers from it and `/metrics` exports it (`metrics::observe_health`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use entity::push_outbox::{self, PushStatus};
use entity::sync_run::{self, SyncStatus};

use crate::Result;

/// Marks a PENDING delivery held on a conflict (the outbox writes its reason so).
pub const HELD_PREFIX: &str = "held:";

/// The health of one integration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// The last run that ended (succeeded, failed or cancelled).
    pub last_run: Option<sync_run::Model>,
    /// When its last successful run ended.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Deliveries waiting for their turn or their next attempt (not held).
    pub pending: i64,
    /// Deliveries held because the platform port carries another customer.
    pub held: i64,
    /// Deliveries given up or refused; `retryPush` sends them again.
    pub failed: i64,
    /// When the oldest pending (not held) delivery was queued.
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

/// The health of the given integrations (every one with a run or a delivery when `ids` is
/// `None`); an integration with neither is absent (its health is the default).
pub async fn of(db: &impl ConnectionTrait, ids: Option<&[i64]>) -> Result<HashMap<i64, Health>> {
    let mut out: HashMap<i64, Health> = HashMap::new();
    let terminal = [
        SyncStatus::Succeeded,
        SyncStatus::Failed,
        SyncStatus::Cancelled,
    ];
    let mut last_ids = sync_run::Entity::find()
        .select_only()
        .column(sync_run::Column::IntegrationId)
        .column_as(sync_run::Column::Id.max(), "last")
        .filter(sync_run::Column::Status.is_in(terminal))
        .group_by(sync_run::Column::IntegrationId);
    if let Some(ids) = ids {
        last_ids = last_ids.filter(sync_run::Column::IntegrationId.is_in(ids.iter().copied()));
    }
    let last_ids: Vec<i64> = last_ids
        .into_tuple::<(i64, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    for run in sync_run::Entity::find()
        .filter(sync_run::Column::Id.is_in(last_ids))
        .all(db)
        .await?
    {
        let integration_id = run.integration_id;
        out.entry(integration_id).or_default().last_run = Some(run);
    }
    let mut successes = sync_run::Entity::find()
        .select_only()
        .column(sync_run::Column::IntegrationId)
        .column_as(sync_run::Column::Id.max(), "last")
        .filter(sync_run::Column::Status.eq(SyncStatus::Succeeded))
        .group_by(sync_run::Column::IntegrationId);
    if let Some(ids) = ids {
        successes = successes.filter(sync_run::Column::IntegrationId.is_in(ids.iter().copied()));
    }
    let success_ids: Vec<i64> = successes
        .into_tuple::<(i64, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    for run in sync_run::Entity::find()
        .filter(sync_run::Column::Id.is_in(success_ids))
        .all(db)
        .await?
    {
        out.entry(run.integration_id).or_default().last_success_at = run.finished_at;
    }
    // Counted per integration, status and whether held; the oldest of each group beside.
    let held = Expr::cust(format!(
        "CASE WHEN last_error LIKE '{HELD_PREFIX}%' THEN 1 ELSE 0 END"
    ));
    let mut waiting = push_outbox::Entity::find()
        .select_only()
        .column(push_outbox::Column::IntegrationId)
        .column(push_outbox::Column::Status)
        .column_as(held.clone(), "held")
        .column_as(push_outbox::Column::Id.count(), "n")
        .column_as(push_outbox::Column::Id.min(), "oldest")
        .filter(push_outbox::Column::Status.is_in([PushStatus::Pending, PushStatus::Failed]))
        .group_by(push_outbox::Column::IntegrationId)
        .group_by(push_outbox::Column::Status)
        .group_by(held);
    if let Some(ids) = ids {
        waiting = waiting.filter(push_outbox::Column::IntegrationId.is_in(ids.iter().copied()));
    }
    let mut oldest = Vec::new();
    for (integration_id, status, held, n, first) in waiting
        .into_tuple::<(i64, PushStatus, i32, i64, i64)>()
        .all(db)
        .await?
    {
        let health = out.entry(integration_id).or_default();
        match (status, held != 0) {
            (PushStatus::Pending, false) => {
                health.pending += n;
                oldest.push(first);
            }
            (PushStatus::Pending, true) => health.held += n,
            _ => health.failed += n,
        }
    }
    // Ids grow with time: the smallest pending id of each integration is its oldest delivery.
    for row in push_outbox::Entity::find()
        .filter(push_outbox::Column::Id.is_in(oldest))
        .all(db)
        .await?
    {
        out.entry(row.integration_id).or_default().oldest_pending_at = Some(row.created_at);
    }
    Ok(out)
}

/// Every active integration's health as `/metrics` exports it, ages on the database's clock.
pub async fn exported(db: &impl ConnectionTrait) -> Result<Vec<crate::metrics::IntegrationHealth>> {
    use entity::integration;
    let integrations = integration::Entity::find()
        .filter(integration::Column::Active.eq(true))
        .all(db)
        .await?;
    let mut health = of(db, None).await?;
    let now = crate::db::clock(db).await?;
    Ok(integrations
        .into_iter()
        .map(|row| {
            let h = health.remove(&row.id).unwrap_or_default();
            crate::metrics::IntegrationHealth {
                integration: crate::ids::integration(row.id),
                last_success_at: h.last_success_at.unwrap_or(row.created_at),
                last_status: h.last_run.as_ref().map(|r| r.status.to_string()),
                last_run_at: h.last_run.as_ref().and_then(|r| r.finished_at),
                pending: h.pending,
                held: h.held,
                failed: h.failed,
                oldest_pending_age: h.oldest_pending_at.map_or(0.0, |at| {
                    ((now - at).num_milliseconds().max(0) as f64) / 1000.0
                }),
            }
        })
        .collect())
}
