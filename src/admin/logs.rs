//! `GET /api/logs`: request-log rows, newest first, filtered and paged.
//!
//! This is the one admin read served from SQLite (through the store's reader
//! connection); it never touches the relay's request path. Logs stay on
//! the node that served the request; in a cluster `scope=cluster` merges
//! every member's rows (`cluster::peer_query`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::json::Query;
use super::openapi::ErrorBody;
use super::validate;
use crate::AppState;
use crate::cluster::peer_query::NodeAnswer;
use crate::error::ApiError;
use crate::i18n::Message;
use crate::model::{ChannelId, LogFilter, RequestLog, TokenId};

/// One page of request logs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogList {
    pub items: Vec<LogRow>,
    /// Rows matching the filter, over the nodes that answered.
    pub total: u64,
    /// With `scope=cluster`: how each member answered (a member that did
    /// not answer is listed with its error and its rows are missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeAnswer>>,
}

/// One request-log row and, in a cluster, the node that served it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogRow {
    #[serde(flatten)]
    pub log: RequestLog,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
}

/// Which nodes' logs a read covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This node's rows only (the default).
    #[default]
    Node,
    /// Every cluster member's rows, merged (a single node: its own).
    Cluster,
}

/// The deepest row a `scope=cluster` page may reach: each member sends its
/// first `page × per_page` rows to be merged.
pub const CLUSTER_WINDOW: u32 = 10_000;

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
    /// `node` (default) or `cluster`; `cluster` pages reach at most 10,000
    /// rows deep.
    pub scope: Option<Scope>,
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
    let scope = query.scope.unwrap_or_default();
    let filter = query.into_filter()?;
    let Some(cluster) = state.cluster().filter(|_| scope == Scope::Cluster) else {
        let (rows, total) = state.store.query_logs(filter).await?;
        let own = state.cluster().map(|cluster| cluster.own_id().0);
        let items = rows
            .into_iter()
            .map(|log| LogRow { log, node_id: own })
            .collect();
        return Ok(axum::Json(LogList {
            items,
            total,
            nodes: None,
        }));
    };
    if filter.page.saturating_mul(filter.per_page) > CLUSTER_WINDOW {
        let message = Message::NumberRange {
            field: "page".to_string(),
            min: 1,
            max: u64::from(CLUSTER_WINDOW / filter.per_page.max(1)),
        };
        return Err(ApiError::invalid("page", message));
    }
    let (rows, total, nodes) =
        crate::cluster::peer_query::logs(cluster, &state.store, filter).await?;
    let items = rows
        .into_iter()
        .map(|(node, log)| LogRow {
            log,
            node_id: Some(node),
        })
        .collect();
    Ok(axum::Json(LogList {
        items,
        total,
        nodes: Some(nodes),
    }))
}
