//! Anthropic's stream events: framing the SSE bytes into events, decoding
//! each `data:` payload, and watching a native stream go by for its usage.
//!
//! [`AnthropicEvents`] only reads a native stream (`sse` relays the bytes
//! exactly as the upstream sent them); [`Framer`] feeds the translation to
//! OpenAI chunks, which does rewrite them.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::usage::{AnthropicUsage, StreamUsage};
use crate::relay::observe::{Observer, Seen, has_usage};
use crate::relay::sse::{self, Framing};
use crate::relay::usage::TextMeasure;

/// One decoded stream event. Unknown event types decode as `Other`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: Value,
    },
    ContentBlockDelta {
        index: usize,
        delta: Value,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: Value,
    },
    #[serde(other)]
    Other,
}

/// The message skeleton `message_start` carries.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct StartMessage {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub usage: Option<AnthropicUsage>,
}

/// The `delta` of `message_delta`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct MessageDelta {
    #[serde(default)]
    pub stop_reason: Option<String>,
}

impl Event {
    /// The usage this event reports, if any.
    pub fn usage(&self) -> Option<&AnthropicUsage> {
        match self {
            Event::MessageStart { message } => message.usage.as_ref(),
            Event::MessageDelta { usage, .. } => usage.as_ref(),
            _ => None,
        }
    }

    /// Generated text this event carries: text, tool-input JSON, thinking.
    pub fn text(&self) -> Option<&str> {
        let Event::ContentBlockDelta { delta, .. } = self else {
            return None;
        };
        ["text", "partial_json", "thinking"]
            .iter()
            .find_map(|field| delta.get(*field).and_then(Value::as_str))
    }
}

/// Splits SSE bytes into decoded events, through the relay's one framer
/// (`relay::sse`).
#[derive(Debug, Default)]
pub struct Framer {
    framing: Framing,
}

impl Framer {
    /// Takes more bytes; returns the events they completed, decoded (events
    /// that do not decode are skipped).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        let ready = self.framing.push(Bytes::copy_from_slice(chunk));
        decode_all(&ready)
    }

    /// The upstream ended: an unterminated last event still counts.
    pub fn finish(&mut self) -> Vec<Event> {
        let rest = self.framing.finish();
        decode_all(&rest)
    }
}

/// Every event in `ready` whose data decodes.
fn decode_all(ready: &[u8]) -> Vec<Event> {
    sse::events(ready)
        .filter_map(|range| {
            let (_, data) = sse::payload(ready.get(range)?)?;
            serde_json::from_slice(&data).ok()
        })
        .collect()
}

/// The [`Observer`] of a native Messages stream: usage from `message_start`
/// and `message_delta` (see `usage`), generated text from block deltas.
/// It never hides an event.
#[derive(Debug, Default)]
pub struct AnthropicEvents {
    usage: StreamUsage,
}

impl Observer for AnthropicEvents {
    fn observe(&mut self, _event: Option<&[u8]>, data: &[u8], seen: &mut Seen) -> bool {
        // Only `message_start` and `message_delta` carry usage; text deltas
        // are read only if the estimate needs them.
        static STOP: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"message_stop"));
        if !has_usage(data) && STOP.find(data).is_none() {
            seen.defer(data, read_text);
            return false;
        }
        let Ok(event) = serde_json::from_slice::<Event>(data) else {
            return false;
        };
        if let Some(usage) = event.usage() {
            self.usage.report(usage);
            seen.usage = self.usage.raw();
        }
        if let Some(text) = event.text() {
            seen.completion.add(text);
        }
        seen.saw_done |= event == Event::MessageStop;
        false
    }
}

/// The generated text of a deferred event.
fn read_text(data: &[u8], measure: &mut TextMeasure) {
    if let Ok(event) = serde_json::from_slice::<Event>(data)
        && let Some(text) = event.text()
    {
        measure.add(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":20,\"cache_read_input_tokens\":30,\"output_tokens\":1}}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"abcdefgh\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    /// Usage is message_start's input side plus message_delta's output,
    /// read event by event; nothing is hidden.
    #[test]
    fn observer_reads_native_usage() {
        let mut observer = AnthropicEvents::default();
        let mut seen = Seen::default();
        let mut framer_events = 0;
        for event in STREAM.split("\n\n").filter(|event| !event.is_empty()) {
            let data = event.lines().find_map(|line| line.strip_prefix("data: "));
            let hidden = observer.observe(None, data.unwrap_or("").as_bytes(), &mut seen);
            assert!(!hidden);
            framer_events += 1;
        }
        assert_eq!(framer_events, 7);
        let usage = seen.usage.unwrap_or_default();
        assert_eq!(
            (usage.prompt_tokens, usage.total_tokens),
            (Some(60), Some(67))
        );
        assert_eq!(seen.take_completion().measure().tokens(), 2);
        assert!(seen.saw_done);
    }

    /// The framer finds every event however the bytes are split.
    #[test]
    fn framer_survives_any_split() {
        for cut in 0..STREAM.len() {
            let (head, tail) = STREAM.as_bytes().split_at(cut);
            let mut framer = Framer::default();
            let mut events = framer.push(head);
            events.extend(framer.push(tail));
            events.extend(framer.finish());
            assert_eq!(events.len(), 7, "cut {cut}");
            assert_eq!(events.last(), Some(&Event::MessageStop));
        }
    }

    /// Events decode by type; unknown types and junk are tolerated.
    #[test]
    fn events_decode() {
        let cases: [(&str, Option<Event>); 5] = [
            ("data: {\"type\":\"ping\"}\n\n", Some(Event::Ping)),
            (
                "data: {\"type\":\"message_stop\"}\r\n\r\n",
                Some(Event::MessageStop),
            ),
            (
                "data: {\"type\":\"brand_new\",\"x\":1}\n\n",
                Some(Event::Other),
            ),
            (
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"}}\n\n",
                Some(Event::MessageDelta {
                    delta: MessageDelta {
                        stop_reason: Some("tool_use".into()),
                    },
                    usage: None,
                }),
            ),
            ("data: not json\n\n", None),
        ];
        for (bytes, expected) in cases {
            let mut framer = Framer::default();
            let events = framer.push(bytes.as_bytes());
            assert_eq!(events.into_iter().next(), expected, "{bytes:?}");
        }
    }
}
