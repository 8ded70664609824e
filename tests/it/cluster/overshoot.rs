//! The cluster-wide overshoot bound.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;

use super::harness::{Cluster, MODEL};
use crate::support::upstream::{FakeUpstream, FakeUsage};

const CAP: u64 = 20_000;
const PER_REQUEST: u64 = 800;
const NODES: u64 = 3;

/// Cap 20,000 and 64 concurrent clients spread over three nodes: the replicated count overshoots by at most one ~800-token request per node and equals the upstream's total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_overshoot_is_at_most_one_request_per_node() {
    let cluster = Cluster::start("capped").await;
    let fallback = FakeUpstream::start("fallback").await.expect("fallback");
    for fake in [&cluster.upstream, &fallback] {
        fake.configure(|behavior| {
            behavior.usage = Some(FakeUsage {
                prompt: PER_REQUEST / 4,
                completion: PER_REQUEST - PER_REQUEST / 4,
                total: PER_REQUEST,
            });
            behavior.first_byte_delay = Duration::from_millis(20);
        });
    }
    let capped = cluster
        .upstream_channel(
            1,
            "capped",
            json!({"priority": 10, "settings": {"daily_token_limit": CAP, "daily_reset_timezone": "UTC"}}),
        )
        .await;
    let overflow = cluster
        .create_channel(
            1,
            json!({
                "name": "fallback",
                "base_url": fallback.base_url(),
                "key": "sk-upstream-fallback",
                "models": [MODEL],
                "priority": 0,
            }),
        )
        .await;
    let (token, key) = cluster.create_key(1, "crowd").await;
    for path in [
        format!("/api/channels/{capped}"),
        format!("/api/channels/{overflow}"),
        format!("/api/tokens/{token}"),
    ] {
        cluster.visible_on(&[1, 2, 3], &path).await;
    }

    // The prompt estimate plus max_tokens covers the 800 tokens reported.
    let body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Count to ten."}],
        "max_tokens": PER_REQUEST,
    });
    let outcomes: Vec<Result<u16, String>> = futures_util::stream::iter(0..640u64)
        .map(|index| {
            let (cluster, body, key) = (&cluster, &body, &key);
            async move { cluster.chat(index % NODES + 1, key, body).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(
        outcomes.iter().all(|outcome| *outcome == Ok(200)),
        "{outcomes:?}"
    );
    assert_eq!(cluster.upstream.requests() + fallback.requests(), 640);

    let reported = cluster.upstream.reported_tokens();
    cluster.converge(&[1, 2, 3], capped, reported).await;
    let overshoot = reported.saturating_sub(CAP);
    println!(
        "cluster overshoot: used {reported} of cap {CAP} -> overshoot {overshoot} tokens \
         ({:.2} requests; bound {} = one request per node)",
        overshoot as f64 / PER_REQUEST as f64,
        NODES * PER_REQUEST
    );
    assert!(
        reported <= CAP + NODES * PER_REQUEST,
        "overshoot beyond one request per node: used {reported}"
    );
    assert!(
        reported + NODES * PER_REQUEST >= CAP,
        "the capped channel stopped well short of its cap: used {reported}"
    );
    let (_, usage) = cluster
        .admin(
            2,
            Method::GET,
            &format!("/api/channels/{capped}/usage"),
            None,
        )
        .await;
    assert_eq!(usage["reserved"], 0, "every reservation settled: {usage}");
}
