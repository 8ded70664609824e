//! Cluster leases: how the nodes of a cluster share a capped channel's
//! daily headroom without asking the leader on every request. Every rule
//! about leases is in this file:
//!
//! - **the ledger** ([`Ledger`]): the replicated record of one channel's
//!   day, every node's [`Lease`] (tokens granted, and the replicated usage
//!   its own batches brought). The state machine keeps it (`store::usage`);
//!   [`Ledger::grant`] is the arithmetic of `GrantLease`, and
//!   [`Ledger::record_use`] attributes a batch's usage to its node.
//! - **this node's side** ([`Own`]): the lease as the counters hold it, and
//!   [`Own::admit`], the admission rule a capped channel's request passes
//!   (`daily::Counters::try_reserve`), which also says when to ask for more.
//! - **asking** ([`Wants`], [`run_leaser`]): the counters register what they
//!   want; one task proposes it, off the request path.
//! - **a cold start** ([`COLD_WAIT`]): a node that holds no lease for a
//!   capped channel's day yet lets a request wait briefly for the first one.
//!
//! The bound: grants never add up to more than the limit minus the
//! replicated usage, and a node admits a request only while its counted,
//! unreplicated tokens and reservations are below its unspent grant. A
//! request admitted just below may end above by at most its own size, so
//! the cluster overshoots by at most one request per node.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::model::ChannelId;
pub use crate::model::NodeId;

/// How long a request may wait for this node's first lease on a capped
/// channel's day (cold start only; afterwards leases are topped up ahead of
/// need and requests never wait for raft).
pub const COLD_WAIT: Duration = Duration::from_millis(500);

/// A cold start: waits until `warm` holds (every capped candidate has a
/// lease), looking every 5 ms, for at most [`COLD_WAIT`]. The request then
/// routes either way: a channel still cold is skipped like a capped one.
pub async fn await_warm(mut warm: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !warm() && started.elapsed() < COLD_WAIT {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A node asks for more of a channel's day: the payload of `GrantLease`.
/// It gets at least `tokens`, or a 1/(2·`voters`) share of the free
/// headroom if larger, never more than the free headroom under `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub channel_id: ChannelId,
    pub date: NaiveDate,
    pub node_id: NodeId,
    pub tokens: u64,
    pub limit: u64,
    pub voters: u64,
}

/// One node's lease on one channel's day, in the replicated ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    /// Tokens granted to the node in all.
    pub granted: u64,
    /// Replicated usage that came in the node's own batches.
    pub used: u64,
}

impl Lease {
    /// What the node may still count against its grant.
    pub fn outstanding(&self) -> u64 {
        self.granted.saturating_sub(self.used)
    }
}

/// Every node's lease on one channel's day. Stored as JSON
/// `{node: [granted, used]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BTreeMap<u64, (u64, u64)>", into = "BTreeMap<u64, (u64, u64)>")]
pub struct Ledger(BTreeMap<NodeId, Lease>);

impl From<BTreeMap<u64, (u64, u64)>> for Ledger {
    fn from(map: BTreeMap<u64, (u64, u64)>) -> Ledger {
        Ledger(
            map.into_iter()
                .map(|(node, (granted, used))| (NodeId(node), Lease { granted, used }))
                .collect(),
        )
    }
}

impl From<Ledger> for BTreeMap<u64, (u64, u64)> {
    fn from(ledger: Ledger) -> BTreeMap<u64, (u64, u64)> {
        ledger
            .0
            .into_iter()
            .map(|(node, lease)| (node.0, (lease.granted, lease.used)))
            .collect()
    }
}

impl Ledger {
    /// Grants `request` what the rule allows, given the channel's day has
    /// `replicated` tokens counted: at least `tokens` (or the share, if
    /// larger), never more than `limit − replicated − Σ outstanding`. So
    /// the grants never add up to more than the limit.
    pub fn grant(&mut self, request: &LeaseRequest, replicated: u64) -> NodeLease {
        let outstanding = self
            .0
            .values()
            .fold(0u64, |sum, lease| sum.saturating_add(lease.outstanding()));
        let free = request
            .limit
            .saturating_sub(replicated)
            .saturating_sub(outstanding);
        let share = free / request.voters.max(1).saturating_mul(2);
        let added = request.tokens.max(share).min(free);
        let lease = self.0.entry(request.node_id).or_default();
        lease.granted = lease.granted.saturating_add(added);
        NodeLease {
            channel_id: request.channel_id,
            date: request.date,
            node_id: request.node_id,
            granted: lease.granted,
            used: lease.used,
            added,
            limit: request.limit,
        }
    }

    /// A batch of `node`'s brought `tokens` of replicated usage: they spend
    /// its lease.
    pub fn record_use(&mut self, node: NodeId, tokens: u64) {
        let lease = self.0.entry(node).or_default();
        lease.used = lease.used.saturating_add(tokens);
    }

    /// Puts back one node's lease as a snapshot carries it.
    pub fn restore(&mut self, lease: &NodeLease) {
        self.0.insert(
            lease.node_id,
            Lease {
                granted: lease.granted,
                used: lease.used,
            },
        );
    }

    /// Every node's lease, with the channel and day they are for.
    pub fn leases(
        &self,
        channel_id: ChannelId,
        date: NaiveDate,
    ) -> impl Iterator<Item = NodeLease> + '_ {
        self.0.iter().map(move |(node, lease)| NodeLease {
            channel_id,
            date,
            node_id: *node,
            granted: lease.granted,
            used: lease.used,
            added: 0,
            limit: 0,
        })
    }
}

/// One node's lease on one channel's day, with where it belongs: what the
/// ledger exports to snapshots, and what a `GrantLease` reports back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLease {
    pub channel_id: ChannelId,
    pub date: NaiveDate,
    pub node_id: NodeId,
    pub granted: u64,
    pub used: u64,
    /// Set on the lease a `GrantLease` reports: what that grant added (0:
    /// no headroom was left) and the limit it was asked under.
    #[serde(default)]
    pub added: u64,
    #[serde(default)]
    pub limit: u64,
}

/// This node's lease on one channel's day, as its counters hold it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Own {
    pub granted: u64,
    /// Replicated usage of this node's own batches.
    pub used: u64,
    /// The limit under which the last grant added nothing (0: none). No
    /// headroom is left unless the limit rises, so nothing is asked until then.
    dry_limit: u64,
}

/// What [`Own::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    pub admitted: bool,
    /// Ask for more now: the unspent grant runs low.
    pub want: bool,
}

impl Own {
    /// The lease as the replicated state has it (start-up, snapshot install).
    pub fn loaded(granted: u64, used: u64) -> Own {
        Own {
            granted,
            used,
            dry_limit: 0,
        }
    }

    /// A committed `GrantLease` for this node left `lease`.
    pub fn install(&mut self, lease: &NodeLease) {
        self.granted = lease.granted;
        self.used = lease.used;
        self.dry_limit = if lease.added == 0 {
            lease.limit.max(1)
        } else {
            0
        };
    }

    /// One of this node's batches was replicated: the ledger spends the
    /// lease by the same amount.
    pub fn record_use(&mut self, tokens: u64) {
        self.used = self.used.saturating_add(tokens);
    }

    /// The grant not yet spent by replicated usage.
    fn remaining(&self) -> u64 {
        self.granted.saturating_sub(self.used)
    }

    /// Whether a request of `estimate` tokens is admitted on a channel
    /// whose day has `replicated` tokens counted cluster-wide, while this
    /// node holds `mine` (counted here and not replicated, plus reserved).
    /// Admitted while `mine` is below the unspent grant. More is wanted
    /// when what is left after this request is under twice its size or
    /// under half the grant, unless the last grant under this limit found
    /// no headroom.
    pub fn admit(&self, replicated: u64, mine: u64, estimate: u64, limit: u64) -> Admission {
        let remaining = self.remaining();
        let admitted = replicated < limit && mine < remaining;
        let after = if admitted {
            mine.saturating_add(estimate)
        } else {
            mine
        };
        let left = remaining.saturating_sub(after);
        let low = left < estimate.saturating_mul(2).max(1) || left < remaining / 2;
        let want = low && replicated < limit && (self.dry_limit == 0 || limit > self.dry_limit);
        Admission { admitted, want }
    }

    /// A cold start: never granted anything on this day, and the cluster
    /// still has headroom, so a request should wait for the first grant.
    pub fn is_cold(&self, replicated: u64, limit: u64) -> bool {
        self.granted == 0 && self.dry_limit == 0 && replicated < limit
    }
}

/// A lease this node wants for a capped channel's day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub channel_id: ChannelId,
    pub date: NaiveDate,
    /// The smallest grant worth asking for (twice the request estimate).
    pub tokens: u64,
    pub limit: u64,
}

impl Want {
    /// What to ask for before a request of `estimate` tokens.
    pub fn before(channel_id: ChannelId, date: NaiveDate, estimate: u64, limit: u64) -> Want {
        Want {
            channel_id,
            date,
            tokens: estimate.saturating_mul(2).max(1),
            limit,
        }
    }

    fn request(self, node_id: NodeId, voters: u64) -> LeaseRequest {
        LeaseRequest {
            channel_id: self.channel_id,
            date: self.date,
            node_id,
            tokens: self.tokens,
            limit: self.limit,
            voters,
        }
    }
}

/// The leases wanted and not yet asked for, merged per channel and day.
#[derive(Debug, Default)]
pub struct Wants {
    wants: Mutex<BTreeMap<(ChannelId, NaiveDate), Want>>,
    wanted: tokio::sync::Notify,
}

impl Wants {
    /// Registers `want` (the larger of two asks wins) and wakes the leaser.
    pub fn add(&self, want: Want) {
        {
            let mut wants = self.wants.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = wants.entry((want.channel_id, want.date)).or_insert(want);
            entry.tokens = entry.tokens.max(want.tokens);
            entry.limit = want.limit;
        }
        self.wanted.notify_one();
    }

    /// Waits until something is wanted.
    pub async fn wanted(&self) {
        self.wanted.notified().await;
    }

    /// Takes everything wanted since the last call.
    pub fn take(&self) -> Vec<Want> {
        let mut wants = self.wants.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *wants).into_values().collect()
    }
}

/// Proposes what `wants` collects, off the request path: woken when a
/// capped channel's lease runs low or a request found none; one proposal
/// at a time, every wanted lease in one raft entry. The state machine
/// decides each grant; the replicated hook installs it in the counters.
/// `propose` commits the requests; a failure is retried on the next want.
pub async fn run_leaser<P, F>(
    wants: &Wants,
    node_id: NodeId,
    voters: impl Fn() -> u64,
    propose: P,
    stop: CancellationToken,
) where
    P: Fn(Vec<LeaseRequest>) -> F,
    F: Future<Output = Result<(), String>>,
{
    loop {
        tokio::select! {
            () = wants.wanted() => {}
            () = stop.cancelled() => return,
        }
        let wanted = wants.take();
        if wanted.is_empty() {
            continue;
        }
        let voters = voters().max(1);
        let requests = wanted
            .into_iter()
            .map(|want| want.request(node_id, voters))
            .collect();
        if let Err(error) = propose(requests).await {
            tracing::debug!(%error, "lease request not committed; asking again on demand");
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 6).unwrap()
    }

    fn ask(node: u64, tokens: u64, limit: u64, voters: u64) -> LeaseRequest {
        LeaseRequest {
            channel_id: ChannelId(1),
            date: date(),
            node_id: NodeId(node),
            tokens,
            limit,
            voters,
        }
    }

    /// Grants take the larger of the ask and the share, never more than
    /// the free headroom, and outstanding grants are counted as spent.
    #[test]
    fn grants_never_add_up_past_the_limit() {
        let mut ledger = Ledger::default();
        // free 10_000, share 10_000 / 6 = 1666 > 100.
        let first = ledger.grant(&ask(1, 100, 10_000, 3), 0);
        assert_eq!((first.added, first.granted), (1666, 1666));
        // A big ask gets only what is free: 10_000 − 1666.
        let second = ledger.grant(&ask(2, 50_000, 10_000, 3), 0);
        assert_eq!(second.added, 8334);
        let third = ledger.grant(&ask(3, 1, 10_000, 3), 0);
        assert_eq!(third.added, 0);
        // Node 1's batch brought 1000: replicated rises by as much as its
        // outstanding grant falls, so nothing frees up.
        ledger.record_use(NodeId(1), 1000);
        assert_eq!(ledger.grant(&ask(3, 1, 10_000, 3), 1000).added, 0);
        // Another node's usage beyond its grant does not free headroom either.
        let total: u64 = ledger
            .leases(ChannelId(1), date())
            .map(|lease| lease.granted)
            .sum();
        assert_eq!(total, 10_000);
        // A higher limit frees headroom again.
        assert!(ledger.grant(&ask(3, 1, 20_000, 3), 1000).added > 0);
    }

    /// The grant arithmetic at the edges: a node that overshot its grant
    /// has nothing outstanding (its usage is in `replicated`), and near the
    /// end the asked minimum wins, clamped to what is free.
    #[test]
    fn grants_at_the_edges() {
        let grant = |map: &[(u64, (u64, u64))], replicated| {
            let mut ledger = Ledger::from(map.iter().copied().collect::<BTreeMap<_, _>>());
            ledger.grant(&ask(3, 1600, 20_000, 3), replicated).added
        };
        // Empty: free 20,000, share 20,000 / 6.
        assert_eq!(grant(&[], 0), 3333);
        let map = [(1, (3333, 0)), (2, (3000, 4000))];
        // free = 20,000 − 4,000 − 3,333 = 12,667; share 2,111.
        assert_eq!(grant(&map, 4000), 2111);
        assert_eq!(grant(&map, 15_000), 1600);
        assert_eq!(grant(&map, 16_000), 667);
        assert_eq!(grant(&map, 17_000), 0);
    }

    /// The ledger keeps its stored shape: `{node: [granted, used]}`.
    #[test]
    fn ledger_json_is_stable() {
        let mut ledger = Ledger::default();
        ledger.grant(&ask(2, 500, 1000, 1), 0);
        ledger.record_use(NodeId(2), 200);
        let json = serde_json::to_string(&ledger).unwrap();
        assert_eq!(json, r#"{"2":[500,200]}"#);
        assert_eq!(serde_json::from_str::<Ledger>(&json).unwrap(), ledger);
    }

    /// Without a grant nothing is admitted and a lease is wanted; with one,
    /// admission holds while what is held stays below the unspent grant.
    #[test]
    fn admission_stays_within_the_grant() {
        let mut own = Own::default();
        assert!(own.is_cold(0, 10_000));
        let refused = own.admit(0, 0, 100, 10_000);
        assert_eq!(
            refused,
            Admission {
                admitted: false,
                want: true
            }
        );
        own.install(&Ledger::default().grant(&ask(1, 1000, 10_000, 5), 0));
        assert!(!own.is_cold(0, 10_000));
        assert!(own.admit(0, 0, 100, 10_000).admitted);
        assert!(own.admit(0, 999, 100, 10_000).admitted);
        assert!(!own.admit(0, 1000, 100, 10_000).admitted);
        // Replicated usage at the limit refuses whatever the grant.
        assert!(!own.admit(10_000, 0, 1, 10_000).admitted);
        own.record_use(600);
        assert!(!own.admit(0, 400, 1, 10_000).admitted);
    }

    /// A grant that added nothing is not asked again under the same limit;
    /// a higher limit asks again.
    #[test]
    fn a_dry_grant_is_not_asked_again() {
        let mut own = Own::default();
        own.install(&NodeLease {
            channel_id: ChannelId(1),
            date: date(),
            node_id: NodeId(1),
            granted: 0,
            used: 0,
            added: 0,
            limit: 20_000,
        });
        assert!(!own.admit(0, 0, 10, 20_000).want);
        assert!(!own.is_cold(0, 20_000));
        assert!(own.admit(0, 0, 10, 30_000).want);
    }

    /// Wants merge per channel and day, the larger ask winning.
    #[test]
    fn wants_merge() {
        let wants = Wants::default();
        wants.add(Want::before(ChannelId(1), date(), 10, 100));
        wants.add(Want::before(ChannelId(1), date(), 30, 100));
        wants.add(Want::before(ChannelId(2), date(), 5, 100));
        let mut taken = wants.take();
        taken.sort_by_key(|want| want.channel_id);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0].tokens, 60);
        assert!(wants.take().is_empty());
    }
}
