//! Forming a cluster, replicated config and exactly replicated counts.

use reqwest::Method;

use super::harness::{Cluster, all_ok};

/// Three nodes form one cluster with one leader and every member listed; a channel created on node 2 appears on nodes 1 and 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_forms_and_replicates_a_channel() {
    let cluster = Cluster::start("forming").await;
    let leader = cluster.leader(&[1, 2, 3]).await;
    for id in 1..=3 {
        let view = cluster.view(id).await.expect("GET /api/cluster");
        assert_eq!(view["enabled"], true, "{view}");
        assert_eq!(view["node_id"], id, "{view}");
        assert_eq!(view["leader_id"], leader, "{view}");
        let expected_role = if id == leader { "leader" } else { "follower" };
        assert_eq!(view["role"], expected_role, "{view}");
        let members = view["members"].as_array().expect("members");
        let mut ids: Vec<u64> = members
            .iter()
            .map(|member| member["node_id"].as_u64().expect("node_id"))
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3], "{view}");
        for member in members {
            assert_eq!(member["voter"], true, "{view}");
            let member_id = member["node_id"].as_u64().expect("node_id");
            assert_eq!(
                member["addr"],
                cluster.node(member_id).cluster.to_string(),
                "{view}"
            );
        }
    }

    let channel = cluster
        .upstream_channel(2, "made-on-two", serde_json::json!({}))
        .await;
    // The write was answered once committed; the other nodes apply it soon.
    let seen = cluster
        .visible_on(&[1, 3], &format!("/api/channels/{channel}"))
        .await;
    for value in seen {
        assert_eq!(value["name"], "made-on-two", "{value}");
    }
    let (_, on_two) = cluster
        .admin(2, Method::GET, &format!("/api/channels/{channel}"), None)
        .await;
    assert_eq!(on_two["name"], "made-on-two");
}

/// With a daily cap and plain and streamed traffic spread over all three nodes, every node ends with exactly the tokens the upstream reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_from_every_node_replicate_exactly() {
    let cluster = Cluster::start("exact").await;
    let (channel, key) = cluster.provision(2, 1_000_000_000).await;
    let outcomes = cluster.load(&[1, 2, 3], &key, 90, 12).await;
    all_ok(&outcomes, "spread traffic");
    let reported = cluster.upstream.reported_tokens();
    assert!(reported > 0);
    assert_eq!(cluster.upstream.requests(), 90);
    cluster.converge(&[1, 2, 3], channel, reported).await;
}
