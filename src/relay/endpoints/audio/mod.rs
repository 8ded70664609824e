//! The audio endpoints.
//!
//! `POST /v1/audio/transcriptions` and `/v1/audio/translations` take a
//! multipart form. It is buffered within the body limit (larger is a 413),
//! read with `multer` for its `model` and file (a malformed form is a 400),
//! and forwarded byte for byte with the client's content type, boundary
//! included. The form's `model` is therefore not rewritten by a channel's
//! model mapping; Azure channels still get the mapped deployment in the URL.
//!
//! Usage is the upstream's `usage` when it reports tokens (the gpt-4o
//! transcription models send `input_tokens`/`output_tokens`/`total_tokens`).
//! When it reports none, or only `{"type":"duration","seconds":N}`, the
//! request is estimated: the audio by the rule in `duration` (exact for
//! WAV, else the file size at 128 kbit/s; 10 tokens a second), plus the
//! returned text. Streamed transcriptions (`stream=true`) are relayed as
//! events and read like the other OpenAI streams.
//!
//! `POST /v1/audio/speech` is in `speech`.

mod duration;
mod form;
pub mod speech;

use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::Value;

use crate::error::ApiError;
use crate::i18n::Message;
use crate::relay::endpoint::{self, Endpoint, Family, Parsed, Payload, Prompt, Reply};
use crate::relay::usage::{RawUsage, TextMeasure};
use crate::upstream::target::Operation;

pub static TRANSCRIPTIONS: Endpoint = Endpoint {
    path: "/v1/audio/transcriptions",
    family: Family::OpenAi,
    operation: Operation::AudioTranscriptions,
    parse,
    count_prompt: endpoint::count_nothing,
    reply_usage: token_usage,
    measure_reply,
    observer: endpoint::openai_events,
};

pub static TRANSLATIONS: Endpoint = Endpoint {
    path: "/v1/audio/translations",
    family: Family::OpenAi,
    operation: Operation::AudioTranslations,
    ..TRANSCRIPTIONS
};

fn parse(bytes: Bytes, headers: &HeaderMap) -> Result<Parsed, ApiError> {
    let form = form::read(bytes.clone(), headers)?;
    let model = form
        .model
        .filter(|model| !model.is_empty())
        .ok_or_else(|| ApiError::invalid("model", Message::ModelRequired))?;
    let file = form
        .file
        .ok_or_else(|| ApiError::invalid("file", Message::FileRequired))?;
    let content_type = form
        .content_type
        .ok_or_else(|| ApiError::invalid("file", Message::FileRequired))?;
    Ok(Parsed {
        model,
        payload: Payload::Raw {
            bytes,
            content_type,
        },
        reply: if form.stream {
            Reply::Events
        } else {
            Reply::Whole
        },
        prompt: Prompt::Known(duration::estimated_tokens(&file)),
        completion: None,
        estimate: true,
        hide_usage_chunk: false,
        affinity: None,
    })
}

/// The reply's `usage` when it counts tokens; a duration-only usage (or
/// none) leaves the request to the estimate.
fn token_usage(body: &[u8]) -> Option<RawUsage> {
    endpoint::json_usage(body).filter(|usage| {
        usage.total_tokens.is_some()
            || usage.prompt_tokens.is_some()
            || usage.completion_tokens.is_some()
    })
}

/// The returned text: `text` of a JSON reply, or the whole body of a
/// `text`, `srt` or `vtt` one.
fn measure_reply(body: &[u8], measure: &mut TextMeasure) {
    match serde_json::from_slice::<Value>(body) {
        Ok(reply) => measure.add_strings(reply.get("text")),
        Err(_) => measure.add(&String::from_utf8_lossy(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token usage is taken; duration usage is left to the estimate.
    #[test]
    fn only_token_usage_counts_as_reported() {
        let tokens = br#"{"text":"hi","usage":{"type":"tokens","input_tokens":14,"output_tokens":45,"total_tokens":59}}"#;
        let seconds = br#"{"text":"hi","usage":{"type":"duration","seconds":9}}"#;
        assert_eq!(
            token_usage(tokens).and_then(|usage| usage.total_tokens),
            Some(59)
        );
        assert!(token_usage(seconds).is_none());
        let mut measure = TextMeasure::for_model("m");
        measure_reply(b"plain text!", &mut measure);
        assert_eq!(measure.tokens(), 3);
    }
}
