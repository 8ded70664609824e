//! `POST /v1/embeddings`: never streamed, usage `prompt_tokens` /
//! `total_tokens`. The estimate, when the upstream reports none, is the
//! input alone (text measured, token ids counted as themselves); nothing is
//! generated, so the reservation asks for no completion.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;

use super::completions::add_input;
use super::dispatch::Demand;
use super::endpoint::{self, Endpoint, Parsed, Payload, Reply};
use super::pipeline;
use super::request_id::RequestId;
use super::target::Operation;
use super::usage::TextMeasure;
use crate::AppState;
use crate::error::{ApiError, OpenAiError};

pub static EMBEDDINGS: Endpoint = Endpoint {
    path: "/v1/embeddings",
    operation: Operation::Embeddings,
    parse,
    reply_usage: endpoint::json_usage,
    measure_reply: endpoint::measure_nothing,
    observer: endpoint::openai_events,
};

pub async fn embeddings(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OpenAiError> {
    pipeline::serve(&state, &request_id, &EMBEDDINGS, request)
        .await
        .map_err(ApiError::openai)
}

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(&bytes)?;
    let mut input = TextMeasure::for_model(&model);
    let token_ids = add_input(body.get("input"), &mut input);
    Ok(Parsed {
        affinity: endpoint::affinity_of(&body),
        reply: Reply::Whole,
        demand: Demand {
            prompt: input.tokens() + token_ids,
            completion: Some(0),
        },
        model,
        payload: Payload::Json(body),
        estimate: true,
        hide_usage_chunk: false,
    })
}
