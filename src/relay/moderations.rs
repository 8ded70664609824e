//! `POST /v1/moderations`: never streamed. OpenAI does not bill moderation
//! in tokens and its replies carry no usage; when an upstream does report
//! `usage`, it is counted. Otherwise the request counts **0 tokens and is
//! not marked estimated**: estimating would charge a daily token budget for
//! something no provider bills as tokens. The input is still measured for
//! the reservation, so a capped channel is not picked.

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

pub static MODERATIONS: Endpoint = Endpoint {
    path: "/v1/moderations",
    operation: Operation::Moderations,
    parse,
    reply_usage: endpoint::json_usage,
    measure_reply: endpoint::measure_nothing,
    observer: endpoint::openai_events,
};

pub async fn moderations(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OpenAiError> {
    pipeline::serve(&state, &request_id, &MODERATIONS, request)
        .await
        .map_err(ApiError::openai)
}

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(&bytes)?;
    let mut input = TextMeasure::for_model(&model);
    let token_ids = add_input(body.get("input"), &mut input);
    Ok(Parsed {
        affinity: None,
        reply: Reply::Whole,
        demand: Demand {
            prompt: input.tokens() + token_ids,
            completion: Some(0),
        },
        model,
        payload: Payload::Json(body),
        estimate: false,
        hide_usage_chunk: false,
    })
}
