//! Starting (manual or scheduled), executing, cancelling and recording runs.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use entity::sync_run;

use super::{engine, Mode, RunRequest, SyncStatus, Trigger};
use crate::access::{Actor, Role};
use crate::state::AppState;
use crate::store::paging::{Page, PageRequest};
use crate::{history, integrations, projects, Error, Result};

fn new_run(integration_id: i64, request: &RunRequest, instance: &str) -> sync_run::ActiveModel {
    let now = Utc::now();
    sync_run::ActiveModel {
        integration_id: Set(integration_id),
        mode: Set(request.mode),
        trigger: Set(request.trigger),
        status: Set(SyncStatus::Running),
        element_fid: Set(request.element_fid.clone()),
        allow_mass_deletion: Set(request.allow_mass_deletion),
        scheduled_for: Set(request.scheduled_for),
        cursor_before: Set(None),
        cursor_after: Set(None),
        phase: Set(Some("STARTING".into())),
        current_item: Set(None),
        processed: Set(0),
        total: Set(None),
        fetched: Set(0),
        created: Set(0),
        updated: Set(0),
        deleted: Set(0),
        unchanged: Set(0),
        orphaned: Set(0),
        error_code: Set(None),
        error_message: Set(None),
        instance_id: Set(Some(instance.to_owned())),
        heartbeat_at: Set(Some(now)),
        created_at: Set(now),
        started_at: Set(Some(now)),
        finished_at: Set(None),
        ..Default::default()
    }
}

/// The active run of an integration, if any.
pub async fn active_run<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
) -> Result<Option<sync_run::Model>> {
    Ok(sync_run::Entity::find()
        .filter(sync_run::Column::IntegrationId.eq(integration_id))
        .filter(sync_run::Column::Status.is_in(SyncStatus::ACTIVE))
        .one(db)
        .await?)
}

/// Checks that an integration may sync now.
async fn check_can_sync(db: &DatabaseConnection, integration_id: i64) -> Result<()> {
    let row = integrations::find(db, integration_id).await?;
    if !row.active {
        return Err(Error::InactiveIntegration);
    }
    if projects::of(db, integration_id).await?.is_none() {
        return Err(Error::Conflict(
            "the integration has no project: setProject first".into(),
        ));
    }
    Ok(())
}

/// Starts a manual run in the background and returns it at once (RUNNING).
pub async fn start(
    app: &AppState,
    actor: &Actor,
    integration_id: i64,
    request: RunRequest,
) -> Result<sync_run::Model> {
    actor.require(Role::Operator)?;
    if request.mode == Mode::Element
        && request
            .element_fid
            .as_deref()
            .is_none_or(|f| f.trim().is_empty())
    {
        return Err(Error::validation(
            "fid",
            "an element sync needs the box fid",
        ));
    }
    check_can_sync(&app.db, integration_id).await?;
    let mut swept = false;
    let run = loop {
        match new_run(integration_id, &request, &app.settings.sync.instance_id)
            .insert(&app.db)
            .await
        {
            Ok(run) => break run,
            // The run in the way may be one whose instance died: mark it (if its heartbeats
            // stopped) and try once more, so a killed instance never blocks the integration
            // for longer than `stale_after`.
            Err(e) if crate::error::is_unique_violation(&e) && !swept => {
                swept = true;
                super::liveness::sweep_stale(app).await?;
            }
            Err(e) if crate::error::is_unique_violation(&e) => {
                let running = active_run(&app.db, integration_id).await?;
                return Err(Error::SyncAlreadyRunning {
                    run_id: running.map(|r| r.id).unwrap_or_default(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    };
    history::record(
        &app.db,
        Some(integration_id),
        actor,
        crate::history::Action::SyncStarted,
        format!(
            "started a {} sync (run {})",
            request.mode,
            crate::ids::run(run.id)
        ),
        None,
        None,
    )
    .await?;
    spawn(app, run.clone(), actor.clone());
    Ok(run)
}

/// Follows a run of this instance's runner to its end, calling `seen` with each of its progress
/// events (the run's row first, so an end that came before the call is not missed); returns the
/// run's row once its task is done.
pub async fn follow_to_end(
    app: &AppState,
    run_id: i64,
    mut seen: impl FnMut(&crate::events::Progress),
) -> Result<sync_run::Model> {
    use futures::StreamExt;
    let filter = crate::events::Filter {
        integration_id: None,
        run_id: Some(run_id),
    };
    let mut events = crate::events::follow(app.db.clone(), app.events.clone(), filter);
    while let Some(delivery) = events.next().await {
        seen(&delivery?.progress);
    }
    // The task records the run's end (history, metrics) just after its terminal event.
    app.runner.idle_of(run_id).await;
    find(&app.db, run_id).await
}

/// Claims a scheduled slot with `INSERT ... ON CONFLICT DO NOTHING`: exactly one instance gets
/// it. Returns the run when this instance won, and starts it.
pub async fn claim_slot(
    app: &AppState,
    integration_id: i64,
    mode: Mode,
    slot: DateTime<Utc>,
) -> Result<Option<sync_run::Model>> {
    let request = RunRequest {
        mode,
        trigger: Trigger::Scheduled,
        allow_mass_deletion: false,
        element_fid: None,
        scheduled_for: Some(slot),
    };
    let insert = sync_run::Entity::insert(new_run(
        integration_id,
        &request,
        &app.settings.sync.instance_id,
    ))
    // No conflict target: losing on the slot key or on the one-active-run key both mean "not
    // ours now"; a slot lost to a running manual sync is tried again on the next tick.
    .on_conflict(
        sea_orm::sea_query::OnConflict::new()
            .do_nothing()
            .to_owned(),
    )
    .try_insert()
    .exec(&app.db)
    .await?;
    let sea_orm::TryInsertResult::Inserted(inserted) = insert else {
        return Ok(None);
    };
    let run = sync_run::Entity::find_by_id(inserted.last_insert_id)
        .one(&app.db)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("claimed run vanished")))?;
    let actor = Actor::system("scheduler");
    history::record(
        &app.db,
        Some(integration_id),
        &actor,
        crate::history::Action::SyncStarted,
        format!(
            "scheduled {} sync for {slot} (run {})",
            mode,
            crate::ids::run(run.id)
        ),
        None,
        None,
    )
    .await?;
    spawn(app, run.clone(), actor);
    Ok(Some(run))
}

fn spawn(app: &AppState, run: sync_run::Model, actor: Actor) {
    app.events.publish_run(&run);
    let state = app.clone();
    app.runner.spawn(run.id, move |token| async move {
        execute(&state, run, token, actor).await;
    });
}

/// Runs the engine with a heartbeat beside it and records the outcome.
async fn execute(app: &AppState, run: sync_run::Model, cancel: CancellationToken, actor: Actor) {
    use tracing::Instrument;
    let span = tracing::info_span!("sync_run", run_id = run.id, integration_id = run.integration_id, mode = %run.mode);
    async {
        let heartbeat = tokio::spawn(super::liveness::heartbeat(
            app.clone(),
            run.id,
            cancel.clone(),
        ));
        tracing::info!("sync started");
        let outcome = engine::Engine::run(app, &run, &cancel, &actor).await;
        heartbeat.abort();
        if let Err(e) = finish(app, &run, outcome, &actor).await {
            tracing::error!(error = %e.for_log(), "could not record the end of a sync run");
        }
    }
    .instrument(span)
    .await
}

/// How a run ended, before it is recorded.
pub enum Outcome {
    /// Everything listed and applied.
    Succeeded,
    /// Stopped by an error.
    Failed {
        /// Stable code.
        code: String,
        /// For a person.
        message: String,
    },
    /// Stopped on request.
    Cancelled,
}

async fn finish(
    app: &AppState,
    run: &sync_run::Model,
    outcome: Outcome,
    actor: &Actor,
) -> Result<()> {
    let current = sync_run::Entity::find_by_id(run.id)
        .one(&app.db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("sync run {}", crate::ids::run(run.id))))?;
    if current.status != SyncStatus::Running {
        tracing::warn!(status = %current.status, "the run was ended by another instance; its end stands");
        return Ok(());
    }
    let mut row: sync_run::ActiveModel = current.clone().into();
    let (state, code, message) = match &outcome {
        Outcome::Succeeded => (SyncStatus::Succeeded, None, None),
        Outcome::Failed { code, message } => (
            SyncStatus::Failed,
            Some(code.clone()),
            Some(message.clone()),
        ),
        Outcome::Cancelled => (
            SyncStatus::Cancelled,
            Some("CANCELLED".to_owned()),
            Some(
                if integrations::find(&app.db, run.integration_id)
                    .await?
                    .active
                {
                    "the run was cancelled; the last good copy is intact"
                } else {
                    "the run was cancelled because the integration was deactivated; the last \
                     good copy is intact"
                }
                .to_owned(),
            ),
        ),
    };
    row.status = Set(state);
    row.error_code = Set(code.clone());
    row.error_message = Set(message.clone());
    row.phase = Set(Some("DONE".into()));
    let finished_at = Utc::now();
    row.finished_at = Set(Some(finished_at));
    row.seq = Set(current.seq + 1);
    // Never over a terminal status: a run another instance marked failed meanwhile stays so.
    let done = match super::liveness::fenced(row, &app.settings.sync.instance_id)?
        .exec(&app.db)
        .await
    {
        Ok(done) => done,
        Err(sea_orm::DbErr::RecordNotUpdated) => {
            tracing::warn!("the run was ended by another instance; its end stands");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let seconds = done.started_at.map_or(0.0, |s| {
        (finished_at - s).num_milliseconds() as f64 / 1000.0
    });
    crate::metrics::get().record_run(&done, seconds);
    log_end(&done, state, code.as_deref(), message.as_deref());
    let recorded = history::record(
        &app.db,
        Some(run.integration_id),
        actor,
        history::Action::sync_ended(state).unwrap_or(history::Action::SyncFailed),
        match &message {
            None => format!(
                "{} sync (run {}): {} fetched, {} created, {} updated, {} deleted, {} orphaned",
                done.mode,
                crate::ids::run(done.id),
                done.fetched,
                done.created,
                done.updated,
                done.deleted,
                done.orphaned
            ),
            Some(m) => format!(
                "{} sync (run {}) {}: {m}",
                done.mode,
                crate::ids::run(done.id),
                state.to_string().to_lowercase()
            ),
        },
        None,
        Some(json!({
            "runId": done.id, "status": state.to_string(), "fetched": done.fetched, "created": done.created,
            "updated": done.updated, "deleted": done.deleted, "unchanged": done.unchanged,
            "orphaned": done.orphaned, "errorCode": code,
        })),
    )
    .await;
    // Told last, so that whoever follows the run to its end finds its history written; told
    // even when the history could not be written, since the row says the run ended.
    app.events.publish_run(&done);
    recorded
}

/// The line an operator reads about a run's end: ERROR when it failed, WARN when cancelled,
/// INFO when it succeeded; always with the integration's and the run's opaque ids, and the
/// code and message of a run that did not succeed.
fn log_end(done: &sync_run::Model, state: SyncStatus, code: Option<&str>, message: Option<&str>) {
    let integration = crate::ids::integration(done.integration_id);
    let run = crate::ids::run(done.id);
    let mode = done.mode.to_string();
    macro_rules! end {
        ($level:ident, $text:literal) => {
            tracing::$level!(
                integration = %integration,
                run = %run,
                mode = %mode,
                status = %state,
                code = code.unwrap_or_default(),
                error = message.unwrap_or_default(),
                fetched = done.fetched,
                created = done.created,
                updated = done.updated,
                deleted = done.deleted,
                unchanged = done.unchanged,
                orphaned = done.orphaned,
                $text
            )
        };
    }
    match state {
        SyncStatus::Failed => end!(error, "sync failed"),
        SyncStatus::Cancelled => end!(warn, "sync cancelled"),
        _ => end!(info, "sync finished"),
    }
}

/// Asks a run to stop, from any instance: the request is stored on the run (the executing
/// instance reads it with its heartbeat) and told at once to the executing instance (directly,
/// or through the event bus on PostgreSQL); a run whose instance is gone (stale heartbeat) is
/// marked failed. Answers the run once it has ended, or as it is after a few seconds.
pub async fn cancel(app: &AppState, actor: &Actor, run_id: i64) -> Result<sync_run::Model> {
    actor.require(Role::Operator)?;
    let run = find(&app.db, run_id).await?;
    if !SyncStatus::ACTIVE.contains(&run.status) {
        return Ok(run);
    }
    sync_run::Entity::update_many()
        .col_expr(
            sync_run::Column::CancelRequested,
            sea_orm::sea_query::Expr::value(true),
        )
        .filter(sync_run::Column::Id.eq(run_id))
        .filter(sync_run::Column::Status.is_in(SyncStatus::ACTIVE))
        .exec(&app.db)
        .await?;
    if !app.runner.cancel(run_id) {
        app.events.request_cancel(run_id);
        super::liveness::sweep_stale(app).await?;
    }
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    loop {
        let run = find(&app.db, run_id).await?;
        if !SyncStatus::ACTIVE.contains(&run.status) || tokio::time::Instant::now() >= deadline {
            return Ok(run);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Deactivates or reactivates an integration; deactivating cancels its running sync, on
/// whichever instance executes it (recorded CANCELLED, saying why).
pub async fn set_integration_active(
    app: &AppState,
    actor: &Actor,
    integration_id: i64,
    active: bool,
) -> Result<entity::integration::Model> {
    let row = integrations::set_active(&app.db, actor, integration_id, active).await?;
    if !row.active {
        if let Some(run) = active_run(&app.db, integration_id).await? {
            cancel(app, actor, run.id).await?;
        }
    }
    Ok(row)
}

/// How long `cancelSync` waits for the run to record its end before answering.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One run, or `NOT_FOUND`.
pub async fn find<C: ConnectionTrait>(db: &C, run_id: i64) -> Result<sync_run::Model> {
    sync_run::Entity::find_by_id(run_id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("sync run {}", crate::ids::run(run_id))))
}

/// The runs of an integration, newest first.
pub async fn page<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    request: PageRequest,
) -> Result<Page<sync_run::Model>> {
    let select =
        sync_run::Entity::find().filter(sync_run::Column::IntegrationId.eq(integration_id));
    crate::store::paging::newest_first(db, select, sync_run::Column::Id, request).await
}
