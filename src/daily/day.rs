//! Days in a time zone: which day an instant falls on, and when that day
//! ends. Days are 23, 24 or 25 hours long across DST changes; where local
//! midnight does not exist (a DST gap at 00:00), the day starts at the first
//! instant after the gap.

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Days of counter history kept for charts, then pruned.
pub const HISTORY_DAYS: u64 = 90;

/// The calendar date of `instant` in `zone`.
pub fn date_in(zone: Tz, instant: DateTime<Utc>) -> NaiveDate {
    instant.with_timezone(&zone).date_naive()
}

/// The instant `date` begins in `zone`.
pub fn start_of(zone: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    match zone.from_local_datetime(&midnight) {
        LocalResult::Single(start) => start.with_timezone(&Utc),
        // Clocks went back over midnight: the day starts at the first one.
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        // Clocks jumped over midnight: the day starts when the gap ends.
        // Gaps are at most a few hours; scan forward a minute at a time.
        LocalResult::None => (1..=24 * 60)
            .find_map(|minute| {
                let local = midnight + chrono::Duration::minutes(minute);
                zone.from_local_datetime(&local).earliest()
            })
            .map(|start| start.with_timezone(&Utc))
            .unwrap_or_else(|| midnight.and_utc()),
    }
}

/// The instant the day containing `instant` ends in `zone`: the next local
/// midnight, when the counter resets.
pub fn next_reset(zone: Tz, instant: DateTime<Utc>) -> DateTime<Utc> {
    let today = date_in(zone, instant);
    let tomorrow = today.checked_add_days(Days::new(1)).unwrap_or(today);
    start_of(zone, tomorrow)
}

/// Whole seconds from `instant` until the day ends, at least 1 (for `Retry-After`).
pub fn seconds_until_reset(zone: Tz, instant: DateTime<Utc>) -> u64 {
    let milliseconds = (next_reset(zone, instant) - instant).num_milliseconds();
    u64::try_from(milliseconds)
        .unwrap_or(0)
        .div_ceil(1000)
        .max(1)
}

/// Parses a zone name (`Asia/Shanghai`, `UTC`).
pub fn parse_zone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

/// The system's local zone: `tz` (the `TZ` variable, which the CLI reads)
/// when it names an IANA zone, otherwise the zone the operating system
/// reports, otherwise UTC.
pub fn system_zone(tz: Option<&str>) -> Tz {
    let from_env = tz.and_then(|value| parse_zone(value.trim_start_matches(':')));
    from_env
        .or_else(|| {
            iana_time_zone::get_timezone()
                .ok()
                .and_then(|name| parse_zone(&name))
        })
        .unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    /// The date and the reset instant follow the zone, not UTC.
    #[test]
    fn dates_and_resets_follow_the_zone() {
        let shanghai = parse_zone("Asia/Shanghai").unwrap();
        // 2026-11-28 17:30 UTC is 01:30 on the 29th in Shanghai.
        let instant = utc(2026, 11, 28, 17, 30);
        assert_eq!(
            date_in(shanghai, instant),
            NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
        );
        assert_eq!(
            date_in(Tz::UTC, instant),
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
        );
        assert_eq!(next_reset(shanghai, instant), utc(2026, 11, 29, 16, 0));
        assert_eq!(next_reset(Tz::UTC, instant), utc(2026, 11, 29, 0, 0));
    }

    /// DST days are 23 and 25 hours long, and each resets at local midnight.
    #[test]
    fn dst_days_are_23_and_25_hours() {
        let new_york = parse_zone("America/New_York").unwrap();
        let spring = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let fall = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let length = |date: NaiveDate| {
            start_of(new_york, date.succ_opt().unwrap()) - start_of(new_york, date)
        };
        assert_eq!(length(spring).num_hours(), 23);
        assert_eq!(length(fall).num_hours(), 25);
        // 23:59 local on the long day still belongs to it.
        let late = utc(2026, 11, 2, 4, 59);
        assert_eq!(date_in(new_york, late), fall);
        assert_eq!(next_reset(new_york, late), utc(2026, 11, 2, 5, 0));
    }

    /// Where midnight falls in a DST gap, the day starts when the gap ends.
    #[test]
    fn midnight_in_a_gap_starts_after_it() {
        // Santiago skipped 00:00–01:00 local on 2026-09-06.
        let santiago = parse_zone("America/Santiago").unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
        let start = start_of(santiago, date);
        assert_eq!(date_in(santiago, start), date);
        assert_eq!(
            date_in(santiago, start - chrono::Duration::seconds(1)),
            date.pred_opt().unwrap()
        );
    }

    #[test]
    fn retry_after_rounds_up_and_is_positive() {
        let instant = utc(2026, 11, 28, 23, 59) + chrono::Duration::milliseconds(59_500);
        assert_eq!(seconds_until_reset(Tz::UTC, instant), 1);
        assert_eq!(
            seconds_until_reset(Tz::UTC, utc(2026, 11, 28, 0, 0)),
            86_400
        );
    }

    #[test]
    fn zones_parse_or_fail() {
        assert!(parse_zone("Asia/Shanghai").is_some());
        assert!(parse_zone("UTC").is_some());
        assert!(parse_zone("Mars/Olympus").is_none());
        assert!(parse_zone("").is_none());
    }
}
