//! A node restarted with an empty data dir rejoins and catches up.

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;

use super::harness::{Cluster, PATIENCE, all_ok};
use crate::support::poll::Wait;

/// Channels created before the wipe.
const CHANNELS: usize = 5;
/// Small config writes (settings patches) made before the wipe: more than
/// the snapshot policy's 1,000 log entries (`cluster::node::raft_config`),
/// so the leader snapshots and purges the log a fresh node would need.
const WRITES: usize = 1_100;

/// A follower restarted with an empty data dir rejoins through a snapshot and ends with the same config and exact counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_rejoins_through_a_snapshot() {
    let mut cluster = Cluster::start("snapshot").await;
    let (channel, key) = cluster.provision(1, 1_000_000_000).await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    // Not node 1: the lowest id is the one that bootstraps a fresh cluster.
    let wiped = (2..=3).find(|id| *id != leader).expect("a follower");
    let mut last_channel = channel;
    for index in 0..CHANNELS {
        last_channel = cluster
            .upstream_channel(
                leader,
                &format!("bulk-{index}"),
                json!({"models": ["bulk-model"]}),
            )
            .await;
    }
    let statuses: Vec<u16> = futures_util::stream::iter(0..WRITES)
        .map(|index| {
            let cluster = &cluster;
            async move {
                let body = json!({"max_retries": index % 3 + 1});
                cluster
                    .admin(leader, Method::PATCH, "/api/settings", Some(&body))
                    .await
                    .0
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    // The leader has written a snapshot (and so may purge its log).
    let what = format!("the leader to write a snapshot after {WRITES} writes");
    Wait::new(&what, PATIENCE)
        .try_until(async || snapshot_file(&cluster, leader).exists())
        .await
        .unwrap_or_else(|timeout| panic!("{timeout}\n{}", cluster.dump()));
    all_ok(&cluster.load(&[1, 2, 3], &key, 30, 6).await, "traffic");
    cluster
        .converge(&[1, 2, 3], channel, cluster.upstream.reported_tokens())
        .await;

    cluster.kill9_and_wipe(wiped);
    all_ok(
        &cluster.load(&[leader], &key, 10, 2).await,
        "traffic while it is down",
    );
    cluster.launch(&[wiped]);
    cluster.leader(&[1, 2, 3]).await;
    cluster
        .converge(&[1, 2, 3], channel, cluster.upstream.reported_tokens())
        .await;
    cluster
        .visible_on(&[wiped], &format!("/api/channels/{last_channel}"))
        .await;
    let (_, list) = cluster
        .admin(wiped, Method::GET, "/api/channels?per_page=100", None)
        .await;
    assert_eq!(list["total"], CHANNELS + 1, "{list}");
    // Settings came along too (the patches went concurrently, in some order;
    // every node must hold the same value).
    let mut settings = Vec::new();
    for id in 1..=3 {
        settings.push(
            cluster
                .admin(id, Method::GET, "/api/settings", None)
                .await
                .1["max_retries"]
                .clone(),
        );
    }
    assert!(
        settings.iter().all(|value| *value == settings[0]),
        "{settings:?}"
    );

    let log = cluster.node(wiped).current_output();
    let snapshot_lines: Vec<&str> = log
        .lines()
        .filter(|line| {
            let line = line.to_ascii_lowercase();
            line.contains("snapshot") && (line.contains("receiv") || line.contains("install"))
        })
        .collect();
    let file = snapshot_file(&cluster, wiped);
    println!(
        "node {wiped} rejoined; snapshot file present: {}; its snapshot log lines:\n{}",
        file.exists(),
        snapshot_lines.join("\n")
    );
    assert!(
        file.exists() && !snapshot_lines.is_empty(),
        "node {wiped} caught up by log replay, not through a snapshot:\n{}",
        cluster.dump()
    );

    // Secrets at rest: no upstream key in clear in any file of any data
    // dir (SQLite, sled counters, the raft log, the snapshot file).
    for id in 1..=3 {
        for (path, bytes) in files_under(&cluster.node(id).data_dir) {
            assert!(
                !contains(&bytes, b"sk-upstream-"),
                "node {id}: an upstream key in clear in {}",
                path.display()
            );
        }
        let file = snapshot_file(&cluster, id);
        if file.exists() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }
}

/// Every regular file under `dir`, recursively, with its bytes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.push((path, bytes));
            }
        }
    }
    assert!(files.len() > 3, "no files under {}", dir.display());
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Where node `id` keeps its current snapshot.
fn snapshot_file(cluster: &Cluster, id: u64) -> std::path::PathBuf {
    cluster
        .node(id)
        .data_dir
        .join(sluicegate::cluster::snapshot::SNAPSHOT_FILE)
}
