//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's
//! native API, for Claude Code and the Anthropic SDKs. What makes them
//! different from the OpenAI endpoints; routing, retries, counting and
//! logging are `pipeline`'s, as everywhere.
//!
//! - Only `anthropic` channels are candidates (`target::serves`).
//! - The client authenticates with `x-api-key` or Bearer (`auth`), and its
//!   `anthropic-version`/`anthropic-beta` headers go upstream
//!   (`bridge::forward_headers`).
//! - Bodies pass through unchanged except `model`; replies and streams come
//!   back exactly as the upstream sent them.
//! - Usage is read from the reply's `usage`, or from `message_start` +
//!   `message_delta` in a stream (`events::AnthropicEvents`), and counts
//!   input + output + cache creation + cache read (`usage`).
//! - Errors use Anthropic's envelope ([`AnthropicError`]).
//! - `count_tokens` is relayed like a message but never counted: it
//!   generates nothing, and its `input_tokens` is an answer, not usage.

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::events::AnthropicEvents;
use super::usage;
use crate::error::ApiError;
use crate::relay::endpoint::{self, Endpoint, Family, Parsed, Payload, Prompt, Reply};
use crate::relay::observe::Observer;
use crate::relay::usage::{RawUsage, TextMeasure, estimate_prompt};
use crate::upstream::target::Operation;

pub const MESSAGES_PATH: &str = "/v1/messages";
pub const COUNT_TOKENS_PATH: &str = "/v1/messages/count_tokens";

/// Messages, as the pipeline sees them.
pub static MESSAGES: Endpoint = Endpoint {
    path: MESSAGES_PATH,
    family: Family::Anthropic,
    operation: Operation::Messages,
    parse: parse_messages,
    count_prompt: estimate_input,
    reply_usage: usage::usage_in,
    measure_reply,
    observer: anthropic_events,
};

/// Token counting: relayed, never counted.
pub static COUNT_TOKENS: Endpoint = Endpoint {
    path: COUNT_TOKENS_PATH,
    family: Family::Anthropic,
    operation: Operation::MessagesCountTokens,
    parse: parse_count_tokens,
    count_prompt: endpoint::count_nothing,
    reply_usage: no_usage,
    measure_reply: endpoint::measure_nothing,
    observer: anthropic_events,
};

fn parse_messages(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(bytes)?;
    let stream = endpoint::wants_stream(&body);
    Ok(Parsed {
        affinity: endpoint::affinity_of(&body),
        reply: Reply::events_if(stream),
        prompt: Prompt::FromBody,
        completion: endpoint::completion_budget(&body, &["max_tokens"]),
        model,
        payload: Payload::Json {
            body,
            edits: Vec::new(),
        },
        estimate: true,
        hide_usage_chunk: false,
    })
}

fn parse_count_tokens(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(bytes)?;
    Ok(Parsed {
        affinity: None,
        reply: Reply::Whole,
        model,
        payload: Payload::Json {
            body,
            edits: Vec::new(),
        },
        prompt: Prompt::Known(0),
        completion: Some(0),
        estimate: false,
        hide_usage_chunk: false,
    })
}

/// The prompt estimate: the messages as chat counts them (text blocks carry
/// `text` as chat parts do), plus the `system` prompt.
fn estimate_input(body: &Map<String, Value>, model: &str) -> u64 {
    let mut system = TextMeasure::for_model(model);
    match body.get("system") {
        Some(Value::Array(blocks)) => {
            for block in blocks {
                system.add_strings(block.get("text"));
            }
        }
        other => system.add_strings(other),
    }
    estimate_prompt(body, model) + system.tokens()
}

/// A reply's generated text: text blocks and tool inputs.
fn measure_reply(body: &[u8], measure: &mut TextMeasure) {
    let Ok(reply) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    for block in reply
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        measure.add_strings(block.get("text"));
        if let Some(input) = block.get("input") {
            measure.add(&input.to_string());
        }
    }
}

fn anthropic_events(_parsed: &Parsed) -> Box<dyn Observer> {
    Box::new(AnthropicEvents::default())
}

fn no_usage(_body: &[u8]) -> Option<RawUsage> {
    None
}
