//! `POST /v1/chat/completions`: authenticate, parse, route, and retry across
//! channels until one answers; then relay its reply, whole or streamed.
//!
//! The client's JSON is kept as a `serde_json::Map`, so unknown fields pass
//! through untouched; only `model` is rewritten per channel, and streams get
//! `stream_options.include_usage = true`. Client headers (auth included) are
//! never forwarded.
//!
//! Which channel each attempt goes to, under the daily cap, is `dispatch`'s
//! business; charging the counters is `meter`'s. This file only reports
//! what each attempt did.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::dispatch::{Candidates, Demand, Dispatch};
use super::meter::Meter;
use super::request_id::RequestId;
use super::stream::relay_stream;
use super::upstream::{self, Failure, Success};
use super::usage::{self, TextMeasure};
use super::{affinity, auth};
use crate::AppState;
use crate::error::{ApiError, ErrorCode, OpenAiError};
use crate::i18n::Message;
use crate::model::Token;

pub const ENDPOINT: &str = "/v1/chat/completions";

/// The parsed client request.
struct ChatRequest {
    body: Map<String, Value>,
    model: String,
    stream: bool,
    /// The client asked for the usage chunk itself.
    wants_usage: bool,
}

pub async fn chat_completions(
    State(state): State<AppState>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, OpenAiError> {
    let started = Instant::now();
    let snapshot = state.snapshot();
    let token = auth::authenticate(request.headers(), &snapshot, state.clock.now())
        .map_err(|error| super::rejected(&request_id, ENDPOINT, error))?;
    let mut meter = Meter::start(&state, &request_id, token.id, ENDPOINT, started);
    let session = request
        .headers()
        .get(affinity::SESSION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let chat = match parse(&state, request, &token).await {
        Ok(chat) => chat,
        Err(error) => return Err(meter.fail(error)),
    };
    let demand = Demand {
        prompt: usage::estimate_prompt(&chat.body),
        completion: usage::requested_completion(&chat.body),
    };
    meter.request(&chat.model, chat.stream, demand.prompt);
    let candidates = Candidates::of(&snapshot, &token, &chat.model);
    if candidates.route().is_empty() {
        return Err(meter.fail(model_not_found(&chat.model)));
    }
    let source = affinity::source(&chat.body, session.as_deref());
    let dispatch = Dispatch::new(&state, candidates.route(), demand, request_id.as_str())
        .with_affinity(&snapshot, &token, &chat.model, source);
    relay(&state, &candidates, dispatch, chat, meter).await
}

/// Reads and validates the body, within the size limit.
async fn parse(state: &AppState, request: Request, token: &Token) -> Result<ChatRequest, ApiError> {
    let limit = state.config.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(limit)
            } else {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    Message::InvalidValue {
                        detail: rejection.body_text(),
                    },
                )
            }
        })?;
    let body: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            Message::MalformedJson {
                detail: error.to_string(),
            },
        )
    })?;
    let model = match body.get("model") {
        Some(Value::String(model)) if !model.is_empty() => model.clone(),
        _ => {
            return Err(ApiError::invalid("model", Message::ModelRequired));
        }
    };
    if !token.allows_model(&model) {
        return Err(model_not_found(&model));
    }
    let stream = body.get("stream") == Some(&Value::Bool(true));
    let wants_usage = body
        .get("stream_options")
        .and_then(|options| options.get("include_usage"))
        == Some(&Value::Bool(true));
    Ok(ChatRequest {
        body,
        model,
        stream,
        wants_usage,
    })
}

/// Tries channels in dispatch order until one answers or the attempts run out.
async fn relay(
    state: &AppState,
    candidates: &Candidates<'_>,
    mut dispatch: Dispatch<'_>,
    mut chat: ChatRequest,
    mut meter: Meter,
) -> Result<Response, OpenAiError> {
    if chat.stream {
        request_usage(&mut chat.body);
    }
    let max_attempts = state.config.max_retries as usize + 1;
    let mut attempts = 0;
    let mut last_failure = None;
    let mut all_unreachable = true;
    while attempts < max_attempts {
        let Some((entry, hold)) = dispatch.next_channel() else {
            break;
        };
        attempts += 1;
        let id = entry.channel.id;
        let upstream_model = entry.channel.upstream_model(&chat.model);
        meter.tried(id, upstream_model);
        meter.hold(hold);
        chat.body.insert(
            "model".to_string(),
            Value::String(upstream_model.to_string()),
        );
        let body = serde_json::to_vec(&chat.body)
            .map_err(|error| meter.fail(ApiError::internal("encoding the upstream body", error)))?;
        match upstream::attempt(state, entry, body, chat.stream).await {
            Ok(Success::Complete {
                status,
                content_type,
                body,
            }) => {
                dispatch.served_by(entry);
                return Ok(complete(meter, status, content_type, body));
            }
            Ok(Success::Streaming {
                status,
                first,
                rest,
            }) => {
                dispatch.served_by(entry);
                meter.first_byte();
                meter.respond(status, None);
                let idle = state.config.stream_idle_timeout;
                return Ok(relay_stream(
                    meter,
                    status,
                    first,
                    rest,
                    !chat.wants_usage,
                    idle,
                ));
            }
            Err(Failure::Rejected {
                status,
                content_type,
                body,
            }) => {
                meter.attempt_failed(upstream::usage_in(&body));
                meter.respond(status, Some(ErrorCode::UpstreamRejected.as_str()));
                return Ok(verbatim(status, content_type, body));
            }
            Err(failure) => {
                meter.attempt_failed(failure.reported_usage());
                tracing::warn!(
                    request_id = meter.request_id(),
                    channel = id.0,
                    ?failure,
                    "upstream attempt failed"
                );
                all_unreachable &= matches!(failure, Failure::Unreachable(_));
                last_failure = Some(failure);
            }
        }
    }
    if attempts == 0
        && let Some(seconds) = dispatch.capped_for()
    {
        return Err(meter.fail(capped(candidates, &chat.model, seconds)));
    }
    Err(meter.fail(exhausted(attempts, last_failure, all_unreachable)))
}

/// Nothing was tried because every candidate is at its daily limit: the
/// bound channel's own 429, or the group's, until the earliest reset.
fn capped(candidates: &Candidates<'_>, model: &str, seconds: u64) -> ApiError {
    let (code, message) = match candidates.bound() {
        Some(entry) => (
            ErrorCode::ChannelDailyLimitExceeded,
            Message::ChannelDailyLimitExceeded {
                channel: entry.channel.spec.name.clone(),
                seconds,
            },
        ),
        None => (
            ErrorCode::DailyLimitExhausted,
            Message::DailyLimitExhausted {
                model: model.to_string(),
                seconds,
            },
        ),
    };
    ApiError::new(code, message).with_retry_after(seconds)
}

/// Asks the upstream for the usage chunk, keeping other stream options.
fn request_usage(body: &mut Map<String, Value>) {
    let options = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    if let Value::Object(options) = options {
        options.insert("include_usage".to_string(), Value::Bool(true));
    }
}

/// Relays a whole reply unchanged; the body is parsed only to find its usage.
fn complete(
    mut meter: Meter,
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Response {
    let reported = upstream::usage_in(&body);
    let completion = match reported {
        Some(_) => TextMeasure::default(),
        None => serde_json::from_slice::<Value>(&body)
            .map(|reply| usage::measure_reply(&reply))
            .unwrap_or_default(),
    };
    meter.served(reported, completion);
    meter.respond(status, None);
    verbatim(status, content_type, body)
}

/// An upstream reply passed through as it came: status, content type, body.
fn verbatim(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    let content_type = content_type.unwrap_or(HeaderValue::from_static("application/json"));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

fn exhausted(attempts: usize, last: Option<Failure>, all_unreachable: bool) -> ApiError {
    let code = if all_unreachable {
        ErrorCode::UpstreamUnavailable
    } else {
        ErrorCode::UpstreamFailed
    };
    let message = match last {
        Some(Failure::Unreachable(last) | Failure::Failed { summary: last, .. }) => {
            Message::UpstreamAttemptsFailed { attempts, last }
        }
        _ => Message::NoChannelTried,
    };
    ApiError::new(code, message)
}

fn model_not_found(model: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ModelNotFound,
        Message::ModelNotFound {
            model: model.to_string(),
        },
    )
    .with_field("model")
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, Message::BodyTooLarge { limit })
}
