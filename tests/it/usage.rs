//! The daily-limit admin surface over real sockets: validation of the limit
//! and zone settings, the usage APIs (`/api/channels/{id}/usage`,
//! `/api/usage`), `daily_usage` in channel reads, and the admin reset.
//!
//! The gateway runs on a `ManualClock` fixed at 2026-03-10 20:00 UTC (already
//! 2026-03-11 04:00 in Shanghai), with UTC as the global zone, so every date
//! and reset time below is exact. Tokens are counted by relaying through the
//! fake upstream, which reports 11 + 7 = 18 tokens a request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluicegate::clock::ManualClock;
use sluicegate::command::UsageCommand;
use sluicegate::config::Config;
use sluicegate::daily::UsageDelta;
use sluicegate::model::ChannelId;

use crate::support::gateway::{ADMIN_TOKEN, TestGateway};
use crate::support::poll::{self, PATIENCE};
use crate::support::upstream::FakeUpstream;

/// Tokens the fake upstream reports for every request.
const PER_REQUEST: u64 = 18;

fn start_instant() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 20, 0, 0).unwrap()
}

/// A gateway on a manual clock, a fake upstream, and an API key.
struct Rig {
    gateway: TestGateway,
    clock: Arc<ManualClock>,
    upstream: FakeUpstream,
    key: String,
    /// Relay requests sent so far: each ends in one request-log row.
    relayed: AtomicUsize,
}

impl Rig {
    async fn start() -> Rig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let clock = Arc::new(ManualClock::new(start_instant()));
        let data_dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.path().to_path_buf(),
            admin_token: Some(ADMIN_TOKEN.to_string()),
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(5),
            stream_idle_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            timezone: chrono_tz::Tz::UTC,
            ..Config::default()
        };
        let running = sluicegate::server::start_with_clock(config, clock.clone())
            .await
            .unwrap();
        let gateway = TestGateway {
            addr: running.addr,
            admin_token: ADMIN_TOKEN.to_string(),
            client: reqwest::Client::new(),
            running: Some(running),
            data_dir,
        };
        let key = gateway.default_key().await;
        let upstream = FakeUpstream::start("fake").await.unwrap();
        Rig {
            gateway,
            clock,
            upstream,
            key,
            relayed: AtomicUsize::new(0),
        }
    }

    /// A channel on the fake upstream serving `model`, with these settings; returns its id.
    async fn channel(&self, model: &str, settings: Value) -> i64 {
        let created = self
            .gateway
            .create_channel(json!({
                "name": model,
                "base_url": self.upstream.base_url(),
                "key": "sk-upstream-fake-key",
                "models": [model],
                "settings": settings,
            }))
            .await;
        created["id"].as_i64().unwrap()
    }

    /// Relays one chat completion for `model`; returns the status.
    async fn relay(&self, model: &str) -> StatusCode {
        self.relayed.fetch_add(1, Ordering::SeqCst);
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16});
        let response = self
            .gateway
            .relay(&self.key, "/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        response.bytes().await.unwrap();
        status
    }

    /// Relays a streamed chat completion that asks for usage; returns the status.
    async fn relay_stream(&self, model: &str) -> StatusCode {
        self.relayed.fetch_add(1, Ordering::SeqCst);
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}],
            "stream": true, "stream_options": {"include_usage": true}});
        let response = self
            .gateway
            .relay(&self.key, "/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        response.bytes().await.unwrap();
        status
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        call_as(&self.gateway, method, path, body, None).await
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    /// `GET /api/channels/{id}/usage` once every request relayed so far is
    /// over, checked to show exactly `expected` used. A request is counted
    /// before its log row is queued, so once every row is stored no count
    /// can still be on its way.
    async fn settled_usage(&self, id: i64, expected: u64) -> Value {
        let relayed = self.relayed.load(Ordering::SeqCst);
        self.gateway.wait_for_logs(relayed).await;
        let usage = self.get(&format!("/api/channels/{id}/usage")).await;
        assert_eq!(usage["used"].as_u64(), Some(expected), "{usage}");
        usage
    }

    /// The counter store's history of channel `id` from `since` on.
    async fn stored(&self, id: i64, since: NaiveDate) -> Vec<(NaiveDate, u64)> {
        let store = &self.gateway.state().store;
        store.usage_history(ChannelId(id), since).await.unwrap()
    }

    /// Stores a count for a past day through the same command the flusher uses.
    async fn seed(&self, id: i64, date: NaiveDate, tokens: u64) {
        let state = &self.gateway.running.as_ref().unwrap().state;
        let deltas = vec![UsageDelta {
            channel_id: ChannelId(id),
            date,
            tokens,
        }];
        state
            .apply(UsageCommand::AddUsage { deltas })
            .await
            .unwrap();
    }
}

async fn call_as(
    gateway: &TestGateway,
    method: Method,
    path: &str,
    body: Option<Value>,
    language: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = gateway.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(language) = language {
        request = request.header("accept-language", language);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn assert_invalid(status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
}

/// Bad daily limits (negative, fraction, string, over 10^15, boolean) are 400s naming the field, on create and PATCH, and change nothing.
#[tokio::test]
async fn bad_daily_limits_are_rejected_by_field() {
    let rig = Rig::start().await;
    let id = rig.channel("m", json!({"daily_token_limit": 500})).await;
    let path = format!("/api/channels/{id}");
    let stored = rig.get(&path).await;
    let bad = [
        json!(-5),
        json!(1.5),
        json!("1000"),
        json!(1_000_000_000_000_001_u64),
        json!(true),
    ];
    for limit in bad {
        let body = json!({"name": "new", "base_url": "https://example.com/v1", "key": "sk-aaaaaaaaaa",
            "models": ["x"], "settings": {"daily_token_limit": limit}});
        let (status, error) = rig.call(Method::POST, "/api/channels", Some(body)).await;
        assert_invalid(status, &error, "settings.daily_token_limit");
        let patch = json!({"name": "renamed", "settings": {"daily_token_limit": limit}});
        let (status, error) = rig.call(Method::PATCH, &path, Some(patch)).await;
        assert_invalid(status, &error, "settings.daily_token_limit");
        assert_eq!(rig.get(&path).await, stored, "after PATCH with {limit}");
    }
    assert_eq!(rig.get("/api/channels").await["total"], 1);
}

/// A limit of 0, null, or 10^15 exactly is accepted; 0 and null mean unlimited.
#[tokio::test]
async fn zero_null_and_maximum_limits_are_accepted() {
    let rig = Rig::start().await;
    let zero = rig.channel("zero", json!({"daily_token_limit": 0})).await;
    let null = rig
        .channel("null", json!({"daily_token_limit": null}))
        .await;
    let max = rig
        .channel(
            "max",
            json!({"daily_token_limit": 1_000_000_000_000_000_u64}),
        )
        .await;
    for id in [zero, null] {
        let channel = rig.get(&format!("/api/channels/{id}")).await;
        assert_eq!(channel["daily_usage"]["limit"], 0, "{channel}");
        assert_eq!(
            channel["daily_usage"]["remaining"],
            Value::Null,
            "{channel}"
        );
    }
    let channel = rig.get(&format!("/api/channels/{max}")).await;
    assert_eq!(channel["daily_usage"]["limit"], 1_000_000_000_000_000_u64);
    let path = format!("/api/channels/{max}");
    for limit in [json!(0), json!(null)] {
        let patch = json!({"settings": {"daily_token_limit": limit}});
        let (status, patched) = rig.call(Method::PATCH, &path, Some(patch)).await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["daily_usage"]["limit"], 0, "{patched}");
    }
}

/// A reset zone that is not an IANA name is a 400 naming the field, on create and PATCH.
#[tokio::test]
async fn bad_zones_are_rejected_by_field() {
    let rig = Rig::start().await;
    let id = rig.channel("m", json!({})).await;
    let path = format!("/api/channels/{id}");
    let stored = rig.get(&path).await;
    for zone in [json!("Mars/Olympus"), json!("UTC+8"), json!(8)] {
        let body = json!({"name": "z", "base_url": "https://example.com/v1", "key": "sk-aaaaaaaaaa",
            "models": ["x"], "settings": {"daily_reset_timezone": zone}});
        let (status, error) = rig.call(Method::POST, "/api/channels", Some(body)).await;
        assert_invalid(status, &error, "settings.daily_reset_timezone");
        let patch = json!({"settings": {"daily_reset_timezone": zone}});
        let (status, error) = rig.call(Method::PATCH, &path, Some(patch)).await;
        assert_invalid(status, &error, "settings.daily_reset_timezone");
        assert_eq!(rig.get(&path).await, stored);
    }
}

/// A bad limit's message follows Accept-Language (zh-CN, zh-TW, en) while `code` and `field` stay the same.
#[tokio::test]
async fn limit_errors_are_localized() {
    let rig = Rig::start().await;
    let body = json!({"name": "n", "base_url": "https://example.com/v1", "key": "sk-aaaaaaaaaa",
        "models": ["x"], "settings": {"daily_token_limit": -1}});
    let cases = [
        (Some("zh-CN"), "必须是 0 到"),
        (Some("zh-TW,zh;q=0.8"), "必須是 0 到"),
        (None, "must be a whole number of tokens"),
    ];
    for (language, expected) in cases {
        let (status, error) = call_as(
            &rig.gateway,
            Method::POST,
            "/api/channels",
            Some(body.clone()),
            language,
        )
        .await;
        assert_invalid(status, &error, "settings.daily_token_limit");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{language:?}: {message}");
        assert!(message.contains("settings.daily_token_limit"), "{message}");
    }
}

/// The usage API's shape: dates in the channel's zone, RFC 3339 reset, limit and remaining, and remaining null without a limit.
#[tokio::test]
async fn usage_shape_with_and_without_a_limit() {
    let rig = Rig::start().await;
    let plain = rig.channel("plain", json!({})).await;
    let capped = rig
        .channel(
            "shanghai",
            json!({"daily_token_limit": 1000, "daily_reset_timezone": "Asia/Shanghai"}),
        )
        .await;

    let usage = rig.get(&format!("/api/channels/{plain}/usage")).await;
    assert_eq!(
        usage,
        json!({"channel_id": plain, "date": "2026-03-10", "timezone": "UTC", "used": 0, "reserved": 0,
            "limit": 0, "remaining": null, "resets_at": "2026-03-11T00:00:00Z",
            "history": [{"date": "2026-03-10", "used": 0}]})
    );
    let usage = rig.get(&format!("/api/channels/{capped}/usage")).await;
    assert_eq!(
        usage,
        json!({"channel_id": capped, "date": "2026-03-11", "timezone": "Asia/Shanghai", "used": 0,
            "reserved": 0, "limit": 1000, "remaining": 1000, "resets_at": "2026-03-11T16:00:00Z",
            "history": [{"date": "2026-03-11", "used": 0}]})
    );
    let channel = rig.get(&format!("/api/channels/{capped}")).await;
    assert_eq!(
        channel["daily_usage"],
        json!({"used": 0, "limit": 1000, "remaining": 1000, "resets_at": "2026-03-11T16:00:00Z", "capped": false})
    );
    for path in [
        "/api/channels/987654/usage",
        "/api/channels/987654/usage/reset",
    ] {
        let method = if path.ends_with("reset") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, error) = rig.call(method, path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error["error"]["code"], "not_found");
    }
    let (status, error) = rig.call(Method::GET, "/api/channels/abc/usage", None).await;
    assert_invalid(status, &error, "id");
}

/// After relaying plain and streamed requests, `used` equals exactly the tokens the fake upstream reported, everywhere it is shown.
#[tokio::test]
async fn usage_matches_the_upstream_tokens_exactly() {
    let rig = Rig::start().await;
    let id = rig.channel("m", json!({"daily_token_limit": 10_000})).await;
    for _ in 0..3 {
        assert_eq!(rig.relay("m").await, StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(rig.relay_stream("m").await, StatusCode::OK);
    }
    let expected = 5 * PER_REQUEST;
    let usage = rig.settled_usage(id, expected).await;
    assert_eq!(usage["reserved"], 0, "{usage}");
    assert_eq!(usage["remaining"], 10_000 - expected, "{usage}");
    assert_eq!(
        usage["history"],
        json!([{"date": "2026-03-10", "used": expected}])
    );
    let channel = rig.get(&format!("/api/channels/{id}")).await;
    assert_eq!(channel["daily_usage"]["used"], expected);
    let day = rig.get("/api/usage").await;
    assert_eq!(day["items"][0]["used"], expected, "{day}");
}

/// `daily_usage.capped` turns true once used reaches the limit while `status` stays enabled; the list filters on it.
#[tokio::test]
async fn capped_is_shown_beside_an_unchanged_status() {
    let rig = Rig::start().await;
    let id = rig.channel("m", json!({"daily_token_limit": 40})).await;
    let other = rig.channel("other", json!({})).await;
    for _ in 0..2 {
        assert_eq!(rig.relay("m").await, StatusCode::OK);
    }
    rig.settled_usage(id, 2 * PER_REQUEST).await;
    let channel = rig.get(&format!("/api/channels/{id}")).await;
    assert_eq!(channel["daily_usage"]["capped"], false, "{channel}");
    assert_eq!(channel["daily_usage"]["remaining"], 4);

    assert_eq!(rig.relay("m").await, StatusCode::OK);
    rig.settled_usage(id, 3 * PER_REQUEST).await;
    let channel = rig.get(&format!("/api/channels/{id}")).await;
    assert_eq!(channel["status"], "enabled", "{channel}");
    assert_eq!(
        channel["daily_usage"],
        json!({"used": 54, "limit": 40, "remaining": 0, "resets_at": "2026-03-11T00:00:00Z", "capped": true})
    );
    let ids = |list: &Value| -> Vec<i64> {
        let items = list["items"].as_array().unwrap();
        items
            .iter()
            .map(|item| item["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(ids(&rig.get("/api/channels?capped=true").await), [id]);
    assert_eq!(ids(&rig.get("/api/channels?capped=false").await), [other]);
    assert_eq!(
        ids(&rig.get("/api/channels?status=enabled").await),
        [id, other]
    );
    let (status, error) = rig
        .call(Method::GET, "/api/channels?capped=maybe", None)
        .await;
    assert_invalid(status, &error, "capped");
}

/// A reset zeroes today's count (memory and store), uncaps the channel, keeps past days, and lets traffic through again.
#[tokio::test]
async fn reset_zeroes_today_and_uncaps() {
    let rig = Rig::start().await;
    let id = rig.channel("m", json!({"daily_token_limit": 30})).await;
    rig.seed(id, date("2026-03-09"), 700).await;
    for _ in 0..2 {
        assert_eq!(rig.relay("m").await, StatusCode::OK);
    }
    rig.settled_usage(id, 2 * PER_REQUEST).await;
    let channel = rig.get(&format!("/api/channels/{id}")).await;
    assert_eq!(channel["daily_usage"]["capped"], true);
    assert_ne!(
        rig.relay("m").await,
        StatusCode::OK,
        "a capped channel is skipped"
    );

    let path = format!("/api/channels/{id}/usage/reset");
    let (status, usage) = rig.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["used"], 0, "{usage}");
    assert_eq!(usage["remaining"], 30);
    assert_eq!(
        usage["history"],
        json!([{"date": "2026-03-10", "used": 0}, {"date": "2026-03-09", "used": 700}])
    );
    let channel = rig.get(&format!("/api/channels/{id}")).await;
    assert_eq!(channel["daily_usage"]["capped"], false, "{channel}");
    assert_eq!(channel["status"], "enabled");
    // The store was zeroed too, and the tokens counted before the reset
    // never come back: the first flush after it holds only the next
    // request's tokens, so the store goes from 0 to exactly one request.
    let today = date("2026-03-10");
    assert_eq!(rig.stored(id, today).await, [(today, 0)]);
    assert_eq!(rig.relay("m").await, StatusCode::OK);
    rig.settled_usage(id, PER_REQUEST).await;
    let one_request = [(today, PER_REQUEST)];
    poll::until("the flush after the reset", PATIENCE, async || {
        let stored = rig.stored(id, today).await;
        if stored == one_request {
            Ok(())
        } else {
            Err(format!("{stored:?}"))
        }
    })
    .await;
}

/// History runs most recent first, merges counts still in memory with stored past days, and shows quiet days as 0.
#[tokio::test]
async fn history_is_most_recent_first_and_includes_past_days() {
    let rig = Rig::start().await;
    let id = rig.channel("m", json!({})).await;
    rig.clock.set(start_instant() - chrono::Duration::days(1));
    assert_eq!(rig.relay("m").await, StatusCode::OK);
    rig.settled_usage(id, PER_REQUEST).await;
    rig.clock.set(start_instant());
    for _ in 0..2 {
        assert_eq!(rig.relay("m").await, StatusCode::OK);
    }
    rig.seed(id, date("2026-02-28"), 500).await;
    // Older than the 90 days of history: not shown.
    rig.seed(id, date("2025-12-10"), 9).await;

    let usage = rig.settled_usage(id, 2 * PER_REQUEST).await;
    let history = usage["history"].as_array().unwrap();
    assert_eq!(history.len(), 11, "{usage}");
    assert_eq!(history[0], json!({"date": "2026-03-10", "used": 36}));
    assert_eq!(history[1], json!({"date": "2026-03-09", "used": 18}));
    assert_eq!(history[2], json!({"date": "2026-03-08", "used": 0}));
    assert_eq!(history[10], json!({"date": "2026-02-28", "used": 500}));
    let dates: Vec<&str> = history
        .iter()
        .map(|day| day["date"].as_str().unwrap())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "most recent first");
}

/// `/api/usage` lists every channel for one calendar date, each read in its own zone; a bad date is a 400 naming `date`.
#[tokio::test]
async fn usage_by_date_lists_every_channel() {
    let rig = Rig::start().await;
    let utc = rig.channel("utc", json!({"daily_token_limit": 100})).await;
    let shanghai = rig
        .channel("shanghai", json!({"daily_reset_timezone": "Asia/Shanghai"}))
        .await;
    rig.seed(utc, date("2026-03-01"), 1234).await;
    rig.seed(shanghai, date("2026-03-01"), 77).await;
    assert_eq!(rig.relay("utc").await, StatusCode::OK);
    assert_eq!(rig.relay("shanghai").await, StatusCode::OK);
    rig.settled_usage(utc, PER_REQUEST).await;
    rig.settled_usage(shanghai, PER_REQUEST).await;

    let row = |channel_id: i64, name: &str, day: &str, used: u64, limit: u64, zone: &str| json!({"channel_id": channel_id, "name": name, "date": day, "used": used, "limit": limit, "timezone": zone});
    let cases = [
        (
            "/api/usage?date=2026-03-01",
            json!({"date": "2026-03-01", "items": [
                row(utc, "utc", "2026-03-01", 1234, 100, "UTC"),
                row(shanghai, "shanghai", "2026-03-01", 77, 0, "Asia/Shanghai")]}),
        ),
        // Today in the global zone (UTC) is 03-10; Shanghai's request landed on its 03-11.
        (
            "/api/usage",
            json!({"date": "2026-03-10", "items": [
                row(utc, "utc", "2026-03-10", 18, 100, "UTC"),
                row(shanghai, "shanghai", "2026-03-10", 0, 0, "Asia/Shanghai")]}),
        ),
        (
            "/api/usage?date=2026-03-11",
            json!({"date": "2026-03-11", "items": [
                row(utc, "utc", "2026-03-11", 0, 100, "UTC"),
                row(shanghai, "shanghai", "2026-03-11", 18, 0, "Asia/Shanghai")]}),
        ),
    ];
    for (path, expected) in cases {
        assert_eq!(rig.get(path).await, expected, "{path}");
    }
    for query in [
        "?date=2026-3-1",
        "?date=yesterday",
        "?date=2026-02-30",
        "?date=",
    ] {
        let (status, error) = rig
            .call(Method::GET, &format!("/api/usage{query}"), None)
            .await;
        assert_invalid(status, &error, "date");
    }
    let (status, error) = rig
        .call(Method::GET, "/api/usage?day=2026-03-01", None)
        .await;
    assert_invalid(status, &error, "day");
}

/// Every usage route answers 401 without the admin token, and changes nothing.
#[tokio::test]
async fn usage_routes_require_the_admin_token() {
    let rig = Rig::start().await;
    let id = rig.channel("m", json!({})).await;
    assert_eq!(rig.relay("m").await, StatusCode::OK);
    rig.settled_usage(id, PER_REQUEST).await;
    let routes = [
        (Method::GET, format!("/api/channels/{id}/usage")),
        (Method::POST, format!("/api/channels/{id}/usage/reset")),
        (Method::GET, "/api/usage".to_string()),
    ];
    for (method, path) in routes {
        let url = rig.gateway.url(&path);
        let response = rig
            .gateway
            .client
            .request(method.clone(), url)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    rig.settled_usage(id, PER_REQUEST).await;
}

/// Log lines written by the server while a test holds the guard, as JSON.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Captures this thread's events (the test runtime is single-threaded,
    /// so that includes the server's handlers) until the guard drops.
    fn start() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn events(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// A reset is logged as an admin action with the channel, the day and the count it erased.
#[tokio::test]
async fn reset_is_logged_as_an_admin_action() {
    let (logs, _guard) = CapturedLogs::start();
    let rig = Rig::start().await;
    let id = rig.channel("m", json!({})).await;
    assert_eq!(rig.relay("m").await, StatusCode::OK);
    rig.settled_usage(id, PER_REQUEST).await;
    // Another test may have registered the reset event's callsite while no
    // subscriber wanted it; re-ask every live subscriber, this one included.
    tracing::callsite::rebuild_interest_cache();
    let path = format!("/api/channels/{id}/usage/reset");
    let (status, _) = rig.call(Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let events = logs.events();
    let resets: Vec<&Value> = events
        .iter()
        .filter(|event| event["fields"]["admin_action"] == "usage_reset")
        .collect();
    assert_eq!(resets.len(), 1, "{events:?}");
    let fields = &resets[0]["fields"];
    assert_eq!(fields["channel_id"], id);
    assert_eq!(fields["date"], "2026-03-10");
    assert_eq!(fields["used_before"], PER_REQUEST);
    assert_eq!(resets[0]["level"], "INFO");
}
