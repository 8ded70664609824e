//! Where the Anthropic modules plug into the relay pipeline: the per-attempt
//! steps that differ when an `anthropic` channel serves a request.
//!
//! - An OpenAI chat request to an `anthropic` channel is translated
//!   ([`request_body`]), its reply translated back ([`reply`]), and an
//!   Anthropic error body rewritten in the OpenAI envelope ([`error_body`]).
//! - Every request to an `anthropic` channel carries the client's
//!   `anthropic-version` and `anthropic-beta` headers ([`forward_headers`]);
//!   the target sets the default version when the client sent none.
//!
//! The pipeline calls these; it keeps routing, retries and metering.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{reply as whole, stream, translate};
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;
use crate::model::ChannelType;
use crate::relay::body::JsonBody;
use crate::relay::upstream::{Failure, Success};
use crate::snapshot::ChannelEntry;
use crate::upstream::target::Operation;

/// The client headers an `anthropic` channel receives.
pub const FORWARDED: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// Whether an attempt of `operation` on `entry` goes through the OpenAI ↔
/// Anthropic translation.
pub fn applies(entry: &ChannelEntry, operation: Operation) -> bool {
    entry.channel.spec.kind == ChannelType::Anthropic && operation == Operation::ChatCompletions
}

/// Copies the client's Anthropic headers onto a request to an `anthropic`
/// channel, replacing the target's defaults.
pub fn forward_headers(entry: &ChannelEntry, client: &HeaderMap, upstream: &mut HeaderMap) {
    if entry.channel.spec.kind != ChannelType::Anthropic {
        return;
    }
    for name in FORWARDED {
        let values: Vec<HeaderValue> = client.get_all(name).iter().cloned().collect();
        if values.is_empty() {
            continue;
        }
        let name = HeaderName::from_static(name);
        upstream.remove(&name);
        for value in values {
            upstream.append(name.clone(), value);
        }
    }
}

/// The Anthropic body for the OpenAI chat request `body`. A request the
/// Messages API cannot carry is refused like an upstream 400, in the OpenAI
/// envelope, so the pipeline hands it to the client instead of retrying.
pub fn request_body(body: &JsonBody, upstream_model: &str) -> Result<Bytes, Failure> {
    // The scan accepted the body, so only a limit of the tree parser
    // (numbers, depth) could refuse it: the client's error.
    let body = body.to_map().map_err(|error| {
        let error = ApiError::new(
            ErrorCode::InvalidRequest,
            Message::MalformedJson {
                detail: error.to_string(),
            },
        );
        Failure::Rejected {
            status: error.status(),
            content_type: Some(HeaderValue::from_static("application/json")),
            body: Bytes::from(error.openai_body().to_string()),
        }
    })?;
    let translated =
        translate::request(&body, upstream_model).map_err(|error| Failure::Rejected {
            status: error.status(),
            content_type: Some(HeaderValue::from_static("application/json")),
            body: Bytes::from(error.openai_body().to_string()),
        })?;
    serde_json::to_vec(&translated)
        .map(Bytes::from)
        .map_err(|error| Failure::Failed {
            summary: format!("encoding the Anthropic request: {error}"),
            usage: None,
        })
}

/// An `anthropic` channel's success, as the OpenAI client expects it;
/// `created` stamps the completion (Unix seconds).
pub fn reply(success: Success, created: i64) -> Success {
    match success {
        Success::Complete {
            status,
            content_type,
            body,
        } => match whole::completion(&body, created) {
            Some(completion) => Success::Complete {
                status,
                content_type: Some(HeaderValue::from_static("application/json")),
                body: Bytes::from(completion.to_string()),
            },
            None => Success::Complete {
                status,
                content_type,
                body,
            },
        },
        Success::Streaming {
            status,
            first,
            rest,
            ..
        } => {
            let (first, rest) = stream::translated(&first, rest, created);
            Success::Streaming {
                status,
                content_type: Some(HeaderValue::from_static("text/event-stream")),
                first,
                rest,
            }
        }
    }
}

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`)
/// in the OpenAI envelope; other bodies pass unchanged.
pub fn error_body(
    status: StatusCode,
    body: Bytes,
    content_type: Option<HeaderValue>,
) -> (Option<HeaderValue>, Bytes) {
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let error = parsed
        .as_ref()
        .filter(|value| value.get("type") == Some(&json!("error")))
        .and_then(|value| value.get("error"));
    let Some(error) = error else {
        return (content_type, body);
    };
    let openai = json!({"error": {
        "message": error.get("message").cloned().unwrap_or_else(|| json!(status.to_string())),
        "type": error.get("type").cloned().unwrap_or(Value::Null),
        "param": null,
        "code": null,
    }});
    let json = HeaderValue::from_static("application/json");
    (Some(json), Bytes::from(openai.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anthropic error bodies become OpenAI envelopes; others pass unchanged.
    #[test]
    fn error_bodies_change_envelope() {
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#;
        let (content_type, body) =
            error_body(StatusCode::BAD_REQUEST, Bytes::from_static(anthropic), None);
        assert!(content_type.is_some());
        assert_eq!(
            serde_json::from_slice::<Value>(&body).ok(),
            Some(
                json!({"error": {"message": "max_tokens: too big", "type": "invalid_request_error", "param": null, "code": null}})
            )
        );
        let other = Bytes::from_static(b"<html>");
        assert_eq!(
            error_body(StatusCode::BAD_REQUEST, other.clone(), None),
            (None, other)
        );
    }
}
