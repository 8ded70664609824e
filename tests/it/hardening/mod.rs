//! Hostile input against every `/api` and `/v1` route: the auth sweep
//! (`auth_sweep`: nothing under `/api` without the admin token or a session,
//! checked against the OpenAPI document so a new route cannot forget it)
//! and the bad-input tables (`bad_input` for `/api`, generated from the
//! document's schemas; `bad_relay_input` for `/v1`, with its hand-written
//! `relay_table` checked against the relay's own route list). Every refusal
//! must be a 4xx in the route's error shape with a stable code, the
//! connection must never drop, and no stored row may change. `openapi`
//! walks the document; this file holds the shared bench.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::gateway::TestGateway;
use crate::support::upstream::FakeUpstream;

mod auth_sweep;
mod bad_input;
mod bad_relay_input;
mod openapi;
mod relay_table;

/// The relay's body limit on the bench: small, so oversize cases are cheap.
pub(crate) const RELAY_BODY_LIMIT: usize = 256 * 1024;
/// The admin API's body limit (axum's default, kept by `admin::json`).
pub(crate) const ADMIN_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// The model the OpenAI channel serves.
pub(crate) const MODEL: &str = "m";
/// The model the Anthropic channel serves.
pub(crate) const CLAUDE: &str = "claude-h";

/// A gateway with seeded rows: an OpenAI channel and an Anthropic channel on
/// one fake upstream, and an API key.
pub(crate) struct Bench {
    pub gateway: TestGateway,
    pub upstream: FakeUpstream,
    pub channel_id: i64,
    pub anthropic_channel_id: i64,
    pub token_id: i64,
    pub key: String,
}

impl Bench {
    pub(crate) async fn start() -> Bench {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let gateway =
            TestGateway::start_with(|config| config.max_body_bytes = RELAY_BODY_LIMIT).await;
        let upstream = FakeUpstream::start("hostile").await.unwrap();
        let channel = gateway
            .create_channel(json!({
                "name": "openai",
                "base_url": upstream.base_url(),
                "key": "sk-upstream-openai",
                "models": [MODEL],
                "settings": {"daily_token_limit": 1_000_000},
            }))
            .await;
        let anthropic = gateway
            .create_channel(json!({
                "name": "anthropic",
                "type": "anthropic",
                "base_url": upstream.anthropic_base_url(),
                "key": "sk-upstream-anthropic",
                "models": [CLAUDE],
            }))
            .await;
        let (token, key) = gateway.create_token(json!({"name": "client"})).await;
        Bench {
            channel_id: channel["id"].as_i64().unwrap(),
            anthropic_channel_id: anthropic["id"].as_i64().unwrap(),
            token_id: token["id"].as_i64().unwrap(),
            key,
            gateway,
            upstream,
        }
    }

    /// Everything an admin can read back that a request could change:
    /// channels (with today's usage), API keys, settings, the usage list and
    /// each channel's usage history. `last_used_at` is left out: it is a
    /// node-local observation that any request with a known key updates.
    pub(crate) async fn stored(&self) -> Value {
        let mut tokens = self.admin_json("/api/tokens?per_page=500").await;
        for token in tokens["items"].as_array_mut().unwrap() {
            token.as_object_mut().unwrap().remove("last_used_at");
        }
        let mut stored = json!({
            "channels": self.admin_json("/api/channels?per_page=500").await,
            "tokens": tokens,
            "settings": self.admin_json("/api/settings").await,
            "usage": self.admin_json("/api/usage").await,
        });
        for id in [self.channel_id, self.anthropic_channel_id] {
            stored[format!("usage_{id}")] =
                self.admin_json(&format!("/api/channels/{id}/usage")).await;
        }
        stored
    }

    /// Request-log rows written so far.
    pub(crate) async fn log_rows(&self) -> Vec<Value> {
        let logs = self.admin_json("/api/logs?per_page=500").await;
        logs["items"].as_array().cloned().unwrap_or_default()
    }

    async fn admin_json(&self, path: &str) -> Value {
        let reply = send(self.gateway.admin(Method::GET, path)).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {path}: {}", reply.text());
        reply.json.unwrap_or(Value::Null)
    }
}

/// Clients whose connections come from loopback addresses of their own.
/// Wrong admin tokens count per client address (`session::limiter`), so the
/// sweeps move to a fresh address before one could reach the lockout, and
/// see the 401 they check rather than its 429. Each client serves fewer
/// requests than the limit allows; clients are reused because building one
/// is slow (it loads the TLS roots).
#[derive(Default)]
pub(crate) struct Addresses {
    client: Option<reqwest::Client>,
    used: u32,
}

impl Addresses {
    pub(crate) fn next(&mut self) -> reqwest::Client {
        static NEXT: AtomicU32 = AtomicU32::new(2);
        if self.used + 1 >= sluicegate::session::limiter::MAX_FAILURES {
            self.client = None;
        }
        if let Some(client) = &self.client {
            self.used += 1;
            return client.clone();
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let address = Ipv4Addr::new(127, 1, (n >> 8) as u8, (n & 0xff) as u8);
        let client = reqwest::Client::builder()
            .local_address(IpAddr::V4(address))
            .build()
            .unwrap();
        self.client = Some(client.clone());
        self.used = 1;
        client
    }
}

/// A whole reply. Sending never fails: a dropped connection fails the test.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
    pub json: Option<Value>,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

/// Sends `request` and reads the whole reply; panics if the connection drops.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => panic!("the connection failed instead of answering: {error:?}"),
    };
    let status = response.status();
    let headers = response.headers().clone();
    let body = match response.bytes().await {
        Ok(body) => body.to_vec(),
        Err(error) => panic!("the reply body broke off ({status}): {error:?}"),
    };
    let json = serde_json::from_slice(&body).ok();
    Reply {
        status,
        headers,
        body,
        json,
    }
}

/// Which error envelope a route answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `{"error":{"code","message","field"}}` on `/api`.
    Admin,
    /// `{"error":{"message","type","param","code"}}` on `/v1`.
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}` on `/v1/messages*`.
    Anthropic,
}

impl Shape {
    pub(crate) fn of(path: &str) -> Shape {
        if path.starts_with("/v1/messages") {
            Shape::Anthropic
        } else if path.starts_with("/v1/") {
            Shape::OpenAi
        } else {
            Shape::Admin
        }
    }
}

/// The stable code (the `type` for Anthropic) of an error reply in
/// `shape`, or a description of what is wrong with it.
pub(crate) fn error_code(reply: &Reply, shape: Shape) -> Result<String, String> {
    let body = reply
        .json
        .as_ref()
        .ok_or_else(|| format!("not JSON: {:?}", reply.text()))?;
    let text = |value: &Value| {
        value
            .as_str()
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    let error = &body["error"];
    let message = text(&error["message"]).ok_or_else(|| format!("no message: {body}"))?;
    if message.trim().is_empty() {
        return Err(format!("a blank message: {body}"));
    }
    match shape {
        Shape::Admin => {
            let code = text(&error["code"]).ok_or_else(|| format!("no code: {body}"))?;
            let keys: Vec<&String> = error
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            if keys
                .iter()
                .any(|key| !["code", "message", "field"].contains(&key.as_str()))
            {
                return Err(format!("not the admin shape: {body}"));
            }
            Ok(code)
        }
        Shape::OpenAi => {
            text(&error["type"]).ok_or_else(|| format!("no type: {body}"))?;
            if error.get("param").is_none() {
                return Err(format!("no param: {body}"));
            }
            text(&error["code"]).ok_or_else(|| format!("no code: {body}"))
        }
        Shape::Anthropic => {
            if body["type"] != "error" {
                return Err(format!("not the Anthropic shape: {body}"));
            }
            text(&error["type"]).ok_or_else(|| format!("no type: {body}"))
        }
    }
}

/// Counts of outcomes per route, printed as the run's summary.
#[derive(Default)]
pub(crate) struct Tally {
    rows: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Tally {
    pub(crate) fn record(&mut self, route: &str, outcome: &str) {
        *self
            .rows
            .entry(route.to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    pub(crate) fn total(&self) -> usize {
        self.rows.values().flat_map(BTreeMap::values).sum()
    }

    /// Prints one line per route: cases tried and each outcome's count.
    pub(crate) fn print(&self, title: &str) {
        eprintln!("== {title}: {} cases", self.total());
        for (route, outcomes) in &self.rows {
            let cases: usize = outcomes.values().sum();
            let outcomes: Vec<String> = outcomes
                .iter()
                .map(|(outcome, count)| format!("{outcome}×{count}"))
                .collect();
            eprintln!("{route:<48} {cases:>4}  {}", outcomes.join(", "));
        }
    }
}
