//! The one relay pipeline every `/v1` endpoint runs: authenticate, read the
//! body within the limit, parse it the endpoint's way, find the candidate
//! channels, and try them in dispatch order until one answers; then relay
//! its reply whole, as events, or as a binary stream.
//!
//! What differs between endpoints is described by an [`Endpoint`]; where
//! an attempt goes on each channel type is `target`'s business; which
//! channel each attempt takes under the daily cap is `dispatch`'s; and
//! charging the counters and writing the log row is `meter`'s. This file
//! only reports to the [`Meter`] what each attempt did. Client headers
//! (auth included) are never forwarded.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::auth;
use super::dispatch::{Candidates, Demand, Dispatch};
use super::endpoint::{Endpoint, Family, Parsed, Payload, Prompt, Reply};
use super::endpoints::anthropic;
use super::meter::{Hold, Meter, PromptText};
use super::observe::Seen;
use super::request_id::RequestId;
use super::sse::SseRelay;
use super::stream::relay_stream;
use super::upstream::{self, Failure, Outbound, Success};
use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;
use crate::snapshot::ChannelEntry;
use crate::upstream::target::{self, UpstreamRequest};

/// Serves one request to `endpoint`, errors in the envelope of its family.
pub async fn respond(
    state: &AppState,
    request_id: &RequestId,
    endpoint: &'static Endpoint,
    request: Request,
) -> Response {
    match serve(state, request_id, endpoint, request).await {
        Ok(response) => response,
        Err(error) => match endpoint.family {
            Family::OpenAi => error.openai().into_response(),
            Family::Anthropic => error.anthropic().into_response(),
        },
    }
}

/// Serves one request to `endpoint`. Errors come back unrendered, so each
/// protocol family can use its own envelope.
pub async fn serve(
    state: &AppState,
    request_id: &RequestId,
    endpoint: &'static Endpoint,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let snapshot = state.snapshot();
    let token = auth::authenticate(request.headers(), &snapshot, state.clock.now())
        .map_err(|error| super::rejected_raw(request_id, endpoint.path, error))?;
    let mut meter = Meter::start(state, request_id, token.id, endpoint.path, started);
    let headers = request.headers().clone();
    let parsed = match read_body(state, request).await {
        Ok(bytes) => (endpoint.parse)(bytes, &headers),
        Err(error) => Err(error),
    };
    let parsed = match parsed {
        Ok(parsed) if !token.allows_model(&parsed.model) => {
            return Err(meter.failed(model_not_found(&parsed.model)));
        }
        Ok(parsed) => parsed,
        Err(error) => return Err(meter.failed(error)),
    };
    meter.request(
        &parsed.model,
        parsed.reply.streams(),
        prompt_text(endpoint, &parsed),
    );
    if !parsed.estimate {
        meter.without_estimate();
    }
    let candidates = Candidates::of(&snapshot, &token, &parsed.model).serving(endpoint.operation);
    if candidates.route().is_empty() {
        return Err(meter.failed(model_not_found(&parsed.model)));
    }
    // Only a reservation needs the prompt's size before the request leaves.
    let demand = Demand {
        prompt: match candidates.route().is_limited() {
            true => parsed.prompt_bound(),
            false => 0,
        },
        completion: parsed.completion,
    };
    let session = headers
        .get(crate::affinity::SESSION_HEADER)
        .and_then(|value| value.to_str().ok());
    let source = parsed.affinity.as_deref().or(session);
    super::dispatch::warm_leases(state, candidates.route(), demand).await;
    let dispatch = Dispatch::new(state, candidates.route(), demand, request_id.as_str())
        .with_affinity(&snapshot, &token, &parsed.model, source);
    relay(
        state,
        endpoint,
        &candidates,
        dispatch,
        parsed,
        meter,
        &headers,
    )
    .await
}

/// What the meter estimates the prompt from if no usage comes: the body
/// (kept by reference, parsed only then) or the known size.
fn prompt_text(endpoint: &Endpoint, parsed: &Parsed) -> PromptText {
    match (&parsed.payload, parsed.prompt) {
        (_, Prompt::Known(tokens)) => PromptText::Known(tokens),
        (Payload::Json { body, .. }, Prompt::FromBody) => PromptText::Json {
            body: body.bytes().clone(),
            count: endpoint.count_prompt,
        },
        (Payload::Raw { bytes, .. }, Prompt::FromBody) => {
            PromptText::Known(super::estimate::prompt_bound(bytes))
        }
    }
}

/// Reads the whole body, within the configured limit: a declared length
/// over it is refused before reading, a body that grows past it as soon as
/// it does.
async fn read_body(state: &AppState, request: Request) -> Result<Bytes, ApiError> {
    let limit = state.config.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    let limited = http_body_util::Limited::new(request.into_body(), limit);
    match http_body_util::BodyExt::collect(limited).await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(error) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            Message::InvalidValue {
                detail: format!("reading the request body failed: {error}"),
            },
        )),
    }
}

/// Tries channels in dispatch order until one answers or the attempts run out.
async fn relay(
    state: &AppState,
    endpoint: &'static Endpoint,
    candidates: &Candidates<'_>,
    mut dispatch: Dispatch<'_>,
    parsed: Parsed,
    mut meter: Meter,
    client_headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let max_attempts = state.settings().max_retries as usize + 1;
    let mut attempts = 0;
    let mut last_failure = None;
    let mut all_unreachable = true;
    while attempts < max_attempts {
        let Some((entry, hold)) = dispatch.next_channel() else {
            break;
        };
        let attempt = Attempt {
            state,
            endpoint,
            parsed: &parsed,
            client_headers,
            entry,
        };
        match attempt.run(hold, &mut meter).await {
            Step::Served(success) => {
                dispatch.served_by(entry);
                return Ok(deliver(state, endpoint, &parsed, meter, success));
            }
            Step::Answered(response) => return Ok(response),
            Step::Skipped(failure) => {
                all_unreachable = false;
                last_failure = Some(failure);
            }
            Step::Failed(failure) => {
                attempts += 1;
                all_unreachable &= matches!(failure, Failure::Unreachable(_));
                last_failure = Some(failure);
            }
        }
    }
    Err(meter.failed(unserved(
        &dispatch,
        candidates,
        &parsed.model,
        attempts,
        last_failure,
        all_unreachable,
    )))
}

/// Why a request that no channel served failed: every candidate capped
/// before any attempt (429), or the attempts' failure (502/503).
pub(super) fn unserved(
    dispatch: &Dispatch<'_>,
    candidates: &Candidates<'_>,
    model: &str,
    attempts: usize,
    last_failure: Option<Failure>,
    all_unreachable: bool,
) -> ApiError {
    match dispatch.capped_for() {
        Some(seconds) if attempts == 0 => capped(candidates, model, seconds),
        _ => exhausted(attempts, last_failure, all_unreachable),
    }
}

/// What one attempt came to.
enum Step {
    /// The upstream answered with a success, to deliver.
    Served(Success),
    /// An answer for the client as it is: the request cannot be put to
    /// the channel's protocol, or the upstream rejected it (a 4xx the
    /// client must see). No other channel would do better.
    Answered(Response),
    /// The channel cannot take this operation: skipped without spending
    /// an attempt or touching its counter.
    Skipped(Failure),
    /// The attempt was spent and failed; the next channel may do better.
    Failed(Failure),
}

/// One attempt of a request on one channel.
struct Attempt<'a> {
    state: &'a AppState,
    endpoint: &'static Endpoint,
    parsed: &'a Parsed,
    client_headers: &'a HeaderMap,
    entry: &'a ChannelEntry,
}

impl Attempt<'_> {
    /// Prepares the request for the channel, sends it under `hold`, and
    /// judges the answer.
    async fn run(&self, hold: Hold, meter: &mut Meter) -> Step {
        let Attempt {
            state,
            endpoint,
            parsed,
            client_headers,
            entry,
        } = *self;
        let upstream_model = entry.channel.upstream_model(&parsed.model);
        let (outbound, key) =
            match outbound(entry, endpoint, parsed, upstream_model, client_headers) {
                Ok(ready) => ready,
                Err(Failure::Rejected {
                    status,
                    content_type,
                    body,
                }) => {
                    // An Anthropic translation refused the request: a client error.
                    hold.release(&state.counters);
                    meter.respond(status, Some(ErrorCode::InvalidRequest.as_str()));
                    return Step::Answered(verbatim(status, content_type, body));
                }
                Err(failure) => {
                    hold.release(&state.counters);
                    return Step::Skipped(failure);
                }
            };
        let id = entry.channel.id;
        meter.tried(id, upstream_model);
        meter.hold(hold);
        let bridged = anthropic::bridge::applies(entry, endpoint.operation);
        let sent = Instant::now();
        let answer = upstream::attempt(state, outbound, key, parsed.reply.streams()).await;
        state.metrics.upstream_latency(id, sent.elapsed());
        match answer {
            Ok(success) if bridged => Step::Served(anthropic::bridge::reply(
                success,
                state.clock.now().timestamp(),
            )),
            Ok(success) => Step::Served(success),
            Err(Failure::Rejected {
                status,
                content_type,
                body,
            }) => {
                meter.attempt_failed((endpoint.reply_usage)(&body));
                meter.respond(status, Some(ErrorCode::UpstreamRejected.as_str()));
                let (content_type, body) = match bridged {
                    true => anthropic::bridge::error_body(status, body, content_type),
                    false => (content_type, body),
                };
                Step::Answered(verbatim(status, content_type, body))
            }
            Err(failure) => {
                meter.attempt_failed(failure.reported_usage());
                tracing::warn!(
                    request_id = meter.request_id(),
                    channel = id.0,
                    ?failure,
                    "upstream attempt failed"
                );
                Step::Failed(failure)
            }
        }
    }
}

/// The request for one attempt on `entry`: target URL and auth, the content
/// type, and the body with `model` rewritten to the channel's name for it.
fn outbound<'e>(
    entry: &'e ChannelEntry,
    endpoint: &Endpoint,
    parsed: &Parsed,
    upstream_model: &str,
    client_headers: &HeaderMap,
) -> Result<(Outbound, &'e str), Failure> {
    let unusable = |text: String| Failure::Failed {
        summary: text,
        usage: None,
    };
    let key = entry
        .next_key()
        .ok_or_else(|| unusable("the channel has no upstream key".to_string()))?;
    let UpstreamRequest { uri, mut headers } =
        target::upstream_request(&entry.target, endpoint.operation, upstream_model, key)
            .map_err(|error| unusable(error.to_string()))?;
    anthropic::bridge::forward_headers(entry, client_headers, &mut headers);
    headers.insert(header::USER_AGENT, crate::upstream::client::USER_AGENT);
    let body = match &parsed.payload {
        Payload::Json { body, .. } => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if anthropic::bridge::applies(entry, endpoint.operation) {
                // The translation rewrites the whole body: the one place
                // a request is parsed into a tree before it leaves.
                anthropic::bridge::request_body(body, upstream_model)?
            } else {
                parsed.body_for(upstream_model)
            }
        }
        Payload::Raw { content_type, .. } => {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
            parsed.body_for(upstream_model)
        }
    };
    let channel = entry.channel.id;
    let ready = Outbound {
        uri,
        headers,
        body,
        channel,
    };
    Ok((ready, key))
}

/// Relays a successful attempt to the client.
fn deliver(
    state: &AppState,
    endpoint: &Endpoint,
    parsed: &Parsed,
    mut meter: Meter,
    success: Success,
) -> Response {
    match success {
        Success::Complete {
            status,
            content_type,
            body,
        } => {
            let reported = (endpoint.reply_usage)(&body);
            meter.served_whole(reported, body.clone(), endpoint.measure_reply);
            meter.respond(status, None);
            verbatim(status, content_type, body)
        }
        Success::Streaming {
            status,
            content_type,
            first,
            rest,
        } => {
            meter.first_byte();
            meter.respond(status, None);
            let sse = (parsed.reply == Reply::Events).then(|| {
                let seen = Seen::for_model(&parsed.model);
                SseRelay::new((endpoint.observer)(parsed), seen)
            });
            let idle = state.settings().stream_idle_timeout;
            relay_stream(meter, status, first, rest, sse, content_type, idle)
        }
    }
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

/// An upstream reply passed through as it came: status, content type, body.
pub fn verbatim(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> Response {
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

pub fn model_not_found(model: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ModelNotFound,
        Message::ModelNotFound {
            model: model.to_string(),
        },
    )
    .with_field("model")
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, Message::BodyTooLarge { limit })
}
