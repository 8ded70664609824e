//! `/api/cluster`: this node's view of the cluster (role, leader, term,
//! degraded or not, every member) and online membership changes. On a
//! single node `GET /api/cluster` answers `enabled: false`, and the member
//! endpoints answer 409 `cluster_disabled`.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json::{Id, Json};
use super::openapi::ErrorBody;
use crate::AppState;
use crate::cluster::node::{self, Cluster, MembersChange};
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;

/// The cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// Whether this node runs in cluster mode.
    pub enabled: bool,
    pub node_id: Option<u64>,
    /// `leader`, `follower`, `candidate`, `learner`, or `single` without a cluster.
    pub role: String,
    pub leader_id: Option<u64>,
    pub term: Option<u64>,
    /// No leader or quorum, or counter deltas failing to commit: relay
    /// traffic is served from the last view and config writes answer 503.
    pub degraded: bool,
    pub degraded_reason: Option<String>,
    /// Tokens counted on this node and not yet replicated.
    pub unreplicated_tokens: u64,
    pub members: Vec<MemberView>,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub node_id: u64,
    /// Its `--cluster-listen` address.
    pub addr: String,
    /// Its role as far as this node knows (`leader`, `follower`, `learner`, or `unknown`).
    pub role: String,
    pub voter: bool,
    /// Milliseconds since this node last exchanged RPC with it (0 for itself).
    pub last_contact_ms: Option<u64>,
    /// Its applied (for peers: replicated, as the leader sees it) log index.
    pub applied_index: Option<u64>,
}

/// The membership list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<MemberItem>,
    pub total: u64,
}

/// One member in [`MemberList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberItem {
    pub node_id: u64,
    pub addr: String,
    pub voter: bool,
}

/// A node to add: its id and `--cluster-listen` address.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub node_id: u64,
    pub addr: String,
}

fn disabled() -> ApiError {
    ApiError::new(ErrorCode::ClusterDisabled, Message::ClusterDisabled)
}

fn unavailable(error: node::Unavailable) -> ApiError {
    ApiError::new(
        ErrorCode::ClusterUnavailable,
        Message::ClusterUnavailable { detail: error.0 },
    )
}

fn cluster_of(state: &AppState) -> Result<&Cluster, ApiError> {
    state.cluster().ok_or_else(disabled)
}

/// This node's view of the cluster.
#[utoipa::path(
    get, path = "/api/cluster", tag = "cluster",
    responses(
        (status = 200, description = "The cluster as this node sees it (`enabled: false` on a single node)", body = ClusterView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>) -> axum::Json<ClusterView> {
    let Some(cluster) = state.cluster() else {
        return axum::Json(ClusterView {
            enabled: false,
            node_id: None,
            role: "single".to_string(),
            leader_id: None,
            term: None,
            degraded: false,
            degraded_reason: None,
            unreplicated_tokens: 0,
            members: Vec::new(),
        });
    };
    let metrics = cluster.metrics();
    let own = cluster.own_id();
    let reason = cluster.degraded_reason();
    let now = Instant::now();
    let members = node::member_list(&metrics)
        .into_iter()
        .map(|(node_id, addr, voter)| {
            let role = if node_id == own {
                node::role_name(metrics.state).to_string()
            } else if Some(node_id) == metrics.current_leader {
                "leader".to_string()
            } else if !voter {
                "learner".to_string()
            } else if metrics.current_leader.is_some() {
                "follower".to_string()
            } else {
                "unknown".to_string()
            };
            let last_contact_ms = if node_id == own {
                Some(0)
            } else {
                cluster.network().last_contact(node_id).map(|at| {
                    u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX)
                })
            };
            let applied_index = if node_id == own {
                metrics.last_applied.map(|id| id.index)
            } else {
                metrics
                    .replication
                    .as_ref()
                    .and_then(|replication| replication.get(&node_id).copied().flatten())
                    .map(|id| id.index)
            };
            MemberView {
                node_id: node_id.0,
                addr,
                role,
                voter,
                last_contact_ms,
                applied_index,
            }
        })
        .collect();
    axum::Json(ClusterView {
        enabled: true,
        node_id: Some(own.0),
        role: node::role_name(metrics.state).to_string(),
        leader_id: metrics.current_leader.map(|leader| leader.0),
        term: Some(metrics.current_term),
        degraded: reason.is_some(),
        degraded_reason: reason,
        unreplicated_tokens: state.counters.unreplicated_tokens(),
        members,
    })
}

fn member_items(cluster: &Cluster) -> MemberList {
    let items: Vec<MemberItem> = node::member_list(&cluster.metrics())
        .into_iter()
        .map(|(node_id, addr, voter)| MemberItem {
            node_id: node_id.0,
            addr,
            voter,
        })
        .collect();
    MemberList {
        total: items.len() as u64,
        items,
    }
}

/// The cluster's members.
#[utoipa::path(
    get, path = "/api/cluster/members", tag = "cluster",
    responses(
        (status = 200, description = "Every member", body = MemberList),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "`cluster_disabled`: this node runs without cluster flags", body = ErrorBody),
    )
)]
pub async fn members(State(state): State<AppState>) -> Result<axum::Json<MemberList>, ApiError> {
    Ok(axum::Json(member_items(cluster_of(&state)?)))
}

/// Add a node: it joins as a learner, catches up, then becomes a voter.
#[utoipa::path(
    post, path = "/api/cluster/members", tag = "cluster",
    request_body = NewMember,
    responses(
        (status = 200, description = "The members after the change", body = MemberList),
        (status = 400, description = "A bad id or address", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "`cluster_disabled`: this node runs without cluster flags", body = ErrorBody),
        (status = 503, description = "`cluster_unavailable`: no leader or quorum", body = ErrorBody),
    )
)]
pub async fn add(
    State(state): State<AppState>,
    Json(member): Json<NewMember>,
) -> Result<axum::Json<MemberList>, ApiError> {
    let cluster = cluster_of(&state)?;
    if member.node_id == 0 {
        return Err(ApiError::invalid(
            "node_id",
            Message::InvalidValue {
                detail: "a node id is a positive integer".to_string(),
            },
        ));
    }
    let list = format!("{}={}", member.node_id, member.addr.trim());
    let node_id = crate::model::NodeId(member.node_id);
    if let Err(error) = crate::cluster::peers::Peers::parse(node_id, &list) {
        return Err(ApiError::invalid(
            "addr",
            Message::InvalidValue {
                detail: error.to_string(),
            },
        ));
    }
    cluster
        .change_members(MembersChange::Add {
            node_id,
            addr: member.addr.trim().to_string(),
        })
        .await
        .map_err(unavailable)?;
    Ok(axum::Json(member_items(cluster)))
}

/// Remove a node from the voters and the cluster.
#[utoipa::path(
    delete, path = "/api/cluster/members/{id}", tag = "cluster",
    params(("id" = u64, Path, description = "Node id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such member", body = ErrorBody),
        (status = 409, description = "`cluster_disabled`: this node runs without cluster flags", body = ErrorBody),
        (status = 503, description = "`cluster_unavailable`: no leader or quorum", body = ErrorBody),
    )
)]
pub async fn remove(State(state): State<AppState>, Id(id): Id) -> Result<StatusCode, ApiError> {
    let cluster = cluster_of(&state)?;
    let node_id = u64::try_from(id)
        .map(crate::model::NodeId)
        .map_err(|_| ApiError::not_found("member"))?;
    let known = node::member_list(&cluster.metrics())
        .iter()
        .any(|(member, _, _)| *member == node_id);
    if !known {
        return Err(ApiError::not_found("member"));
    }
    cluster
        .change_members(MembersChange::Remove { node_id })
        .await
        .map_err(unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}
