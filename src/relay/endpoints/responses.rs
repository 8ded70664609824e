//! `POST /v1/responses`, the Responses API (Codex-style agents): whole or
//! streamed. Usage is `input_tokens + output_tokens` (`total_tokens`), read
//! from the reply's `usage` or, in a stream, from the `response.completed`
//! event (`observe::OpenAiEvents`); Responses streams always carry it, so
//! nothing is added to the request.
//!
//! The estimate, when no usage comes: the prompt is `instructions` plus the
//! text of `input` (a string, or items whose `content` is a string or parts
//! with `text`, and tool outputs), with chat's 4 tokens of framing per item;
//! the reply is the text of `output` messages and function-call arguments.

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::relay::endpoint::{self, Endpoint, Family, Parsed, Payload, Prompt, Reply};
use crate::relay::usage::TextMeasure;
use crate::upstream::target::Operation;

pub static RESPONSES: Endpoint = Endpoint {
    path: "/v1/responses",
    family: Family::OpenAi,
    operation: Operation::Responses,
    parse,
    count_prompt: estimate_input,
    reply_usage: endpoint::json_usage,
    measure_reply,
    observer: endpoint::openai_events,
};

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(bytes)?;
    let stream = endpoint::wants_stream(&body);
    Ok(Parsed {
        affinity: endpoint::affinity_of(&body),
        reply: Reply::events_if(stream),
        prompt: Prompt::FromBody,
        completion: endpoint::completion_budget(&body, &["max_output_tokens"]),
        model,
        payload: Payload::Json {
            body,
            edits: Vec::new(),
        },
        estimate: true,
        hide_usage_chunk: false,
    })
}

/// Estimated input tokens: `instructions` and every `input` item.
fn estimate_input(body: &Map<String, Value>, model: &str) -> u64 {
    let mut measure = TextMeasure::for_model(model);
    measure.add_strings(body.get("instructions"));
    let mut framing = 0;
    match body.get("input") {
        Some(Value::String(text)) => {
            measure.add(text);
            framing = 4;
        }
        Some(Value::Array(items)) => {
            for item in items {
                add_item(item, &mut measure);
                framing += 4;
            }
        }
        _ => {}
    }
    measure.tokens() + framing
}

/// Adds one input or output item's text: its `content` (a string or parts
/// with `text`), a tool call's `arguments`, or a tool result's `output`.
fn add_item(item: &Value, measure: &mut TextMeasure) {
    match item.get("content") {
        Some(Value::String(text)) => measure.add(text),
        Some(Value::Array(parts)) => {
            for part in parts {
                measure.add_strings(part.get("text"));
            }
        }
        _ => {}
    }
    measure.add_strings(item.get("arguments"));
    measure.add_strings(item.get("output"));
}

fn measure_reply(body: &[u8], measure: &mut TextMeasure) {
    let Ok(reply) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if let Some(Value::Array(items)) = reply.get("output") {
        for item in items {
            add_item(item, measure);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Inputs as a string or as items are measured, with framing per item.
    #[test]
    fn input_estimate_covers_strings_and_items() {
        let cases = [
            (json!({"input": "abcdefgh"}), 2 + 4),
            (
                json!({"instructions": "abcd", "input": [{"role": "user", "content": [{"type": "input_text", "text": "abcd"}]}]}),
                2 + 4,
            ),
            (
                json!({"input": [{"type": "function_call_output", "output": "abcdefgh"}]}),
                2 + 4,
            ),
        ];
        for (body, tokens) in cases {
            let Value::Object(body) = body else { continue };
            assert_eq!(estimate_input(&body, "m"), tokens, "{body:?}");
        }
    }

    /// Reply text comes from output messages and function calls.
    #[test]
    fn reply_measure_reads_output_items() {
        let reply = json!({"output": [
            {"type": "message", "content": [{"type": "output_text", "text": "abcdefgh"}]},
            {"type": "function_call", "arguments": "abcd"},
        ]});
        let mut measure = TextMeasure::for_model("m");
        measure_reply(reply.to_string().as_bytes(), &mut measure);
        assert_eq!(measure.tokens(), 3);
    }
}
