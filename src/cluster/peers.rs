//! The `--cluster-peers` list and the first-start bootstrap rule.
//!
//! # Bootstrap rule
//!
//! Exactly one node initialises the cluster: the one with the **lowest id
//! in the peers list**, and only while its raft state is pristine (no log,
//! no vote: `Raft::is_initialized()` is false). It initialises with the
//! whole peers list as the voter set. Every other node only waits to be
//! contacted by a leader. So three nodes started at once still produce one
//! `initialize` call, and a restart never initialises again, because a
//! node that has seen any log or vote is initialised.
//!
//! Even if two nodes did initialise (say two operators gave two nodes
//! peers lists with different lowest ids), openraft writes the same
//! membership entry at log id `(0,0)` on both, which is safe *as long as
//! the peers lists are identical*. Different lists would be split-brain,
//! which is why every node must be given the same `--cluster-peers`.
//!
//! Failure modes, stated plainly:
//! - The lowest-id node never comes up on first start: the cluster does
//!   not form until it does (the others stay followers with no leader).
//!   Quorum-of-two only helps once the cluster has formed.
//! - The lowest-id node loses its data dir after formation: it is pristine
//!   again and would initialise a one-entry log. The membership entry is
//!   identical and its log is behind, so it cannot win an election against
//!   the others, and the leader overwrites it. To avoid even that, the
//!   wiring should first ask the other peers whether they are initialised
//!   and skip `initialize` when any of them is.
//! - Nodes added later by membership change are not in anyone's original
//!   peers list decisions; they never initialise if their id is not the
//!   lowest in their own list, so give them the full current list.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use openraft::BasicNode;

use super::types::{NodeId, TypeConfig};

/// Why a peers list was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("--cluster-peers is empty; give it as 1=host:port,2=host:port,3=host:port")]
    Empty,
    #[error("--cluster-peers entry {entry:?} is not of the form ID=host:port")]
    Entry { entry: String },
    #[error("--cluster-peers entry {entry:?}: node id must be a positive integer")]
    Id { entry: String },
    #[error("--cluster-peers names node {id} twice")]
    DuplicateId { id: NodeId },
    #[error("--cluster-peers entry {entry:?}: {reason}")]
    Address { entry: String, reason: &'static str },
    #[error("--cluster-peers gives the address {addr} to two nodes")]
    DuplicateAddress { addr: String },
    #[error("--cluster-peers does not name this node (--node-id {id})")]
    OwnIdMissing { id: NodeId },
}

/// The validated peers list: node id → `host:port` of its cluster RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    own_id: NodeId,
    nodes: BTreeMap<NodeId, String>,
}

impl Peers {
    /// Parses `1=host:port,2=host:port,…` for the node `own_id`.
    pub fn parse(own_id: NodeId, list: &str) -> Result<Self, Error> {
        let mut nodes = BTreeMap::new();
        let mut addresses = BTreeSet::new();
        for entry in list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (id, addr) = entry.split_once('=').ok_or_else(|| Error::Entry {
                entry: entry.to_owned(),
            })?;
            let id: NodeId = match id.trim().parse() {
                Ok(id) if id > crate::model::NodeId(0) => id,
                _ => {
                    return Err(Error::Id {
                        entry: entry.to_owned(),
                    });
                }
            };
            let addr = addr.trim();
            validate_address(addr).map_err(|reason| Error::Address {
                entry: entry.to_owned(),
                reason,
            })?;
            if !addresses.insert(addr.to_ascii_lowercase()) {
                return Err(Error::DuplicateAddress {
                    addr: addr.to_owned(),
                });
            }
            if nodes.insert(id, addr.to_owned()).is_some() {
                return Err(Error::DuplicateId { id });
            }
        }
        if nodes.is_empty() {
            return Err(Error::Empty);
        }
        if !nodes.contains_key(&own_id) {
            return Err(Error::OwnIdMissing { id: own_id });
        }
        Ok(Self { own_id, nodes })
    }

    /// This node's id.
    pub fn own_id(&self) -> NodeId {
        self.own_id
    }

    /// This node's cluster RPC address, as the others reach it.
    pub fn own_addr(&self) -> &str {
        self.nodes.get(&self.own_id).map_or("", String::as_str)
    }

    /// Every node, this one included, as raft membership wants them.
    pub fn members(&self) -> BTreeMap<NodeId, BasicNode> {
        self.nodes
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect()
    }

    /// Whether this node is the one that initialises (see the module doc).
    pub fn is_bootstrapper(&self) -> bool {
        self.nodes.keys().next() == Some(&self.own_id)
    }
}

/// Applies the bootstrap rule: initialises the cluster if this node is the
/// bootstrapper and its raft state is pristine. Returns whether it did.
pub async fn bootstrap(
    raft: &openraft::Raft<TypeConfig>,
    peers: &Peers,
) -> Result<bool, BootstrapError> {
    if !peers.is_bootstrapper() {
        return Ok(false);
    }
    if raft
        .is_initialized()
        .await
        .map_err(|error| BootstrapError(error.to_string()))?
    {
        return Ok(false);
    }
    match raft.initialize(peers.members()).await {
        Ok(()) => {
            tracing::info!(members = ?peers.members().keys().collect::<Vec<_>>(), "cluster initialised");
            Ok(true)
        }
        // Lost a race with our own restart or a leader's first append:
        // already initialised is the goal, not a failure.
        Err(openraft::error::RaftError::APIError(
            openraft::error::InitializeError::NotAllowed(_),
        )) => Ok(false),
        Err(error) => Err(BootstrapError(error.to_string())),
    }
}

/// Raft refused or failed the initialisation.
#[derive(Debug, thiserror::Error)]
#[error("initialising the cluster: {0}")]
pub struct BootstrapError(String);

/// `host:port` with a non-zero port; IPv6 hosts in brackets; no scheme.
fn validate_address(addr: &str) -> Result<(), &'static str> {
    if addr.contains("://") || addr.contains('/') {
        return Err("give host:port without a scheme or path");
    }
    let (host, port) = addr.rsplit_once(':').ok_or("missing :port")?;
    match port.parse::<u16>() {
        Ok(0) | Err(_) => return Err("port must be 1-65535"),
        Ok(_) => {}
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or("unclosed [ in IPv6 address")?;
        return match inner.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => Ok(()),
            _ => Err("bad IPv6 address in brackets"),
        };
    }
    if host.is_empty() {
        return Err("missing host");
    }
    if host.contains(':') {
        return Err("IPv6 addresses must be in brackets, e.g. [::1]:7001");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err("bad host name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NodeId;

    /// Good lists parse; each bad list fails with the error that names its fault.
    #[test]
    fn peers_lists_parse_or_say_what_is_wrong() {
        let good = Peers::parse(
            NodeId(2),
            "1=10.0.0.1:7001, 2=node-b.internal:7001,3=[::1]:7003",
        )
        .unwrap();
        assert_eq!(good.own_addr(), "node-b.internal:7001");
        assert_eq!(good.members().len(), 3);
        assert_eq!(good.members()[&NodeId(3)].addr, "[::1]:7003");
        assert!(!good.is_bootstrapper());

        let entry = |text: &str| Error::Entry {
            entry: text.to_owned(),
        };
        let id = |text: &str| Error::Id {
            entry: text.to_owned(),
        };
        let cases: &[(&str, Error)] = &[
            ("", Error::Empty),
            (" , ", Error::Empty),
            ("1=a:1,1=b:2", Error::DuplicateId { id: NodeId(1) }),
            (
                "1=a:1,2=A:1",
                Error::DuplicateAddress { addr: "A:1".into() },
            ),
            ("1=a:1,3=c:3", Error::OwnIdMissing { id: NodeId(2) }),
            ("1a:1", entry("1a:1")),
            ("x=a:1", id("x=a:1")),
            ("0=a:1", id("0=a:1")),
            ("-1=a:1", id("-1=a:1")),
        ];
        for (list, expected) in cases {
            assert_eq!(
                Peers::parse(NodeId(2), list).as_ref(),
                Err(expected),
                "{list:?}"
            );
        }
        for addr in [
            "a",
            "a:",
            "a:0",
            "a:70000",
            ":1",
            "http://a:1",
            "a:1/x",
            "::1:7001",
            "[::1:7001",
            "[1.2.3.4]:1",
            "bad_host:1",
            "-a:1",
            "a..b:1",
        ] {
            let list = format!("2={addr}");
            assert!(
                matches!(Peers::parse(NodeId(2), &list), Err(Error::Address { .. })),
                "{addr:?} should be refused"
            );
        }
    }

    /// Only the lowest id in the list initialises, whoever runs first.
    #[test]
    fn only_the_lowest_id_bootstraps() {
        let list = "3=c:3,1=a:1,2=b:2";
        let bootstrappers: Vec<NodeId> = [1, 2, 3]
            .into_iter()
            .map(NodeId)
            .filter(|own| Peers::parse(*own, list).unwrap().is_bootstrapper())
            .collect();
        assert_eq!(bootstrappers, vec![NodeId(1)]);
    }
}
