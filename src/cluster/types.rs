//! The raft type configuration shared by the log store, the state machine
//! and the network: what a log entry carries (`ClusterRequest`) and what
//! applying it answers (`ClusterResponse`).
//!
//! These types cross the wire and sit in the persisted log, so they are
//! plain serde data; changing them is a log-format change.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::command::{Applied, Command};
use crate::model::{Channel, Token};

openraft::declare_raft_types!(
    /// Sluicegate's raft types: node ids are the `--node-id` numbers, nodes
    /// are addressed by their `--cluster-listen` address.
    pub TypeConfig:
        D = ClusterRequest,
        R = ClusterResponse,
        NodeId = crate::model::NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A node id, as raft and the peers list name it.
pub type NodeId = crate::model::NodeId;

/// A raft log id in our type configuration.
pub type LogId = openraft::LogId<NodeId>;

/// A stored membership in our type configuration.
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;

/// Who proposed a batch, so a retried proposal is applied once.
///
/// Counter-delta batches carry an origin: the state machine remembers the
/// highest `sequence` applied per `node_id` and skips any batch at or below
/// it. A node numbers its batches with a strictly increasing sequence that
/// survives restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub node_id: crate::model::NodeId,
    pub sequence: u64,
}

/// One raft log entry's payload: commands applied in order, atomically as
/// far as the store allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRequest {
    /// Set on counter-delta batches; `None` on admin writes, which are
    /// proposed once and answered, so they need no deduplication.
    pub origin: Option<Origin>,
    pub commands: Vec<Command>,
}

impl ClusterRequest {
    /// An admin write: one command, no origin.
    pub fn command(command: impl Into<Command>) -> Self {
        Self {
            origin: None,
            commands: vec![command.into()],
        }
    }

    /// A batch of counter deltas from `origin`.
    pub fn batch(origin: Origin, commands: Vec<Command>) -> Self {
        Self {
            origin: Some(origin),
            commands,
        }
    }
}

impl std::fmt::Display for ClusterRequest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.origin {
            Some(origin) => write!(
                formatter,
                "{} command(s) from node {} seq {}",
                self.commands.len(),
                origin.node_id,
                origin.sequence
            ),
            None => write!(formatter, "{} command(s)", self.commands.len()),
        }
    }
}

/// What applying one entry produced, serde-friendly so it can be returned
/// to a node that forwarded the write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterResponse {
    /// One result per command, in order. Empty for membership and blank
    /// entries, and for a batch skipped as a duplicate.
    pub results: Vec<AppliedResult>,
    /// The batch's origin had already been applied; nothing changed.
    pub duplicate: bool,
    /// The log index the entry was committed at, so a node that forwarded
    /// the write can wait until it has applied it too.
    #[serde(default)]
    pub log_index: Option<u64>,
}

impl ClusterResponse {
    /// The first command's result, as `AppState::apply` answers an admin
    /// write.
    pub fn first(&self) -> Option<&AppliedResult> {
        self.results.first()
    }
}

/// One command's outcome: either what `Store::apply` returned or the error
/// it raised. An error is data, not a raft failure, because every node hits
/// the same error deterministically (e.g. updating a missing channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AppliedResult {
    Ok(AppliedData),
    Err(ApplyError),
}

/// A store error, as the admin API needs it to answer the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyError {
    /// `not_found`, `conflict`, `invalid` or `internal`; mirrors the
    /// `store::Error` kind.
    pub kind: String,
    pub message: String,
}

/// `command::Applied` in serde form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AppliedData {
    /// Boxed: a channel is large and most results are small.
    Channel(Box<Channel>),
    Token(Box<Token>),
    Deleted,
    Counted,
    Leased(crate::lease::NodeLease),
    Pruned(usize),
    Settings,
}

impl From<Applied> for AppliedData {
    fn from(applied: Applied) -> Self {
        match applied {
            Applied::Channel(channel) => AppliedData::Channel(Box::new(channel)),
            Applied::Token(token) => AppliedData::Token(Box::new(token)),
            Applied::Deleted => AppliedData::Deleted,
            Applied::Counted => AppliedData::Counted,
            Applied::Leased(lease) => AppliedData::Leased(lease),
            Applied::Pruned(removed) => AppliedData::Pruned(removed),
            Applied::Settings => AppliedData::Settings,
        }
    }
}

impl From<AppliedData> for Applied {
    fn from(data: AppliedData) -> Self {
        match data {
            AppliedData::Channel(channel) => Applied::Channel(*channel),
            AppliedData::Token(token) => Applied::Token(*token),
            AppliedData::Deleted => Applied::Deleted,
            AppliedData::Counted => Applied::Counted,
            AppliedData::Leased(lease) => Applied::Leased(lease),
            AppliedData::Pruned(removed) => Applied::Pruned(removed),
            AppliedData::Settings => Applied::Settings,
        }
    }
}
