//! `POST /v1/images/generations`. gpt-image models report `usage`
//! (`input_tokens`, `output_tokens`, `total_tokens`), in the reply or, when
//! streamed (`"stream": true`), on the `image_generation.completed` event;
//! it is counted like any other usage. DALL·E and most compatible upstreams
//! report none, and bill per image: such requests count **0 tokens and are
//! not marked estimated**, because no token estimate of an image would mean
//! anything. The reservation is the prompt's byte bound plus the channel's
//! default.

use axum::http::HeaderMap;
use bytes::Bytes;

use crate::error::ApiError;
use crate::relay::endpoint::{self, Endpoint, Family, Parsed, Payload, Prompt, Reply};
use crate::upstream::target::Operation;

pub static IMAGES: Endpoint = Endpoint {
    path: "/v1/images/generations",
    family: Family::OpenAi,
    operation: Operation::ImagesGenerations,
    parse,
    count_prompt: endpoint::count_nothing,
    reply_usage: endpoint::json_usage,
    measure_reply: endpoint::measure_nothing,
    observer: endpoint::openai_events,
};

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(bytes)?;
    let stream = endpoint::wants_stream(&body);
    Ok(Parsed {
        affinity: endpoint::affinity_of(&body),
        reply: Reply::events_if(stream),
        prompt: Prompt::FromBody,
        completion: None,
        model,
        payload: Payload::Json {
            body,
            edits: Vec::new(),
        },
        estimate: false,
        hide_usage_chunk: false,
    })
}
