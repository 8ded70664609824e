//! `POST /v1/images/generations`. gpt-image models report `usage`
//! (`input_tokens`, `output_tokens`, `total_tokens`), in the reply or, when
//! streamed (`"stream": true`), on the `image_generation.completed` event;
//! it is counted like any other usage. DALL·E and most compatible upstreams
//! report none, and bill per image: such requests count **0 tokens and are
//! not marked estimated**, because no token estimate of an image would mean
//! anything. The reservation is the prompt plus the channel's default.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;

use super::dispatch::Demand;
use super::endpoint::{self, Endpoint, Parsed, Payload, Reply};
use super::pipeline;
use super::request_id::RequestId;
use super::target::Operation;
use super::usage::TextMeasure;
use crate::AppState;
use crate::error::{ApiError, OpenAiError};

pub static IMAGES: Endpoint = Endpoint {
    path: "/v1/images/generations",
    operation: Operation::ImagesGenerations,
    parse,
    reply_usage: endpoint::json_usage,
    measure_reply: endpoint::measure_nothing,
    observer: endpoint::openai_events,
};

pub async fn generations(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OpenAiError> {
    pipeline::serve(&state, &request_id, &IMAGES, request)
        .await
        .map_err(ApiError::openai)
}

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(&bytes)?;
    let stream = endpoint::wants_stream(&body);
    let mut prompt = TextMeasure::for_model(&model);
    prompt.add_strings(body.get("prompt"));
    Ok(Parsed {
        affinity: endpoint::affinity_of(&body),
        reply: if stream { Reply::Events } else { Reply::Whole },
        demand: Demand {
            prompt: prompt.tokens(),
            completion: None,
        },
        model,
        payload: Payload::Json(body),
        estimate: false,
        hide_usage_chunk: false,
    })
}
