//! Table-driven tests for the Anthropic → OpenAI stream translation.

use serde_json::{Value, json};

use super::*;

fn event(payload: Value) -> String {
    let kind = payload["type"].as_str().unwrap_or("").to_string();
    format!("event: {kind}\ndata: {payload}\n\n")
}

fn start() -> String {
    event(
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude", "content": [], "stop_reason": null,
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 3, "output_tokens": 1}}}),
    )
}

fn text_stream() -> String {
    [
        start(),
        event(json!({"type": "ping"})),
        event(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})),
        event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " world"}})),
        event(json!({"type": "content_block_stop", "index": 0})),
        event(json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}})),
        event(json!({"type": "message_stop"})),
    ]
    .concat()
}

fn tool_stream() -> String {
    [
        start(),
        event(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking."}})),
        event(json!({"type": "content_block_stop", "index": 0})),
        event(json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}})),
        event(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}})),
        event(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})),
        event(json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})),
        event(json!({"type": "content_block_stop", "index": 1})),
        event(json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "time", "input": {}}})),
        event(json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}})),
        event(json!({"type": "content_block_stop", "index": 2})),
        event(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}})),
        event(json!({"type": "message_stop"})),
    ]
    .concat()
}

/// The `data:` payloads of translated output, `[DONE]` as a string.
fn payloads(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|_| json!(data)))
        .collect()
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 7, "model": "claude",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

fn usage_chunk(prompt: u64, completion: u64) -> Value {
    json!({"id": "msg_1", "object": "chat.completion.chunk", "created": 7, "model": "claude", "choices": [],
           "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                     "prompt_tokens_details": {"cached_tokens": 3}}})
}

fn run(stream: &str, include_usage: bool, cut: usize) -> (Vec<u8>, ChunkTranslator) {
    let mut translator = ChunkTranslator::new(include_usage, 7);
    let (head, tail) = stream.as_bytes().split_at(cut);
    let mut out = translator.feed(head).to_vec();
    out.extend_from_slice(&translator.feed(tail));
    out.extend_from_slice(&translator.finish());
    (out, translator)
}

/// Streams translate chunk by chunk, tool calls and usage included, however
/// the upstream bytes are split.
#[test]
fn streams_translate_across_any_split() {
    let role = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    let cases = [
        (
            "text without the usage chunk",
            text_stream(),
            false,
            vec![
                role.clone(),
                chunk(json!({"content": "Hello"}), Value::Null),
                chunk(json!({"content": " world"}), Value::Null),
                chunk(json!({}), json!("stop")),
                json!("[DONE]"),
            ],
        ),
        (
            "text with the usage chunk",
            text_stream(),
            true,
            vec![
                role.clone(),
                chunk(json!({"content": "Hello"}), Value::Null),
                chunk(json!({"content": " world"}), Value::Null),
                chunk(json!({}), json!("stop")),
                usage_chunk(15, 6),
                json!("[DONE]"),
            ],
        ),
        (
            "text, then two tool calls",
            tool_stream(),
            true,
            vec![
                role,
                chunk(json!({"content": "Checking."}), Value::Null),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "time", "arguments": ""}}]}),
                    Value::Null,
                ),
                chunk(
                    json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                    Value::Null,
                ),
                chunk(json!({}), json!("tool_calls")),
                usage_chunk(15, 20),
                json!("[DONE]"),
            ],
        ),
    ];
    for (story, stream, include_usage, expected) in cases {
        for cut in (0..stream.len()).step_by(7) {
            let (out, translator) = run(&stream, include_usage, cut);
            assert_eq!(payloads(&out), expected, "{story}, cut at {cut}");
            assert!(translator.is_done(), "{story}");
        }
    }
}

/// The meter gets input + cache from message_start and the cumulative
/// output from message_delta, and the generated text for estimates.
#[test]
fn usage_and_text_reach_the_meter() {
    let cases = [(text_stream(), 15 + 6, 3), (tool_stream(), 15 + 20, 7)];
    for (stream, total, tokens) in cases {
        let (_, translator) = run(&stream, false, 0);
        assert_eq!(
            translator.usage().and_then(|usage| usage.total_tokens),
            Some(total)
        );
        assert_eq!(translator.completion().tokens(), tokens);
    }
}

/// An error event becomes an OpenAI error event and ends the stream; a
/// stream cut before message_stop gets no finish chunk or `[DONE]`.
#[test]
fn errors_and_cut_streams() {
    let overloaded = [
        start(),
        event(json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
        event(json!({"type": "message_stop"})),
    ]
    .concat();
    let (out, translator) = run(&overloaded, true, 0);
    assert_eq!(
        payloads(&out)[1..],
        [json!({"error": {"type": "overloaded_error", "message": "Overloaded"}})]
    );
    assert!(translator.is_done());
    let cut = text_stream();
    let cut = &cut[..cut.find("event: message_delta").unwrap_or(0)];
    let (out, translator) = run(cut, true, 0);
    assert_eq!(payloads(&out).len(), 3);
    assert!(!translator.is_done());
    assert_eq!(
        translator.usage().and_then(|usage| usage.total_tokens),
        Some(16)
    );
}
