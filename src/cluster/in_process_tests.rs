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
use crate::command::{Command, UsageCommand};

const SECRET: &[u8] = b"3f9c1a7be2d4406f8a51c0de9b7e2a4410f3c6d8e9a7b5c3d1e0f2a4b6c8d0e2";

/// Three nodes started at once form one cluster (one bootstrap), elect a
/// leader, replicate a write, and a follower's forwarded write commits too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_and_replicate() {
    crate::upstream::install_tls_provider();
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
        let id = crate::model::NodeId(index as u64 + 1);
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let log_store =
            super::log_store::LogStore::open(dir.path(), store.secret_key().clone()).unwrap();
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
        let peers = Peers::parse(crate::model::NodeId(index as u64 + 1), &list).unwrap();
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
    let leader = &rafts[leader_id.0 as usize - 1];
    let written = leader
        .client_write(ClusterRequest::command(UsageCommand::AddUsage {
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
    let follower_id = crate::model::NodeId(if leader_id.0 == 1 { 2 } else { 1 });
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
            &ClusterRequest::command(UsageCommand::AddUsage { deltas: vec![] }),
        )
        .await
        .unwrap();
    assert_eq!(response.results.len(), 1);
    for raft in &rafts {
        raft.shutdown().await.unwrap();
    }
}

/// Three nodes over loopback, each state machine reporting to `Counters`
/// of its own (as the server wires it).
struct Trio {
    _dirs: Vec<tempfile::TempDir>,
    rafts: Vec<Raft<TypeConfig>>,
    stores: Vec<crate::store::Store>,
    counters: Vec<Arc<crate::daily::Counters>>,
}

async fn trio() -> Trio {
    use super::state_machine::{Event, HookSlot, StateMachine};
    crate::upstream::install_tls_provider();
    let secret = ClusterSecret::from_bytes(SECRET).unwrap();
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
    let config = Arc::new(super::node::raft_config().validate().unwrap());
    let mut trio = Trio {
        _dirs: Vec::new(),
        rafts: Vec::new(),
        stores: Vec::new(),
        counters: Vec::new(),
    };
    for (index, listener) in listeners.into_iter().enumerate() {
        let id = crate::model::NodeId(index as u64 + 1);
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let counters = Arc::new(crate::daily::Counters::new());
        counters.set_cluster_voters(3);
        let hook = HookSlot::default();
        let fed = Arc::clone(&counters);
        hook.set(Arc::new(move |event| {
            if let Event::Applied(entries) = event {
                for entry in entries.iter().filter(|entry| !entry.duplicate) {
                    let own = entry
                        .origin
                        .filter(|origin| origin.node_id == id)
                        .map(|origin| origin.sequence);
                    for command in &entry.commands {
                        if let Command::Usage(UsageCommand::AddUsage { deltas }) = command {
                            fed.apply_replicated(deltas, own);
                        }
                    }
                }
            }
        }));
        let log_store =
            super::log_store::LogStore::open(dir.path(), store.secret_key().clone()).unwrap();
        let machine = StateMachine::with_hook(store.clone(), dir.path(), hook);
        let network = Network::new(id, secret.clone()).unwrap();
        let raft = Raft::<TypeConfig>::new(id, Arc::clone(&config), network, log_store, machine)
            .await
            .unwrap();
        let app = rpc::router(raft.clone(), Arc::new(Verifier::new(secret.clone())));
        tokio::spawn(async move { axum::serve(listener, app).await });
        trio._dirs.push(dir);
        trio.rafts.push(raft);
        trio.stores.push(store);
        trio.counters.push(counters);
    }
    for (index, raft) in trio.rafts.iter().enumerate() {
        let peers = Peers::parse(crate::model::NodeId(index as u64 + 1), &list).unwrap();
        peers::bootstrap(raft, &peers).await.unwrap();
    }
    trio
}

async fn leader_among(rafts: &[&Raft<TypeConfig>]) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        for raft in rafts {
            let metrics = raft.metrics().borrow().clone();
            if metrics.state == openraft::ServerState::Leader {
                return metrics.id.0;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn usage(tokens: u64) -> Vec<crate::daily::UsageDelta> {
    vec![crate::daily::UsageDelta {
        channel_id: crate::model::ChannelId(7),
        date: chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
        tokens,
    }]
}

/// A batch retried with the same (node, sequence) after the leader that
/// committed it died is applied once; the counters on every surviving node
/// are fed by the state machine and hold the count once; the proposing
/// node's local delta leaves `local` exactly when its batch is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_retried_across_a_leader_change_counts_once() {
    use super::types::Origin;
    use chrono::TimeZone;
    let trio = trio().await;
    let all: Vec<&Raft<TypeConfig>> = trio.rafts.iter().collect();
    let leader = leader_among(&all).await;
    // The proposer is a follower: count locally, then batch.
    let proposer = if leader == 1 { 2 } else { 1 };
    let counters = &trio.counters[proposer as usize - 1];
    let noon = chrono::Utc
        .with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
        .unwrap();
    counters.count(
        crate::model::ChannelId(7),
        chrono_tz::Tz::UTC,
        500,
        None,
        noon,
    );
    let deltas = counters.take_pending();
    counters.begin_batch(1, deltas.clone());
    let view = |counters: &crate::daily::Counters| {
        counters.used_on(crate::model::ChannelId(7), usage(0)[0].date)
    };
    assert_eq!(view(counters), Some(500), "local before commit");
    let batch = ClusterRequest::batch(
        Origin {
            node_id: crate::model::NodeId(proposer),
            sequence: 1,
        },
        vec![UsageCommand::AddUsage { deltas }.into()],
    );
    let first = trio.rafts[leader as usize - 1]
        .client_write(batch.clone())
        .await
        .unwrap();
    assert!(!first.data.duplicate);
    for raft in &trio.rafts {
        raft.wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(first.log_id.index), "applied")
            .await
            .unwrap();
    }
    assert!(!counters.has_inflight(1), "own batch settled when applied");
    // The leader dies; the batch is retried (as after a lost answer).
    trio.rafts[leader as usize - 1].shutdown().await.unwrap();
    let survivors: Vec<&Raft<TypeConfig>> = trio
        .rafts
        .iter()
        .enumerate()
        .filter(|(index, _)| *index as u64 + 1 != leader)
        .map(|(_, raft)| raft)
        .collect();
    let new_leader = leader_among(&survivors).await;
    assert_ne!(new_leader, leader);
    let again = trio.rafts[new_leader as usize - 1]
        .client_write(batch)
        .await
        .unwrap();
    assert!(
        again.data.duplicate,
        "same (node, sequence) is applied once"
    );
    for raft in &survivors {
        raft.wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(again.log_id.index), "applied")
            .await
            .unwrap();
    }
    for (index, store) in trio.stores.iter().enumerate() {
        if index as u64 + 1 == leader {
            continue;
        }
        let counts = store.usage_since(usage(0)[0].date).await.unwrap();
        assert_eq!(counts, usage(500), "store of node {}", index + 1);
        assert_eq!(
            view(&trio.counters[index]),
            Some(500),
            "counters of node {}",
            index + 1
        );
        assert_eq!(trio.counters[index].unreplicated_tokens(), 0);
    }
    for raft in survivors {
        raft.shutdown().await.unwrap();
    }
}
