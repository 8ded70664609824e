//! Aggregates over the request logs for the overview: counts and tokens per
//! hour, computed by SQLite (`GROUP BY` over the time index), not in Rust.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rusqlite::{Connection, params};

use super::{Error, time};

/// One hour's totals. Hours without requests have no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HourStats {
    /// The start of the hour, in UTC.
    pub start: DateTime<Utc>,
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// Totals per hour in `[since, until)`. Times are stored as fixed-width RFC
/// 3339 UTC text, so the first 13 characters (`2026-11-28T12`) name the hour.
pub fn hourly(
    connection: &Connection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<HourStats>, Error> {
    let mut statement = connection.prepare(
        "SELECT substr(time, 1, 13) AS hour, COUNT(*), \
         COALESCE(SUM(status >= 400), 0), COALESCE(SUM(prompt_tokens), 0), \
         COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(total_tokens), 0) \
         FROM request_logs WHERE time >= ?1 AND time < ?2 GROUP BY hour ORDER BY hour",
    )?;
    let rows = statement.query_map(params![time::encode(since), time::encode(until)], |row| {
        let count = |index: usize| -> rusqlite::Result<u64> {
            Ok(u64::try_from(row.get::<_, i64>(index)?).unwrap_or(0))
        };
        Ok((
            row.get::<_, String>(0)?,
            [count(1)?, count(2)?, count(3)?, count(4)?, count(5)?],
        ))
    })?;
    let mut hours = Vec::new();
    for row in rows {
        let (
            hour,
            [
                requests,
                errors,
                prompt_tokens,
                completion_tokens,
                total_tokens,
            ],
        ) = row?;
        let start = NaiveDateTime::parse_from_str(&format!("{hour}:00:00"), "%Y-%m-%dT%H:%M:%S")
            .map_err(|error| Error::Corrupt(format!("log hour {hour:?}: {error}")))?;
        hours.push(HourStats {
            start: Utc.from_utc_datetime(&start),
            requests,
            errors,
            prompt_tokens,
            completion_tokens,
            total_tokens,
        });
    }
    Ok(hours)
}
