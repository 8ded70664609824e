//! The client side of internal RPC: openraft's `RaftNetworkFactory` and
//! `RaftNetwork` (the v1 API: `append_entries`, `vote`, chunked
//! `install_snapshot`) as signed JSON POSTs over reqwest, plus the call a
//! follower uses to forward a client write to the leader.
//!
//! Error mapping, so the leader backs off from a dead peer instead of
//! spinning: a peer that cannot be connected to, does not answer within
//! the RPC's TTL, or answers with a non-200 status (e.g. 401 from a
//! secret mismatch) is `Unreachable`; a body that will not encode or
//! decode is a `Network` error; a raft error the peer returned as data is
//! a `RemoteError`. This module never decides anything about raft itself.

use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::rpc::{APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH, WRITE_PATH};
use super::secret::{self, ClusterSecret};
use super::types::{ClusterRequest, ClusterResponse, NodeId, TypeConfig};

/// How long a connection attempt to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The ceiling for a forwarded client write, which waits for a commit.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A transport-level failure, wrapped into openraft's error types.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);

/// What a peer call failed with, for raft error type `E`.
pub type CallError<E> = RPCError<NodeId, BasicNode, E>;

/// Shared by every peer connection: one HTTP client (one pool), the
/// secret to sign with and our id to sign as.
#[derive(Debug, Clone)]
pub struct Network {
    inner: Arc<Transport>,
}

#[derive(Debug)]
struct Transport {
    client: reqwest::Client,
    secret: ClusterSecret,
    own_id: NodeId,
    /// `http` or, once cluster TLS is wired, `https`.
    scheme: &'static str,
    /// When each peer last answered a call or sent us an authenticated one.
    contacts: std::sync::Mutex<std::collections::HashMap<NodeId, std::time::Instant>>,
}

impl Network {
    /// A plaintext-HTTP network signing as `own_id`.
    pub fn new(own_id: NodeId, secret: ClusterSecret) -> Result<Self, TransportError> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|error| {
                TransportError(format!("building the cluster HTTP client: {error}"))
            })?;
        Ok(Self::with_client(own_id, secret, client, "http"))
    }

    /// With a prepared client, e.g. one with cluster TLS roots and
    /// `scheme = "https"`.
    pub fn with_client(
        own_id: NodeId,
        secret: ClusterSecret,
        client: reqwest::Client,
        scheme: &'static str,
    ) -> Self {
        Self {
            inner: Arc::new(Transport {
                client,
                secret,
                own_id,
                scheme,
                contacts: std::sync::Mutex::default(),
            }),
        }
    }

    /// Hands a client write to the leader at `leader` and waits for its
    /// committed result. A `RemoteError` carrying `ForwardToLeader` means
    /// leadership moved; the caller retries there.
    pub async fn forward_write(
        &self,
        leader_id: NodeId,
        leader: &BasicNode,
        request: &ClusterRequest,
    ) -> Result<ClusterResponse, CallError<RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>>
    {
        self.inner
            .call(leader_id, leader, WRITE_PATH, request, WRITE_TIMEOUT)
            .await
    }
}

impl Network {
    /// Hands a membership change to the leader at `leader`.
    pub async fn forward_members(
        &self,
        leader_id: NodeId,
        leader: &BasicNode,
        change: &super::node::MembersChange,
    ) -> Result<(), CallError<super::node::MembersError>> {
        self.inner
            .call(
                leader_id,
                leader,
                super::node::MEMBERS_PATH,
                change,
                WRITE_TIMEOUT,
            )
            .await
    }

    /// A read-only query to another node's internal RPC `path` (e.g. its
    /// request logs), answered as `Result<Resp, E>`.
    pub async fn query<Req, Resp, E>(
        &self,
        target: NodeId,
        node: &BasicNode,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        self.inner.call(target, node, path, body, timeout).await
    }

    /// When this node last had a successful call to `node`, if ever.
    pub fn last_contact(&self, node: NodeId) -> Option<std::time::Instant> {
        self.inner
            .contacts
            .lock()
            .ok()
            .and_then(|contacts| contacts.get(&node).copied())
    }

    /// Records that `node` was heard from (an authenticated request from it).
    pub fn heard_from(&self, node: NodeId) {
        if let Ok(mut contacts) = self.inner.contacts.lock() {
            contacts.insert(node, std::time::Instant::now());
        }
    }
}

impl Transport {
    /// Signs and POSTs `body` to `node`'s `path`, decoding the peer's
    /// `Result<Resp, E>`.
    async fn call<Req, Resp, E>(
        &self,
        target: NodeId,
        node: &BasicNode,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, CallError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = serde_json::to_vec(body)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let header = self
            .secret
            .sign(self.own_id.0, secret::unix_ms_now(), "POST", path, &body);
        let url = format!("{}://{}{path}", self.scheme, node.addr);
        let sent = self
            .client
            .post(url)
            .header(secret::HEADER, header)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body)
            .send()
            .await;
        let response = sent.map_err(|error| unreachable(target, path, &error.to_string()))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            if status == reqwest::StatusCode::UNAUTHORIZED {
                tracing::warn!(
                    target = target.0,
                    path,
                    "peer refused our cluster authenticator; are the secrets equal?"
                );
            }
            return Err(unreachable(target, path, &format!("HTTP {status}")));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| unreachable(target, path, &error.to_string()))?;
        if let Ok(mut contacts) = self.contacts.lock() {
            contacts.insert(target, std::time::Instant::now());
        }
        let decoded: Result<Resp, E> = serde_json::from_slice(&bytes)
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        decoded.map_err(|error| {
            RPCError::RemoteError(RemoteError::new_with_node(target, node.clone(), error))
        })
    }
}

fn unreachable<E: std::error::Error>(target: NodeId, path: &str, reason: &str) -> CallError<E> {
    tracing::debug!(target = target.0, path, reason, "cluster peer unreachable");
    RPCError::Unreachable(Unreachable::new(&TransportError(format!(
        "node {target} {path}: {reason}"
    ))))
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        PeerConnection {
            target,
            node: node.clone(),
            transport: Arc::clone(&self.inner),
        }
    }
}

/// Raft's handle on one peer. Holds no connection of its own; the shared
/// client pools them.
#[derive(Debug)]
pub struct PeerConnection {
    target: NodeId,
    node: BasicNode,
    transport: Arc<Transport>,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, CallError<RaftError<NodeId>>> {
        let timeout = option.hard_ttl();
        self.transport
            .call(self.target, &self.node, APPEND_PATH, &rpc, timeout)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, CallError<RaftError<NodeId, InstallSnapshotError>>>
    {
        let timeout = option.hard_ttl();
        self.transport
            .call(self.target, &self.node, SNAPSHOT_PATH, &rpc, timeout)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, CallError<RaftError<NodeId>>> {
        let timeout = option.hard_ttl();
        self.transport
            .call(self.target, &self.node, VOTE_PATH, &rpc, timeout)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"3f9c1a7be2d4406f8a51c0de9b7e2a4410f3c6d8e9a7b5c3d1e0f2a4b6c8d0e2";

    /// A peer nobody listens on is Unreachable, so raft backs off.
    #[tokio::test]
    async fn dead_peer_is_unreachable() {
        crate::upstream::install_tls_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut network =
            Network::new(1.into(), ClusterSecret::from_bytes(SECRET).unwrap()).unwrap();
        let mut peer = network
            .new_client(2.into(), &BasicNode::new(addr.to_string()))
            .await;
        let vote = VoteRequest::new(openraft::Vote::new(1, 1.into()), None);
        let result = peer
            .vote(vote, RPCOption::new(Duration::from_millis(200)))
            .await;
        assert!(
            matches!(result, Err(RPCError::Unreachable(_))),
            "{result:?}"
        );
    }
}
