//! Table-driven tests for the OpenAI → Anthropic request translation.

use serde_json::{Value, json};

use super::*;

fn translate(openai: Value) -> Result<Value, ApiError> {
    let Value::Object(map) = openai else {
        return Ok(Value::Null);
    };
    request(&map, "claude-up").map(Value::Object)
}

/// Whole requests translate field by field, tools and tool turns included.
#[test]
fn requests_translate() {
    let cases = [
        (
            "plain user turn, default max_tokens",
            json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "n": 2, "presence_penalty": 1}),
            json!({"model": "claude-up", "max_tokens": 4096,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}),
        ),
        (
            "system prompts gathered, sampling and stream",
            json!({"model": "m", "max_tokens": 50, "max_completion_tokens": 70, "temperature": 1.6, "top_p": 0.9,
                   "stop": "END", "stream": true, "stream_options": {"include_usage": true}, "user": "u1",
                   "messages": [
                       {"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "Hi"},
                       {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
                       {"role": "assistant", "content": "Hello"},
                       {"role": "user", "content": "Again"}]}),
            json!({"model": "claude-up", "max_tokens": 70, "temperature": 1.0, "top_p": 0.9,
                   "stop_sequences": ["END"], "stream": true, "metadata": {"user_id": "u1"},
                   "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
                   "messages": [
                       {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                       {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                       {"role": "user", "content": [{"type": "text", "text": "Again"}]}]}),
        ),
        (
            "one system prompt is a string; images by data URL and URL",
            json!({"model": "m", "stop": ["a", "b"], "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg", "detail": "high"}}]}]}),
            json!({"model": "claude-up", "max_tokens": 4096, "system": "S", "stop_sequences": ["a", "b"],
                   "messages": [{"role": "user", "content": [
                       {"type": "text", "text": "What is this?"},
                       {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                       {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}}]}]}),
        ),
        (
            "tools, a forced tool, tool calls and parallel results in one user turn",
            json!({"model": "m", "parallel_tool_calls": false,
                   "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather",
                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                             {"type": "function", "function": {"name": "time"}}],
                   "tool_choice": {"type": "function", "function": {"name": "weather"}},
                   "messages": [
                       {"role": "user", "content": "Weather and time in Paris?"},
                       {"role": "assistant", "content": null, "tool_calls": [
                           {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                           {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}]},
                       {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
                       {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]}]}),
            json!({"model": "claude-up", "max_tokens": 4096,
                   "tools": [{"name": "weather", "description": "Weather",
                              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                             {"name": "time", "input_schema": {"type": "object", "properties": {}}}],
                   "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": true},
                   "messages": [
                       {"role": "user", "content": [{"type": "text", "text": "Weather and time in Paris?"}]},
                       {"role": "assistant", "content": [
                           {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                           {"type": "tool_use", "id": "call_2", "name": "time", "input": {}}]},
                       {"role": "user", "content": [
                           {"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny"},
                           {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "noon"}]}]}]}),
        ),
        (
            "legacy functions and function_call",
            json!({"model": "m", "functions": [{"name": "f", "parameters": {"type": "object"}}], "function_call": "auto",
                   "messages": [
                       {"role": "user", "content": "go"},
                       {"role": "assistant", "content": "Calling", "function_call": {"name": "f", "arguments": "{\"a\":1}"}},
                       {"role": "function", "name": "f", "content": "done"}]}),
            json!({"model": "claude-up", "max_tokens": 4096,
                   "tools": [{"name": "f", "input_schema": {"type": "object"}}],
                   "tool_choice": {"type": "auto"},
                   "messages": [
                       {"role": "user", "content": [{"type": "text", "text": "go"}]},
                       {"role": "assistant", "content": [
                           {"type": "text", "text": "Calling"},
                           {"type": "tool_use", "id": "toolu_legacy_1", "name": "f", "input": {"a": 1}}]},
                       {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_legacy_1", "content": "done"}]}]}),
        ),
        (
            "tool_choice modes; no tools drops the choice",
            json!({"model": "m", "tool_choice": "required", "messages": [{"role": "user", "content": "x"}]}),
            json!({"model": "claude-up", "max_tokens": 4096,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
        ),
    ];
    for (story, openai, expected) in cases {
        let translated = translate(openai).map_err(|error| error.to_string());
        assert_eq!(translated, Ok(expected), "{story}");
    }
}

/// `tool_choice` strings map to Anthropic's modes.
#[test]
fn tool_choice_modes() {
    let cases = [
        ("auto", json!({"type": "auto"})),
        ("none", json!({"type": "none"})),
        ("required", json!({"type": "any"})),
    ];
    for (mode, expected) in cases {
        let openai = json!({"model": "m", "tool_choice": mode,
            "tools": [{"type": "function", "function": {"name": "t"}}],
            "messages": [{"role": "user", "content": "x"}]});
        let translated = translate(openai).map_err(|error| error.to_string());
        assert_eq!(
            translated.map(|body| body["tool_choice"].clone()),
            Ok(expected),
            "{mode}"
        );
    }
}

/// What Anthropic cannot carry is refused with the field named.
#[test]
fn refuses_what_cannot_be_carried() {
    let cases = [
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "critic", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]}),
            "messages[0].content[0]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!({"model": "m", "tools": [{"type": "web_search"}], "messages": [{"role": "user", "content": "x"}]}),
            "tools[0].type",
        ),
    ];
    for (openai, field) in cases {
        let error = translate(openai.clone()).err();
        assert_eq!(
            error.as_ref().and_then(|error| error.field.as_deref()),
            Some(field),
            "{openai}"
        );
        assert_eq!(
            error.map(|error| error.status().as_u16()),
            Some(400),
            "{openai}"
        );
    }
}
