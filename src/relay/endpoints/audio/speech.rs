//! `POST /v1/audio/speech`: text in, audio out. The audio is relayed to the
//! client chunk by chunk as it arrives, never buffered, with the upstream's
//! content type. With `"stream_format": "sse"` the upstream streams events
//! instead, and the `speech.audio.done` event's `usage` is read like any
//! other stream's.
//!
//! Binary replies carry no usage, so the request is estimated from its
//! text: the `input` (and `instructions`) measured as a prompt, nothing for
//! the audio.

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::relay::endpoint::{self, Endpoint, Family, Parsed, Payload, Prompt, Reply};
use crate::relay::usage::TextMeasure;
use crate::upstream::target::Operation;

pub static SPEECH: Endpoint = Endpoint {
    path: "/v1/audio/speech",
    family: Family::OpenAi,
    operation: Operation::AudioSpeech,
    parse,
    count_prompt,
    reply_usage: endpoint::json_usage,
    measure_reply: endpoint::measure_nothing,
    observer: endpoint::openai_events,
};

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(bytes)?;
    let events = body.str("stream_format").as_deref() == Some("sse");
    Ok(Parsed {
        affinity: None,
        reply: if events { Reply::Events } else { Reply::Binary },
        prompt: Prompt::FromBody,
        completion: None,
        model,
        payload: Payload::Json {
            body,
            edits: Vec::new(),
        },
        estimate: true,
        hide_usage_chunk: false,
    })
}

/// The text to speak: `input` and `instructions`.
fn count_prompt(body: &Map<String, Value>, model: &str) -> u64 {
    let mut text = TextMeasure::for_model(model);
    text.add_strings(body.get("input"));
    text.add_strings(body.get("instructions"));
    text.tokens()
}
