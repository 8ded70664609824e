//! A node cut off from the quorum: the other two are frozen with SIGSTOP,
//! so the isolated node is alive and answering but cannot reach a majority.

use reqwest::Method;
use serde_json::{Value, json};

use super::harness::{Cluster, PATIENCE, all_ok};
use crate::support::poll::Wait;

/// A node without quorum keeps relaying, reports degraded and refuses config writes with 503 `cluster_unavailable`; after healing all three converge on counts and config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_node_serves_degraded_and_converges_after_healing() {
    let mut cluster = Cluster::start("partition").await;
    let (channel, key) = cluster.provision(1, 1_000_000_000).await;
    all_ok(&cluster.load(&[1, 2, 3], &key, 30, 6).await, "warm-up");
    cluster
        .converge(&[1, 2, 3], channel, cluster.upstream.reported_tokens())
        .await;

    // Isolate a follower: freeze the leader and the other follower.
    let leader = cluster.leader(&[1, 2, 3]).await;
    let isolated = cluster.follower_of(leader);
    let frozen: Vec<u64> = (1..=3).filter(|id| *id != isolated).collect();
    for &id in &frozen {
        cluster.freeze(id);
    }

    // It keeps serving relay traffic on its last view plus local deltas.
    all_ok(
        &cluster.load(&[isolated], &key, 20, 4).await,
        "traffic on the isolated node",
    );
    // It notices that it lost the quorum.
    let view = degraded(&cluster, isolated, true).await;
    assert!(
        view["degraded_reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty()),
        "a degraded node says why: {view}"
    );
    assert_ne!(view["role"], "leader", "{view}");
    // Traffic still succeeds once degraded.
    all_ok(
        &cluster.load(&[isolated], &key, 20, 4).await,
        "traffic on the degraded node",
    );
    // Config writes are refused, clearly.
    let refused = json!({
        "name": "written-without-quorum",
        "base_url": cluster.upstream.base_url(),
        "key": "sk-upstream-refused",
        "models": ["gpt-4o-mini"],
    });
    let (status, body) = cluster
        .admin(isolated, Method::POST, "/api/channels", Some(&refused))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "cluster_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{body}"
    );
    let (status, body) = cluster
        .admin(
            isolated,
            Method::PATCH,
            &format!("/api/channels/{channel}"),
            Some(&json!({"name": "renamed-without-quorum"})),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "cluster_unavailable", "{body}");
    let stranded = cluster.upstream.reported_tokens();
    assert!(
        cluster.used(isolated, channel).await.unwrap_or(0) >= stranded,
        "the isolated node counts its own traffic"
    );

    // Heal: the queued deltas commit and nothing is lost.
    for &id in &frozen {
        cluster.thaw(id);
    }
    cluster.leader(&[1, 2, 3]).await;
    degraded(&cluster, isolated, false).await;
    all_ok(
        &cluster.load(&[1, 2, 3], &key, 30, 6).await,
        "traffic after healing",
    );
    cluster
        .converge(&[1, 2, 3], channel, cluster.upstream.reported_tokens())
        .await;

    // Config converges: a write on the formerly isolated node lands
    // everywhere, and the refused writes landed nowhere.
    let accepted = cluster
        .upstream_channel(isolated, "written-after-healing", json!({}))
        .await;
    cluster
        .visible_on(&[1, 2, 3], &format!("/api/channels/{accepted}"))
        .await;
    let mut lists = Vec::new();
    for id in 1..=3 {
        let (status, list) = cluster.admin(id, Method::GET, "/api/channels", None).await;
        assert_eq!(status, 200);
        let mut names: Vec<String> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["name"].as_str().unwrap_or_default().to_string())
            .collect();
        names.sort();
        lists.push(names);
    }
    assert_eq!(lists[0], lists[1]);
    assert_eq!(lists[1], lists[2]);
    assert!(
        !lists[0].iter().any(|name| name.contains("without-quorum")),
        "a write refused with 503 was applied later: {:?}",
        lists[0]
    );
}

/// Polls node `id`'s cluster view until its `degraded` flag is `wanted`.
async fn degraded(cluster: &Cluster, id: u64, wanted: bool) -> Value {
    let what = format!("node {id} to report degraded: {wanted}");
    let view = Wait::new(&what, PATIENCE)
        .try_until(async || match cluster.view(id).await {
            Some(view) if view["degraded"] == wanted => Ok(view),
            other => Err(format!("{other:?}")),
        })
        .await;
    view.unwrap_or_else(|timeout| panic!("{timeout}\n{}", cluster.dump()))
}
