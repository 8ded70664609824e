//! `POST /v1/audio/speech`: text in, audio out. The audio is relayed to the
//! client chunk by chunk as it arrives, never buffered, with the upstream's
//! content type. With `"stream_format": "sse"` the upstream streams events
//! instead, and the `speech.audio.done` event's `usage` is read like any
//! other stream's.
//!
//! Binary replies carry no usage, so the request is estimated from its
//! text: the `input` (and `instructions`) measured as a prompt, nothing for
//! the audio.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, OpenAiError};
use crate::relay::dispatch::Demand;
use crate::relay::endpoint::{self, Endpoint, Parsed, Payload, Reply};
use crate::relay::pipeline;
use crate::relay::request_id::RequestId;
use crate::relay::target::Operation;
use crate::relay::usage::TextMeasure;

pub static SPEECH: Endpoint = Endpoint {
    path: "/v1/audio/speech",
    operation: Operation::AudioSpeech,
    parse,
    reply_usage: endpoint::json_usage,
    measure_reply: endpoint::measure_nothing,
    observer: endpoint::openai_events,
};

pub async fn speech(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OpenAiError> {
    pipeline::serve(&state, &request_id, &SPEECH, request)
        .await
        .map_err(ApiError::openai)
}

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(&bytes)?;
    let events = body.get("stream_format").and_then(Value::as_str) == Some("sse");
    let mut text = TextMeasure::for_model(&model);
    text.add_strings(body.get("input"));
    text.add_strings(body.get("instructions"));
    Ok(Parsed {
        affinity: None,
        reply: if events { Reply::Events } else { Reply::Binary },
        demand: Demand {
            prompt: text.tokens(),
            completion: None,
        },
        model,
        payload: Payload::Json(body),
        estimate: true,
        hide_usage_chunk: false,
    })
}
