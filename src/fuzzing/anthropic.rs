//! Fuzz entry points for the OpenAI ↔ Anthropic translation: the request,
//! the whole reply and the stream.

use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::{assert_field_error, checked_usage, same_json, saturated};
use crate::relay::endpoints::anthropic::{
    bridge, reply, stream::ChunkTranslator, translate, usage,
};
use crate::relay::endpoints::chat::CHAT;
use crate::relay::observe::Seen;
use crate::relay::sse::SseRelay;
use crate::relay::usage::RawUsage;

const MODEL: &str = "claude-fuzz";
const CREATED: i64 = 1_700_000_000;

/// An OpenAI chat request (a JSON object) as an Anthropic Messages request:
/// well-formed turns that alternate, in JSON that round-trips; or a 400
/// naming the field the Messages API cannot carry.
pub fn anthropic_translate_request(data: &[u8]) {
    let Ok(openai) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let Ok(body) = crate::relay::body::JsonBody::parse(Bytes::copy_from_slice(data)) else {
        panic!("the scan refused a JSON object serde_json reads");
    };
    let out = match translate::request(&openai, MODEL) {
        Ok(out) => out,
        Err(error) => {
            assert_field_error(&error);
            assert!(bridge::request_body(&body, MODEL).is_err());
            return;
        }
    };
    assert_eq!(out.get("model"), Some(&Value::from(MODEL)));
    assert!(out.get("max_tokens").is_some_and(Value::is_u64));
    if let Some(temperature) = out.get("temperature") {
        let temperature = temperature.as_f64().unwrap_or(f64::NAN);
        assert!((0.0..=1.0).contains(&temperature), "{temperature}");
    }
    let Some(Value::Array(messages)) = out.get("messages") else {
        panic!("no messages array: {out:?}");
    };
    let mut previous = None;
    for message in messages {
        let role = message.get("role").and_then(Value::as_str);
        assert!(matches!(role, Some("user" | "assistant")), "{message}");
        assert_ne!(role, previous, "adjacent turns of one role: {messages:?}");
        previous = role;
        let Some(Value::Array(blocks)) = message.get("content") else {
            panic!("content is not blocks: {message}");
        };
        assert!(!blocks.is_empty(), "an empty turn: {message}");
        for block in blocks {
            let kind = block.get("type").and_then(Value::as_str);
            let known = ["text", "image", "document", "tool_use", "tool_result"];
            assert!(kind.is_some_and(|kind| known.contains(&kind)), "{block}");
        }
    }
    let encoded = bridge::request_body(&body, MODEL).unwrap_or_default();
    let decoded = serde_json::from_slice::<Value>(&encoded).unwrap_or_default();
    let out = Value::Object(out);
    assert!(same_json(&decoded, &out), "{out} went as {decoded}");
}

/// A whole Anthropic reply as an OpenAI chat completion: the right shape,
/// tool arguments that are JSON, and the same usage the meter reads from
/// the Anthropic body. Error bodies change envelope into valid JSON.
pub fn anthropic_translate_response(data: &[u8]) {
    let anthropic_usage = usage::usage_in(data);
    if let Some(raw) = anthropic_usage {
        check_total(raw);
    }
    if let Some(completion) = reply::completion(data, CREATED) {
        assert_eq!(completion["object"], "chat.completion");
        assert_eq!(completion["created"], CREATED);
        let message = &completion["choices"][0]["message"];
        assert_eq!(message["role"], "assistant");
        assert!(message["content"].is_string() || message["content"].is_null());
        for call in message["tool_calls"].as_array().into_iter().flatten() {
            let arguments = call["function"]["arguments"].as_str().unwrap_or("");
            assert!(serde_json::from_str::<Value>(arguments).is_ok(), "{call}");
        }
        let finish = &completion["choices"][0]["finish_reason"];
        let finishes = ["stop", "length", "tool_calls", "content_filter"];
        assert!(finish.is_null() || finish.as_str().is_some_and(|f| finishes.contains(&f)));
        let body = completion.to_string();
        assert_eq!((CHAT.reply_usage)(body.as_bytes()), anthropic_usage);
    }
    let (content_type, body) =
        bridge::error_body(StatusCode::BAD_REQUEST, Bytes::copy_from_slice(data), None);
    if content_type.is_some() {
        let error = serde_json::from_slice::<Value>(&body).unwrap_or_default();
        assert!(error["error"].is_object(), "{error}");
    } else {
        assert_eq!(&body[..], data);
    }
}

/// An Anthropic stream as OpenAI chunks: the same output however the bytes
/// are chunked, framed as `data:` events of JSON ending with one
/// `[DONE]`, and read back by the OpenAI relay as the usage the
/// translator reported.
pub fn anthropic_stream(data: &[u8]) {
    let whole = translate_stream(&[data]);
    let chunks: Vec<&[u8]> = data.chunks(5).collect();
    assert_eq!(
        whole,
        translate_stream(&chunks),
        "chunking changed the stream"
    );
    let (out, usage, done) = whole;
    let text = String::from_utf8(out.clone()).unwrap_or_default();
    assert_eq!(text.len(), out.len(), "the output is not UTF-8");
    let mut events = text.split_terminator("\n\n").peekable();
    while let Some(event) = events.next() {
        let payload = event.strip_prefix("data: ").unwrap_or("");
        if payload == "[DONE]" {
            assert!(done);
            assert_eq!(events.peek(), None, "events after [DONE]");
        } else {
            assert!(serde_json::from_str::<Value>(payload).is_ok(), "{event}");
        }
    }
    if let Some(raw) = usage {
        check_total(raw);
    }
    // The pipeline reads the translation as any OpenAI stream.
    let seen = relay_openai(&out);
    assert_eq!(seen.saw_done, text.ends_with("data: [DONE]\n\n"));
    let expected = if seen.saw_done { usage } else { None };
    assert_eq!(seen.usage, expected, "the relay read other usage");
}

/// The translated bytes, the usage reported and whether the stream ended.
fn translate_stream(pieces: &[&[u8]]) -> (Vec<u8>, Option<RawUsage>, bool) {
    let mut translator = ChunkTranslator::new(true, CREATED);
    let mut out = Vec::new();
    for piece in pieces {
        out.extend_from_slice(&translator.feed(piece));
    }
    out.extend_from_slice(&translator.finish());
    (out, translator.usage(), translator.is_done())
}

fn relay_openai(data: &[u8]) -> Seen {
    let parsed = super::relay::events_request(MODEL, false);
    let mut relay = SseRelay::new((CHAT.observer)(&parsed), Seen::default());
    relay.feed(Bytes::copy_from_slice(data));
    relay.finish();
    relay.seen
}

/// Anthropic usage always carries all three counts, the total their sum.
fn check_total(raw: RawUsage) {
    let usage = checked_usage(raw);
    assert!(raw.prompt_tokens.is_some() && raw.completion_tokens.is_some());
    let sum = u128::from(usage.prompt) + u128::from(usage.completion);
    assert_eq!(raw.total_tokens, Some(saturated(sum)));
}
