//! Reading usage out of a stream, one SSE event at a time.
//!
//! `sse` splits the upstream bytes into events and hands each `data:`
//! payload to the request's [`Observer`]; the observer records what the
//! event says into [`Seen`] and may ask for the event to be hidden. It never
//! rewrites an event. Each protocol family brings its own observer: the
//! OpenAI one here ([`OpenAiEvents`]) reads every OpenAI stream shape, and
//! other families (Anthropic's `message_start` + `message_delta`) implement
//! the trait next to their endpoint.
//!
//! **Only events that can carry usage are parsed.** An event whose payload
//! holds no `"usage"` object (a cheap byte search, [`has_usage`]) is not
//! read: its payload is kept ([`Seen::defer`]) in case the stream ends
//! without usage and the estimate needs its text, which is then read after
//! the stream, off the async workers. Kept payloads are bounded
//! ([`DEFERRED_LIMIT`]): past it they are read at once and dropped.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::usage::{RawUsage, TextMeasure};

/// The most event payload bytes a stream keeps unread for its estimate.
pub const DEFERRED_LIMIT: usize = 256 * 1024;

/// Reads an event payload's generated text into a measure.
pub type ReadText = fn(&[u8], &mut TextMeasure);

/// What a stream has said so far.
#[derive(Debug, Default)]
pub struct Seen {
    /// The last usage the upstream reported.
    pub usage: Option<RawUsage>,
    /// The streamed completion text read so far, for estimating usage when
    /// none comes.
    pub completion: TextMeasure,
    /// Whether `data: [DONE]` was seen.
    pub saw_done: bool,
    /// Payloads not read yet (each after its length, four bytes), and how
    /// to read their text.
    deferred: Vec<u8>,
    reader: Option<ReadText>,
}

/// A stream's generated text once it is over: what was read, and what was
/// kept unread (read only if the estimate needs it).
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub measured: TextMeasure,
    pub deferred: Vec<u8>,
    pub reader: Option<ReadText>,
}

impl Completion {
    /// All of the text, the kept payloads read now.
    pub fn measure(self) -> TextMeasure {
        let mut measure = self.measured;
        if let Some(read) = self.reader {
            read_all(&self.deferred, read, &mut measure);
        }
        measure
    }
}

impl Seen {
    /// Nothing seen yet; text is measured for `model`.
    pub fn for_model(model: &str) -> Seen {
        Seen {
            completion: TextMeasure::for_model(model),
            ..Seen::default()
        }
    }

    /// Keeps an event payload unread; `read` reads its text if it is ever
    /// needed. Past [`DEFERRED_LIMIT`] the kept payloads are read now.
    pub fn defer(&mut self, data: &[u8], read: ReadText) {
        self.reader = Some(read);
        let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.deferred.extend_from_slice(&length.to_le_bytes());
        self.deferred
            .extend_from_slice(data.get(..length as usize).unwrap_or(data));
        if self.deferred.len() > DEFERRED_LIMIT {
            read_all(&self.deferred, read, &mut self.completion);
            self.deferred.clear();
        }
    }

    /// All the text seen so far, kept payloads read now; `Seen` is unchanged.
    pub fn text(&self) -> TextMeasure {
        Completion {
            measured: self.completion.clone(),
            deferred: self.deferred.clone(),
            reader: self.reader,
        }
        .measure()
    }

    /// The text part, for the meter; `Seen` keeps its usage.
    pub fn take_completion(&mut self) -> Completion {
        Completion {
            measured: std::mem::take(&mut self.completion),
            deferred: std::mem::take(&mut self.deferred),
            reader: self.reader,
        }
    }
}

/// Reads every payload kept by [`Seen::defer`].
fn read_all(deferred: &[u8], read: ReadText, measure: &mut TextMeasure) {
    let mut rest = deferred;
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let length = u32::from_le_bytes(*length) as usize;
        let (payload, tail) = tail.split_at(length.min(tail.len()));
        read(payload, measure);
        rest = tail;
    }
}

/// Whether a payload holds a `"usage"` member whose value is an object
/// (not `null`, which OpenAI puts on every chunk of a stream asked for
/// usage). A quoted `"usage"` inside a string is escaped (`\"usage\"`), so
/// it is not mistaken for one; a false match would only cost a parse.
pub fn has_usage(data: &[u8]) -> bool {
    static USAGE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage\""));
    USAGE.find_iter(data).any(|at| {
        let rest = data.get(at + 7..).unwrap_or_default();
        let mut rest = rest.iter().skip_while(|byte| byte.is_ascii_whitespace());
        rest.next() == Some(&b':') && rest.find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{')
    })
}

/// One protocol family's reading of its stream events.
pub trait Observer: Send {
    /// Records what one event's `data:` payload (`event` is its `event:`
    /// name, if it had one) says; returns whether to hide the event. An
    /// event with no usage may be deferred ([`Seen::defer`]) instead.
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
        if !has_usage(data) {
            seen.defer(data, read_openai_text);
            return false;
        }
        let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(data) else {
            return false;
        };
        chunk_text(&chunk, &mut seen.completion);
        if FINAL_RESPONSES.contains(&chunk.kind.as_deref().unwrap_or_default())
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

/// The generated text of an OpenAI stream event, for a deferred one.
fn read_openai_text(data: &[u8], measure: &mut TextMeasure) {
    if let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(data) {
        chunk_text(&chunk, measure);
    }
}

/// Adds an event's generated text: choices' deltas and texts, tool-call
/// arguments, and the Responses and transcription text deltas.
fn chunk_text(chunk: &Chunk<'_>, measure: &mut TextMeasure) {
    {
        for choice in &chunk.choices {
            if let Some(text) = &choice.text {
                measure.add(text);
            }
            let Some(delta) = &choice.delta else { continue };
            if let Some(content) = &delta.content {
                measure.add(content);
            }
            let calls = delta.tool_calls.iter().flatten();
            for arguments in calls.filter_map(|call| call.function.as_ref()?.arguments.as_ref()) {
                measure.add(arguments);
            }
        }
    }
    let kind = chunk.kind.as_deref().unwrap_or_default();
    if TEXT_DELTAS.contains(&kind)
        && let Some(Value::String(text)) = &chunk.delta
    {
        measure.add(text);
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
            let mut seen = observe(data);
            assert_eq!(
                seen.usage.and_then(|usage| usage.total_tokens),
                total,
                "{data}"
            );
            assert_eq!(seen.take_completion().measure().tokens(), tokens, "{data}");
        }
    }

    /// Only a `usage` object makes an event worth parsing now.
    #[test]
    fn usage_objects_are_found_by_their_bytes() {
        let cases: [(&[u8], bool); 7] = [
            (br#"{"usage":{"total_tokens":1}}"#, true),
            (br#"{"a":1, "usage" :  {"total_tokens":1}}"#, true),
            (br#"{"choices":[],"usage":null}"#, false),
            (
                br#"{"choices":[{"delta":{"content":"say \"usage\": {"}}]}"#,
                false,
            ),
            (br#"{"usage":null,"x":{"usage":{}}}"#, true),
            (br#"{"choices":[]}"#, false),
            (br#""usage""#, false),
        ];
        for (data, expected) in cases {
            assert_eq!(
                has_usage(data),
                expected,
                "{}",
                String::from_utf8_lossy(data)
            );
        }
    }

    /// Text events are kept unread, read only when asked, and past the
    /// limit read at once so that memory stays bounded.
    #[test]
    fn deferred_text_is_bounded_and_read_on_demand() {
        let event = br#"{"choices":[{"delta":{"content":"abcd"}}]}"#;
        let mut seen = Seen::default();
        let mut observer = OpenAiEvents::default();
        let events = DEFERRED_LIMIT / event.len() + 10;
        for _ in 0..events {
            observer.observe(None, event, &mut seen);
            assert!(seen.deferred.len() <= DEFERRED_LIMIT + event.len() + 4);
        }
        assert!(seen.completion.tokens() > 0, "the limit forced a read");
        assert_eq!(seen.take_completion().measure().tokens(), events as u64);
    }
}
