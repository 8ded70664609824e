//! `POST /v1/chat/completions`: what makes chat different from the other
//! endpoints; the routing, retries, counting and logging are `pipeline`'s.
//!
//! The client's bytes go upstream as sent (`body`): only `model` is
//! rewritten per channel, and streams get `stream_options.include_usage =
//! true` (the usage chunk is hidden again unless the client asked for it).
//! When the upstream reports no usage, the prompt count walks `messages` and
//! the reply's is each choice's message.

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::Value;

use crate::error::ApiError;
use crate::relay::endpoint::{self, Endpoint, Family, Parsed, Payload, Prompt, Reply};
use crate::relay::usage::{self, TextMeasure};
use crate::upstream::target::Operation;

pub const ENDPOINT: &str = "/v1/chat/completions";

/// Chat completions, as the pipeline sees them.
pub static CHAT: Endpoint = Endpoint {
    path: ENDPOINT,
    family: Family::OpenAi,
    operation: Operation::ChatCompletions,
    parse,
    count_prompt: usage::estimate_prompt,
    reply_usage: endpoint::json_usage,
    measure_reply,
    observer: endpoint::openai_events,
};

/// Chat and legacy completion requests: model, stream, `stream_options`,
/// the completion budget and the affinity fields.
pub(super) fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (body, model) = endpoint::json_body(bytes)?;
    let stream = endpoint::wants_stream(&body);
    let (edit, asked) = match stream {
        true => endpoint::stream_usage(&body),
        false => (None, true),
    };
    Ok(Parsed {
        affinity: endpoint::affinity_of(&body),
        reply: Reply::events_if(stream),
        completion: endpoint::completion_budget(&body, usage::COMPLETION_BUDGET),
        model,
        payload: Payload::Json {
            body,
            edits: edit.into_iter().collect(),
        },
        prompt: Prompt::FromBody,
        estimate: true,
        hide_usage_chunk: !asked,
    })
}

fn measure_reply(body: &[u8], measure: &mut TextMeasure) {
    if let Ok(reply) = serde_json::from_slice::<Value>(body) {
        usage::measure_reply(&reply, measure);
    }
}
