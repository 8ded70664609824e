//! One admin token for the whole cluster: its hash is replicated, and a
//! rotation on one node rotates it on every node.

use std::time::Duration;

use reqwest::Method;

use super::harness::{Cluster, PATIENCE};
use crate::support::poll::Wait;
use crate::support::process::run_to_exit;

/// The status `GET /api/channels` answers on node `id` with `token`.
async fn status_with(cluster: &Cluster, id: u64, token: &str) -> u16 {
    match cluster
        .try_admin_as(id, token, Method::GET, "/api/channels", None)
        .await
    {
        Ok((status, _)) => status,
        Err(error) => panic!("node {id}: {error}\n{}", cluster.dump()),
    }
}

/// Waits until every node in `ids` accepts `token`. Wrong tokens count
/// against the per-address limit (10 per 5 minutes), so each node is asked
/// at most once a second and at most 8 times.
async fn accepted_everywhere(cluster: &Cluster, ids: &[u64], token: &str) {
    for &id in ids {
        let what = format!("node {id} to accept the token");
        Wait::new(&what, Duration::from_secs(7))
            .every(Duration::from_secs(1))
            .try_until(async || match status_with(cluster, id, token).await {
                200 => Ok(()),
                status => Err(status),
            })
            .await
            .unwrap_or_else(|timeout| panic!("{timeout}\n{}", cluster.dump()));
    }
}

/// Waits until `id` has logged `count` committed token proposals.
async fn proposals_committed(cluster: &Cluster, id: u64, count: usize) {
    let what = format!("node {id} to commit {count} token proposals");
    let committed = async || {
        let output = cluster.node(id).output();
        match output.matches("admin token proposal committed").count() {
            seen if seen >= count => Ok(()),
            seen => Err(format!("{seen} committed")),
        }
    };
    Wait::new(&what, PATIENCE)
        .try_until(committed)
        .await
        .unwrap_or_else(|timeout| panic!("{timeout}\n{}", cluster.dump()));
}

fn token_file(cluster: &Cluster, id: u64) -> String {
    std::fs::read_to_string(cluster.node(id).data_dir.join("admin-token"))
        .expect("token file")
        .trim()
        .to_string()
}

/// Three nodes with their own generated token files settle on one token
/// (one of the three); `admin-token --rotate` on another node replaces it
/// on all three, the old one stops working everywhere, and a node restarted
/// with its own (stale) file keeps the cluster's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_on_one_node_rotates_everywhere() {
    let mut cluster = Cluster::new("cluster-token").await;
    for node in &mut cluster.nodes {
        node.env_admin_token = false;
    }
    cluster.launch(&[1, 2, 3]);
    let files: Vec<String> = (1..=3).map(|id| token_file(&cluster, id)).collect();

    // Every node proposes its own token "if unset" at start; once all
    // three proposals are committed, the first one is the cluster's.
    for id in 1..=3 {
        proposals_committed(&cluster, id, 1).await;
    }
    let mut winners = Vec::new();
    for token in &files {
        let mut accepted = Vec::new();
        for id in 1..=3 {
            accepted.push(status_with(&cluster, id, token).await);
        }
        assert!(
            accepted == [200, 200, 200] || accepted == [401, 401, 401],
            "the nodes disagree on a token: {accepted:?}\n{}",
            cluster.dump()
        );
        if accepted[0] == 200 {
            winners.push(token.clone());
        }
    }
    assert_eq!(winners.len(), 1, "not exactly one cluster token");
    let cluster_token = winners.remove(0);

    // Rotate on a node whose own file did not win (or node 3 if all did).
    let rotating = (1..=3u64)
        .find(|&id| files[(id - 1) as usize] != cluster_token)
        .unwrap_or(3);
    let data_dir = cluster.node(rotating).data_dir.display().to_string();
    let (status, stdout, stderr) =
        run_to_exit(&["admin-token", "--rotate", "--data-dir", &data_dir], &[]);
    assert!(status.success(), "rotate failed: {stderr}");
    let rotated = stdout.trim().to_string();
    assert!(rotated.starts_with("sga-"), "unexpected output {stdout:?}");

    proposals_committed(&cluster, rotating, 2).await;
    accepted_everywhere(&cluster, &[1, 2, 3], &rotated).await;
    for id in 1..=3 {
        assert_eq!(
            status_with(&cluster, id, &cluster_token).await,
            401,
            "node {id} still accepts the old token"
        );
    }

    // A node restarted with its stale file keeps the cluster's token.
    let restarted = (1..=3u64).find(|&id| id != rotating).unwrap_or(1);
    cluster.kill9(restarted);
    cluster.launch(&[restarted]);
    accepted_everywhere(&cluster, &[restarted], &rotated).await;
    let own = token_file(&cluster, restarted);
    if own != rotated {
        assert_eq!(status_with(&cluster, restarted, &own).await, 401);
    }
}
