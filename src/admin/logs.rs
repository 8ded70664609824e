//! `GET /api/logs`: request-log rows, newest first, filtered and paged.
//!
//! This is the one admin read served from SQLite (through the store's reader
//! connection); it never touches the relay's request path.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::json::Query;
use super::openapi::ErrorBody;
use super::validate;
use crate::AppState;
use crate::error::ApiError;
use crate::i18n::Message;
use crate::model::{ChannelId, LogFilter, RequestLog, TokenId};

/// One page of request logs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogList {
    pub items: Vec<RequestLog>,
    pub total: u64,
}

/// Filters for `GET /api/logs`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Rows where this channel was tried.
    pub channel_id: Option<i64>,
    /// Rows of this API key.
    pub token_id: Option<i64>,
    /// Rows for this requested model.
    pub model: Option<String>,
    /// RFC 3339; rows at or after this time.
    pub since: Option<String>,
    /// RFC 3339; rows before this time.
    pub until: Option<String>,
    /// From 1.
    pub page: Option<u32>,
    /// 1..=500, default 50.
    pub per_page: Option<u32>,
}

impl LogQuery {
    fn into_filter(self) -> Result<LogFilter, ApiError> {
        let page = validate::page(self.page, self.per_page)?;
        let since = self
            .since
            .map(|text| validate::rfc3339("since", &text))
            .transpose()?;
        let until = self
            .until
            .map(|text| validate::rfc3339("until", &text))
            .transpose()?;
        if let (Some(since), Some(until)) = (since, until)
            && since > until
        {
            return Err(ApiError::invalid("until", Message::UntilBeforeSince));
        }
        Ok(LogFilter {
            channel_id: self.channel_id.map(ChannelId),
            token_id: self.token_id.map(TokenId),
            model: self.model,
            since,
            until,
            page: page.page,
            per_page: page.per_page,
        })
    }
}

/// List request logs, newest first.
#[utoipa::path(
    get, path = "/api/logs", tag = "logs",
    params(LogQuery),
    responses(
        (status = 200, description = "One page of request logs", body = LogList),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<LogQuery>,
) -> Result<axum::Json<LogList>, ApiError> {
    let (items, total) = state.store.query_logs(query.into_filter()?).await?;
    Ok(axum::Json(LogList { items, total }))
}
