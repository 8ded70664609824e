//! What an endpoint tells the relay pipeline about itself, and nothing more.
//!
//! Every `/v1` endpoint routes, retries, counts and logs the same way
//! (`pipeline`). An endpoint family only describes its differences in one
//! [`Endpoint`] value: how to read its request ([`Endpoint::parse`]: the
//! model, whether it streams, what to reserve), which upstream
//! [`Operation`] it is, how to find usage in a whole reply, how to measure a
//! reply for the estimate, and how to read its stream events.

use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::dispatch::Demand;
use super::observe::{Observer, OpenAiEvents};
use super::target::Operation;
use super::usage::{RawUsage, TextMeasure};
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;

/// One endpoint family's description.
pub struct Endpoint {
    /// The client path; also the log row's `endpoint`.
    pub path: &'static str,
    pub operation: Operation,
    /// Reads the buffered client body; `headers` are the client's.
    pub parse: fn(Bytes, &HeaderMap) -> Result<Parsed, ApiError>,
    /// The usage a whole upstream reply reports.
    pub reply_usage: fn(&[u8]) -> Option<RawUsage>,
    /// Adds a whole reply's completion text to `measure`, for the estimate.
    pub measure_reply: fn(&[u8], &mut TextMeasure),
    /// The reader of this request's stream events.
    pub observer: fn(&Parsed) -> Box<dyn Observer>,
}

/// A parsed client request.
pub struct Parsed {
    pub model: String,
    pub payload: Payload,
    pub reply: Reply,
    /// What an attempt reserves against a channel's daily cap; `prompt` is
    /// also the prompt estimate when the upstream reports no usage.
    pub demand: Demand,
    /// Whether missing usage is estimated (`prompt` + measured reply) or
    /// counted as zero (endpoints not billed in tokens).
    pub estimate: bool,
    /// Hide the usage-only chunk the gateway asked for on the client's behalf.
    pub hide_usage_chunk: bool,
    /// The body's own affinity source (`prompt_cache_key`, `user`).
    pub affinity: Option<String>,
}

/// The request body as it goes upstream.
pub enum Payload {
    /// JSON whose `model` is rewritten per channel; other fields pass through.
    Json(Map<String, Value>),
    /// Bytes forwarded exactly as the client sent them (multipart audio).
    Raw {
        bytes: Bytes,
        content_type: HeaderValue,
    },
}

/// How the upstream reply reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Read whole, usage taken from the body, relayed unchanged.
    Whole,
    /// Server-sent events, relayed event by event.
    Events,
    /// A binary body (speech audio), relayed chunk by chunk, unbuffered.
    Binary,
}

impl Reply {
    /// Whether the log row says "stream".
    pub fn streams(self) -> bool {
        self != Reply::Whole
    }
}

/// The default stream reader: every OpenAI shape.
pub fn openai_events(parsed: &Parsed) -> Box<dyn Observer> {
    Box::new(OpenAiEvents {
        hide_usage_chunk: parsed.hide_usage_chunk,
    })
}

/// The `usage` object of a JSON reply, in either naming.
pub fn json_usage(body: &[u8]) -> Option<RawUsage> {
    super::upstream::usage_in(body)
}

/// A reply the estimate does not measure (embeddings, images).
pub fn measure_nothing(_body: &[u8], _measure: &mut TextMeasure) {}

/// Parses a JSON object body and its required, non-empty `model`.
pub fn json_body(bytes: &[u8]) -> Result<(Map<String, Value>, String), ApiError> {
    let body: Map<String, Value> = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            Message::MalformedJson {
                detail: error.to_string(),
            },
        )
    })?;
    let model = match body.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        _ => return Err(ApiError::invalid("model", Message::ModelRequired)),
    };
    // A `stream` that is not a boolean would leave the gateway and the
    // upstream disagreeing on whether the reply streams (and so on how its
    // usage is read): refuse it here rather than guess.
    if let Some(stream) = body.get("stream")
        && !stream.is_boolean()
        && !stream.is_null()
    {
        let message = Message::SettingNotBoolean {
            field: "stream".to_string(),
        };
        return Err(ApiError::invalid("stream", message));
    }
    Ok((body, model))
}

/// Whether a JSON body asks for a stream (`"stream": true`).
pub fn wants_stream(body: &Map<String, Value>) -> bool {
    body.get("stream") == Some(&Value::Bool(true))
}

/// For endpoints whose streams carry usage only on request (chat,
/// completions): asks for it, keeping other stream options, and returns
/// whether the client had asked itself.
pub fn request_stream_usage(body: &mut Map<String, Value>) -> bool {
    let options = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    let mut asked = false;
    if let Value::Object(options) = options {
        asked = options.get("include_usage") == Some(&Value::Bool(true));
        options.insert("include_usage".to_string(), Value::Bool(true));
    }
    asked
}

/// The affinity source a JSON body names, if any.
pub fn affinity_of(body: &Map<String, Value>) -> Option<String> {
    super::affinity::source(body, None).map(str::to_string)
}
