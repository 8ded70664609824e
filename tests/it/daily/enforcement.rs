//! The cap on every path: a bound key gets its channel's localized 429, a
//! group whose candidates are all capped gets 429 until the earliest reset,
//! and retries skip capped channels.

use chrono_tz::Tz;
use serde_json::json;

use super::{DayRig, assert_429, capped_at, upstream_reporting, utc};
use crate::relay::{ids, log_row};

/// A key bound to a capped channel gets 429 channel_daily_token_limit_exceeded with Retry-After, localized in en, zh-CN and zh-TW.
#[tokio::test]
async fn bound_key_429_is_localized() {
    let rig = DayRig::start(utc(2026, 11, 28, 12, 0, 0), Tz::UTC).await;
    let fake = upstream_reporting("free-tier", 1_000).await;
    let id = rig.channel(&fake, capped_at(1_000)).await;
    let key = rig.bound_key(id).await;
    assert_eq!(
        rig.chat_as(&key, "bound-ok", &super::ask()).await.status(),
        200
    );

    let cases = [
        ("en", "free-tier", "daily token limit", "12 h 0 m"),
        ("zh-CN", "free-tier", "渠道", "12小时 0分钟"),
        ("zh-TW,zh;q=0.9", "free-tier", "管道", "12小時 0分鐘"),
    ];
    let mut messages = Vec::new();
    for (language, name, phrase, wait) in cases {
        let response = rig
            .gateway
            .relay(&key, "/v1/chat/completions")
            .header("accept-language", language)
            .json(&super::ask())
            .send()
            .await
            .unwrap();
        let body = assert_429(response, "channel_daily_token_limit_exceeded", 12 * 3_600).await;
        let message = body["error"]["message"].as_str().unwrap().to_string();
        for expected in [name, phrase, wait] {
            assert!(message.contains(expected), "{language}: {message}");
        }
        assert!(body["error"]["param"].is_null(), "{body}");
        messages.push(message);
    }
    assert_ne!(messages[0], messages[1]);
    assert_ne!(messages[1], messages[2]);
    assert_eq!(
        fake.requests(),
        1,
        "capped requests never reach the upstream"
    );
}

/// When every candidate is capped the client gets 429 daily_token_limit_exhausted, retrying after the earliest reset among them.
#[tokio::test]
async fn all_capped_is_429_until_the_earliest_reset() {
    // 12:00 UTC: UTC resets in 12 h, Shanghai in 4 h, New York in 17 h.
    let rig = DayRig::start(utc(2026, 11, 28, 12, 0, 0), Tz::UTC).await;
    let zones = ["UTC", "Asia/Shanghai", "America/New_York"];
    let mut fakes = Vec::new();
    for zone in zones {
        let fake = upstream_reporting(&format!("capped-{zone}"), 1_000).await;
        let settings =
            json!({"settings": {"daily_token_limit": 1_000, "daily_reset_timezone": zone}});
        rig.channel(&fake, settings).await;
        fakes.push(fake);
    }
    for index in 0..3 {
        let response = rig.chat(&format!("fill-{index}")).await;
        assert_eq!(response.status(), 200, "request {index}");
    }
    assert!(fakes.iter().all(|fake| fake.requests() == 1));
    let body = assert_429(
        rig.chat("all-capped").await,
        "daily_token_limit_exhausted",
        4 * 3_600,
    )
    .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`m`") && message.contains("4 h 0 m"),
        "{message}"
    );
    assert!(fakes.iter().all(|fake| fake.requests() == 1));
}

/// A retry never lands on a capped channel: A fails with 500, capped B is skipped, C serves.
#[tokio::test]
async fn retry_skips_a_capped_channel() {
    let rig = DayRig::start(utc(2026, 11, 28, 12, 0, 0), Tz::UTC).await;
    let (a, b, c) = (
        upstream_reporting("a", 100).await,
        upstream_reporting("b", 1_000).await,
        upstream_reporting("c", 100).await,
    );
    let a_id = rig.channel(&a, json!({"priority": 10})).await;
    let b_id = rig
        .channel(
            &b,
            json!({"priority": 5, "settings": {"daily_token_limit": 1_000}}),
        )
        .await;
    let c_id = rig.channel(&c, json!({"priority": 0})).await;
    let b_key = rig.bound_key(b_id).await;
    assert_eq!(
        rig.chat_as(&b_key, "cap-b", &super::ask()).await.status(),
        200
    );
    a.fail_always(500);
    for index in 0..5 {
        let request_id = format!("skip-{index}");
        assert_eq!(rig.chat(&request_id).await.status(), 200);
        let row = log_row(&rig.gateway, &request_id).await;
        assert_eq!(ids(&row), vec![a_id, c_id]);
    }
    assert_eq!((a.requests(), b.requests(), c.requests()), (5, 1, 5));
}
