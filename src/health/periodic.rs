//! The background task behind `--channel-test-interval`: every interval it
//! tests each `auto_disabled` channel once (its default endpoint and first
//! model), and a success enables the channel again. It runs on the server's
//! `TaskTracker` and stops with the other background tasks.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Host;
use super::probe::{self, Endpoint, Probing};
use crate::model::ChannelStatus;

/// Tests auto-disabled channels every `interval` until `stop` is cancelled.
pub async fn run(host: impl Host, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; the first tests wait one interval.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        tokio::select! {
            () = test_disabled(&host) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// One round: each auto-disabled channel in the current snapshot, in turn.
async fn test_disabled(host: &impl Host) {
    let snapshot = host.snapshot();
    let disabled = snapshot
        .channels()
        .filter(|entry| entry.channel.spec.status == ChannelStatus::AutoDisabled);
    for entry in disabled {
        let channel = &entry.channel;
        let (Some(endpoint), Some(model)) = (
            Endpoint::supported(channel.spec.kind).first(),
            channel.spec.models.first(),
        ) else {
            continue;
        };
        let probe = probe::test(&Probing::of(host), entry, *endpoint, model).await;
        if !probe.ok {
            tracing::debug!(channel = channel.id.0, error = ?probe.error, "auto-disabled channel still failing");
        }
    }
}
