//! The fake's Anthropic Messages API: `POST /v1/messages` whole and streamed
//! and `POST /v1/messages/count_tokens`, with Anthropic's exact usage shape.
//!
//! Usage: `input_tokens` is the behaviour's `prompt`, `output_tokens` its
//! `completion`, and every reply also reports [`CACHE_CREATION`] and
//! [`CACHE_READ`] tokens, so the expected count of a reply is
//! `prompt + completion + CACHE_CREATION + CACHE_READ` (`anthropic_total`).
//! A stream reports the input side in `message_start` (with a provisional
//! `output_tokens: 1`) and the final output in `message_delta`.
//!
//! A request with `tools` is answered with a `tool_use` of the first tool
//! (input `{"city":"Paris"}`, after a short text). Failures use Anthropic's
//! error envelope. Every request is recorded ([`AnthropicSeen`]) with its
//! `x-api-key`, `anthropic-version` and `anthropic-beta` headers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Behavior, FakeUpstream, FakeUsage, Shared, lock, take_failure};

/// Cache tokens written by every reply that reports usage.
pub const CACHE_CREATION: u64 = 5;
/// Cache tokens read by every reply that reports usage.
pub const CACHE_READ: u64 = 20;

/// What the gateway must count for a reply with `usage`.
fn anthropic_total(usage: FakeUsage) -> u64 {
    usage.prompt + usage.completion + CACHE_CREATION + CACHE_READ
}

/// What one request to these endpoints looked like.
#[derive(Debug, Clone, Default)]
pub struct AnthropicSeen {
    pub path: String,
    pub api_key: Option<String>,
    pub authorization: Option<String>,
    pub version: Option<String>,
    pub beta: Option<String>,
    pub body: Value,
}

/// The routes, merged into the fake's router.
pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/messages", post(serve))
        .route("/v1/messages/count_tokens", post(serve))
}

impl FakeUpstream {
    /// Every request these endpoints received, in order.
    pub fn anthropic_seen(&self) -> Vec<AnthropicSeen> {
        lock(&self.shared.anthropic).clone()
    }

    /// The base URL of an `anthropic` channel: the host, as the SDK takes it.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

async fn serve(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    lock(&shared.anthropic).push(AnthropicSeen {
        path: uri.path().to_string(),
        api_key: header_text(&headers, "x-api-key"),
        authorization: header_text(&headers, header::AUTHORIZATION.as_str()),
        version: header_text(&headers, "anthropic-version"),
        beta: header_text(&headers, "anthropic-beta"),
        body: request.clone(),
    });
    *lock(&shared.last_body) = Some(request.clone());
    let (behavior, fail_status) = {
        let mut behavior = lock(&shared.behavior);
        let fail_status = take_failure(&mut behavior.failing);
        (behavior.clone(), fail_status)
    };
    if let Some(status) = fail_status {
        return failure(&shared.name, status);
    }
    if uri.path().ends_with("/count_tokens") {
        let tokens = behavior.usage.map_or(0, |usage| usage.prompt);
        return json_reply(json!({"input_tokens": tokens}));
    }
    if let Some(usage) = behavior.usage {
        shared
            .reported
            .fetch_add(anthropic_total(usage), Ordering::SeqCst);
    }
    let tool = request
        .pointer("/tools/0/name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let model = request["model"].as_str().unwrap_or("unknown").to_string();
    if request.get("stream") == Some(&Value::Bool(true)) {
        sse(events(&shared.name, &behavior, &model, tool.as_deref()))
    } else {
        json_reply(message(&shared.name, &behavior, &model, tool.as_deref()))
    }
}

/// Anthropic's error envelope, with the type its API uses for `status`.
fn failure(name: &str, status: u16) -> Response {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"type": "error", "error": {"type": kind, "message": format!("fake {name} says {}", status.as_u16())}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn usage_json(usage: FakeUsage, output: u64) -> Value {
    json!({
        "input_tokens": usage.prompt,
        "cache_creation_input_tokens": CACHE_CREATION,
        "cache_read_input_tokens": CACHE_READ,
        "output_tokens": output,
    })
}

fn message(name: &str, behavior: &Behavior, model: &str, tool: Option<&str>) -> Value {
    let mut content = vec![json!({"type": "text", "text": format!("Hello from {name}")})];
    if let Some(tool) = tool {
        content.push(json!({"type": "tool_use", "id": "toolu_fake", "name": tool, "input": {"city": "Paris"}}));
    }
    let mut reply = json!({
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model,
        "content": content,
        "stop_reason": if tool.is_some() { "tool_use" } else { "end_turn" },
        "stop_sequence": null,
    });
    if let Some(usage) = behavior.usage {
        reply["usage"] = usage_json(usage, usage.completion);
    }
    reply
}

fn event(payload: Value) -> String {
    let kind = payload["type"].as_str().unwrap_or("").to_string();
    format!("event: {kind}\ndata: {payload}\n\n")
}

/// The events of one streamed reply, in order.
fn events(name: &str, behavior: &Behavior, model: &str, tool: Option<&str>) -> Vec<String> {
    let start_usage = behavior.usage.map(|usage| usage_json(usage, 1));
    let mut events = vec![
        event(json!({"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": start_usage}})),
        event(
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event(json!({"type": "ping"})),
    ];
    for index in 0..behavior.chunks {
        events.push(event(json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": format!("{name}-{index} ")}})));
    }
    events.push(event(json!({"type": "content_block_stop", "index": 0})));
    if let Some(tool) = tool {
        events.push(event(json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_fake", "name": tool, "input": {}}})));
        for fragment in ["{\"city\":", " \"Paris\"}"] {
            events.push(event(json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": fragment}})));
        }
        events.push(event(json!({"type": "content_block_stop", "index": 1})));
    }
    let stop = if tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    let mut delta =
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}});
    if let Some(usage) = behavior.usage {
        delta["usage"] = json!({"output_tokens": usage.completion});
    }
    events.push(event(delta));
    events.push(event(json!({"type": "message_stop"})));
    events
}

fn json_reply(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn sse(events: Vec<String>) -> Response {
    let body = futures_util::stream::iter(
        events
            .into_iter()
            .map(|event| Ok::<_, std::io::Error>(Bytes::from(event))),
    );
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    response
}
