//! One scrape of `GET /metrics`: the registry's counters and histograms,
//! plus gauges read at this moment from the snapshot (channel info and
//! limits), the daily counters (used and reserved today, in each channel's
//! zone, exactly as `/api/usage` shows them) and, in cluster mode, the raft
//! metrics `GET /api/cluster` reads.

use crate::AppState;
use crate::cluster::node::{self, Cluster};

use crate::metrics::exposition::{Exposition, Kind};
use crate::metrics::series::Histogram;
use crate::metrics::{ChannelLabel, ChannelSeries, Metrics};

/// The whole exposition for `state`.
pub fn render(state: &AppState) -> String {
    let mut out = Exposition::default();
    info(&mut out);
    requests(&mut out, &state.metrics);
    channel_counters(&mut out, &state.metrics);
    channel_gauges(&mut out, state);
    out.header(
        "sluicegate_log_rows_dropped_total",
        Kind::Counter,
        "Request-log rows dropped because the write queue was full.",
    );
    out.count(
        "sluicegate_log_rows_dropped_total",
        &[],
        state.logs.dropped(),
    );
    if state.cluster().is_none() {
        out.header(
            "sluicegate_durable_tokens_total",
            Kind::Counter,
            "Counted tokens written to the counter store and fsynced: what a crash would not lose. Single node only; a cluster replicates them instead.",
        );
        out.count(
            "sluicegate_durable_tokens_total",
            &[],
            state.metrics.durable_tokens(),
        );
    }
    cluster(&mut out, state);
    out.finish()
}

fn info(out: &mut Exposition) {
    out.header(
        "sluicegate_build_info",
        Kind::Gauge,
        "Always 1; the version label says which build is running.",
    );
    out.count(
        "sluicegate_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
}

fn requests(out: &mut Exposition, metrics: &Metrics) {
    let mut series = metrics.request_series();
    series.sort();
    out.header(
        "sluicegate_requests_total",
        Kind::Counter,
        "Relay requests by the last channel tried (none if none was), model (other if no channel lists it), endpoint and the status the client got.",
    );
    for (key, count) in &series {
        let channel = key.channel.render();
        let status = match key.status {
            0 => crate::metrics::OTHER.to_string(),
            code => code.to_string(),
        };
        let labels = [
            ("channel", channel.as_str()),
            ("model", key.model.as_str()),
            ("endpoint", key.endpoint),
            ("status", status.as_str()),
        ];
        out.count("sluicegate_requests_total", &labels, *count);
    }
}

/// Counter metrics of [`ChannelSeries`]: name, help, and the field.
type ChannelCounter = (&'static str, &'static str, fn(&ChannelSeries) -> u64);

const CHANNEL_COUNTERS: [ChannelCounter; 6] = [
    (
        "sluicegate_tokens_total",
        "Tokens counted toward the channel's daily usage, reported by the upstream or estimated.",
        |series| series.tokens.get(),
    ),
    (
        "sluicegate_estimated_tokens_total",
        "The part of sluicegate_tokens_total the gateway estimated because the upstream reported no usage.",
        |series| series.estimated_tokens.get(),
    ),
    (
        "sluicegate_prompt_tokens_total",
        "Prompt (input) tokens of requests the channel served.",
        |series| series.prompt_tokens.get(),
    ),
    (
        "sluicegate_completion_tokens_total",
        "Completion (output) tokens of requests the channel served.",
        |series| series.completion_tokens.get(),
    ),
    (
        "sluicegate_retries_total",
        "Failed upstream attempts on the channel after which the request was retried on another channel.",
        |series| series.retries.get(),
    ),
    (
        "sluicegate_auto_disables_total",
        "Times the gateway disabled the channel on its own (an upstream 401 or an exhausted-quota error).",
        |series| series.auto_disables.get(),
    ),
];

fn channel_counters(out: &mut Exposition, metrics: &Metrics) {
    let mut series = metrics.channel_series();
    series.sort_by_key(|(label, _)| *label);
    let labelled: Vec<(String, &ChannelSeries)> = series
        .iter()
        .map(|(label, series)| (label.render(), series.as_ref()))
        .collect();
    for (name, help, read) in CHANNEL_COUNTERS {
        out.header(name, Kind::Counter, help);
        for (channel, series) in &labelled {
            out.count(name, &[("channel", channel)], read(series));
        }
    }
    for (name, help, read) in CHANNEL_HISTOGRAMS {
        out.header(name, Kind::Histogram, help);
        for (channel, series) in &labelled {
            out.histogram(name, &[("channel", channel)], &read(series).view());
        }
    }
}

/// Histogram metrics of [`ChannelSeries`]: name, help, and the field.
type ChannelHistogram = (&'static str, &'static str, fn(&ChannelSeries) -> &Histogram);

const CHANNEL_HISTOGRAMS: [ChannelHistogram; 2] = [
    (
        "sluicegate_upstream_latency_seconds",
        "Upstream attempts: from sending the request until the whole body (non-streaming) or the first chunk (streaming) arrived, or the attempt failed.",
        |series| &series.upstream_latency,
    ),
    (
        "sluicegate_time_to_first_token_seconds",
        "Streaming requests: from the request's arrival until the upstream's first chunk.",
        |series| &series.time_to_first_token,
    ),
];

/// Per-channel gauges of the current snapshot and today's counters.
fn channel_gauges(out: &mut Exposition, state: &AppState) {
    let snapshot = state.snapshot();
    let now = state.clock.now();
    let mut info = Vec::new();
    let mut used = Vec::new();
    let mut limit = Vec::new();
    let mut reserved = Vec::new();
    for entry in snapshot.channels() {
        let channel = ChannelLabel::Id(entry.channel.id).render();
        let spec = &entry.channel.spec;
        info.push((
            channel.clone(),
            spec.name.clone(),
            spec.kind.as_str(),
            spec.status.as_str(),
        ));
        let view = state.counters.view(entry.channel.id, entry.cap.zone, now);
        used.push((channel.clone(), view.used));
        limit.push((channel.clone(), entry.cap.limit));
        reserved.push((channel, view.reserved));
    }
    out.header(
        "sluicegate_channel_info",
        Kind::Gauge,
        "Always 1 per channel: its name, type and status, to join with the channel label.",
    );
    for (channel, name, kind, status) in &info {
        let labels = [
            ("channel", channel.as_str()),
            ("name", name.as_str()),
            ("type", *kind),
            ("status", *status),
        ];
        out.count("sluicegate_channel_info", &labels, 1);
    }
    let gauges = [
        (
            "sluicegate_channel_daily_used_tokens",
            "Tokens counted on the channel's current day, in its zone (as /api/usage shows).",
            used,
        ),
        (
            "sluicegate_channel_daily_limit_tokens",
            "The channel's daily token limit; 0 means unlimited.",
            limit,
        ),
        (
            "sluicegate_channel_daily_reserved_tokens",
            "Tokens reserved today by requests in flight on the channel.",
            reserved,
        ),
    ];
    for (name, help, values) in gauges {
        out.header(name, Kind::Gauge, help);
        for (channel, value) in &values {
            out.count(name, &[("channel", channel.as_str())], *value);
        }
    }
}

/// The raft roles, each exported as 0 or 1.
const ROLES: [&str; 5] = ["leader", "follower", "candidate", "learner", "shutdown"];

/// Cluster gauges: `sluicegate_cluster_enabled` always, the rest in cluster mode.
fn cluster(out: &mut Exposition, state: &AppState) {
    out.header(
        "sluicegate_cluster_enabled",
        Kind::Gauge,
        "1 when this node runs in cluster mode.",
    );
    let Some(cluster) = state.cluster() else {
        out.count("sluicegate_cluster_enabled", &[], 0);
        return;
    };
    out.count("sluicegate_cluster_enabled", &[], 1);
    let view = ClusterGauges::read(cluster);
    out.header(
        "sluicegate_cluster_role",
        Kind::Gauge,
        "1 for this node's current raft role, 0 for the others.",
    );
    for role in ROLES {
        let current = u64::from(role == view.role);
        out.count("sluicegate_cluster_role", &[("role", role)], current);
    }
    let gauges = [
        (
            "sluicegate_cluster_term",
            "The current raft term.",
            view.term,
        ),
        (
            "sluicegate_cluster_last_log_index",
            "The index of the last entry in this node's raft log.",
            view.last_log_index,
        ),
        (
            "sluicegate_cluster_commit_index",
            "The highest index known committed: on the leader, the highest index a quorum of voters holds; elsewhere the applied index (a lower bound).",
            view.commit_index,
        ),
        (
            "sluicegate_cluster_applied_index",
            "The highest index this node's state machine applied.",
            view.applied_index,
        ),
        (
            "sluicegate_cluster_has_leader",
            "1 when this node knows a leader.",
            u64::from(view.has_leader),
        ),
        (
            "sluicegate_cluster_degraded",
            "1 when GET /api/cluster reports degraded (no leader or quorum, or counter batches failing).",
            u64::from(view.degraded),
        ),
        (
            "sluicegate_cluster_unreplicated_tokens",
            "Tokens counted on this node and not yet replicated: the queue of pending and in-flight counter deltas.",
            state.counters.unreplicated_tokens(),
        ),
    ];
    for (name, help, value) in gauges {
        out.header(name, Kind::Gauge, help);
        out.count(name, &[], value);
    }
}

/// The figures of one cluster node, read from its raft metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterGauges {
    pub role: &'static str,
    pub term: u64,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub has_leader: bool,
    pub degraded: bool,
}

impl ClusterGauges {
    pub fn read(cluster: &Cluster) -> ClusterGauges {
        let metrics = cluster.metrics();
        let applied_index = metrics.last_applied.map_or(0, |id| id.index);
        let last_log_index = metrics.last_log_index.unwrap_or(0);
        let role = node::role_name(metrics.state);
        let commit_index = if role == "leader" {
            let voters: Vec<_> = metrics.membership_config.membership().voter_ids().collect();
            let matched = voters.iter().map(|voter| {
                if *voter == cluster.own_id() {
                    last_log_index
                } else {
                    metrics
                        .replication
                        .as_ref()
                        .and_then(|replication| replication.get(voter).copied().flatten())
                        .map_or(0, |id| id.index)
                }
            });
            quorum_index(matched.collect()).max(applied_index)
        } else {
            applied_index
        };
        ClusterGauges {
            role,
            term: metrics.current_term,
            last_log_index,
            commit_index,
            applied_index,
            has_leader: metrics.current_leader.is_some(),
            degraded: cluster.degraded_reason().is_some(),
        }
    }
}

/// The highest index held by a majority: with the indexes sorted from
/// highest, the one at position `quorum - 1`.
fn quorum_index(mut matched: Vec<u64>) -> u64 {
    if matched.is_empty() {
        return 0;
    }
    matched.sort_unstable_by(|a, b| b.cmp(a));
    let quorum = matched.len() / 2 + 1;
    matched.get(quorum - 1).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A majority's index: 3 voters need 2, 4 need 3, 1 needs itself.
    #[test]
    fn the_commit_index_is_what_a_majority_holds() {
        let cases: [(&[u64], u64); 5] = [
            (&[10, 8, 3], 8),
            (&[10, 8, 3, 2], 3),
            (&[7], 7),
            (&[5, 5, 0], 5),
            (&[], 0),
        ];
        for (matched, expected) in cases {
            assert_eq!(quorum_index(matched.to_vec()), expected, "{matched:?}");
        }
    }
}
