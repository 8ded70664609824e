//! Runtime settings and overview stats over real sockets: PATCH validation,
//! values that win over the config across a restart, and that the relay
//! actually uses; stats that add up to the requests made.

use std::time::Duration;

use chrono_tz::Tz;
use reqwest::Method;
use serde_json::{Value, json};

use crate::daily::{DayRig, capped_at, upstream_reporting, utc};
use crate::support::gateway::TestGateway;
use crate::support::upstream::FakeUpstream;

async fn patch(gateway: &TestGateway, body: Value) -> reqwest::Response {
    gateway
        .admin(Method::PATCH, "/api/settings")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn settings(gateway: &TestGateway) -> Value {
    gateway
        .admin(Method::GET, "/api/settings")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// GET shows humantime durations; PATCH changes only what it names; a bad field is a 400 naming it, storing nothing.
#[tokio::test]
async fn settings_round_trip_and_validate() {
    let gateway = TestGateway::start_with(|config| config.timezone = Tz::UTC).await;
    let before = settings(&gateway).await;
    assert_eq!(before["timezone"], "UTC");
    assert_eq!(before["connect_timeout"], "2s");
    assert_eq!(before["max_retries"], 2);
    let response = patch(
        &gateway,
        json!({"timezone": "Asia/Shanghai", "first_byte_timeout": "90s"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let after: Value = response.json().await.unwrap();
    assert_eq!(after["timezone"], "Asia/Shanghai");
    assert_eq!(after["first_byte_timeout"], "1m 30s");
    assert_eq!(after["max_retries"], 2);
    for (body, field) in [
        (
            json!({"max_retries": 1, "timezone": "Nowhere/Land"}),
            "timezone",
        ),
        (json!({"max_retries": 99}), "max_retries"),
        (json!({"stream_idle_timeout": "0s"}), "stream_idle_timeout"),
        (json!({"auto_disable_rules": [""]}), "auto_disable_rules.0"),
        (json!({"colour": "blue"}), "colour"),
    ] {
        let response = patch(&gateway, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], field, "{error}");
    }
    assert_eq!(settings(&gateway).await, after);
}

/// Stored settings survive a restart and win over the flags the new start is given.
#[tokio::test]
async fn stored_settings_win_across_a_restart() {
    let mut first = TestGateway::start().await;
    let response = patch(
        &first,
        json!({"max_retries": 0, "auto_disable_rules": ["out of credit"]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    first.stop().await;
    let dir = first.data_dir.path().to_path_buf();
    let second = TestGateway::start_with(|config| {
        config.data_dir = dir;
        config.max_retries = 5;
        config.connect_timeout = Duration::from_secs(3);
    })
    .await;
    let now = settings(&second).await;
    assert_eq!(now["max_retries"], 0);
    assert_eq!(now["auto_disable_rules"], json!(["out of credit"]));
    // Not changed through the API, so the new start's value applies.
    assert_eq!(now["connect_timeout"], "3s");
}

/// max_retries 0 means one upstream attempt: the second channel is never tried.
#[tokio::test]
async fn max_retries_is_used_at_once() {
    let gateway = TestGateway::start().await;
    let (a, b) = (
        FakeUpstream::start("a").await.unwrap(),
        FakeUpstream::start("b").await.unwrap(),
    );
    a.fail_always(503);
    b.fail_always(503);
    gateway.openai_channel("a", &a.base_url(), &["m"]).await;
    gateway.openai_channel("b", &b.base_url(), &["m"]).await;
    let key = gateway.default_key().await;
    let ask = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let send = || {
        gateway
            .relay(&key, "/v1/chat/completions")
            .json(&ask)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 502);
    assert_eq!(a.requests() + b.requests(), 2);
    assert_eq!(
        patch(&gateway, json!({"max_retries": 0})).await.status(),
        200
    );
    assert!(send().await.unwrap().status().is_server_error());
    assert_eq!(a.requests() + b.requests(), 3);
}

/// Changing the global zone moves a capped channel's day: 00:30 in Shanghai is a new day while UTC is still capped.
#[tokio::test]
async fn timezone_change_shifts_a_capped_channels_day() {
    // 23:30 in Shanghai, 15:30 UTC.
    let rig = DayRig::start(utc(2026, 11, 28, 15, 30, 0), Tz::UTC).await;
    let fake = upstream_reporting("zone", 1_000).await;
    rig.channel(&fake, capped_at(1_000)).await;
    assert_eq!(rig.chat("fill").await.status(), 200);
    // 00:30 in Shanghai on the 29th, still the 28th in UTC: capped.
    rig.clock.set(utc(2026, 11, 28, 16, 30, 0));
    assert_eq!(rig.chat("utc-capped").await.status(), 429);
    assert_eq!(
        patch(&rig.gateway, json!({"timezone": "Asia/Shanghai"}))
            .await
            .status(),
        200
    );
    assert_eq!(rig.chat("shanghai-new-day").await.status(), 200);
    assert_eq!(fake.requests(), 2);
}

/// The stats add up to the requests made: counts, errors and tokens, in the current hour's bucket.
#[tokio::test]
async fn stats_match_the_requests_made() {
    let gateway = TestGateway::start().await;
    let fake = upstream_reporting("stats", 40).await;
    gateway
        .openai_channel("stats", &fake.base_url(), &["m"])
        .await;
    let key = gateway.default_key().await;
    let ask = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..3 {
        let response = gateway
            .relay(&key, "/v1/chat/completions")
            .json(&ask)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let unknown = json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]});
    let response = gateway
        .relay(&key, "/v1/chat/completions")
        .json(&unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let logged = gateway.wait_for_logs(4).await;
    let stats: Value = gateway
        .admin(Method::GET, "/api/stats?hours=24")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logged_tokens: u64 = logged
        .iter()
        .map(|row| row["total_tokens"].as_u64().unwrap())
        .sum();
    assert_eq!(stats["requests"], 4, "{stats}");
    assert_eq!(stats["errors"], 1);
    assert_eq!(stats["total_tokens"], 120);
    assert_eq!(stats["total_tokens"], logged_tokens);
    assert_eq!(stats["prompt_tokens"], 30);
    assert_eq!(stats["completion_tokens"], 90);
    let buckets = stats["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24);
    assert_eq!(buckets[23]["requests"], 4);
    assert_eq!(buckets[23]["total_tokens"], 120);
    let bad = gateway
        .admin(Method::GET, "/api/stats?hours=169")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
