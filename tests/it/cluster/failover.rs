//! `kill -9` of the leader while traffic runs.

use std::sync::Arc;

use serde_json::json;

use super::harness::{Cluster, PATIENCE, all_ok, send_signal};
use crate::support::poll;

/// kill -9 the leader mid-traffic: a new leader is elected, the survivors keep relaying, the restarted node catches up, and every count stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_traffic_loses_and_doubles_nothing() {
    let mut cluster = Cluster::start("failover").await;
    let (channel, key) = cluster.provision(1, 1_000_000_000).await;

    // Traffic on all three; once every node agrees, the leader's own
    // deltas are committed, so killing it cannot lose them.
    all_ok(&cluster.load(&[1, 2, 3], &key, 30, 6).await, "warm-up");
    cluster
        .converge(&[1, 2, 3], channel, cluster.upstream.reported_tokens())
        .await;

    let old_leader = cluster.leader(&[1, 2, 3]).await;
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != old_leader).collect();
    // Hold the first requests at the upstream, kill the leader while they
    // are in flight, then release them; the rest run during the election.
    // (Nothing is sent to the leader itself: a request in flight there
    // could be answered by the upstream and never counted.)
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    cluster
        .upstream
        .configure(|behavior| behavior.gate = Some(Arc::clone(&gate)));
    let before = cluster.upstream.requests();
    let pid = cluster.node(old_leader).pid();
    let outcomes = {
        let traffic = cluster.load(&survivors, &key, 160, 8);
        let kill = async {
            let held = async || match cluster.upstream.requests() - before {
                8.. => Ok(()),
                reached => Err(format!("{reached} reached it")),
            };
            poll::until("8 requests held at the upstream", PATIENCE, held).await;
            send_signal(pid, "KILL");
            cluster.upstream.configure(|behavior| behavior.gate = None);
            gate.add_permits(1_000);
        };
        let (outcomes, ()) = tokio::join!(traffic, kill);
        outcomes
    };
    cluster.kill9(old_leader);
    all_ok(&outcomes, "traffic on the survivors across the kill");

    let new_leader = cluster.leader(&survivors).await;
    assert_ne!(new_leader, old_leader);
    // The survivors commit again: a config write is accepted.
    cluster
        .upstream_channel(
            survivors[0],
            "after-failover",
            json!({"models": ["other-model"]}),
        )
        .await;
    all_ok(
        &cluster.load(&survivors, &key, 30, 4).await,
        "traffic under the new leader",
    );
    cluster
        .converge(&survivors, channel, cluster.upstream.reported_tokens())
        .await;

    // The killed node restarts on its data dir and ports and catches up.
    cluster.launch(&[old_leader]);
    cluster.leader(&[1, 2, 3]).await;
    all_ok(
        &cluster.load(&[1, 2, 3], &key, 30, 6).await,
        "traffic after the restart",
    );
    cluster
        .converge(&[1, 2, 3], channel, cluster.upstream.reported_tokens())
        .await;
    let (status, channels) = cluster
        .admin(old_leader, reqwest::Method::GET, "/api/channels", None)
        .await;
    assert_eq!(status, 200);
    assert!(
        channels.to_string().contains("after-failover"),
        "the restarted node has the write made while it was down: {channels}"
    );
}
