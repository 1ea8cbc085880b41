//! This instance's own clock, and the database's. Whatever instances must agree on (leases,
//! due times, heartbeats) is compared on the database's clock; the instance's clock only stamps
//! what one instance reads back itself. The offset exists so that tests can run instances whose
//! clocks disagree, as real machines' do.

use chrono::{DateTime, Duration, Utc};

/// The system clock, plus an offset (zero outside tests of clock skew).
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalClock {
    offset: Duration,
}

impl LocalClock {
    /// A clock this far ahead of the system's (behind when negative).
    pub fn offset_by(offset: Duration) -> Self {
        LocalClock { offset }
    }

    /// Now, on this instance's clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// The database's clock, read once and carried forward by a monotonic timer: a round of work
/// that stamps several rows reads the clock in one statement, not one per row.
#[derive(Clone, Copy, Debug)]
pub struct DbTime {
    at: DateTime<Utc>,
    read: std::time::Instant,
}

impl DbTime {
    /// Reads the database's clock.
    pub async fn read<C: sea_orm::ConnectionTrait>(db: &C) -> crate::Result<DbTime> {
        Ok(DbTime {
            at: crate::db::clock(db).await?,
            read: std::time::Instant::now(),
        })
    }

    /// The database's time now: the time read plus what has elapsed since.
    pub fn now(&self) -> DateTime<Utc> {
        self.at + Duration::from_std(self.read.elapsed()).unwrap_or(Duration::zero())
    }
}
