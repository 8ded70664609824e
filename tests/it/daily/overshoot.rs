//! The in-flight reservation bound: with 64 concurrent clients the capped
//! channel's final count exceeds its cap by at most one request's tokens.

use std::time::Duration;

use chrono_tz::Tz;
use futures_util::StreamExt;
use serde_json::json;
use sluicegate::model::ChannelId;

use super::{DayRig, date, upstream_reporting, utc};

const CAP: u64 = 20_000;
const PER_REQUEST: u64 = 800;

/// Cap 20,000, 64 concurrent clients, ~800-token requests with max_tokens: the capped channel ends within one request of its cap, counted exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_overshoot_by_at_most_one_request() {
    let rig = DayRig::start(utc(2026, 11, 28, 12, 0, 0), Tz::UTC).await;
    let (free, paid) = (
        upstream_reporting("free", PER_REQUEST).await,
        upstream_reporting("paid", PER_REQUEST).await,
    );
    for fake in [&free, &paid] {
        fake.configure(|behavior| behavior.first_byte_delay = Duration::from_millis(20));
    }
    let free_id = rig
        .channel(
            &free,
            json!({"priority": 10, "settings": {"daily_token_limit": CAP}}),
        )
        .await;
    rig.channel(&paid, json!({"priority": 0})).await;
    // The prompt estimate plus max_tokens covers the 800 tokens each reply reports.
    let body = json!({
        "model": "m",
        "messages": [{"role": "user", "content": "Count to ten."}],
        "max_tokens": PER_REQUEST,
    });
    let statuses: Vec<u16> = futures_util::stream::iter(0..640)
        .map(|index| {
            let (rig, body) = (&rig, &body);
            async move {
                let key = &rig.key;
                let response = rig.chat_as(key, &format!("crowd-{index}"), body).await;
                response.status().as_u16()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");

    let used = rig.used(free_id, date(2026, 11, 28));
    assert_eq!(
        used,
        free.reported_tokens(),
        "counted exactly what the upstream reported"
    );
    assert!(used >= CAP, "the free channel reached its cap: {used}");
    assert!(
        used <= CAP + PER_REQUEST,
        "overshoot beyond one request: {used}"
    );
    let view = rig
        .state()
        .counters
        .view(ChannelId(free_id), Tz::UTC, utc(2026, 11, 28, 12, 0, 0));
    assert_eq!(view.reserved, 0, "every reservation was settled");
    assert_eq!(free.requests() + paid.requests(), 640);
}
