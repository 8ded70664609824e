//! `POST /v1/chat/completions`: what makes chat different from the other
//! endpoints; the routing, retries, counting and logging are `pipeline`'s.
//!
//! The client's JSON is kept as a `serde_json::Map`, so unknown fields pass
//! through untouched; only `model` is rewritten per channel, and streams get
//! `stream_options.include_usage = true` (the usage chunk is hidden again
//! unless the client asked for it). The prompt estimate walks `messages`;
//! the reply estimate reads each choice's message.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use super::dispatch::Demand;
use super::endpoint::{self, Endpoint, Parsed, Payload, Reply};
use super::pipeline;
use super::request_id::RequestId;
use super::target::Operation;
use super::usage::{self, TextMeasure};
use crate::AppState;
use crate::error::{ApiError, OpenAiError};

pub const ENDPOINT: &str = "/v1/chat/completions";

/// Chat completions, as the pipeline sees them.
pub static CHAT: Endpoint = Endpoint {
    path: ENDPOINT,
    operation: Operation::ChatCompletions,
    parse,
    reply_usage: endpoint::json_usage,
    measure_reply,
    observer: endpoint::openai_events,
};

pub async fn chat_completions(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OpenAiError> {
    pipeline::serve(&state, &request_id, &CHAT, request)
        .await
        .map_err(ApiError::openai)
}

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (mut body, model) = endpoint::json_body(&bytes)?;
    let stream = endpoint::wants_stream(&body);
    let hide_usage_chunk = stream && !endpoint::request_stream_usage(&mut body);
    let demand = Demand {
        prompt: usage::estimate_prompt(&body, &model),
        completion: usage::requested_completion(&body),
    };
    Ok(Parsed {
        affinity: endpoint::affinity_of(&body),
        reply: if stream { Reply::Events } else { Reply::Whole },
        model,
        payload: Payload::Json(body),
        demand,
        estimate: true,
        hide_usage_chunk,
    })
}

fn measure_reply(body: &[u8], measure: &mut TextMeasure) {
    if let Ok(reply) = serde_json::from_slice::<Value>(body) {
        usage::measure_reply(&reply, measure);
    }
}
