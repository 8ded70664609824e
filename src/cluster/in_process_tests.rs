//! Three raft nodes in one process, each with its own data dir, log store
//! and state machine, talking signed JSON over real loopback HTTP through
//! `network` and `rpc`: the pieces fit together before any wiring.

use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft};

use super::network::Network;
use super::peers::{self, Peers};
use super::rpc;
use super::secret::{ClusterSecret, Verifier};
use super::types::{ClusterRequest, TypeConfig};
use crate::command::Command;

const SECRET: &[u8] = b"3f9c1a7be2d4406f8a51c0de9b7e2a4410f3c6d8e9a7b5c3d1e0f2a4b6c8d0e2";

/// Three nodes started at once form one cluster (one bootstrap), elect a
/// leader, replicate a write, and a follower's forwarded write commits too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_and_replicate() {
    crate::server::install_tls_provider();
    let secret = ClusterSecret::from_bytes(SECRET).unwrap();
    // Bind first, then build the peers list from the real ports.
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let list = listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| format!("{}={}", index + 1, listener.local_addr().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    let config = Arc::new(
        Config {
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );

    let mut dirs = Vec::new();
    let mut rafts = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let id = index as u64 + 1;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let log_store = super::log_store::LogStore::open(dir.path()).unwrap();
        let state_machine = super::state_machine::StateMachine::new(store, dir.path());
        let network = Network::new(id, secret.clone()).unwrap();
        let raft =
            Raft::<TypeConfig>::new(id, Arc::clone(&config), network, log_store, state_machine)
                .await
                .unwrap();
        let app = rpc::router(raft.clone(), Arc::new(Verifier::new(secret.clone())));
        tokio::spawn(async move { axum::serve(listener, app).await });
        dirs.push(dir);
        rafts.push(raft);
    }
    let mut initialised = 0;
    for (index, raft) in rafts.iter().enumerate() {
        let peers = Peers::parse(index as u64 + 1, &list).unwrap();
        if peers::bootstrap(raft, &peers).await.unwrap() {
            initialised += 1;
        }
    }
    assert_eq!(initialised, 1, "exactly one node initialises");

    let metrics = rafts[0]
        .wait(Some(Duration::from_secs(10)))
        .metrics(|metrics| metrics.current_leader.is_some(), "a leader")
        .await
        .unwrap();
    let leader_id = metrics.current_leader.unwrap();
    let leader = &rafts[leader_id as usize - 1];
    let written = leader
        .client_write(ClusterRequest::command(Command::AddUsage {
            deltas: vec![],
        }))
        .await
        .unwrap();
    let index = written.log_id.index;
    for raft in &rafts {
        raft.wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(index), "replicated")
            .await
            .unwrap();
    }

    // A follower hands a write to the leader over the signed write route.
    let follower_id = if leader_id == 1 { 2 } else { 1 };
    let leader_node: BasicNode = metrics
        .membership_config
        .membership()
        .get_node(&leader_id)
        .unwrap()
        .clone();
    let forwarder = Network::new(follower_id, secret.clone()).unwrap();
    let response = forwarder
        .forward_write(
            leader_id,
            &leader_node,
            &ClusterRequest::command(Command::AddUsage { deltas: vec![] }),
        )
        .await
        .unwrap();
    assert_eq!(response.results.len(), 1);
    for raft in &rafts {
        raft.shutdown().await.unwrap();
    }
}
