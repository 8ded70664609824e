//! Cluster mode: keeps one admin token for the whole cluster by proposing
//! this node's token hash (`ConfigCommand::SetAdminToken`) at start and after
//! every rotation of its token file.
//!
//! At start a file token is proposed `if_unset`, so the first node's token
//! becomes the cluster's and a restart never flips it; a token from
//! `SLUICEGATE_ADMIN_TOKEN` is proposed outright, since it states the
//! admin's intent. A rotation (`sluicegate admin-token --rotate` on any
//! node) is proposed outright and retried until it commits, so it
//! reaches every node; until then the previous token stays in force.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin_token::AdminAuth;
use crate::clock::Clock;
use crate::command::{ConfigCommand, Proposer};
use crate::model::NodeId;

/// How often the token file is checked for a rotation, and a failed
/// proposal retried.
pub const POLL: Duration = Duration::from_secs(1);

/// Runs until `stop`: the start-up proposal, then rotations.
pub async fn run(
    admin: Arc<AdminAuth>,
    proposer: Arc<dyn Proposer>,
    clock: Arc<dyn Clock>,
    own: NodeId,
    stop: CancellationToken,
) {
    let local = admin.local_digest();
    let if_unset = !admin.from_env();
    let needed = match admin.replicated() {
        None => true,
        Some(replicated) => replicated != local && !if_unset,
    };
    let mut pending = needed.then_some((local, if_unset));
    let mut warned = false;
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Some(rotated) = admin.take_rotation() {
            pending = Some((rotated, false));
        }
        if let Some((hash, if_unset)) = pending {
            let command = ConfigCommand::SetAdminToken {
                sha256: hex::encode(hash),
                if_unset,
                node_id: own,
                at: clock.now(),
            };
            match proposer.propose(command.into()).await {
                Ok(_) => {
                    pending = None;
                    tracing::info!(if_unset, "admin token proposal committed");
                }
                Err(error) => {
                    tracing::warn!(%error, "admin token not replicated yet; retrying");
                    continue;
                }
            }
        }
        if !warned
            && let Some(replicated) = admin.replicated()
            && replicated != admin.local_digest()
        {
            warned = true;
            tracing::warn!(
                "this node's own admin token is not the cluster's: the token set by another node is in force; \
                 `sluicegate admin-token --rotate` on any node sets a new one for all"
            );
        }
    }
}
