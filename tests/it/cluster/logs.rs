//! Request logs stay on the node that served the request; `scope=cluster`
//! on the logs API and the overview stats merges every member's answer.

use reqwest::Method;
use serde_json::Value;

use super::harness::{Cluster, PATIENCE, chat_body};
use crate::support::poll::Wait;

/// Polls `path` on node `id` until `done` holds for the answer.
async fn wait_for(cluster: &Cluster, id: u64, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let what = format!("{path} on node {id} to settle");
    let settled = Wait::new(&what, PATIENCE)
        .try_until(async || {
            let (status, body) = cluster.admin(id, Method::GET, path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            if done(&body) { Ok(body) } else { Err(body) }
        })
        .await;
    settled.unwrap_or_else(|timeout| panic!("{timeout}\n{}", cluster.dump()))
}

fn node_ids(list: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|row| row["node_id"].as_u64().expect("node_id on every row"))
        .collect();
    ids.sort_unstable();
    ids
}

/// One request served by each node: node 1 lists only its own row by
/// default, all three (tagged with their node) with `scope=cluster`, and
/// the cluster-wide stats count three requests and their tokens. With
/// node 3 frozen, the merged read still answers, with node 3's rows
/// missing and node 3 reported as not answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_stats_merge_across_nodes() {
    let mut cluster = Cluster::start("cluster-logs").await;
    let (_, key) = cluster.provision(1, 1_000_000).await;
    for id in 1..=3 {
        assert_eq!(cluster.chat(id, &key, &chat_body(false)).await, Ok(200));
    }
    let upstream_total = cluster.upstream.reported_tokens();

    let local = wait_for(&cluster, 1, "/api/logs", |body| body["total"] == 1).await;
    assert_eq!(node_ids(&local), [1]);
    assert!(local.get("nodes").is_none(), "{local}");

    let merged = wait_for(&cluster, 1, "/api/logs?scope=cluster", |body| {
        body["total"] == 3
    })
    .await;
    assert_eq!(node_ids(&merged), [1, 2, 3], "{merged}");
    let answered: Vec<bool> = merged["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|node| node["ok"] == true)
        .collect();
    assert_eq!(answered, [true, true, true], "{merged}");
    let times: Vec<&str> = merged["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|row| row["time"].as_str().expect("time"))
        .collect();
    let mut newest_first = times.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first, "rows are not newest first");

    // Paging over the merged rows: 2 per page, page 2 holds the third.
    let (_, second) = cluster
        .admin(
            1,
            Method::GET,
            "/api/logs?scope=cluster&per_page=2&page=2",
            None,
        )
        .await;
    assert_eq!(
        second["items"].as_array().map(Vec::len),
        Some(1),
        "{second}"
    );
    assert_eq!(second["total"], 3);

    let stats = wait_for(&cluster, 2, "/api/stats?scope=cluster&hours=2", |body| {
        body["requests"] == 3
    })
    .await;
    assert_eq!(stats["total_tokens"], upstream_total, "{stats}");
    let (_, own_stats) = cluster
        .admin(2, Method::GET, "/api/stats?hours=2", None)
        .await;
    assert_eq!(own_stats["requests"], 1, "{own_stats}");

    // Too deep for a merged page: a 400 naming `page`.
    let (status, body) = cluster
        .admin(
            1,
            Method::GET,
            "/api/logs?scope=cluster&per_page=500&page=21",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "page", "{body}");

    cluster.freeze(3);
    let (status, partial) = cluster
        .admin(1, Method::GET, "/api/logs?scope=cluster", None)
        .await;
    cluster.thaw(3);
    assert_eq!(status, 200, "{partial}");
    assert_eq!(node_ids(&partial), [1, 2], "{partial}");
    let third = partial["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|node| node["node_id"] == 3)
        .cloned()
        .expect("node 3 listed");
    assert_eq!(third["ok"], false, "{partial}");
    assert!(
        third["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty())
    );
}
