//! Reading a sync schedule: a 5-field cron expression and the IANA time zone it is read in.

use std::str::FromStr;

use chrono_tz::Tz;
use croner::Cron;

use crate::{Error, Result};

/// Cron of a new integration's sync: every day at 04:00.
pub const DEFAULT_CRON: &str = "0 4 * * *";
/// Time zone a new integration's schedule is read in.
pub const DEFAULT_TIMEZONE: &str = "America/Sao_Paulo";

/// Parses a 5-field cron expression; the error names the problem.
pub fn parse_cron(expression: &str) -> Result<Cron> {
    let expression = crate::text::clean_line("cron", expression, 100)?;
    // croner also reads 6 and 7 fields (seconds, years): a stray field would turn a daily sync
    // into one every few seconds.
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(Error::validation(
            "cron",
            format!(
                "a cron expression has exactly 5 fields (minute hour day month weekday), got \
                 {fields}"
            ),
        ));
    }
    Cron::from_str(&expression).map_err(|e| {
        Error::validation(
            "cron",
            format!(
                "invalid cron expression ({e}): the fields are minute 0-59, hour 0-23, day \
                 1-31, month 1-12, weekday 0-6 (SUN-SAT)"
            ),
        )
    })
}

/// Parses an IANA time zone name.
pub fn parse_zone(name: &str) -> Result<Tz> {
    let name = crate::text::clean_line("timezone", name, 64)?;
    name.parse::<Tz>()
        .map_err(|_| Error::validation("timezone", format!("unknown time zone {name:?}")))
}
