//! The schedule: every active integration with a project syncs at its cron time in its time zone
//! (daily 04:00 America/Sao_Paulo by default), FULL on Saturdays and Sundays and INCREMENTAL on
//! other days. Instances claim each slot through the database, so exactly one runs it.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc, Weekday};
use chrono_tz::Tz;
use croner::Cron;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use entity::{integration, project};

use super::Mode;
pub use crate::schedule::{parse_cron, parse_zone};
use crate::state::AppState;
use crate::Result;

/// Where the scheduler reads the time; tests inject a fixed one.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The latest slot at or before `now`, and its mode (FULL on weekends in the zone).
pub fn latest_slot(cron: &Cron, zone: Tz, now: DateTime<Utc>) -> Option<(DateTime<Utc>, Mode)> {
    let local = now.with_timezone(&zone);
    let slot = cron.find_previous_occurrence(&local, true).ok()?;
    let mode = match slot.weekday() {
        Weekday::Sat | Weekday::Sun => Mode::Full,
        _ => Mode::Incremental,
    };
    Some((slot.with_timezone(&Utc), mode))
}

/// Slots already found missed, so that each is told once per process, not on every tick.
#[derive(Default)]
pub struct Missed {
    seen: HashSet<(i64, DateTime<Utc>)>,
    told: Vec<(i64, DateTime<Utc>)>,
}

impl Missed {
    /// The slots told missed so far: (integration, slot).
    pub fn told(&self) -> &[(i64, DateTime<Utc>)] {
        &self.told
    }
}

/// Claims and starts every due slot at `now`; also marks stale runs failed. Returns the runs
/// this instance started.
pub async fn tick(app: &AppState, now: DateTime<Utc>) -> Result<Vec<entity::sync_run::Model>> {
    tick_with(app, now, &mut Missed::default()).await
}

/// [`tick`], remembering in `missed` the slots already told missed.
pub async fn tick_with(
    app: &AppState,
    now: DateTime<Utc>,
    missed: &mut Missed,
) -> Result<Vec<entity::sync_run::Model>> {
    super::sweep_stale(app).await?;
    let catch_up = chrono::Duration::from_std(app.settings.sync.catch_up.max(MIN_CATCH_UP))
        .unwrap_or(chrono::Duration::hours(1));
    let active = integration::Entity::find()
        .filter(integration::Column::Active.eq(true))
        .all(&app.db)
        .await?;
    let linked: Vec<i64> = project::Entity::find()
        .all(&app.db)
        .await?
        .into_iter()
        .map(|p| p.integration_id)
        .collect();
    let mut started = Vec::new();
    for row in active.into_iter().filter(|r| linked.contains(&r.id)) {
        let (cron, zone) = match (
            parse_cron(&row.schedule_cron),
            parse_zone(&row.schedule_timezone),
        ) {
            (Ok(c), Ok(z)) => (c, z),
            _ => {
                tracing::warn!(
                    integration = %crate::ids::integration(row.id),
                    "unreadable schedule; skipped"
                );
                continue;
            }
        };
        let Some((slot, mode)) = latest_slot(&cron, zone, now) else {
            continue;
        };
        if now - slot > catch_up {
            if missed.seen.insert((row.id, slot)) && !ran(app, row.id, slot).await? {
                missed.told.push((row.id, slot));
                let integration = crate::ids::integration(row.id);
                crate::metrics::get()
                    .sync_slots_missed
                    .with_label_values(&[integration.as_str()])
                    .inc();
                tracing::warn!(
                    %integration,
                    %slot,
                    %mode,
                    catch_up_secs = catch_up.num_seconds(),
                    "a scheduled sync was missed: its slot is older than SYNC_CATCH_UP; it runs \
                     at the next slot, or start it with startSync"
                );
            }
            continue;
        }
        if let Some(run) = super::claim_slot(app, row.id, mode, slot).await? {
            tracing::info!(
                integration = %crate::ids::integration(row.id),
                run = %crate::ids::run(run.id),
                %slot,
                %mode,
                "claimed a scheduled sync"
            );
            started.push(run);
        }
    }
    Ok(started)
}

/// The least catch-up window: the scheduler must get at least one tick inside it.
pub const MIN_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether some instance claimed the slot.
async fn ran(app: &AppState, integration_id: i64, slot: DateTime<Utc>) -> Result<bool> {
    use entity::sync_run;
    use sea_orm::PaginatorTrait;
    Ok(sync_run::Entity::find()
        .filter(sync_run::Column::IntegrationId.eq(integration_id))
        .filter(sync_run::Column::ScheduledFor.eq(slot))
        .count(&app.db)
        .await?
        > 0)
}

/// Ticks forever at the configured interval, with the given clock.
pub async fn run(app: AppState, clock: Arc<dyn Clock>, stop: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(app.settings.sync.tick_every);
    let mut missed = Missed::default();
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = tick_with(&app, clock.now(), &mut missed).await {
            tracing::warn!(error = %e.for_log(), "scheduler tick failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn slots_follow_the_zone_and_the_weekday() {
        let cron = parse_cron("0 4 * * *").unwrap();
        let zone = parse_zone("America/Sao_Paulo").unwrap();
        // 2026-11-27 is a Friday; 04:00 in São Paulo (UTC-3) is 07:00 UTC.
        let (slot, mode) = latest_slot(&cron, zone, at(2026, 11, 27, 7, 0)).unwrap();
        assert_eq!(slot, at(2026, 11, 27, 7, 0));
        assert_eq!(mode, Mode::Incremental);
        // 06:59 UTC is still before Friday's slot: the latest is Thursday's.
        let (slot, _) = latest_slot(&cron, zone, at(2026, 11, 27, 6, 59)).unwrap();
        assert_eq!(slot, at(2026, 11, 26, 7, 0));
        // Saturday and Sunday run FULL.
        assert_eq!(
            latest_slot(&cron, zone, at(2026, 11, 28, 8, 0)).unwrap().1,
            Mode::Full
        );
        assert_eq!(
            latest_slot(&cron, zone, at(2026, 11, 29, 7, 30)).unwrap().1,
            Mode::Full
        );
        // Monday 02:00 UTC is still Sunday 23:00 in São Paulo: the latest slot is Sunday's.
        let (slot, mode) = latest_slot(&cron, zone, at(2026, 11, 30, 2, 0)).unwrap();
        assert_eq!((slot, mode), (at(2026, 11, 29, 7, 0), Mode::Full));
        assert_eq!(
            latest_slot(&cron, zone, at(2026, 11, 30, 7, 1)).unwrap().1,
            Mode::Incremental
        );
        assert_eq!(parse_cron("61 * * * *").unwrap_err().code(), "VALIDATION");
        assert_eq!(parse_zone("Mars/Olympus").unwrap_err().code(), "VALIDATION");
    }
}
