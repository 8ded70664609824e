//! The daily-limit keys of a channel's `settings`: reading them into a
//! [`Cap`] and validating what an admin sends.

use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::{Cap, day};

pub const LIMIT: &str = "daily_token_limit";
pub const ZONE: &str = "daily_reset_timezone";
pub const RESERVE: &str = "daily_reserve_tokens";

/// The largest accepted limit: 10^15 raw tokens a day.
pub const MAX_LIMIT: u64 = 1_000_000_000_000_000;
/// What an admitted request reserves when it sets no `max_tokens` and the
/// channel sets no `daily_reserve_tokens`.
pub const DEFAULT_RESERVE: u64 = 4_096;
const MAX_RESERVE: u64 = 100_000_000;

/// A rejected setting: the dotted field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not a whole number of tokens in range (negative, fraction, string, too big).
    NotATokenCount {
        max: u64,
    },
    UnknownZone,
}

/// Checks the daily-limit keys of `settings`; other keys are left alone.
pub fn validate(settings: &Map<String, Value>) -> Result<(), Invalid> {
    for (key, max) in [(LIMIT, MAX_LIMIT), (RESERVE, MAX_RESERVE)] {
        if let Some(value) = settings.get(key)
            && !value.is_null()
            && token_count(value, max).is_none()
        {
            return Err(Invalid {
                field: format!("settings.{key}"),
                problem: Problem::NotATokenCount { max },
            });
        }
    }
    match settings.get(ZONE) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(name)) if name.is_empty() || day::parse_zone(name).is_some() => Ok(()),
        Some(_) => Err(Invalid {
            field: format!("settings.{ZONE}"),
            problem: Problem::UnknownZone,
        }),
    }
}

/// A JSON integer in `0..=max`. Fractions (even `1.0`), strings and
/// negatives are refused.
fn token_count(value: &Value, max: u64) -> Option<u64> {
    value.as_u64().filter(|count| *count <= max)
}

/// The channel's cap: its limit (0 = unlimited) and the zone its day is in.
pub fn cap_of(settings: &Map<String, Value>, default_zone: Tz) -> Cap {
    let limit = settings
        .get(LIMIT)
        .and_then(|value| token_count(value, MAX_LIMIT))
        .unwrap_or(0);
    Cap {
        limit,
        zone: zone_of(settings).unwrap_or(default_zone),
    }
}

/// The channel's own reset zone, if it sets one.
pub fn zone_of(settings: &Map<String, Value>) -> Option<Tz> {
    settings
        .get(ZONE)
        .and_then(Value::as_str)
        .and_then(day::parse_zone)
}

/// Tokens to reserve for a request that sets no `max_tokens`.
pub fn default_reserve(settings: &Map<String, Value>) -> u64 {
    settings
        .get(RESERVE)
        .and_then(|value| token_count(value, MAX_RESERVE))
        .unwrap_or(DEFAULT_RESERVE)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    /// Bad limits and zones are refused with the field named; good ones pass.
    #[test]
    fn validation_table() {
        let limit_field = Some("settings.daily_token_limit".to_string());
        let zone_field = Some("settings.daily_reset_timezone".to_string());
        let cases = [
            (json!({}), None),
            (json!({"daily_token_limit": 0}), None),
            (json!({"daily_token_limit": 1_000_000}), None),
            (json!({"daily_token_limit": 1_000_000_000_000_000u64}), None),
            (json!({"daily_token_limit": null}), None),
            (json!({"daily_token_limit": -5}), limit_field.clone()),
            (json!({"daily_token_limit": 1.5}), limit_field.clone()),
            (json!({"daily_token_limit": 1.0}), limit_field.clone()),
            (json!({"daily_token_limit": "1000"}), limit_field.clone()),
            (
                json!({"daily_token_limit": 1_000_000_000_000_001u64}),
                limit_field.clone(),
            ),
            (json!({"daily_token_limit": true}), limit_field),
            (json!({"daily_reset_timezone": "Asia/Shanghai"}), None),
            (json!({"daily_reset_timezone": "UTC"}), None),
            (
                json!({"daily_reset_timezone": "Mars/Base"}),
                zone_field.clone(),
            ),
            (json!({"daily_reset_timezone": 8}), zone_field),
            (
                json!({"daily_reserve_tokens": -1}),
                Some("settings.daily_reserve_tokens".to_string()),
            ),
            (json!({"something_else": [1, "x"]}), None),
        ];
        for (input, expected) in cases {
            let got = validate(&settings(input.clone()))
                .err()
                .map(|invalid| invalid.field);
            assert_eq!(got, expected, "{input}");
        }
    }

    /// The cap takes the channel's zone when set, else the default.
    #[test]
    fn cap_reads_limit_and_zone() {
        let shanghai = day::parse_zone("Asia/Shanghai").unwrap();
        let cap = cap_of(
            &settings(json!({"daily_token_limit": 7, "daily_reset_timezone": "Asia/Shanghai"})),
            Tz::UTC,
        );
        assert_eq!(
            cap,
            Cap {
                limit: 7,
                zone: shanghai
            }
        );
        let cap = cap_of(&settings(json!({})), shanghai);
        assert_eq!(
            cap,
            Cap {
                limit: 0,
                zone: shanghai
            }
        );
    }
}
