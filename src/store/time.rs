//! How times are written to SQLite: RFC 3339 in UTC with a fixed number of
//! fractional digits, so text order is time order and range queries can use
//! an index.

use chrono::{DateTime, SecondsFormat, Utc};

use super::Error;

pub fn encode(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn decode(text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| Error::Corrupt(format!("time {text:?}: {error}")))
}

pub fn decode_optional(text: Option<String>) -> Result<Option<DateTime<Utc>>, Error> {
    text.as_deref().map(decode).transpose()
}
