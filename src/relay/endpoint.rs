//! What an endpoint tells the relay pipeline about itself, and nothing more.
//!
//! Every `/v1` endpoint routes, retries, counts and logs the same way
//! (`pipeline`). An endpoint family only describes its differences in one
//! [`Endpoint`] value: how to read its request ([`Endpoint::parse`]: the
//! model, whether it streams, what to reserve), which upstream
//! [`Operation`] it is, how to find usage in a whole reply, how to measure a
//! reply for the estimate, and how to read its stream events.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::body::{Edit, JsonBody, json_string};
use super::estimate;
use super::observe::{Observer, OpenAiEvents};
use super::usage::{RawUsage, TextMeasure};
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;
use crate::upstream::target::Operation;

/// One endpoint family's description.
pub struct Endpoint {
    /// The client path; also the log row's `endpoint`.
    pub path: &'static str,
    /// Whose envelope its errors are in.
    pub family: Family,
    pub operation: Operation,
    /// Reads the buffered client body; `headers` are the client's. It
    /// reads only the top-level fields it needs: no tree, no tokenizer.
    pub parse: fn(Bytes, &HeaderMap) -> Result<Parsed, ApiError>,
    /// The exact prompt tokens of a JSON request for a model (tiktoken for
    /// OpenAI models): run only when the upstream reported no usage, after
    /// the reply, off the async workers.
    pub count_prompt: fn(&Map<String, Value>, &str) -> u64,
    /// The usage a whole upstream reply reports.
    pub reply_usage: fn(&[u8]) -> Option<RawUsage>,
    /// Adds a whole reply's completion text to `measure`, for the estimate
    /// (only when the reply reported no usage; off the async workers).
    pub measure_reply: fn(&[u8], &mut TextMeasure),
    /// The reader of this request's stream events.
    pub observer: fn(&Parsed) -> Box<dyn Observer>,
}

/// The API an endpoint belongs to, which decides its error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    OpenAi,
    Anthropic,
}

/// A parsed client request.
pub struct Parsed {
    pub model: String,
    pub payload: Payload,
    pub reply: Reply,
    /// How the prompt is sized.
    pub prompt: Prompt,
    /// The completion budget the client set (`max_tokens` and the like).
    pub completion: Option<u64>,
    /// Whether missing usage is estimated (prompt + measured reply) or
    /// counted as zero (endpoints not billed in tokens).
    pub estimate: bool,
    /// Hide the usage-only chunk the gateway asked for on the client's behalf.
    pub hide_usage_chunk: bool,
    /// The body's own affinity source (`prompt_cache_key`, `user`).
    pub affinity: Option<String>,
}

/// The request body as it goes upstream.
pub enum Payload {
    /// The client's JSON, forwarded as sent but for `edits` (made on every
    /// attempt) and `model`, rewritten per channel.
    Json { body: JsonBody, edits: Vec<Edit> },
    /// Bytes forwarded exactly as the client sent them (multipart audio).
    Raw {
        bytes: Bytes,
        content_type: HeaderValue,
    },
}

/// How a request's prompt is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// From the JSON body: its byte bound for reservations
    /// (`estimate::prompt_bound`), and [`Endpoint::count_prompt`] for the
    /// count when the upstream reports no usage.
    FromBody,
    /// Known up front (an audio file's duration; nothing, for `count_tokens`).
    Known(u64),
}

impl Parsed {
    /// The prompt size a reservation takes: the body's byte bound, or the
    /// known size. Only asked for when a candidate channel has a limit.
    pub fn prompt_bound(&self) -> u64 {
        match (self.prompt, &self.payload) {
            (Prompt::Known(tokens), _) => tokens,
            (Prompt::FromBody, Payload::Json { body, .. }) => estimate::prompt_bound(body.bytes()),
            (Prompt::FromBody, Payload::Raw { bytes, .. }) => estimate::prompt_bound(bytes),
        }
    }

    /// One attempt's body: the client's bytes with this request's edits,
    /// and `upstream_model` in place of the client's model when they differ.
    pub fn body_for(&self, upstream_model: &str) -> Bytes {
        match &self.payload {
            Payload::Raw { bytes, .. } => bytes.clone(),
            Payload::Json { body, edits } if upstream_model == self.model => body.with(edits),
            Payload::Json { body, edits } => {
                let mut edits = edits.clone();
                edits.push(Edit {
                    key: "model",
                    value: json_string(upstream_model),
                });
                body.with(&edits)
            }
        }
    }
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

    /// `Events` for a stream, else `Whole`.
    pub fn events_if(stream: bool) -> Reply {
        if stream { Reply::Events } else { Reply::Whole }
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

/// A prompt that is never counted (endpoints whose estimate is off).
pub fn count_nothing(_body: &Map<String, Value>, _model: &str) -> u64 {
    0
}

/// Checks a JSON object body and reads its required, non-empty `model`.
pub fn json_body(bytes: Bytes) -> Result<(JsonBody, String), ApiError> {
    let body = JsonBody::parse(bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            Message::MalformedJson {
                detail: error.to_string(),
            },
        )
    })?;
    let model = match body.str("model") {
        Some(model) if !model.is_empty() => model.into_owned(),
        _ => return Err(ApiError::invalid("model", Message::ModelRequired)),
    };
    // A `stream` that is not a boolean would leave the gateway and the
    // upstream disagreeing on whether the reply streams (and so on how its
    // usage is read): refuse it here rather than guess.
    if let Some(stream) = body.raw("stream")
        && !matches!(stream, b"true" | b"false" | b"null")
    {
        let message = Message::SettingNotBoolean {
            field: "stream".to_string(),
        };
        return Err(ApiError::invalid("stream", message));
    }
    Ok((body, model))
}

/// Whether a JSON body asks for a stream (`"stream": true`).
pub fn wants_stream(body: &JsonBody) -> bool {
    body.is_true("stream")
}

/// For endpoints whose streams carry usage only on request (chat,
/// completions): the edit that asks for it, keeping other stream options
/// (none when the client asked itself), and whether the client had asked.
pub fn stream_usage(body: &JsonBody) -> (Option<Edit>, bool) {
    let mut options: Map<String, Value> = body.get("stream_options").unwrap_or_default();
    if options.get("include_usage") == Some(&Value::Bool(true)) {
        return (None, true);
    }
    options.insert("include_usage".to_string(), Value::Bool(true));
    let value = serde_json::to_vec(&options)
        .map(Bytes::from)
        .unwrap_or_default();
    let edit = Edit {
        key: "stream_options",
        value,
    };
    (Some(edit), false)
}

/// The affinity source a JSON body names, if any.
pub fn affinity_of(body: &JsonBody) -> Option<String> {
    source(body, None).map(|source| source.into_owned())
}

/// The affinity source of a request: `prompt_cache_key`, then `user`, then
/// the session header. Empty strings do not count.
pub fn source<'a>(body: &'a JsonBody, session: Option<&'a str>) -> Option<Cow<'a, str>> {
    ["prompt_cache_key", "user"]
        .iter()
        .find_map(|field| body.str(field))
        .or(session.map(Cow::Borrowed))
        .filter(|text| !text.is_empty())
}

/// The completion budget the client set: the first of `fields` that is a
/// whole number.
pub fn completion_budget(body: &JsonBody, fields: &[&str]) -> Option<u64> {
    fields.iter().find_map(|field| body.get::<u64>(field))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The source prefers prompt_cache_key, then user, then the session header.
    #[test]
    fn source_order() {
        let cases = [
            (
                json!({"prompt_cache_key": "p", "user": "u"}),
                Some("s"),
                Some("p"),
            ),
            (json!({"user": "u"}), Some("s"), Some("u")),
            (json!({"user": 5}), Some("s"), Some("s")),
            (json!({}), None, None),
            (json!({"user": ""}), None, None),
        ];
        for (body, session, expected) in cases {
            let body = JsonBody::parse(body.to_string().into()).unwrap();
            assert_eq!(source(&body, session).as_deref(), expected, "{body:?}");
        }
    }
}
