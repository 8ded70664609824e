//! `GET /api/stats`: requests, errors and tokens over the last hours, in
//! hourly buckets, for the overview page. SQLite aggregates the request
//! logs (`store::HourStats`); this handler only frames the window and fills
//! the hours without requests with zeros.

use std::collections::HashMap;

use axum::extract::State;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::json::Query;
use super::openapi::ErrorBody;
use crate::AppState;
use crate::error::ApiError;
use crate::i18n::Message;

/// The longest window: a week of hours.
const MAX_HOURS: u32 = 168;

/// The window for `GET /api/stats`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// How many hours back, the current hour included (1..=168, default 24).
    pub hours: Option<u32>,
    /// `node` (default) or `cluster`: sum every member's request logs.
    pub scope: Option<super::logs::Scope>,
}

/// Totals over `[since, until)` and one bucket per hour, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    pub since: DateTime<Utc>,
    /// The end of the current hour.
    pub until: DateTime<Utc>,
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub buckets: Vec<Bucket>,
    /// With `scope=cluster`: how each member answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<crate::cluster::peer_query::NodeAnswer>>,
}

/// One hour.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub requests: u64,
    pub errors: u64,
    pub total_tokens: u64,
}

/// Requests, errors and tokens per hour over the last `hours` hours.
#[utoipa::path(
    get, path = "/api/stats", tag = "logs",
    params(StatsQuery),
    responses(
        (status = 200, description = "Totals and hourly buckets", body = Stats),
        (status = 400, description = "`hours` outside 1..=168", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Query(query): Query<StatsQuery>,
) -> Result<axum::Json<Stats>, ApiError> {
    let hours = query.hours.unwrap_or(24);
    if !(1..=MAX_HOURS).contains(&hours) {
        let field = "hours".to_string();
        let message = Message::NumberRange {
            field,
            min: 1,
            max: u64::from(MAX_HOURS),
        };
        return Err(ApiError::invalid("hours", message));
    }
    let hour = TimeDelta::hours(1);
    let now = state.clock.now();
    let until = now.duration_trunc(hour).unwrap_or(now) + hour;
    let since = until - hour * hours as i32;
    let cluster = state
        .cluster()
        .filter(|_| query.scope == Some(super::logs::Scope::Cluster));
    let (rows, nodes) = match cluster {
        Some(cluster) => {
            let window = crate::cluster::peer_query::StatsWindow { since, until };
            let (rows, nodes) =
                crate::cluster::peer_query::stats(cluster, &state.store, window).await?;
            (rows, Some(nodes))
        }
        None => (state.store.hourly_stats(since, until).await?, None),
    };
    let by_hour: HashMap<DateTime<Utc>, _> = rows.iter().map(|row| (row.start, row)).collect();
    let buckets = (0..hours as i32)
        .map(|index| {
            let start = since + hour * index;
            let row = by_hour.get(&start);
            Bucket {
                start,
                requests: row.map_or(0, |row| row.requests),
                errors: row.map_or(0, |row| row.errors),
                total_tokens: row.map_or(0, |row| row.total_tokens),
            }
        })
        .collect();
    let sum = |pick: fn(&crate::store::HourStats) -> u64| rows.iter().map(pick).sum();
    Ok(axum::Json(Stats {
        since,
        until,
        requests: sum(|row| row.requests),
        errors: sum(|row| row.errors),
        prompt_tokens: sum(|row| row.prompt_tokens),
        completion_tokens: sum(|row| row.completion_tokens),
        total_tokens: sum(|row| row.total_tokens),
        buckets,
        nodes,
    }))
}
