//! Daily token usage, as admins see it: today's figures beside each channel
//! (`daily_usage` in channel reads), one channel's day and its history
//! (`GET /api/channels/{id}/usage`), every channel on one date
//! (`GET /api/usage`), and the admin reset of today's count.
//!
//! Where a figure comes from: the live counters when they hold the day (they
//! include counts not yet durable, and they are what the cap check reads),
//! otherwise the store. Time is `state.clock`, never the wall clock, so tests
//! can move it. This module reads and resets counts; it never counts tokens
//! (the relay does) and never changes a channel's `status`.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::channels::entry;
use super::json::{Id, Query};
use super::openapi::ErrorBody;
use crate::AppState;
use crate::command::UsageCommand;
use crate::daily::{Cap, day};
use crate::error::ApiError;
use crate::i18n::Message;
use crate::model::ChannelId;
use crate::snapshot::ChannelEntry;

/// Today's usage of a channel, shown beside its `status` in channel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DailyUsage {
    /// Raw tokens counted today, in the channel's zone.
    pub used: u64,
    /// The daily limit in raw tokens; 0 means unlimited.
    pub limit: u64,
    /// `limit - used`, never below 0; null when there is no limit.
    /// Tokens reserved by in-flight requests are not subtracted.
    pub remaining: Option<u64>,
    /// When the channel's day ends and its count starts from zero (RFC 3339).
    pub resets_at: DateTime<Utc>,
    /// Whether used plus in-flight reservations have reached the limit, so
    /// routing skips the channel until `resets_at`. Derived, never stored:
    /// it does not change `status`.
    pub capped: bool,
}

impl DailyUsage {
    /// Today's figures for a channel with `cap`, from the live counters (no IO).
    pub fn of(state: &AppState, channel_id: ChannelId, cap: Cap, now: DateTime<Utc>) -> DailyUsage {
        let view = state.counters.view(channel_id, cap.zone, now);
        DailyUsage {
            used: view.used,
            limit: cap.limit,
            remaining: remaining(cap.limit, view.used),
            resets_at: view.resets_at,
            capped: state.counters.is_capped(channel_id, cap, now),
        }
    }
}

/// One day of a channel's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DayUsage {
    /// `YYYY-MM-DD`, in the channel's zone.
    pub date: NaiveDate,
    pub used: u64,
}

/// One channel's usage today, with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChannelUsage {
    pub channel_id: ChannelId,
    /// Today, `YYYY-MM-DD`, in the channel's zone.
    pub date: NaiveDate,
    /// The IANA zone whose midnight resets the count: the channel's
    /// `settings.daily_reset_timezone`, else the global `--timezone`.
    pub timezone: String,
    /// Raw tokens counted today.
    pub used: u64,
    /// Tokens held by admitted requests that have not completed yet.
    pub reserved: u64,
    /// The daily limit in raw tokens; 0 means unlimited.
    pub limit: u64,
    /// `limit - used`, never below 0; null when there is no limit.
    /// `reserved` is not subtracted.
    pub remaining: Option<u64>,
    /// When today ends in the channel's zone (RFC 3339).
    pub resets_at: DateTime<Utc>,
    /// Every day from the oldest kept count (at most 89 days back) through
    /// today, most recent first; days without traffic show 0.
    pub history: Vec<DayUsage>,
}

/// Parameters of `GET /api/usage`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// `YYYY-MM-DD`; defaults to today in the global zone. Each channel's
    /// count for that calendar date in its own zone is shown.
    pub date: Option<String>,
}

/// Every channel's usage on one date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageList {
    pub date: NaiveDate,
    /// Every channel, in id order.
    pub items: Vec<UsageRow>,
}

/// One channel's usage on the listed date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageRow {
    pub channel_id: ChannelId,
    pub name: String,
    /// `YYYY-MM-DD`, read as a date in the channel's zone.
    pub date: NaiveDate,
    pub used: u64,
    /// The channel's current daily limit; 0 means unlimited.
    pub limit: u64,
    /// The IANA zone the channel's days are counted in.
    pub timezone: String,
}

/// One channel's usage today and its history.
#[utoipa::path(
    get, path = "/api/channels/{id}/usage", tag = "usage",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 200, description = "Today's usage and up to 90 days of history", body = ChannelUsage),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
pub async fn channel(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<axum::Json<ChannelUsage>, ApiError> {
    let entry = entry(&state, ChannelId(id))?;
    let usage = channel_usage(&state, &entry, state.clock.now()).await?;
    Ok(axum::Json(usage))
}

/// Zero a channel's count for today (in its zone). Logged as an admin action.
#[utoipa::path(
    post, path = "/api/channels/{id}/usage/reset", tag = "usage",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 200, description = "The channel's usage after the reset", body = ChannelUsage),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
pub async fn reset(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<axum::Json<ChannelUsage>, ApiError> {
    let entry = entry(&state, ChannelId(id))?;
    let usage = reset_today(&state, &entry).await?;
    Ok(axum::Json(usage))
}

/// Every channel's usage on one date.
#[utoipa::path(
    get, path = "/api/usage", tag = "usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "Every channel's usage on the date", body = UsageList),
        (status = 400, description = "A bad date", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<UsageQuery>,
) -> Result<axum::Json<UsageList>, ApiError> {
    let date = match query.date.as_deref() {
        Some(text) => parse_date("date", text)?,
        None => day::date_in(state.settings().timezone, state.clock.now()),
    };
    let items = rows_on(&state, date).await?;
    Ok(axum::Json(UsageList { date, items }))
}

/// Every channel's row for `date`, read as that calendar date in each
/// channel's zone.
async fn rows_on(state: &AppState, date: NaiveDate) -> Result<Vec<UsageRow>, ApiError> {
    let snapshot = state.snapshot();
    let in_memory: Vec<(&ChannelEntry, Option<u64>)> = snapshot
        .channels()
        .map(|entry| {
            let used = state.counters.used_on(entry.channel.id, date);
            (entry.as_ref(), used)
        })
        .collect();
    // One store scan serves every channel the counters do not hold the day for.
    let stored: BTreeMap<ChannelId, u64> = if in_memory.iter().any(|(_, used)| used.is_none()) {
        state
            .store
            .usage_since(date)
            .await?
            .into_iter()
            .filter(|count| count.date == date)
            .map(|count| (count.channel_id, count.tokens))
            .collect()
    } else {
        BTreeMap::new()
    };
    let rows = in_memory
        .into_iter()
        .map(|(entry, used)| {
            let id = entry.channel.id;
            UsageRow {
                channel_id: id,
                name: entry.channel.spec.name.clone(),
                date,
                used: used.or_else(|| stored.get(&id).copied()).unwrap_or(0),
                limit: entry.cap.limit,
                timezone: entry.cap.zone.name().to_string(),
            }
        })
        .collect();
    Ok(rows)
}

/// Zeroes the channel's count for today in its zone, through the replicated
/// `UsageCommand::ResetUsage`, and logs the admin action with the count erased.
async fn reset_today(state: &AppState, entry: &ChannelEntry) -> Result<ChannelUsage, ApiError> {
    let channel_id = entry.channel.id;
    let now = state.clock.now();
    let date = day::date_in(entry.cap.zone, now);
    let used_before = used_on(state, channel_id, date).await?;
    state
        .apply(UsageCommand::ResetUsage {
            channel_id,
            date,
            at: now,
        })
        .await?;
    tracing::info!(
        admin_action = "usage_reset",
        channel_id = channel_id.0,
        date = %date,
        used_before,
        "an admin reset a channel's daily token count"
    );
    channel_usage(state, entry, now).await
}

/// `limit - used`, at least 0, or `None` when the channel has no limit.
fn remaining(limit: u64, used: u64) -> Option<u64> {
    (limit > 0).then(|| limit.saturating_sub(used))
}

/// A strict `YYYY-MM-DD` date.
fn parse_date(field: &str, text: &str) -> Result<NaiveDate, ApiError> {
    let text = text.trim();
    let parsed = (text.len() == 10)
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten();
    parsed.ok_or_else(|| {
        ApiError::invalid(
            field,
            Message::DateInvalid {
                field: field.to_string(),
            },
        )
    })
}

/// Tokens a channel used on `date`: the counters' figure when they hold the
/// day, else the store's.
async fn used_on(state: &AppState, id: ChannelId, date: NaiveDate) -> Result<u64, ApiError> {
    if let Some(used) = state.counters.used_on(id, date) {
        return Ok(used);
    }
    let stored = state.store.usage_history(id, date).await?;
    Ok(stored
        .into_iter()
        .find(|(day, _)| *day == date)
        .map(|(_, used)| used)
        .unwrap_or(0))
}

/// The channel's day as of `now`: today's live figures and the merged history.
async fn channel_usage(
    state: &AppState,
    entry: &ChannelEntry,
    now: DateTime<Utc>,
) -> Result<ChannelUsage, ApiError> {
    let id = entry.channel.id;
    let cap = entry.cap;
    let view = state.counters.view(id, cap.zone, now);
    let from = view
        .date
        .checked_sub_days(Days::new(day::HISTORY_DAYS - 1))
        .unwrap_or(view.date);
    let stored = state.store.usage_history(id, from).await?;
    let history = merge_history(view.date, from, &stored, |date| {
        state.counters.used_on(id, date)
    });
    let used = history.first().map(|today| today.used).unwrap_or(view.used);
    Ok(ChannelUsage {
        channel_id: id,
        date: view.date,
        timezone: cap.zone.name().to_string(),
        used,
        reserved: view.reserved,
        limit: cap.limit,
        remaining: remaining(cap.limit, used),
        resets_at: view.resets_at,
        history,
    })
}

/// Days `today` back to `from`, most recent first, each from memory when it
/// holds the day and from `stored` otherwise, cut after the oldest day with
/// any count. Today is always present.
fn merge_history(
    today: NaiveDate,
    from: NaiveDate,
    stored: &[(NaiveDate, u64)],
    memory: impl Fn(NaiveDate) -> Option<u64>,
) -> Vec<DayUsage> {
    let stored: BTreeMap<NaiveDate, u64> = stored.iter().copied().collect();
    let known: Vec<(NaiveDate, Option<u64>)> =
        std::iter::successors(Some(today), |date| date.pred_opt())
            .take_while(|date| *date >= from)
            .map(|date| (date, memory(date).or_else(|| stored.get(&date).copied())))
            .collect();
    let kept = known
        .iter()
        .rposition(|(_, used)| used.is_some())
        .map_or(1, |oldest| oldest + 1);
    known
        .into_iter()
        .take(kept)
        .map(|(date, used)| DayUsage {
            date,
            used: used.unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap_or_default()
    }

    fn days(history: &[DayUsage]) -> Vec<(u32, u64)> {
        use chrono::Datelike;
        history
            .iter()
            .map(|day| (day.date.day(), day.used))
            .collect()
    }

    /// Memory wins over the store, gaps read 0, and the list stops at the oldest count.
    #[test]
    fn history_merges_memory_over_the_store() {
        let stored = [(date(27), 50), (date(24), 7), (date(20), 1)];
        let memory = |day: NaiveDate| match day {
            day if day == date(28) => Some(12),
            day if day == date(27) => Some(80),
            _ => None,
        };
        let history = merge_history(date(28), date(22), &stored, memory);
        assert_eq!(
            days(&history),
            [(28, 12), (27, 80), (26, 0), (25, 0), (24, 7)]
        );
    }

    /// With no counts at all, history is today alone, at 0.
    #[test]
    fn empty_history_is_today() {
        let history = merge_history(date(28), date(1), &[], |_| None);
        assert_eq!(days(&history), [(28, 0)]);
    }

    /// Dates are strict `YYYY-MM-DD`.
    #[test]
    fn dates_are_strict() {
        assert_eq!(parse_date("date", "2026-11-28").ok(), Some(date(28)));
        for bad in [
            "2026-11-31",
            "2026-1-5",
            "28/11/2026",
            "",
            "2026-11-28T00:00:00Z",
        ] {
            let error = parse_date("date", bad).err();
            assert_eq!(
                error.and_then(|error| error.field).as_deref(),
                Some("date"),
                "{bad}"
            );
        }
    }

    /// Remaining is null without a limit and never negative.
    #[test]
    fn remaining_is_clamped() {
        assert_eq!(remaining(0, 10), None);
        assert_eq!(remaining(100, 30), Some(70));
        assert_eq!(remaining(100, 130), Some(0));
    }
}
