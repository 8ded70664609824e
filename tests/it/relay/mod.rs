//! The OpenAI-compatible relay over real sockets: a fake upstream (or several)
//! behind an in-process gateway. This file holds the shared `Rig` and the
//! relaying itself (content, streaming, usage, mapping, keys, models);
//! `retry` covers routing and retries, `limits` what is refused.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::gateway::TestGateway;
use crate::support::poll::{self, PATIENCE};
use crate::support::upstream::FakeUpstream;

mod body;
mod limits;
mod retry;
mod vocabulary;

/// A gateway, a key in the default group, and helpers for relay calls.
pub(crate) struct Rig {
    pub gateway: TestGateway,
    pub key: String,
}

impl Rig {
    pub(crate) async fn start() -> Rig {
        Rig::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl FnOnce(&mut sluicegate::config::Config)) -> Rig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let gateway = TestGateway::start_with(adjust).await;
        let key = gateway.default_key().await;
        Rig { gateway, key }
    }

    /// Adds a channel for `upstream` serving `models`, with extra fields merged in; returns its id.
    pub(crate) async fn channel(
        &self,
        upstream: &FakeUpstream,
        models: &[&str],
        extra: Value,
    ) -> i64 {
        let mut body = json!({
            "name": upstream.name(),
            "base_url": upstream.base_url(),
            "key": format!("sk-upstream-{}", upstream.name()),
            "models": models,
        });
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        self.gateway.create_channel(body).await["id"]
            .as_i64()
            .unwrap()
    }

    /// POSTs a chat completion with this rig's key and the given request id.
    pub(crate) async fn chat(&self, request_id: &str, body: &Value) -> reqwest::Response {
        self.gateway
            .relay(&self.key, "/v1/chat/completions")
            .header("x-request-id", request_id)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The log row of `request_id`, polling until the batch writer has stored it.
    pub(crate) async fn log(&self, request_id: &str) -> Value {
        log_row(&self.gateway, request_id).await
    }
}

/// The log row of `request_id`, polling until the batch writer has stored it.
pub(crate) async fn log_row(gateway: &TestGateway, request_id: &str) -> Value {
    let what = format!("the log row of {request_id}");
    poll::until(&what, PATIENCE, async || {
        let rows = gateway.logs().await;
        rows.into_iter().find(|row| row["request_id"] == request_id)
    })
    .await
}

pub(crate) fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}], "temperature": 0.5, "x_custom": {"kept": true}})
}

pub(crate) fn ask_stream(model: &str) -> Value {
    let mut body = ask(model);
    body["stream"] = json!(true);
    body
}

/// The JSON payloads of an SSE body's `data:` lines, `[DONE]` as a string.
pub(crate) fn sse_payloads(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_string())))
        .collect()
}

pub(crate) fn ids(row: &Value) -> Vec<i64> {
    row["channel_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_i64().unwrap())
        .collect()
}

pub(crate) async fn upstream(name: &str) -> FakeUpstream {
    FakeUpstream::start(name).await.unwrap()
}

/// A non-stream reply arrives unchanged, its usage is logged, and unknown request fields reach the upstream.
#[tokio::test]
async fn non_stream_reply_is_relayed_and_usage_logged() {
    let rig = Rig::start().await;
    let fake = upstream("alpha").await;
    let channel = rig.channel(&fake, &["gpt-4o"], json!({})).await;
    let response = rig.chat("plain-1", &ask("gpt-4o")).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Hello from alpha"
    );
    assert_eq!(reply["usage"]["total_tokens"], 18);
    let sent = fake.last_body().unwrap();
    assert_eq!(sent["x_custom"], json!({"kept": true}));
    assert_eq!(sent["temperature"], json!(0.5));
    assert_eq!(
        fake.last_auth().as_deref(),
        Some("Bearer sk-upstream-alpha")
    );
    let row = rig.log("plain-1").await;
    assert_eq!(ids(&row), vec![channel]);
    assert_eq!(
        (row["status"].as_u64(), row["stream"].as_bool()),
        (Some(200), Some(false))
    );
    assert_eq!(row["prompt_tokens"], 11);
    assert_eq!(row["completion_tokens"], 7);
    assert_eq!(row["total_tokens"], 18);
    assert_eq!(row["estimated"], false);
    assert_eq!(row["model"], "gpt-4o");
    assert_eq!(row["endpoint"], "/v1/chat/completions");
}

/// A stream passes through event by event; usage is requested upstream, hidden from a client that did not ask, and logged.
#[tokio::test]
async fn stream_hides_usage_chunk_but_logs_usage() {
    let rig = Rig::start().await;
    let fake = upstream("alpha").await;
    rig.channel(&fake, &["gpt-4o"], json!({})).await;
    let response = rig.chat("stream-1", &ask_stream("gpt-4o")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let payloads = sse_payloads(&text);
    let content: String = payloads
        .iter()
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "alpha-0 alpha-1 alpha-2 ");
    assert_eq!(payloads.last(), Some(&json!("[DONE]")));
    assert!(!text.contains("\"usage\""), "usage chunk leaked: {text}");
    let sent = fake.last_body().unwrap();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let row = rig.log("stream-1").await;
    assert_eq!(
        (row["total_tokens"].as_u64(), row["estimated"].as_bool()),
        (Some(18), Some(false))
    );
    assert_eq!(row["stream"], true);
    assert!(row["ttft_ms"].is_u64(), "{row}");
}

/// A client that asked for usage gets the usage chunk, and its other stream options are kept.
#[tokio::test]
async fn stream_usage_chunk_reaches_a_client_that_asked() {
    let rig = Rig::start().await;
    let fake = upstream("alpha").await;
    rig.channel(&fake, &["gpt-4o"], json!({})).await;
    let mut body = ask_stream("gpt-4o");
    body["stream_options"] = json!({"include_usage": true, "x_other": 1});
    let text = rig.chat("stream-usage", &body).await.text().await.unwrap();
    let usage: Vec<Value> = sse_payloads(&text)
        .into_iter()
        .filter(|chunk| chunk["usage"].is_object())
        .collect();
    assert_eq!(usage.len(), 1, "{text}");
    assert_eq!(usage[0]["usage"]["total_tokens"], 18);
    assert_eq!(
        fake.last_body().unwrap()["stream_options"],
        json!({"include_usage": true, "x_other": 1})
    );
}

/// Without upstream usage, the log row carries an estimate marked as such, for plain and streamed replies.
#[tokio::test]
async fn missing_usage_is_estimated() {
    let rig = Rig::start().await;
    let fake = upstream("alpha").await;
    fake.omit_usage();
    rig.channel(&fake, &["gpt-4o"], json!({})).await;
    assert_eq!(
        rig.chat("estimate-plain", &ask("gpt-4o")).await.status(),
        200
    );
    let text = rig
        .chat("estimate-stream", &ask_stream("gpt-4o"))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("[DONE]"));
    for request_id in ["estimate-plain", "estimate-stream"] {
        let row = rig.log(request_id).await;
        assert_eq!(row["estimated"], true, "{row}");
        let (prompt, completion) = (
            row["prompt_tokens"].as_u64().unwrap(),
            row["completion_tokens"].as_u64().unwrap(),
        );
        assert!(prompt > 0 && completion > 0, "{row}");
        assert_eq!(row["total_tokens"].as_u64(), Some(prompt + completion));
    }
}

/// A channel's model mapping renames the model upstream; the log keeps both names.
#[tokio::test]
async fn model_mapping_renames_the_upstream_model() {
    let rig = Rig::start().await;
    let fake = upstream("mapped").await;
    rig.channel(
        &fake,
        &["friendly"],
        json!({"model_mapping": {"friendly": "vendor-model-7b"}}),
    )
    .await;
    assert_eq!(rig.chat("mapped-1", &ask("friendly")).await.status(), 200);
    assert_eq!(fake.last_body().unwrap()["model"], "vendor-model-7b");
    let row = rig.log("mapped-1").await;
    assert_eq!(
        (row["model"].as_str(), row["upstream_model"].as_str()),
        (Some("friendly"), Some("vendor-model-7b"))
    );
}

/// A channel's keys are used round-robin, and the client's own key never reaches the upstream.
#[tokio::test]
async fn channel_keys_rotate() {
    let rig = Rig::start().await;
    let fake = upstream("rotating").await;
    rig.channel(&fake, &["m"], json!({"key": "sk-key-one\nsk-key-two"}))
        .await;
    for index in 0..4 {
        rig.chat(&format!("rotate-{index}"), &ask("m")).await;
    }
    let auths = fake.auths();
    assert_eq!(auths.len(), 4);
    assert_ne!(auths[0], auths[1]);
    assert_eq!((&auths[0], &auths[1]), (&auths[2], &auths[3]));
    assert!(
        auths
            .iter()
            .all(|auth| auth == "Bearer sk-key-one" || auth == "Bearer sk-key-two")
    );
    assert!(!auths.iter().any(|auth| auth.contains(&rig.key)));
}

/// A client that hangs up mid-stream cancels the upstream request, and the request is still logged.
#[tokio::test]
async fn client_disconnect_mid_stream_is_logged() {
    let rig = Rig::start().await;
    let fake = upstream("slowstream").await;
    rig.channel(&fake, &["m"], json!({})).await;
    fake.configure(|behavior| {
        behavior.chunks = 100;
        behavior.chunk_delay = Duration::from_millis(50);
    });
    let response = rig.chat("hangup", &ask_stream("m")).await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(body);
    let row = rig.log("hangup").await;
    assert_eq!(row["error_code"], "client_closed", "{row}");
    assert_eq!(row["status"], 200);
    assert_eq!(
        row["estimated"], true,
        "no usage arrived, so it is estimated: {row}"
    );
    let cancelled = async || match fake.aborted() {
        1 => Ok(()),
        aborted => Err(format!("{aborted} upstream streams aborted")),
    };
    poll::until("the upstream stream's cancellation", PATIENCE, cancelled).await;
}

/// /v1/models lists the group's models cut to the allow-list; a bound key sees its channel's models and is routed only there.
#[tokio::test]
async fn models_and_bound_keys_follow_the_key() {
    let rig = Rig::start().await;
    let (alpha, beta) = (upstream("alpha").await, upstream("beta").await);
    rig.channel(&alpha, &["a1", "shared"], json!({"priority": 5}))
        .await;
    let beta_id = rig.channel(&beta, &["b1", "shared"], json!({})).await;
    let (_, limited) = rig
        .gateway
        .create_token(json!({"name": "lim", "models": ["a1", "b1", "zzz"]}))
        .await;
    let (_, bound) = rig
        .gateway
        .create_token(json!({"name": "bound", "channel_id": beta_id}))
        .await;
    let list = |key: String| {
        let request = rig
            .gateway
            .client
            .get(rig.gateway.url("/v1/models"))
            .bearer_auth(key);
        async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            assert_eq!(body["object"], "list");
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|model| model["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(rig.key.clone()).await, ["a1", "b1", "shared"]);
    assert_eq!(list(limited).await, ["a1", "b1"]);
    assert_eq!(list(bound.clone()).await, ["b1", "shared"]);
    let url = rig.gateway.url("/v1/chat/completions");
    let response = rig
        .gateway
        .client
        .post(&url)
        .bearer_auth(&bound)
        .json(&ask("shared"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!((alpha.requests(), beta.requests()), (0, 1));
    let response = rig
        .gateway
        .client
        .post(&url)
        .bearer_auth(&bound)
        .json(&ask("a1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
