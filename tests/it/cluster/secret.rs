//! Internal RPC needs the shared secret.

use reqwest::Method;
use serde_json::{Value, json};

use super::harness::{Cluster, PATIENCE, write_secret};
use crate::support::poll::Wait;

/// A node with a different secret never joins (it refuses their RPCs and they log the refusal), and a raw `POST /raft/vote` without the header is refused with 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_secret_is_refused() {
    let mut cluster = Cluster::new("secret").await;
    let other = cluster.temp_path().join("other.secret");
    write_secret(&other);
    cluster.nodes[2].secret_file = other;
    cluster.launch(&[1, 2, 3]);
    let leader = cluster.leader(&[1, 2]).await;

    // The two that share the secret commit writes without node 3.
    let channel = cluster.upstream_channel(1, "shared", json!({})).await;
    cluster
        .visible_on(&[1, 2], &format!("/api/channels/{channel}"))
        .await;

    // Node 3 refuses the leader's RPCs ("cluster RPC refused") and the
    // leader logs that its peer refused it.
    let logged = async || {
        warned(&cluster.node(3).output(), "cluster RPC refused")
            && warned(&cluster.node(leader).output(), "refused")
    };
    Wait::new("both sides to log the refusals", PATIENCE)
        .try_until(logged)
        .await
        .unwrap_or_else(|timeout| panic!("{timeout}\n{}", cluster.dump()));

    // Node 3 never catches up: it does not see the channel, and the leader
    // never sees it apply anything. That means something only once the
    // leader has tried node 3 after the write: it sends a peer one append
    // at a time, so two refused after the channel was committed on 1 and 2
    // include one sent after the commit.
    let before = refused_appends(&cluster.node(3).output());
    let retried = async || match refused_appends(&cluster.node(3).output()) - before {
        2.. => Ok(()),
        seen => Err(format!("{seen} more refused")),
    };
    Wait::new("node 3 to refuse two more appends", PATIENCE)
        .try_until(retried)
        .await
        .unwrap_or_else(|timeout| panic!("{timeout}\n{}", cluster.dump()));
    let (status, _) = cluster
        .admin(3, Method::GET, &format!("/api/channels/{channel}"), None)
        .await;
    assert_eq!(
        status,
        404,
        "node 3 received replicated config\n{}",
        cluster.dump()
    );
    let view = cluster.view(leader).await.expect("leader view");
    let leader_applied = view["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|member| member["node_id"] == leader)
        .and_then(|member| member["applied_index"].as_u64())
        .expect("the leader's applied index");
    let third = view["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|member| member["node_id"] == 3)
        .cloned()
        .unwrap_or_default();
    assert!(
        third["applied_index"].as_u64().unwrap_or(0) < leader_applied,
        "node 3 looks caught up: {view}"
    );
    if let Some(own) = cluster.view(3).await {
        assert_ne!(own["role"], "leader", "{own}");
        assert_ne!(own["leader_id"], leader, "node 3 follows the leader: {own}");
    }

    // A raw RPC without the header, on every cluster port.
    let raw = reqwest::Client::new();
    for node in &cluster.nodes {
        let response = raw
            .post(format!("http://{}/raft/vote", node.cluster))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("cluster port answers");
        assert_eq!(response.status(), 401, "node {} /raft/vote", node.id);
    }
}

/// Whether `log` has a warning whose message contains `words`.
fn warned(log: &str, words: &str) -> bool {
    warnings(log).any(|fields| {
        fields["message"]
            .as_str()
            .is_some_and(|message| message.contains(words))
    })
}

/// How many `/raft/append` RPCs the node whose log this is refused.
fn refused_appends(log: &str) -> usize {
    warnings(log)
        .filter(|fields| {
            fields["message"] == "cluster RPC refused" && fields["path"] == "/raft/append"
        })
        .count()
}

/// The fields of every warning in `log`.
fn warnings(log: &str) -> impl Iterator<Item = Value> + '_ {
    log.lines().filter_map(|line| {
        let event = serde_json::from_str::<Value>(line).ok()?;
        let fields = event.get("fields").unwrap_or(&event).clone();
        (event["level"] == "WARN").then_some(fields)
    })
}
