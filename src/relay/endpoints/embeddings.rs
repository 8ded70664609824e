//! `POST /v1/embeddings`: never streamed, usage `prompt_tokens` /
//! `total_tokens`. The estimate, when the upstream reports none, is the
//! input alone (text measured, token ids counted as themselves); nothing is
//! generated, so the reservation asks for no completion.

use axum::http::HeaderMap;
use bytes::Bytes;

use serde_json::{Map, Value};

use super::completions::input_tokens;
use crate::error::ApiError;
use crate::relay::endpoint::{self, Endpoint, Family, Parsed, Payload, Prompt, Reply};
use crate::upstream::target::Operation;

pub static EMBEDDINGS: Endpoint = Endpoint {
    path: "/v1/embeddings",
    family: Family::OpenAi,
    operation: Operation::Embeddings,
    parse,
    count_prompt,
    reply_usage: endpoint::json_usage,
    measure_reply: endpoint::measure_nothing,
    observer: endpoint::openai_events,
};

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(bytes)?;
    Ok(Parsed {
        affinity: endpoint::affinity_of(&body),
        reply: Reply::Whole,
        prompt: Prompt::FromBody,
        completion: Some(0),
        model,
        payload: Payload::Json {
            body,
            edits: Vec::new(),
        },
        estimate: true,
        hide_usage_chunk: false,
    })
}

/// The input's tokens: text measured, token ids counted as themselves.
pub fn count_prompt(body: &Map<String, Value>, model: &str) -> u64 {
    input_tokens(body.get("input"), model)
}
