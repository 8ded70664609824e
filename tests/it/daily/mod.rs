//! The per-channel daily token limit over real sockets, with an injected
//! `ManualClock`: days rolling over (DST and per-channel zones included),
//! the cap enforced on every routing path, the concurrency bound of the
//! in-flight reservations, and counts that survive a failing store.
//!
//! `rollover` covers days and zones, `enforcement` the 429s and retries,
//! `affinity` sticky routing, `overshoot` concurrency, `durability` the store.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use sluicegate::AppState;
use sluicegate::clock::ManualClock;
use sluicegate::model::ChannelId;

use crate::support::gateway::TestGateway;
use crate::support::upstream::{FakeUpstream, FakeUsage};

mod affinity;
mod durability;
mod enforcement;
mod events;
mod overshoot;
mod rollover;

/// A gateway on a manual clock, with a key in the default group.
pub(crate) struct DayRig {
    pub gateway: TestGateway,
    pub clock: Arc<ManualClock>,
    pub key: String,
}

impl DayRig {
    /// Starts at `at`, with `zone` as the global `--timezone`.
    pub(crate) async fn start(at: DateTime<Utc>, zone: Tz) -> DayRig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let clock = Arc::new(ManualClock::new(at));
        let gateway =
            TestGateway::start_with_clock(Arc::clone(&clock), |config| config.timezone = zone)
                .await;
        let key = gateway.default_key().await;
        DayRig {
            gateway,
            clock,
            key,
        }
    }

    pub(crate) fn state(&self) -> &AppState {
        self.gateway.state()
    }

    pub(crate) fn clock_now(&self) -> DateTime<Utc> {
        use sluicegate::clock::Clock;
        self.clock.now()
    }

    /// Adds a channel for `upstream` serving model `m`, with extra fields
    /// (priority, settings…) merged in; returns its id.
    pub(crate) async fn channel(&self, upstream: &FakeUpstream, extra: Value) -> i64 {
        let mut body = json!({
            "name": upstream.name(),
            "base_url": upstream.base_url(),
            "key": format!("sk-upstream-{}", upstream.name()),
            "models": ["m"],
        });
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        self.gateway.create_channel(body).await["id"]
            .as_i64()
            .unwrap()
    }

    /// A new API key bound to `channel`.
    pub(crate) async fn bound_key(&self, channel: i64) -> String {
        let body = json!({"name": format!("bound-{channel}"), "channel_id": channel});
        self.gateway.create_token(body).await.1
    }

    /// POSTs a chat completion for model `m` with `key`.
    pub(crate) async fn chat_as(
        &self,
        key: &str,
        request_id: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.gateway
            .relay(key, "/v1/chat/completions")
            .header("x-request-id", request_id)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a chat completion with the rig's default key.
    pub(crate) async fn chat(&self, request_id: &str) -> reqwest::Response {
        self.chat_as(&self.key, request_id, &ask()).await
    }

    /// Tokens counted in memory for `channel` on `date`.
    pub(crate) fn used(&self, channel: i64, date: NaiveDate) -> u64 {
        self.state()
            .counters
            .used_on(ChannelId(channel), date)
            .unwrap_or(0)
    }
}

pub(crate) fn ask() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "Say hello"}]})
}

pub(crate) fn utc(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap()
}

pub(crate) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub(crate) fn zone(name: &str) -> Tz {
    name.parse().unwrap()
}

/// A fake upstream that reports `total` tokens per request.
pub(crate) async fn upstream_reporting(name: &str, total: u64) -> FakeUpstream {
    let fake = FakeUpstream::start(name).await.unwrap();
    fake.configure(|behavior| {
        behavior.usage = Some(FakeUsage {
            prompt: total / 4,
            completion: total - total / 4,
            total,
        })
    });
    fake
}

/// The settings of a channel capped at `limit` tokens a day.
pub(crate) fn capped_at(limit: u64) -> Value {
    json!({"settings": {"daily_token_limit": limit}})
}

/// Asserts a 429 with `code` and `Retry-After: seconds`; returns the body.
pub(crate) async fn assert_429(response: reqwest::Response, code: &str, seconds: u64) -> Value {
    assert_eq!(response.status(), 429);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(retry_after, Some(seconds.to_string()), "{body}");
    body
}
