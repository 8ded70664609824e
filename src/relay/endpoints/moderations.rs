//! `POST /v1/moderations`: never streamed. OpenAI does not bill moderation
//! in tokens and its replies carry no usage; when an upstream does report
//! `usage`, it is counted. Otherwise the request counts **0 tokens and is
//! not marked estimated**: estimating would charge a daily token budget for
//! something no provider bills as tokens. The input still sizes the
//! reservation, so a capped channel is not picked.

use axum::http::HeaderMap;
use bytes::Bytes;

use super::embeddings;
use crate::error::ApiError;
use crate::relay::endpoint::{self, Endpoint, Family, Parsed, Payload, Prompt, Reply};
use crate::upstream::target::Operation;

pub static MODERATIONS: Endpoint = Endpoint {
    path: "/v1/moderations",
    family: Family::OpenAi,
    operation: Operation::Moderations,
    parse,
    count_prompt: embeddings::count_prompt,
    reply_usage: endpoint::json_usage,
    measure_reply: endpoint::measure_nothing,
    observer: endpoint::openai_events,
};

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(bytes)?;
    Ok(Parsed {
        affinity: None,
        reply: Reply::Whole,
        prompt: Prompt::FromBody,
        completion: Some(0),
        model,
        payload: Payload::Json {
            body,
            edits: Vec::new(),
        },
        estimate: false,
        hide_usage_chunk: false,
    })
}
