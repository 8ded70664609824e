//! A whole Anthropic Messages reply rewritten as an OpenAI chat completion:
//! text blocks joined into `content`, `tool_use` blocks as `tool_calls` with
//! JSON-string arguments, the stop reason as `finish_reason`, and usage with
//! every input kind in `prompt_tokens` (see `usage`).
//!
//! Thinking blocks are left out: OpenAI's chat format has no place for them.

use serde::Deserialize;
use serde_json::{Value, json};

use super::usage::AnthropicUsage;

/// The parts of an Anthropic reply that matter here.
#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything newer.
        _ => "stop",
    }
}

/// The OpenAI chat completion for the Anthropic reply `body`, stamped with
/// `created` (Unix seconds); `None` if `body` is not a Messages reply.
pub fn completion(body: &[u8], created: i64) -> Option<Value> {
    let reply: Reply = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in &reply.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str)?),
            Some("tool_use") => tool_calls.push(json!({
                "id": block.get("id")?,
                "type": "function",
                "function": {
                    "name": block.get("name")?,
                    "arguments": block.get("input").unwrap_or(&json!({})).to_string(),
                },
            })),
            _ => {}
        }
    }
    let has_text = !text.is_empty() || tool_calls.is_empty();
    let mut message = json!({
        "role": "assistant",
        "content": if has_text { json!(text) } else { Value::Null },
        "refusal": null,
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let mut completion = json!({
        "id": reply.id,
        "object": "chat.completion",
        "created": created,
        "model": reply.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": reply.stop_reason.as_deref().map(finish_reason),
        }],
    });
    if let Some(usage) = reply.usage {
        completion["usage"] = usage.openai();
    }
    Some(completion)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies translate: text, tool calls, stop reasons and usage.
    #[test]
    fn replies_translate() {
        let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                           "prompt_tokens_details": {"cached_tokens": 0}});
        let cases = [
            (
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                       "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}],
                       "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 5}}),
                json!({"role": "assistant", "content": "Hello there", "refusal": null}),
                json!("stop"),
                usage.clone(),
            ),
            (
                json!({"id": "msg_2", "model": "claude",
                       "content": [{"type": "thinking", "thinking": "hm"},
                                   {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
                       "stop_reason": "tool_use",
                       "usage": {"input_tokens": 2, "output_tokens": 5, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 5}}),
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
                json!("tool_calls"),
                json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                       "prompt_tokens_details": {"cached_tokens": 5}}),
            ),
            (
                json!({"id": "msg_3", "model": "claude", "content": [{"type": "text", "text": "cut"}],
                       "stop_reason": "max_tokens", "usage": {"input_tokens": 10, "output_tokens": 5}}),
                json!({"role": "assistant", "content": "cut", "refusal": null}),
                json!("length"),
                usage,
            ),
        ];
        for (reply, message, finish, usage) in cases {
            let translated = completion(reply.to_string().as_bytes(), 1_700_000_000);
            let expected = json!({
                "id": reply["id"], "object": "chat.completion", "created": 1_700_000_000, "model": "claude",
                "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
                "usage": usage,
            });
            assert_eq!(translated, Some(expected), "{reply}");
        }
    }

    /// Every stop reason maps to an OpenAI finish reason.
    #[test]
    fn stop_reasons_map() {
        let cases = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ];
        for (stop, finish) in cases {
            assert_eq!(finish_reason(stop), finish, "{stop}");
        }
    }

    /// Bodies that are not Messages replies give nothing.
    #[test]
    fn non_replies_give_nothing() {
        assert_eq!(completion(b"nope", 0), None);
        assert_eq!(completion(b"[1]", 0), None);
    }
}
