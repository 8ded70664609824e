//! Reading usage out of a stream, one SSE event at a time.
//!
//! `sse` splits the upstream bytes into events and hands each `data:`
//! payload to the request's [`Observer`]; the observer records what the
//! event says into [`Seen`] and may ask for the event to be hidden. It never
//! rewrites an event. Each protocol family brings its own observer: the
//! OpenAI one here ([`OpenAiEvents`]) reads every OpenAI stream shape, and
//! other families (Anthropic's `message_start` + `message_delta`) implement
//! the trait next to their endpoint.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::usage::{RawUsage, TextMeasure};

/// What a stream has said so far.
#[derive(Debug, Default)]
pub struct Seen {
    /// The last usage the upstream reported.
    pub usage: Option<RawUsage>,
    /// The streamed completion text, for estimating usage when none comes.
    pub completion: TextMeasure,
    /// Whether `data: [DONE]` was seen.
    pub saw_done: bool,
}

/// One protocol family's reading of its stream events.
pub trait Observer: Send {
    /// Records what one event's `data:` payload (`event` is its `event:`
    /// name, if it had one) says; returns whether to hide the event.
    fn observe(&mut self, event: Option<&[u8]>, data: &[u8], seen: &mut Seen) -> bool;
}

/// Every OpenAI stream shape, read leniently from one struct:
/// - chat and completions chunks: `choices[].delta.content`, tool-call
///   arguments, `choices[].text`, and a top-level `usage` (the usage-only
///   chunk, with empty `choices`, is hidden when the gateway asked for it
///   and the client did not);
/// - Responses events: text from `response.output_text.delta`,
///   `response.refusal.delta` and `response.function_call_arguments.delta`,
///   usage from `response.completed` (also `.incomplete` and `.failed`);
/// - speech and transcription streams: a top-level `usage` on their
///   `*.done` event, text from `transcript.text.delta`.
#[derive(Debug, Default)]
pub struct OpenAiEvents {
    pub hide_usage_chunk: bool,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default, borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    /// A Responses or transcription text delta (a string there).
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    response: Option<ResponseObject>,
}

#[derive(Deserialize)]
struct ResponseObject {
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    /// Legacy completions stream their text here.
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default, borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// Event types whose string `delta` is completion text.
const TEXT_DELTAS: &[&str] = &[
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "transcript.text.delta",
];
/// Event types whose `response.usage` is the request's usage.
const FINAL_RESPONSES: &[&str] = &[
    "response.completed",
    "response.incomplete",
    "response.failed",
];

impl Observer for OpenAiEvents {
    fn observe(&mut self, _event: Option<&[u8]>, data: &[u8], seen: &mut Seen) -> bool {
        if data == b"[DONE]" {
            seen.saw_done = true;
            return false;
        }
        let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(data) else {
            return false;
        };
        for choice in &chunk.choices {
            if let Some(text) = &choice.text {
                seen.completion.add(text);
            }
            let Some(delta) = &choice.delta else { continue };
            if let Some(content) = &delta.content {
                seen.completion.add(content);
            }
            let calls = delta.tool_calls.iter().flatten();
            for arguments in calls.filter_map(|call| call.function.as_ref()?.arguments.as_ref()) {
                seen.completion.add(arguments);
            }
        }
        let kind = chunk.kind.as_deref().unwrap_or_default();
        if TEXT_DELTAS.contains(&kind)
            && let Some(Value::String(text)) = &chunk.delta
        {
            seen.completion.add(text);
        }
        if FINAL_RESPONSES.contains(&kind)
            && let Some(usage) = chunk.response.and_then(|response| response.usage)
        {
            seen.usage = Some(usage);
        }
        match chunk.usage {
            Some(usage) => {
                seen.usage = Some(usage);
                self.hide_usage_chunk && chunk.choices.is_empty() && chunk.kind.is_none()
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe(data: &str) -> Seen {
        let mut seen = Seen::default();
        OpenAiEvents::default().observe(None, data.as_bytes(), &mut seen);
        seen
    }

    /// Each OpenAI stream shape yields its usage and text.
    #[test]
    fn reads_every_openai_shape() {
        let cases = [
            (r#"{"choices":[{"text":"abcdefgh"}]}"#, None, 2),
            (r#"{"choices":[{"delta":{"content":"abcd"}}]}"#, None, 1),
            (
                r#"{"type":"response.output_text.delta","delta":"abcdefgh"}"#,
                None,
                2,
            ),
            (
                r#"{"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":3,"total_tokens":8}}}"#,
                Some(8),
                0,
            ),
            (
                r#"{"type":"speech.audio.done","usage":{"input_tokens":4,"output_tokens":6,"total_tokens":10}}"#,
                Some(10),
                0,
            ),
            (r#"{"type":"response.audio.delta","delta":"AAAA"}"#, None, 0),
        ];
        for (data, total, tokens) in cases {
            let seen = observe(data);
            assert_eq!(
                seen.usage.and_then(|usage| usage.total_tokens),
                total,
                "{data}"
            );
            assert_eq!(seen.completion.tokens(), tokens, "{data}");
        }
    }
}
