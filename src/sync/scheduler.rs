//! The schedule: every active integration with a project syncs at its cron time in its time zone
//! (daily 04:00 America/Sao_Paulo by default), FULL on Saturdays and Sundays and INCREMENTAL on
//! other days. Instances claim each slot through the database, so exactly one runs it.

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

/// Claims and starts every due slot at `now`; also marks stale runs failed. Returns the runs
/// this instance started.
pub async fn tick(app: &AppState, now: DateTime<Utc>) -> Result<Vec<entity::sync_run::Model>> {
    super::sweep_stale(app).await?;
    let catch_up = chrono::Duration::from_std(app.settings.sync.catch_up)
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
                tracing::warn!(integration_id = row.id, "unreadable schedule; skipped");
                continue;
            }
        };
        let Some((slot, mode)) = latest_slot(&cron, zone, now) else {
            continue;
        };
        if now - slot > catch_up {
            continue;
        }
        if let Some(run) = super::claim_slot(app, row.id, mode, slot).await? {
            tracing::info!(integration_id = row.id, run_id = run.id, %slot, %mode, "claimed a scheduled sync");
            started.push(run);
        }
    }
    Ok(started)
}

/// Ticks forever at the configured interval, with the given clock.
pub async fn run(app: AppState, clock: Arc<dyn Clock>, stop: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(app.settings.sync.tick_every);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = tick(&app, clock.now()).await {
            tracing::warn!(error = %e.message(), "scheduler tick failed");
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
