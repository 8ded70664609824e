//! A running cluster node: the raft instance, its RPC listener, the write
//! path (`Cluster::write`: propose on the leader or forward to it, within a
//! deadline), membership changes, the counter-batch proposer and the
//! status `GET /api/cluster` reports.
//!
//! Started by `server` only when the cluster flags are given; a single node
//! never builds any of this.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Json;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::post;
use openraft::error::{ClientWriteError, RPCError, RaftError};
use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::log_store::LogStore;
use super::network::Network;
use super::peers::{self, Peers};
use super::rpc;
use super::secret::{Authenticated, ClusterSecret, Verifier};
use super::state_machine::{HookSlot, StateMachine};
use super::tls::ClusterTls;
use super::types::{ClusterRequest, ClusterResponse, NodeId, TypeConfig};
use crate::config::ClusterConfig;
use crate::store::Store;

/// Route a follower uses to hand a membership change to the leader.
pub const MEMBERS_PATH: &str = "/raft/members";
/// How long a write may wait for a leader and a commit before the admin
/// gets 503 `cluster_unavailable`.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);
/// A leader whose quorum has not acknowledged it for this long is degraded.
const QUORUM_ACK_STALE_MS: u64 = 1_000;

/// The raft timings and snapshot policy, in one place: heartbeat every
/// 100 ms, election timeout 300–600 ms (a new leader within about a second
/// of losing one), a snapshot every 1000 log entries, after which the log
/// before it is purged (compaction).
pub fn raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "sluicegate".to_string(),
        heartbeat_interval: 100,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    }
}

/// A membership change, as forwarded to the leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MembersChange {
    Add { node_id: NodeId, addr: String },
    Remove { node_id: NodeId },
}

/// Why a membership change failed on the leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct MembersError(pub String);

/// Why a write could not be committed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// A cheap handle on the running node.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

struct Inner {
    raft: Raft<TypeConfig>,
    network: Network,
    own_id: NodeId,
    own_addr: String,
    batch_interval: Duration,
    data_dir: PathBuf,
    /// Why the last counter batch failed; cleared by the next success.
    batch_error: Mutex<Option<String>>,
    stop_rpc: CancellationToken,
    rpc: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Cluster")
            .field("own_id", &self.0.own_id)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Opens the raft log and state machine in `data_dir`, serves internal
    /// RPC on `config.listen` and applies the bootstrap rule. `hook` must
    /// already hold the server's callback, so no applied entry is missed.
    pub async fn start(
        config: &ClusterConfig,
        data_dir: &Path,
        store: Store,
        hook: HookSlot,
    ) -> anyhow::Result<Cluster> {
        let peers = Peers::parse(config.node_id, &config.peers)?;
        let secret = ClusterSecret::from_file(&config.secret_file)?;
        let log_store =
            LogStore::open(data_dir, store.secret_key().clone()).context("opening the raft log")?;
        let reads = super::peer_query::router(store.clone());
        let state_machine = StateMachine::with_hook(store, data_dir, hook);
        let tls = match &config.tls {
            Some(tls) => Some(ClusterTls::load(tls, super::network::CONNECT_TIMEOUT)?),
            None => None,
        };
        let network = match &tls {
            Some(tls) => {
                Network::with_client(config.node_id, secret.clone(), tls.client.clone(), "https")
            }
            None => Network::new(config.node_id, secret.clone())?,
        };
        let raft_config = Arc::new(raft_config().validate()?);
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network.clone(),
            log_store,
            state_machine,
        )
        .await
        .context("starting raft")?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding --cluster-listen {}", config.listen))?;
        tracing::info!(addr = %listener.local_addr()?, node_id = config.node_id.0, "cluster RPC listening");
        let stop_rpc = CancellationToken::new();
        let rpc_app = Rpc {
            raft: raft.clone(),
            network: network.clone(),
            reads,
            verifier: Arc::new(Verifier::new(secret)),
        };
        let serving = rpc_app.serve(listener, tls.map(|tls| tls.acceptor), stop_rpc.clone());
        match peers::bootstrap(&raft, &peers).await {
            Ok(true) => tracing::info!("this node initialised the cluster"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cluster bootstrap failed"),
        }
        Ok(Cluster(Arc::new(Inner {
            raft,
            network,
            own_id: config.node_id,
            own_addr: peers.own_addr().to_string(),
            batch_interval: config.batch_interval,
            data_dir: data_dir.to_path_buf(),
            batch_error: Mutex::new(None),
            stop_rpc,
            rpc: Mutex::new(Some(serving)),
        })))
    }

    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.0.raft
    }

    pub fn own_id(&self) -> NodeId {
        self.0.own_id
    }

    pub fn own_addr(&self) -> &str {
        &self.0.own_addr
    }

    /// Whether this node is the leader it knows of.
    pub fn is_leader(&self) -> bool {
        self.metrics().current_leader == Some(self.0.own_id)
    }

    /// Where this node keeps its files (the batch record among them).
    pub fn data_dir(&self) -> &Path {
        &self.0.data_dir
    }

    pub fn batch_interval(&self) -> Duration {
        self.0.batch_interval
    }

    pub fn network(&self) -> &Network {
        &self.0.network
    }

    /// The current raft metrics.
    pub fn metrics(&self) -> openraft::RaftMetrics<NodeId, BasicNode> {
        self.0.raft.metrics().borrow().clone()
    }

    /// How many voters the current membership has.
    pub fn voter_count(&self) -> u64 {
        let metrics = self.0.raft.metrics();
        let metrics = metrics.borrow();
        metrics.membership_config.membership().voter_ids().count() as u64
    }

    /// Why this node is degraded (no leader, no quorum, counter batches
    /// failing), or `None` when it is healthy.
    pub fn degraded_reason(&self) -> Option<String> {
        let metrics = self.metrics();
        if let Err(error) = &metrics.running_state {
            return Some(format!("raft stopped: {error}"));
        }
        match metrics.current_leader {
            None => return Some("no leader: no quorum reachable".to_string()),
            Some(leader) if leader == self.0.own_id => {
                let stale = metrics
                    .millis_since_quorum_ack
                    .is_none_or(|millis| millis > QUORUM_ACK_STALE_MS);
                if stale {
                    return Some("leader without a quorum acknowledgement".to_string());
                }
            }
            Some(_) => {}
        }
        self.0
            .batch_error
            .lock()
            .ok()
            .and_then(|error| error.clone())
            .map(|error| format!("counter deltas queued: {error}"))
    }

    /// Commits `request` through raft: proposed here when this node leads,
    /// else forwarded to the leader. Retries only where nothing can have
    /// been proposed (no leader yet, leadership moved, peer not reachable),
    /// within [`WRITE_DEADLINE`]. Then waits (bounded) until this node has
    /// applied the entry, so a read after the write sees it.
    pub async fn write(&self, request: ClusterRequest) -> Result<ClusterResponse, Unavailable> {
        let deadline = Instant::now() + WRITE_DEADLINE;
        let mut last = "no leader elected".to_string();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Unavailable(last));
            }
            let metrics = self.metrics();
            let Some(leader_id) = metrics.current_leader else {
                tokio::time::sleep(Duration::from_millis(50).min(remaining)).await;
                continue;
            };
            let outcome = if leader_id == self.0.own_id {
                match tokio::time::timeout(remaining, self.0.raft.client_write(request.clone()))
                    .await
                {
                    Err(_) => return Err(Unavailable("the commit timed out".to_string())),
                    Ok(Ok(written)) => {
                        let mut data = written.data;
                        data.log_index = Some(written.log_id.index);
                        Ok(data)
                    }
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                        Err("leadership moved".to_string())
                    }
                    Ok(Err(error)) => return Err(Unavailable(error.to_string())),
                }
            } else {
                let Some(leader) = metrics
                    .membership_config
                    .membership()
                    .get_node(&leader_id)
                    .cloned()
                else {
                    return Err(Unavailable(format!("leader {leader_id} has no address")));
                };
                let forwarded = self.0.network.forward_write(leader_id, &leader, &request);
                match tokio::time::timeout(remaining, forwarded).await {
                    Err(_) => return Err(Unavailable("the commit timed out".to_string())),
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(RPCError::RemoteError(remote))) => match remote.source {
                        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
                            Err("leadership moved".to_string())
                        }
                        other => return Err(Unavailable(other.to_string())),
                    },
                    Ok(Err(RPCError::Unreachable(error))) => {
                        Err(format!("leader {leader_id} unreachable: {error}"))
                    }
                    Ok(Err(error)) => return Err(Unavailable(error.to_string())),
                }
            };
            match outcome {
                Ok(response) => {
                    if let Some(index) = response.log_index {
                        self.wait_applied(index, deadline).await;
                    }
                    return Ok(response);
                }
                Err(reason) => {
                    last = reason;
                    let pause = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(Duration::from_millis(50).min(pause)).await;
                }
            }
        }
    }

    /// Waits until this node has applied `index`, at most until `deadline`
    /// (plus a short grace), so the caller can rebuild from the store.
    async fn wait_applied(&self, index: u64, deadline: Instant) {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(200));
        if let Err(error) = self
            .0
            .raft
            .wait(Some(wait))
            .applied_index_at_least(Some(index), "applied locally")
            .await
        {
            tracing::warn!(%error, index, "committed write not yet applied on this node");
        }
    }

    /// Adds (learner, then voter) or removes a node, on the leader or
    /// forwarded to it.
    pub async fn change_members(&self, change: MembersChange) -> Result<(), Unavailable> {
        let deadline = Instant::now() + WRITE_DEADLINE * 5;
        let mut last = "no leader elected".to_string();
        while Instant::now() < deadline {
            let metrics = self.metrics();
            let Some(leader_id) = metrics.current_leader else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if leader_id == self.0.own_id {
                return apply_members(&self.0.raft, change)
                    .await
                    .map_err(|error| Unavailable(error.0));
            }
            let Some(leader) = metrics
                .membership_config
                .membership()
                .get_node(&leader_id)
                .cloned()
            else {
                return Err(Unavailable(format!("leader {leader_id} has no address")));
            };
            match self
                .0
                .network
                .forward_members(leader_id, &leader, &change)
                .await
            {
                Ok(()) => return Ok(()),
                Err(RPCError::RemoteError(remote)) => return Err(Unavailable(remote.source.0)),
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Unavailable(last))
    }

    pub(crate) fn set_batch_error(&self, error: Option<String>) {
        if let Ok(mut slot) = self.0.batch_error.lock() {
            *slot = error;
        }
    }

    /// Stops raft and the RPC listener.
    pub async fn shutdown(&self) {
        if let Err(error) = self.0.raft.shutdown().await {
            tracing::warn!(%error, "raft shutdown");
        }
        self.0.stop_rpc.cancel();
        let serving = self.0.rpc.lock().ok().and_then(|mut slot| slot.take());
        if let Some(serving) = serving {
            let _ = serving.await;
        }
    }
}

/// What the cluster port serves: raft's RPCs, membership changes and the
/// cluster-wide reads, all behind the cluster authenticator.
struct Rpc {
    raft: Raft<TypeConfig>,
    network: Network,
    reads: axum::Router,
    verifier: Arc<Verifier>,
}

impl Rpc {
    /// Serves on `listener` (over TLS with `acceptor`) until `stop`.
    fn serve(
        self,
        listener: tokio::net::TcpListener,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        stop: CancellationToken,
    ) -> JoinHandle<()> {
        let members = rpc::authenticated(
            axum::Router::new()
                .route(MEMBERS_PATH, post(members_handler))
                .with_state(self.raft.clone())
                .merge(self.reads),
            Arc::clone(&self.verifier),
        );
        let app = rpc::router(self.raft, self.verifier)
            .merge(members)
            .layer(middleware::from_fn_with_state(self.network, note_contact));
        tracing::info!(tls = acceptor.is_some(), "cluster RPC transport");
        tokio::spawn(async move {
            if let Some(acceptor) = acceptor {
                super::tls::serve(listener, acceptor, app, stop).await;
                return;
            }
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "cluster RPC server failed");
            }
        })
    }
}

/// Records that an authenticated peer reached us, for `last_contact_ms`.
async fn note_contact(State(network): State<Network>, request: Request, next: Next) -> Response {
    let sender = request
        .extensions()
        .get::<Authenticated>()
        .map(|authenticated| crate::model::NodeId(authenticated.node_id));
    let response = next.run(request).await;
    if let Some(sender) = sender {
        network.heard_from(sender);
    }
    response
}

async fn members_handler(
    State(raft): State<Raft<TypeConfig>>,
    Json(change): Json<MembersChange>,
) -> Json<Result<(), MembersError>> {
    Json(apply_members(&raft, change).await)
}

/// The membership change on the leader: add_learner (blocking until it
/// caught up) then change_membership to the new voter set; or
/// change_membership without the removed node.
async fn apply_members(raft: &Raft<TypeConfig>, change: MembersChange) -> Result<(), MembersError> {
    let voters: BTreeSet<NodeId> = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    let text = |error: &dyn std::fmt::Display| MembersError(error.to_string());
    match change {
        MembersChange::Add { node_id, addr } => {
            raft.add_learner(node_id, BasicNode::new(addr), true)
                .await
                .map_err(|error| text(&error))?;
            let mut next = voters;
            next.insert(node_id);
            raft.change_membership(next, false)
                .await
                .map_err(|error| text(&error))?;
        }
        MembersChange::Remove { node_id } => {
            let mut next = voters;
            if !next.remove(&node_id) {
                return Err(MembersError(format!("node {node_id} is not a voter")));
            }
            if next.is_empty() {
                return Err(MembersError("cannot remove the last voter".to_string()));
            }
            raft.change_membership(next, false)
                .await
                .map_err(|error| text(&error))?;
        }
    }
    Ok(())
}

/// Member rows for `GET /api/cluster`: (node id, address, voter).
pub fn member_list(
    metrics: &openraft::RaftMetrics<NodeId, BasicNode>,
) -> Vec<(NodeId, String, bool)> {
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let nodes: BTreeMap<NodeId, String> = membership
        .nodes()
        .map(|(id, node)| (*id, node.addr.clone()))
        .collect();
    nodes
        .into_iter()
        .map(|(id, addr)| (id, addr, voters.contains(&id)))
        .collect()
}

/// The role name `GET /api/cluster` reports.
pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}
