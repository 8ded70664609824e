//! Node-local reads that an admin may want cluster-wide: request logs and
//! hourly stats stay on the node that served the request, so
//! `GET /api/logs?scope=cluster` and `GET /api/stats?scope=cluster` ask
//! every other member over internal RPC (signed like raft traffic) and
//! merge the answers with their own.
//!
//! A member that does not answer within [`QUERY_TIMEOUT`] is reported as
//! such next to the merged rows; it never fails the whole read.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::node::{Cluster, member_list};
use super::types::NodeId;
use crate::model::{LogFilter, RequestLog};
use crate::store::{HourStats, Store};

/// Internal route: one node's request logs for a filter.
pub const LOGS_PATH: &str = "/node/logs";
/// Internal route: one node's hourly stats for a window.
pub const STATS_PATH: &str = "/node/stats";
/// How long a member may take to answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// A failure on the answering node, carried back as data.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// The window of a stats query.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatsWindow {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// How one member answered a cluster-wide read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeAnswer {
    pub node_id: u64,
    /// Whether its rows are included.
    pub ok: bool,
    /// Why not, when `ok` is false.
    pub error: Option<String>,
}

/// The internal routes, served behind the shared-secret check.
pub fn router(store: Store) -> Router {
    Router::new()
        .route(LOGS_PATH, post(logs_handler))
        .route(STATS_PATH, post(stats_handler))
        .with_state(store)
}

async fn logs_handler(
    State(store): State<Store>,
    Json(filter): Json<LogFilter>,
) -> Json<Result<(Vec<RequestLog>, u64), QueryError>> {
    Json(
        store
            .query_logs(filter)
            .await
            .map_err(|error| QueryError(error.to_string())),
    )
}

async fn stats_handler(
    State(store): State<Store>,
    Json(window): Json<StatsWindow>,
) -> Json<Result<Vec<HourStats>, QueryError>> {
    Json(
        store
            .hourly_stats(window.since, window.until)
            .await
            .map_err(|error| QueryError(error.to_string())),
    )
}

/// Asks every other member for `path` with `body`, concurrently.
async fn ask_others<Req, Resp>(
    cluster: &Cluster,
    path: &'static str,
    body: &Req,
) -> Vec<(NodeId, Result<Resp, String>)>
where
    Req: Serialize + Sync,
    Resp: serde::de::DeserializeOwned,
{
    let own = cluster.own_id();
    let members = member_list(&cluster.metrics());
    let calls =
        members
            .into_iter()
            .filter(|(id, _, _)| *id != own)
            .map(|(id, addr, _)| async move {
                let node = openraft::BasicNode::new(addr);
                let answer = cluster
                    .network()
                    .query::<Req, Resp, QueryError>(id, &node, path, body, QUERY_TIMEOUT)
                    .await
                    .map_err(|error| error.to_string());
                (id, answer)
            });
    join_all(calls).await
}

/// This node's logs for `filter`'s first `page × per_page` rows merged with
/// every other member's, newest first, each row tagged with its node.
/// Returns the page, the total over the nodes that answered, and how each
/// node answered.
pub async fn logs(
    cluster: &Cluster,
    store: &Store,
    filter: LogFilter,
) -> Result<(Vec<(u64, RequestLog)>, u64, Vec<NodeAnswer>), crate::store::Error> {
    let window = filter.page.saturating_mul(filter.per_page);
    let head = LogFilter {
        page: 1,
        per_page: window,
        ..filter.clone()
    };
    let (own_rows, own_total) = store.query_logs(head.clone()).await?;
    let mut rows: Vec<(NodeId, RequestLog)> = own_rows
        .into_iter()
        .map(|row| (cluster.own_id(), row))
        .collect();
    let mut total = own_total;
    let others = ask_others::<_, (Vec<RequestLog>, u64)>(cluster, LOGS_PATH, &head).await;
    let answers = collect(cluster.own_id(), others, |id, (their_rows, their_total)| {
        total += their_total;
        rows.extend(their_rows.into_iter().map(|row| (id, row)));
    });
    // Newest first; ties broken by node then row id, so pages are stable.
    rows.sort_by(|(a_node, a), (b_node, b)| {
        b.time
            .cmp(&a.time)
            .then(a_node.cmp(b_node))
            .then(b.id.cmp(&a.id))
    });
    let skip = (filter.page.saturating_sub(1) as usize).saturating_mul(filter.per_page as usize);
    let page = rows
        .into_iter()
        .skip(skip)
        .take(filter.per_page as usize)
        .map(|(node, row)| (node.0, row))
        .collect();
    Ok((page, total, answers))
}

/// Hourly stats over `window` summed across every member that answered.
pub async fn stats(
    cluster: &Cluster,
    store: &Store,
    window: StatsWindow,
) -> Result<(Vec<HourStats>, Vec<NodeAnswer>), crate::store::Error> {
    let mut rows = store.hourly_stats(window.since, window.until).await?;
    let others = ask_others::<_, Vec<HourStats>>(cluster, STATS_PATH, &window).await;
    let answers = collect(cluster.own_id(), others, |_, theirs| rows.extend(theirs));
    Ok((sum_by_hour(rows), answers))
}

/// Hands every answer that arrived to `take` and reports how each member
/// (this one included, which always answers) did, ordered by node id.
fn collect<Resp>(
    own_id: NodeId,
    others: Vec<(NodeId, Result<Resp, String>)>,
    mut take: impl FnMut(NodeId, Resp),
) -> Vec<NodeAnswer> {
    let mut answers = vec![NodeAnswer {
        node_id: own_id.0,
        ok: true,
        error: None,
    }];
    for (id, answer) in others {
        let error = match answer {
            Ok(response) => {
                take(id, response);
                None
            }
            Err(error) => Some(error),
        };
        answers.push(NodeAnswer {
            node_id: id.0,
            ok: error.is_none(),
            error,
        });
    }
    answers.sort_by_key(|answer| answer.node_id);
    answers
}

/// One row per hour, the counts of rows with the same hour added up.
fn sum_by_hour(rows: Vec<HourStats>) -> Vec<HourStats> {
    let mut by_hour: std::collections::BTreeMap<DateTime<Utc>, HourStats> = Default::default();
    for row in rows {
        by_hour
            .entry(row.start)
            .and_modify(|sum| {
                sum.requests += row.requests;
                sum.errors += row.errors;
                sum.prompt_tokens += row.prompt_tokens;
                sum.completion_tokens += row.completion_tokens;
                sum.total_tokens += row.total_tokens;
            })
            .or_insert(row);
    }
    by_hour.into_values().collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn hours_from_several_nodes_add_up() {
        let hour = |h| Utc.with_ymd_and_hms(2026, 11, 28, h, 0, 0).unwrap();
        let row = |h, requests| HourStats {
            start: hour(h),
            requests,
            errors: 1,
            prompt_tokens: 2,
            completion_tokens: 3,
            total_tokens: 5,
        };
        let summed = sum_by_hour(vec![row(9, 1), row(10, 2), row(9, 4)]);
        assert_eq!(summed.len(), 2);
        assert_eq!(summed[0].start, hour(9));
        assert_eq!(summed[0].requests, 5);
        assert_eq!(summed[0].total_tokens, 10);
        assert_eq!(summed[1].requests, 2);
    }
}
