//! This node's side of replicated counting: the batcher, which proposes
//! the counted deltas every batch interval under a persisted sequence, and
//! the wiring of the lease task (`lease::run_leaser`) to raft.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::node::Cluster;
use super::types::{ClusterRequest, Origin};
use crate::command::UsageCommand;
use crate::daily::{Counters, UsageDelta};
use crate::durable;
use crate::lease;

/// The file holding the next batch sequence and the unresolved batch.
pub const BATCH_FILE: &str = "cluster-batch.json";

/// This node's batch numbering, persisted before each proposal so a retry
/// (after a timeout, a leader change or a restart) reuses the same
/// `(node_id, sequence)` and the state machine applies it once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// The sequence the next new batch gets.
    pub next_sequence: u64,
    /// The batch proposed last and not known to be committed.
    pub unresolved: Option<(u64, Vec<UsageDelta>)>,
}

impl BatchRecord {
    /// Reads `<data-dir>/cluster-batch.json` (a fresh record if absent).
    pub fn load(data_dir: &Path) -> BatchRecord {
        match std::fs::read(data_dir.join(BATCH_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::error!(%error, "unreadable {BATCH_FILE}; starting a new numbering above the applied one");
                BatchRecord::default()
            }),
            Err(_) => BatchRecord::default(),
        }
    }

    /// Writes the record durably (see `durable::write_atomic`).
    pub async fn save(&self, data_dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(self)?;
        let path = data_dir.join(BATCH_FILE);
        tokio::task::spawn_blocking(move || durable::write_atomic(&path, &bytes, 0o600))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Proposes this node's counter deltas every batch interval until `stop`,
/// then tries once more. One batch is unresolved at a time and is retried
/// with the same sequence until it commits: a later sequence committing
/// first would make the state machine skip the earlier one.
pub async fn run_batcher(
    counters: Arc<Counters>,
    cluster: Cluster,
    mut record: BatchRecord,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(cluster.batch_interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => propose_once(&counters, &cluster, &mut record).await,
            () = stop.cancelled() => break,
        }
    }
    propose_once(&counters, &cluster, &mut record).await;
    let left = counters.unreplicated_tokens();
    if left > 0 {
        tracing::warn!(
            unreplicated_tokens = left,
            "stopping with counter deltas not yet replicated"
        );
    }
}

async fn propose_once(counters: &Counters, cluster: &Cluster, record: &mut BatchRecord) {
    let voters = cluster.voter_count();
    if voters > 0 {
        counters.set_cluster_voters(voters);
    }
    if let Some((sequence, _)) = &record.unresolved
        && !counters.has_inflight(*sequence)
    {
        // Already applied here: it committed.
        record.unresolved = None;
    }
    if record.unresolved.is_none() {
        let deltas = counters.take_pending();
        if deltas.is_empty() {
            return;
        }
        let sequence = record.next_sequence.max(1);
        record.next_sequence = sequence + 1;
        record.unresolved = Some((sequence, deltas.clone()));
        if let Err(error) = record.save(cluster.data_dir()).await {
            tracing::warn!(%error, "persisting the batch sequence failed; retrying");
            record.unresolved = None;
            counters.restore_pending(deltas);
            cluster.set_batch_error(Some(format!("persisting the batch sequence: {error}")));
            return;
        }
        counters.begin_batch(sequence, deltas);
    }
    let Some((sequence, deltas)) = record.unresolved.clone() else {
        return;
    };
    let origin = Origin {
        node_id: cluster.own_id(),
        sequence,
    };
    let request = ClusterRequest::batch(origin, vec![UsageCommand::AddUsage { deltas }.into()]);
    match cluster.write(request).await {
        Ok(_) => {
            record.unresolved = None;
            cluster.set_batch_error(None);
        }
        Err(error) => {
            tracing::warn!(%error, sequence, "counter batch not committed; queued for retry");
            cluster.set_batch_error(Some(error.0));
        }
    }
}

/// Proposes the leases `counters` want, through `cluster`, until `stop`.
pub async fn run_leaser(counters: Arc<Counters>, cluster: Cluster, stop: CancellationToken) {
    let node = cluster.own_id();
    let propose = |requests: Vec<lease::LeaseRequest>| {
        let cluster = cluster.clone();
        async move {
            let commands = requests
                .into_iter()
                .map(|request| UsageCommand::GrantLease(request).into())
                .collect();
            let request = ClusterRequest {
                origin: None,
                commands,
            };
            cluster
                .write(request)
                .await
                .map(|_| ())
                .map_err(|error| error.0)
        }
    };
    lease::run_leaser(
        counters.lease_wants(),
        node,
        || cluster.voter_count(),
        propose,
        stop,
    )
    .await;
}
