//! `POST /v1/completions`, the legacy text completions: like chat, but the
//! prompt is `prompt` (a string, strings, or token arrays) and the reply
//! text is `choices[].text`, whole or streamed. Streams get
//! `stream_options.include_usage` as chat's do.

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

pub static COMPLETIONS: Endpoint = Endpoint {
    path: "/v1/completions",
    operation: Operation::Completions,
    parse,
    reply_usage: endpoint::json_usage,
    measure_reply,
    observer: endpoint::openai_events,
};

pub async fn completions(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OpenAiError> {
    pipeline::serve(&state, &request_id, &COMPLETIONS, request)
        .await
        .map_err(ApiError::openai)
}

fn parse(bytes: Bytes, _headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let (mut body, model) = endpoint::json_body(&bytes)?;
    let stream = endpoint::wants_stream(&body);
    let hide_usage_chunk = stream && !endpoint::request_stream_usage(&mut body);
    let mut prompt = TextMeasure::for_model(&model);
    let token_ids = add_input(body.get("prompt"), &mut prompt);
    let demand = Demand {
        prompt: prompt.tokens() + token_ids,
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

/// Adds an `input`/`prompt` value's text to `measure`: a string, strings,
/// or token arrays; returns the number of token ids found (they count as
/// themselves).
pub fn add_input(value: Option<&Value>, measure: &mut TextMeasure) -> u64 {
    let mut token_ids = 0;
    match value {
        Some(Value::String(text)) => measure.add(text),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(text) => measure.add(text),
                    Value::Number(_) => token_ids += 1,
                    Value::Array(tokens) => token_ids += tokens.len() as u64,
                    _ => {}
                }
            }
        }
        _ => {}
    }
    token_ids
}

fn measure_reply(body: &[u8], measure: &mut TextMeasure) {
    let Ok(reply) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if let Some(Value::Array(choices)) = reply.get("choices") {
        for choice in choices {
            measure.add_strings(choice.get("text"));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Prompts may be text, texts, or token ids, which count as themselves.
    #[test]
    fn inputs_of_every_shape_are_measured() {
        let cases = [
            (json!("abcdefgh"), 2),
            (json!(["abcd", "abcd"]), 2),
            (json!([1, 2, 3]), 3),
            (json!([[1, 2], [3]]), 3),
            (json!(null), 0),
        ];
        for (input, tokens) in cases {
            let mut measure = TextMeasure::for_model("m");
            let ids = add_input(Some(&input), &mut measure);
            assert_eq!(measure.tokens() + ids, tokens, "{input}");
        }
    }
}
