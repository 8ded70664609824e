//! Every change to replicated state, as one serde enum.
//!
//! Callers never write to the store directly: they build a `Command` and hand
//! it to `AppState::apply`. Today that applies it to the local store; the
//! cluster replicates the same commands through raft without touching the
//! callers. Commands carry their own timestamps and ids so that applying one
//! is deterministic on every node.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::daily::UsageDelta;
use crate::model::{Channel, ChannelId, ChannelSpec, KeyHash, Token, TokenId, TokenSpec};
use crate::runtime::SettingsPatch;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    CreateChannel {
        spec: ChannelSpec,
        at: DateTime<Utc>,
    },
    /// Replaces every admin-set field of a channel. PATCH merging happens
    /// before the command is built, so the command is a plain overwrite.
    UpdateChannel {
        id: ChannelId,
        spec: ChannelSpec,
        at: DateTime<Utc>,
    },
    DeleteChannel {
        id: ChannelId,
    },
    /// The gateway disables a channel whose upstream refused its key or
    /// reported an exhausted quota (`health`). A no-op unless the channel is
    /// still enabled and allows it.
    AutoDisableChannel {
        id: ChannelId,
        reason: String,
        at: DateTime<Utc>,
    },
    /// A channel test succeeded: an `auto_disabled` channel is enabled again.
    /// A no-op for any other status.
    ReenableChannel {
        id: ChannelId,
        at: DateTime<Utc>,
    },
    CreateToken {
        key_hash: KeyHash,
        key_prefix: String,
        spec: TokenSpec,
        at: DateTime<Utc>,
    },
    UpdateToken {
        id: TokenId,
        spec: TokenSpec,
    },
    DeleteToken {
        id: TokenId,
    },
    /// Tokens counted since the last batch, per channel and day. Proposed in
    /// batches by the usage flusher, never once per request.
    AddUsage {
        deltas: Vec<UsageDelta>,
    },
    /// Zeroes one channel's count for one day (an admin action).
    ResetUsage {
        channel_id: ChannelId,
        date: NaiveDate,
        at: DateTime<Utc>,
    },
    /// Cluster mode only: asks the state machine to lease `node_id` up to
    /// `tokens` more of the channel's headroom on `date` (at least
    /// `tokens`, or a 1/(2·`voters`) share of the free headroom if larger),
    /// never more than `limit − replicated − Σ outstanding grants`. See
    /// `store::replicated` for the arithmetic.
    GrantLease {
        channel_id: ChannelId,
        date: NaiveDate,
        node_id: u64,
        tokens: u64,
        limit: u64,
        voters: u64,
    },
    /// Cluster mode: the admin token every node accepts, as the hex
    /// SHA-256 of the token (never the token). Proposed by a node whose
    /// token file was rotated (`if_unset: false`), and by every node at
    /// start (`if_unset: true` for a file token, so the first node's token
    /// becomes the cluster's and later starts don't flip it; `false` for
    /// `SLUICEGATE_ADMIN_TOKEN`, which states the admin's intent).
    SetAdminToken {
        sha256: String,
        if_unset: bool,
        node_id: u64,
        at: DateTime<Utc>,
    },
    /// Changes runtime settings (`PATCH /api/settings`): the fields the
    /// patch sets are stored and win over the start-up configuration.
    UpdateSettings {
        patch: SettingsPatch,
        at: DateTime<Utc>,
    },
}

impl Command {
    /// Whether applying this command changes channels or keys, so the
    /// snapshot must be rebuilt.
    pub fn changes_config(&self) -> bool {
        match self {
            Command::CreateChannel { .. }
            | Command::UpdateChannel { .. }
            | Command::DeleteChannel { .. }
            | Command::AutoDisableChannel { .. }
            | Command::ReenableChannel { .. }
            | Command::CreateToken { .. }
            | Command::UpdateToken { .. }
            | Command::DeleteToken { .. } => true,
            // A new zone rebuilds the snapshot too, but `AppState` decides
            // that from the settings it installs.
            Command::AddUsage { .. }
            | Command::ResetUsage { .. }
            | Command::GrantLease { .. }
            | Command::SetAdminToken { .. }
            | Command::UpdateSettings { .. } => false,
        }
    }
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Channel(Channel),
    Token(Token),
    Deleted,
    /// A usage command was applied.
    Counted,
    /// Runtime settings were stored.
    Settings,
}

/// Why a proposed command was not applied, in words for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What applies a [`Command`] for background work (the state on one node,
/// through raft in a cluster): it is handed this, never the whole state.
pub trait Proposer: Send + Sync {
    fn propose(
        &self,
        command: Command,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Applied, Refused>> + Send + '_>>;
}
