//! Channel affinity: related requests stick to the channel that served them,
//! and fall through to normal selection, with a logged event, once that
//! channel is capped or disabled.

use chrono_tz::Tz;
use serde_json::{Value, json};

use super::events::{self, Captured};
use super::{DayRig, assert_429, capped_at, upstream_reporting, utc};
use crate::support::upstream::FakeUpstream;

fn as_user(user: &str) -> Value {
    let mut body = super::ask();
    body["user"] = json!(user);
    body
}

fn fallthrough(request_id: &str) -> Vec<Captured> {
    events::events(|event| {
        event.field("message") == Some("affinity_fallthrough")
            && event.field("request_id") == Some(request_id)
    })
}

/// Requests with the same `user` stick to one channel; when it is capped they fall through to the other, clearing the entry and logging affinity_fallthrough with reason daily_limit.
#[tokio::test]
async fn affinity_falls_through_a_capped_channel() {
    events::capture();
    let rig = DayRig::start(utc(2026, 11, 28, 12, 0, 0), Tz::UTC).await;
    let (left, right) = (
        upstream_reporting("left", 1_000).await,
        upstream_reporting("right", 1_000).await,
    );
    let left_id = rig.channel(&left, capped_at(5_000)).await;
    let right_id = rig.channel(&right, capped_at(5_000)).await;
    let fakes: [(&FakeUpstream, i64); 2] = [(&left, left_id), (&right, right_id)];

    // Five requests: the first picks a channel, the other four stick to it and cap it.
    for index in 0..5 {
        let response = rig
            .chat_as(&rig.key, &format!("alice-{index}"), &as_user("alice"))
            .await;
        assert_eq!(response.status(), 200);
    }
    let (sticky, other) = if left.requests() == 5 {
        (fakes[0], fakes[1])
    } else {
        (fakes[1], fakes[0])
    };
    assert_eq!((sticky.0.requests(), other.0.requests()), (5, 0));
    assert!(fallthrough("alice-4").is_empty());

    let response = rig
        .chat_as(&rig.key, "alice-capped", &as_user("alice"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!((sticky.0.requests(), other.0.requests()), (5, 1));
    let logged = fallthrough("alice-capped");
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].field("reason"), Some("daily_limit"));
    assert_eq!(
        logged[0].field("channel"),
        Some(sticky.1.to_string().as_str())
    );

    // The entry now points at the channel that served; no further fall-through.
    let response = rig
        .chat_as(&rig.key, "alice-after", &as_user("alice"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(other.0.requests(), 2);
    assert!(fallthrough("alice-after").is_empty());

    // Disabling it falls through with reason "disabled"; every other candidate is capped.
    let path = format!("/api/channels/{}", other.1);
    let response = rig
        .gateway
        .admin(reqwest::Method::PATCH, &path)
        .json(&json!({"status": "disabled"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = rig
        .chat_as(&rig.key, "alice-disabled", &as_user("alice"))
        .await;
    assert_429(response, "daily_token_limit_exhausted", 12 * 3_600).await;
    let logged = fallthrough("alice-disabled");
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].field("reason"), Some("disabled"));
}

/// The x-session-id header is an affinity key too, and different sessions may land anywhere.
#[tokio::test]
async fn session_header_is_an_affinity_key() {
    let rig = DayRig::start(utc(2026, 11, 28, 12, 0, 0), Tz::UTC).await;
    let fakes = [
        upstream_reporting("s1", 10).await,
        upstream_reporting("s2", 10).await,
        upstream_reporting("s3", 10).await,
    ];
    for fake in &fakes {
        rig.channel(fake, json!({})).await;
    }
    for index in 0..12 {
        let response = rig
            .gateway
            .relay(&rig.key, "/v1/chat/completions")
            .header("x-session-id", "session-42")
            .json(&super::ask())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {index}");
    }
    let served: Vec<usize> = fakes.iter().map(FakeUpstream::requests).collect();
    assert!(
        served.contains(&12),
        "one channel served the whole session: {served:?}"
    );
}
