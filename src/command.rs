//! Every change to replicated state: a [`Command`], which is either a
//! [`ConfigCommand`] (SQLite) or a [`UsageCommand`] (the day counters).
//!
//! Callers never write to the store directly: they build a command and hand
//! it to `AppState::apply`, which applies it to the local store on a single
//! node and commits it through raft in a cluster. What a command does to
//! the store is `store::apply_in` (config) and `store::usage::apply`
//! (usage); what it does to memory is `state::mirror`. Commands carry their
//! own timestamps and ids, so applying one is deterministic on every node.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::daily::UsageDelta;
use crate::lease::{LeaseRequest, NodeId, NodeLease};
use crate::model::{Channel, ChannelId, ChannelSpec, KeyHash, Token, TokenId, TokenSpec};
use crate::runtime::SettingsPatch;

/// A state change: configuration (SQLite) or usage (the day counters).
///
/// The split lets the compiler, not a runtime error, say which store a
/// command goes to. Untagged, so a command is stored and replicated as its
/// inner enum alone: `{"CreateChannel": {...}}`, as before the split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    Config(ConfigCommand),
    Usage(UsageCommand),
}

/// Changes to channels, API keys and settings: applied to SQLite in one
/// transaction, and the snapshot is rebuilt where they change what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConfigCommand {
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
    /// Deletes the channel, and with it its day counts and leases.
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
    /// Cluster mode: the admin token every node accepts, as the hex
    /// SHA-256 of the token (never the token). Proposed by a node whose
    /// token file was rotated (`if_unset: false`), and by every node at
    /// start (`if_unset: true` for a file token, so the first node's token
    /// becomes the cluster's and later starts don't flip it; `false` for
    /// `SLUICEGATE_ADMIN_TOKEN`, which states the admin's intent).
    SetAdminToken {
        sha256: String,
        if_unset: bool,
        node_id: NodeId,
        at: DateTime<Utc>,
    },
    /// Changes runtime settings (`PATCH /api/settings`): the fields the
    /// patch sets are stored and win over the start-up configuration.
    UpdateSettings {
        patch: SettingsPatch,
        at: DateTime<Utc>,
    },
}

/// Changes to the day counters and leases: applied to sled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UsageCommand {
    /// Tokens counted since the last batch, per channel and day. Proposed in
    /// batches by the usage flusher, never once per request.
    AddUsage { deltas: Vec<UsageDelta> },
    /// Zeroes one channel's count for one day (an admin action), and drops
    /// that day's leases.
    ResetUsage {
        channel_id: ChannelId,
        date: NaiveDate,
        at: DateTime<Utc>,
    },
    /// Cluster mode: a node asks for more of a capped channel's day; see
    /// [`crate::lease`] for what it is granted.
    GrantLease(LeaseRequest),
    /// Deletes day counts of days before `counts_before` and leases of days
    /// before `leases_before`. Decided once (by the leader, in a cluster)
    /// and applied at the same log position everywhere, so nodes never
    /// prune apart.
    Prune {
        counts_before: NaiveDate,
        leases_before: NaiveDate,
    },
}

impl ConfigCommand {
    /// The channel this command deletes, if it is a `DeleteChannel`.
    pub fn deleted_channel(&self) -> Option<ChannelId> {
        match self {
            ConfigCommand::DeleteChannel { id } => Some(*id),
            ConfigCommand::CreateChannel { .. }
            | ConfigCommand::UpdateChannel { .. }
            | ConfigCommand::AutoDisableChannel { .. }
            | ConfigCommand::ReenableChannel { .. }
            | ConfigCommand::CreateToken { .. }
            | ConfigCommand::UpdateToken { .. }
            | ConfigCommand::DeleteToken { .. }
            | ConfigCommand::SetAdminToken { .. }
            | ConfigCommand::UpdateSettings { .. } => None,
        }
    }
}

impl From<ConfigCommand> for Command {
    fn from(command: ConfigCommand) -> Command {
        Command::Config(command)
    }
}

impl From<UsageCommand> for Command {
    fn from(command: UsageCommand) -> Command {
        Command::Usage(command)
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
    /// A `GrantLease` left this lease for its node.
    Leased(NodeLease),
    /// A `Prune` removed this many day counts and lease records.
    Pruned(usize),
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// A command is stored as its inner enum alone, as before the split, so
    /// a raft log written by an older build still reads; every kind
    /// round-trips.
    #[test]
    fn the_stored_form_is_the_inner_enum() {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 8, 0, 0).unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let old_grant = r#"{"GrantLease":{"channel_id":7,"date":"2026-12-06","node_id":2,"tokens":100,"limit":1000,"voters":3}}"#;
        let grant: Command = serde_json::from_str(old_grant).unwrap();
        assert_eq!(serde_json::to_string(&grant).unwrap(), old_grant);
        let commands: Vec<Command> = vec![
            ConfigCommand::DeleteChannel { id: ChannelId(3) }.into(),
            ConfigCommand::SetAdminToken {
                sha256: "ab".into(),
                if_unset: true,
                node_id: NodeId(2),
                at,
            }
            .into(),
            UsageCommand::ResetUsage {
                channel_id: ChannelId(3),
                date,
                at,
            }
            .into(),
            UsageCommand::Prune {
                counts_before: date,
                leases_before: date,
            }
            .into(),
        ];
        for command in commands {
            let json = serde_json::to_string(&command).unwrap();
            assert!(
                !json.contains("\"Config\"") && !json.contains("\"Usage\""),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), command);
        }
        assert_eq!(
            serde_json::to_string(&Command::from(ConfigCommand::DeleteChannel {
                id: ChannelId(3)
            }))
            .unwrap(),
            r#"{"DeleteChannel":{"id":3}}"#
        );
        assert!(serde_json::from_str::<Command>(r#"{"Nonsense":{}}"#).is_err());
    }
}
