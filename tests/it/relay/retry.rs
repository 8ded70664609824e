//! Routing and retries: priority tiers, weights, which failures move on to
//! another channel, and which are final.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Rig, ask, ask_stream, ids, upstream};
use crate::support::upstream::FakeUpstream;

/// The highest priority tier serves every request while it is healthy; the lower tier only takes over on failure.
#[tokio::test]
async fn priority_tiers_are_tried_in_order() {
    let rig = Rig::start().await;
    let (high, low) = (upstream("high").await, upstream("low").await);
    let high_id = rig.channel(&high, &["m"], json!({"priority": 10})).await;
    let low_id = rig
        .channel(&low, &["m"], json!({"priority": 0, "weight": 100}))
        .await;
    for index in 0..20 {
        assert_eq!(
            rig.chat(&format!("tier-{index}"), &ask("m")).await.status(),
            200
        );
    }
    assert_eq!((high.requests(), low.requests()), (20, 0));
    high.fail_always(503);
    let reply: Value = rig
        .chat("tier-fallback", &ask("m"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], "Hello from low");
    assert_eq!(ids(&rig.log("tier-fallback").await), vec![high_id, low_id]);
}

/// Inside a tier, weights 3:1 split 400 requests about 3:1 (±45, five standard deviations).
#[tokio::test]
async fn weights_split_traffic_inside_a_tier() {
    let rig = Rig::start().await;
    let (heavy, light) = (upstream("heavy").await, upstream("light").await);
    rig.channel(&heavy, &["m"], json!({"weight": 3})).await;
    rig.channel(&light, &["m"], json!({"weight": 1})).await;
    let requests = futures_util::stream::iter(0..400)
        .map(|index| {
            let rig = &rig;
            async move { rig.chat(&format!("w-{index}"), &ask("m")).await.status() }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    assert!(requests.iter().all(|status| *status == 200));
    assert_eq!(heavy.requests() + light.requests(), 400);
    assert!(
        heavy.requests().abs_diff(300) <= 45,
        "heavy {} light {}",
        heavy.requests(),
        light.requests()
    );
}

/// An upstream 500 is retried on another channel and the client never sees it.
#[tokio::test]
async fn upstream_500_retries_on_another_channel() {
    let rig = Rig::start().await;
    let (broken, healthy) = (upstream("broken").await, upstream("healthy").await);
    let broken_id = rig.channel(&broken, &["m"], json!({"priority": 1})).await;
    let healthy_id = rig.channel(&healthy, &["m"], json!({})).await;
    broken.fail_always(500);
    let reply: Value = rig.chat("retry-500", &ask("m")).await.json().await.unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Hello from healthy"
    );
    assert_eq!((broken.requests(), healthy.requests()), (1, 1));
    let row = rig.log("retry-500").await;
    assert_eq!(ids(&row), vec![broken_id, healthy_id]);
    assert_eq!(row["status"], 200);
}

/// A 429 before a stream's first byte is retried on another channel, which then streams.
#[tokio::test]
async fn upstream_429_retries_a_stream_on_another_channel() {
    let rig = Rig::start().await;
    let (limited, healthy) = (upstream("limited").await, upstream("healthy").await);
    rig.channel(&limited, &["m"], json!({"priority": 1})).await;
    rig.channel(&healthy, &["m"], json!({})).await;
    limited.fail_next(429, 1);
    let text = rig
        .chat("retry-429", &ask_stream("m"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("healthy-0") && text.contains("[DONE]"),
        "{text}"
    );
    assert_eq!((limited.requests(), healthy.requests()), (1, 1));
    // The failure was only for the next request: the high tier serves again.
    rig.chat("after-429", &ask("m")).await;
    assert_eq!(limited.requests(), 2);
}

/// A stream that breaks after its first bytes is not retried: the client sees it cut short.
#[tokio::test]
async fn no_retry_once_streaming_started() {
    let rig = Rig::start().await;
    let (flaky, spare) = (upstream("flaky").await, upstream("spare").await);
    let flaky_id = rig.channel(&flaky, &["m"], json!({"priority": 1})).await;
    rig.channel(&spare, &["m"], json!({})).await;
    flaky.configure(|behavior| {
        behavior.chunks = 5;
        behavior.stop_after = Some(3);
        behavior.chunk_delay = Duration::from_millis(50);
    });
    let response = rig.chat("cut-short", &ask_stream("m")).await;
    assert_eq!(response.status(), 200);
    let mut seen = String::new();
    let mut body = response.bytes_stream();
    let mut broke = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the client must see the stream break: {seen}");
    assert!(
        seen.contains("flaky-1") && !seen.contains("flaky-3") && !seen.contains("[DONE]"),
        "{seen}"
    );
    assert_eq!(spare.requests(), 0);
    let row = rig.log("cut-short").await;
    assert_eq!(ids(&row), vec![flaky_id]);
    assert_eq!(row["error_code"], "upstream_error");
}

/// When every candidate fails the client gets 502 with the last upstream error, and at most max_retries + 1 channels are tried.
#[tokio::test]
async fn all_candidates_failing_is_502() {
    let rig = Rig::start().await;
    let mut fakes = Vec::new();
    for index in 0..4 {
        let fake = upstream(&format!("down{index}")).await;
        fake.fail_always(500);
        rig.channel(&fake, &["m"], json!({})).await;
        fakes.push(fake);
    }
    let response = rig.chat("all-fail", &ask("m")).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_error", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("500") && message.contains("says 500"),
        "{message}"
    );
    assert!(!message.contains("sk-upstream"), "{message}");
    assert_eq!(fakes.iter().map(FakeUpstream::requests).sum::<usize>(), 3);
    let row = rig.log("all-fail").await;
    assert_eq!((ids(&row).len(), row["status"].as_u64()), (3, Some(502)));
    assert_eq!(row["error_code"], "upstream_error");
}

/// When no candidate can be reached at all the client gets 503 upstream_unavailable.
#[tokio::test]
async fn unreachable_candidates_are_503() {
    let rig = Rig::start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    rig.gateway
        .create_channel(json!({"name": "gone", "base_url": format!("http://{closed}/v1"), "key": "sk-x", "models": ["m"]}))
        .await;
    let response = rig.chat("unreachable", &ask("m")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable", "{body}");
}

/// A slow first byte counts as a timeout and moves on to the next channel.
#[tokio::test]
async fn first_byte_timeout_retries() {
    let rig =
        Rig::start_with(|config| config.first_byte_timeout = Duration::from_millis(300)).await;
    let (slow, fast) = (upstream("slow").await, upstream("fast").await);
    rig.channel(&slow, &["m"], json!({"priority": 1})).await;
    rig.channel(&fast, &["m"], json!({})).await;
    slow.configure(|behavior| behavior.first_byte_delay = Duration::from_secs(3));
    let text = rig
        .chat("slow-1", &ask_stream("m"))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("fast-0"), "{text}");
}

/// An upstream 400 is passed through verbatim and not retried.
#[tokio::test]
async fn upstream_400_passes_through() {
    let rig = Rig::start().await;
    let (strict, spare) = (upstream("strict").await, upstream("spare").await);
    rig.channel(&strict, &["m"], json!({"priority": 1})).await;
    rig.channel(&spare, &["m"], json!({})).await;
    strict.fail_always(400);
    let response = rig.chat("pass-400", &ask("m")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "fake strict says 400");
    assert_eq!(body["error"]["code"], "fake");
    assert_eq!(spare.requests(), 0);
    let row = rig.log("pass-400").await;
    assert_eq!(
        (row["status"].as_u64(), row["error_code"].as_str()),
        (Some(400), Some("upstream_rejected"))
    );
}
