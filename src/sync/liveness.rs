//! Whether a run is still alive and still its instance's: heartbeats on the database's clock,
//! the fence every write of a run goes through, and the sweep of runs whose instance died.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tokio_util::sync::CancellationToken;

use entity::sync_run;

use super::SyncStatus;
use crate::state::AppState;
use crate::{Error, Result};

/// Proves the run alive every `heartbeat_every`, on the database's clock and only while it is
/// RUNNING on this instance; stops it when a cancel was asked for (stored on the run or told
/// through the bus) or when another instance marked it failed.
pub(super) async fn heartbeat(app: AppState, run_id: i64, cancel: CancellationToken) {
    let mut cancels = app.events.cancels();
    let mut tick = tokio::time::interval(app.settings.sync.heartbeat_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            asked = cancels.recv() => {
                match asked {
                    Ok(id) if id == run_id => cancel.cancel(),
                    Ok(_) => {}
                    // Requests were missed: the stored flag is read below.
                    Err(_) => cancels = app.events.cancels(),
                }
                continue;
            }
        }
        let beat = async {
            let now = crate::db::clock(&app.db).await?;
            let alive = sync_run::Entity::update_many()
                .col_expr(
                    sync_run::Column::HeartbeatAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(sync_run::Column::Id.eq(run_id))
                .filter(sync_run::Column::Status.eq(SyncStatus::Running))
                .filter(sync_run::Column::InstanceId.eq(app.settings.sync.instance_id.as_str()))
                .exec(&app.db)
                .await?
                .rows_affected
                > 0;
            let asked = super::runs::find(&app.db, run_id).await?.cancel_requested;
            Ok::<_, Error>(!alive || asked)
        };
        match beat.await {
            Ok(true) => cancel.cancel(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e.for_log(), "could not send a heartbeat"),
        }
    }
}

/// An update of a run's row that applies only while the run is RUNNING on this instance.
pub(super) fn fenced(
    row: sync_run::ActiveModel,
    instance: &str,
) -> Result<sea_orm::ValidatedUpdateOne<sync_run::ActiveModel>> {
    Ok(sync_run::Entity::update(row)
        .validate()?
        .filter(sync_run::Column::Status.eq(SyncStatus::Running))
        .filter(sync_run::Column::InstanceId.eq(instance)))
}

/// The error of a run whose row another instance ended: it writes nothing more.
pub(super) fn lost(run_id: i64) -> Error {
    Error::Conflict(format!(
        "sync run {} was ended by another instance (its heartbeats stopped reaching the \
         database); it stopped writing",
        crate::ids::run(run_id)
    ))
}

/// Marks runs whose heartbeat is older than `stale_after` (on the database's clock, the one
/// heartbeats are written with) as failed; returns how many.
pub async fn sweep_stale(app: &AppState) -> Result<u64> {
    let now = crate::db::clock(&app.db).await?;
    let limit = now
        - chrono::Duration::from_std(app.settings.sync.stale_after)
            .unwrap_or(chrono::Duration::seconds(15));
    let stale = sync_run::Entity::find()
        .filter(sync_run::Column::Status.is_in(SyncStatus::ACTIVE))
        .filter(sync_run::Column::HeartbeatAt.lt(limit))
        .all(&app.db)
        .await?;
    let mut marked = 0;
    for run in stale {
        let mut row: sync_run::ActiveModel = run.clone().into();
        row.status = Set(SyncStatus::Failed);
        row.error_code = Set(Some("INSTANCE_LOST".into()));
        row.error_message = Set(Some(
            "the instance running this sync stopped sending heartbeats".into(),
        ));
        row.phase = Set(Some("DONE".into()));
        row.finished_at = Set(Some(now));
        row.seq = Set(run.seq + 1);
        // Only if it is still active and stale: another instance may have marked it first.
        let result = sync_run::Entity::update_many()
            .set(row)
            .filter(sync_run::Column::Id.eq(run.id))
            .filter(sync_run::Column::Status.is_in(SyncStatus::ACTIVE))
            .filter(sync_run::Column::HeartbeatAt.lt(limit))
            .exec(&app.db)
            .await?;
        if result.rows_affected > 0 {
            marked += 1;
            if let Some(done) = sync_run::Entity::find_by_id(run.id).one(&app.db).await? {
                tracing::error!(
                    integration = %crate::ids::integration(done.integration_id),
                    run = %crate::ids::run(done.id),
                    instance = run.instance_id.as_deref().unwrap_or_default(),
                    code = "INSTANCE_LOST",
                    "sync failed: the instance running it stopped sending heartbeats"
                );
                app.events.publish_run(&done);
                crate::metrics::get().record_run(&done, 0.0);
            }
        }
    }
    Ok(marked)
}

/// Sweeps for runs whose instance died every `sweep_every`, on every instance (whether or not
/// it runs the scheduler), until `stop`: a lost run is marked within `stale_after` and one
/// sweep.
pub async fn sweep_forever(app: AppState, stop: CancellationToken) {
    let mut every = tokio::time::interval(app.settings.sync.sweep_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = sweep_stale(&app).await {
            tracing::warn!(error = %e.for_log(), "could not look for runs of lost instances");
        }
    }
}
