//! An Anthropic Messages stream rewritten, event by event, as an OpenAI chat
//! completions stream, so an `anthropic` channel can stream to an OpenAI
//! client.
//!
//! - `message_start` → the role chunk (`delta.role = "assistant"`);
//! - text deltas → `delta.content`;
//! - a `tool_use` block start → a `tool_calls` delta with the call's index
//!   (counted over tool calls only), `id`, `type` and `name`, and each
//!   `input_json_delta` → an `arguments` fragment for that index;
//! - `message_delta` → its stop reason and cumulative usage are remembered;
//! - `message_stop` → the finish chunk, the usage chunk if the client asked
//!   for `stream_options.include_usage`, then `data: [DONE]`;
//! - `error` → an OpenAI-style `{"error": {...}}` event, and the stream ends;
//! - `ping`, block stops and thinking deltas produce nothing.
//!
//! It owns no IO: bytes in, bytes out. Usage and the generated text are
//! collected for the meter.

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::events::{Event, Framer};
use super::reply::finish_reason;
use super::usage::StreamUsage;
use crate::relay::upstream::ByteStream;
use crate::relay::usage::{RawUsage, TextMeasure};

/// An upstream Anthropic stream rewritten as OpenAI chunks: the translation
/// of its `first` chunk (possibly empty, if that chunk ends mid-event), and
/// the rest. The usage chunk is always produced, so the relay reads usage
/// exactly as from an OpenAI upstream and hides the chunk from clients that
/// did not ask for it. Upstream errors pass through and end the stream.
pub fn translated(first: &[u8], rest: ByteStream, created: i64) -> (Bytes, ByteStream) {
    let mut translator = ChunkTranslator::new(true, created);
    let first = translator.feed(first);
    let state = (rest, translator, false);
    let stream =
        futures_util::stream::unfold(state, |(mut rest, mut translator, ended)| async move {
            if ended {
                return None;
            }
            let (item, ended) = match rest.next().await {
                Some(Ok(chunk)) => (Ok(translator.feed(&chunk)), translator.is_done()),
                Some(Err(error)) => (Err(error), true),
                None => (Ok(translator.finish()), true),
            };
            Some((item, (rest, translator, ended)))
        });
    (first, Box::pin(stream))
}

/// The translation state of one stream.
#[derive(Debug)]
pub struct ChunkTranslator {
    framer: Framer,
    include_usage: bool,
    created: i64,
    id: String,
    model: String,
    /// Anthropic block index → OpenAI tool-call index, for open tool blocks.
    tool_blocks: Vec<(usize, usize)>,
    tool_calls: usize,
    finish: Option<&'static str>,
    usage: StreamUsage,
    completion: TextMeasure,
    done: bool,
}

impl ChunkTranslator {
    /// `include_usage`: the client asked for the usage chunk; `created`
    /// stamps every chunk (Unix seconds).
    pub fn new(include_usage: bool, created: i64) -> ChunkTranslator {
        ChunkTranslator {
            framer: Framer::default(),
            include_usage,
            created,
            id: String::new(),
            model: String::new(),
            tool_blocks: Vec::new(),
            tool_calls: 0,
            finish: None,
            usage: StreamUsage::default(),
            completion: TextMeasure::default(),
            done: false,
        }
    }

    /// Takes upstream bytes; returns the OpenAI events they complete.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let events = self.framer.push(chunk);
        self.translate(events)
    }

    /// The upstream ended: translates an unterminated last event.
    pub fn finish(&mut self) -> Bytes {
        let events = self.framer.finish();
        self.translate(events)
    }

    /// The usage reported so far, in the meter's terms.
    pub fn usage(&self) -> Option<RawUsage> {
        self.usage.raw()
    }

    /// The generated text seen so far, for an estimate.
    pub fn completion(&self) -> &TextMeasure {
        &self.completion
    }

    /// Whether the stream reached its end (`[DONE]` was sent).
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn translate(&mut self, events: Vec<Event>) -> Bytes {
        let mut out = String::new();
        for event in events {
            if self.done {
                break;
            }
            if let Some(usage) = event.usage() {
                self.usage.report(usage);
            }
            if let Some(text) = event.text() {
                self.completion.add(text);
            }
            for payload in self.payloads(event) {
                out.push_str("data: ");
                out.push_str(&payload);
                out.push_str("\n\n");
            }
        }
        Bytes::from(out)
    }

    /// The `data:` payloads one event becomes.
    fn payloads(&mut self, event: Event) -> Vec<String> {
        match event {
            Event::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None)]
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(index, &content_block),
            Event::ContentBlockDelta { index, delta } => self.block_delta(index, &delta),
            Event::MessageDelta { delta, .. } => {
                self.finish = delta.stop_reason.as_deref().map(finish_reason);
                Vec::new()
            }
            Event::MessageStop => self.end(),
            Event::Error { error } => {
                self.done = true;
                vec![json!({"error": error}).to_string()]
            }
            Event::ContentBlockStop { .. } | Event::Ping | Event::Other => Vec::new(),
        }
    }

    fn block_start(&mut self, index: usize, block: &Value) -> Vec<String> {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => match block.get("text").and_then(Value::as_str) {
                Some(text) if !text.is_empty() => {
                    self.completion.add(text);
                    vec![self.chunk(json!({"content": text}), None)]
                }
                _ => Vec::new(),
            },
            Some("tool_use") => {
                let call = self.tool_calls;
                self.tool_calls += 1;
                self.tool_blocks.push((index, call));
                let tool_call = json!({
                    "index": call,
                    "id": block.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {"name": block.get("name").cloned().unwrap_or(Value::Null), "arguments": ""},
                });
                vec![self.chunk(json!({"tool_calls": [tool_call]}), None)]
            }
            _ => Vec::new(),
        }
    }

    fn block_delta(&mut self, index: usize, delta: &Value) -> Vec<String> {
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => {
                let text = delta.get("text").cloned().unwrap_or(Value::Null);
                vec![self.chunk(json!({"content": text}), None)]
            }
            Some("input_json_delta") => {
                let Some(&(_, call)) = self.tool_blocks.iter().find(|(block, _)| *block == index)
                else {
                    return Vec::new();
                };
                let fragment = delta.get("partial_json").cloned().unwrap_or(json!(""));
                let tool_call = json!({"index": call, "function": {"arguments": fragment}});
                vec![self.chunk(json!({"tool_calls": [tool_call]}), None)]
            }
            _ => Vec::new(),
        }
    }

    /// The finish chunk, the usage chunk if asked for, and `[DONE]`.
    fn end(&mut self) -> Vec<String> {
        self.done = true;
        let finish = self.finish.unwrap_or("stop");
        let mut payloads = vec![self.chunk(json!({}), Some(finish))];
        if self.include_usage
            && let Some(usage) = self.usage.current()
        {
            let mut chunk = self.envelope();
            chunk["choices"] = json!([]);
            chunk["usage"] = usage.openai();
            payloads.push(chunk.to_string());
        }
        payloads.push("[DONE]".to_string());
        payloads
    }

    /// A chunk with one choice carrying `delta`.
    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let mut chunk = self.envelope();
        chunk["choices"] =
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        chunk.to_string()
    }

    fn envelope(&self) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        })
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
