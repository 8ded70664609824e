//! `GET /v1/realtime`: the OpenAI Realtime API, proxied as a WebSocket.
//!
//! # The handshake
//! Everything that can be refused is refused before the upgrade, as a plain
//! HTTP answer in the OpenAI envelope:
//! - the key comes from `Authorization: Bearer`, `x-api-key`, or (for
//!   browsers, which cannot set headers on a WebSocket) the subprotocol
//!   `openai-insecure-api-key.<key>`; none or an unknown one → 401;
//! - the model comes from `?model=` (400 without it, 404 if the key may not
//!   use it or no channel serves it);
//! - the channel is picked by `dispatch`, like any request: a capped channel
//!   is skipped, a key bound to a capped channel gets 429
//!   `channel_daily_token_limit_exceeded`, a group whose channels are all
//!   capped 429 `daily_token_limit_exhausted`;
//! - the upstream WebSocket is opened *before* the client's is accepted, so a
//!   channel that refuses or cannot be reached is retried on the next one,
//!   and only then does the client get `101 Switching Protocols`.
//!
//! The upstream URL is the channel's `base_url` with `http`→`ws` and
//! `https`→`wss`, plus `/realtime?model=<mapped model>` (Azure:
//! `/openai/realtime?api-version=…&deployment=…`), with the channel's key
//! (`Authorization: Bearer`, Azure `api-key`). The client's `OpenAI-Beta`
//! header (or its `openai-beta.realtime-v1` subprotocol) is passed on. Of the
//! client's subprotocols, `realtime` is echoed back when offered.
//!
//! # The session
//! Text and binary frames pass both ways unchanged; each hop answers its own
//! pings. Every upstream `response.done` event's `response.usage`
//! (`total_tokens`, else `input_tokens + output_tokens`) is counted into the
//! channel's daily counter as it arrives, through `Meter::count_running`, so
//! a long session is counted while it runs. A session already open on a
//! channel that reaches its daily cap is *not* cut: it finishes on that
//! channel, and new sessions go to other channels (or get 429). The session's
//! hold reserves the channel's default reservation until its first count.
//!
//! When the session ends (either side closes, or the upstream breaks) one
//! request-log row is written: endpoint `/v1/realtime`, status 101, the
//! summed usage, and the session's duration as its latency.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as UpstreamMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::AppState;
use crate::error::{ApiError, ErrorCode, OpenAiError};
use crate::i18n::Message;
use crate::relay::auth;
use crate::relay::dispatch::{Candidates, Demand, Dispatch};
use crate::relay::meter::Meter;
use crate::relay::pipeline::{model_not_found, unserved};
use crate::relay::request_id::RequestId;
use crate::relay::upstream::{self, Failure};
use crate::relay::usage::RawUsage;
use crate::snapshot::ChannelEntry;
use crate::upstream::target::realtime_request;

pub const ENDPOINT: &str = "/v1/realtime";

/// The subprotocol that carries a browser's API key.
const KEY_PROTOCOL: &str = "openai-insecure-api-key.";
/// The subprotocol that stands for `OpenAI-Beta: realtime=v1`.
const BETA_PROTOCOL: &str = "openai-beta.realtime-v1";
/// The subprotocols the gateway accepts and echoes back.
const ACCEPTED_PROTOCOLS: [&str; 1] = ["realtime"];
const OPENAI_BETA: &str = "openai-beta";
/// How long the upstream may take to finish after the client closed, so
/// that a `response.done` already in flight is still counted.
const CLOSE_DRAIN: Duration = Duration::from_secs(5);

type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Deserialize)]
pub struct RealtimeQuery {
    model: Option<String>,
}

pub async fn realtime(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
    query: Result<Query<RealtimeQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, OpenAiError> {
    let started = Instant::now();
    let snapshot = state.snapshot();
    let token = auth::authenticate(&auth_headers(&headers), &snapshot, state.clock.now())
        .map_err(|error| crate::relay::rejected(&request_id, ENDPOINT, error))?;
    let mut meter = Meter::start(&state, &request_id, token.id, ENDPOINT, started);
    let upgrade = upgrade.map_err(|rejection| {
        meter.fail(ApiError::new(
            ErrorCode::InvalidRequest,
            Message::InvalidValue {
                detail: format!("expected a WebSocket upgrade: {rejection}"),
            },
        ))
    })?;
    let model = match query {
        Ok(Query(RealtimeQuery { model: Some(model) })) if !model.is_empty() => model,
        _ => return Err(meter.fail(ApiError::invalid("model", Message::ModelRequired))),
    };
    meter.request(&model, true, crate::relay::meter::PromptText::Known(0));
    if !token.allows_model(&model) {
        return Err(meter.fail(model_not_found(&model)));
    }
    let candidates = Candidates::of(&snapshot, &token, &model);
    if candidates.route().is_empty() {
        return Err(meter.fail(model_not_found(&model)));
    }
    let demand = Demand {
        prompt: 0,
        completion: None,
    };
    crate::relay::dispatch::warm_leases(&state, candidates.route(), demand).await;
    let dispatch = Dispatch::new(&state, candidates.route(), demand, request_id.as_str());
    let beta = beta_header(&headers);
    let session = Session {
        model,
        beta,
        upgrade,
    };
    open(&state, &candidates, dispatch, session, meter).await
}

/// What the handshake carries into the attempts.
struct Session {
    model: String,
    beta: Option<HeaderValue>,
    upgrade: WebSocketUpgrade,
}

/// Opens the upstream WebSocket on the first channel that takes it, then
/// accepts the client's.
async fn open(
    state: &AppState,
    candidates: &Candidates<'_>,
    mut dispatch: Dispatch<'_>,
    session: Session,
    mut meter: Meter,
) -> Result<Response, OpenAiError> {
    let max_attempts = state.settings().max_retries as usize + 1;
    let mut attempts = 0;
    let mut last_failure = None;
    let mut all_unreachable = true;
    while attempts < max_attempts {
        let Some((entry, hold)) = dispatch.next_channel() else {
            break;
        };
        attempts += 1;
        let upstream_model = entry.channel.upstream_model(&session.model);
        meter.tried(entry.channel.id, upstream_model);
        meter.hold(hold);
        match connect(state, entry, upstream_model, session.beta.as_ref()).await {
            Ok(upstream) => {
                meter.first_byte();
                meter.respond(StatusCode::SWITCHING_PROTOCOLS, None);
                meter.served(Some(RawUsage::default()), Default::default());
                let relay = Relay {
                    state: state.clone(),
                    entry: Arc::clone(entry),
                    meter,
                    capped_noted: false,
                };
                return Ok(session
                    .upgrade
                    .protocols(ACCEPTED_PROTOCOLS)
                    .on_upgrade(move |client| relay.run(client, upstream)));
            }
            Err(Failure::Rejected { status, body, .. }) => {
                meter.attempt_failed(None);
                meter.respond(status, Some(ErrorCode::UpstreamRejected.as_str()));
                let mut response = (status, Body::from(body)).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Ok(response);
            }
            Err(failure) => {
                meter.attempt_failed(None);
                tracing::warn!(
                    request_id = meter.request_id(),
                    channel = entry.channel.id.0,
                    ?failure,
                    "upstream realtime attempt failed"
                );
                all_unreachable &= matches!(failure, Failure::Unreachable(_));
                last_failure = Some(failure);
            }
        }
    }
    Err(meter.fail(unserved(
        &dispatch,
        candidates,
        &session.model,
        attempts,
        last_failure,
        all_unreachable,
    )))
}

/// The client's headers as `auth` reads them: a key offered only as a
/// subprotocol becomes a Bearer header.
fn auth_headers(headers: &HeaderMap) -> HeaderMap {
    let has_header_key =
        headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key");
    let mut with_key = headers.clone();
    if !has_header_key
        && let Some(key) = offered_protocols(headers).find_map(|p| p.strip_prefix(KEY_PROTOCOL))
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {key}"))
    {
        with_key.insert(header::AUTHORIZATION, value);
    }
    with_key
}

/// The subprotocols the client offered, trimmed.
fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

/// The `OpenAI-Beta` value to pass on: the client's header, else
/// `realtime=v1` when it offered the beta subprotocol.
fn beta_header(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(OPENAI_BETA).cloned().or_else(|| {
        offered_protocols(headers)
            .any(|protocol| protocol == BETA_PROTOCOL)
            .then(|| HeaderValue::from_static("realtime=v1"))
    })
}

/// Opens the upstream WebSocket for `entry` within the first-byte timeout.
async fn connect(
    state: &AppState,
    entry: &ChannelEntry,
    upstream_model: &str,
    beta: Option<&HeaderValue>,
) -> Result<Upstream, Failure> {
    let request = upstream_request(entry, upstream_model, beta)?;
    let connector = tls_config().map(|config| Connector::Rustls(Arc::clone(config)));
    let handshake =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
    let timeout = state.settings().first_byte_timeout;
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok((upstream, _response))) => Ok(upstream),
        Ok(Err(error)) => Err(classify(error)),
        Err(_) => Err(Failure::Unreachable(format!(
            "no WebSocket handshake within {timeout:?}"
        ))),
    }
}

/// The upstream handshake request: URL and auth from the channel's target
/// (`upstream::target::realtime_request`), plus `OpenAI-Beta`.
fn upstream_request(
    entry: &ChannelEntry,
    upstream_model: &str,
    beta: Option<&HeaderValue>,
) -> Result<tungstenite::handshake::client::Request, Failure> {
    let failed = |summary: &str| Failure::Failed {
        summary: summary.to_string(),
        usage: None,
    };
    let key = entry
        .next_key()
        .ok_or_else(|| failed("the channel has no upstream key"))?;
    let target = realtime_request(&entry.target, upstream_model, key)
        .map_err(|error| failed(&error.to_string()))?;
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|error| failed(&format!("building the upstream request: {error}")))?;
    let headers = request.headers_mut();
    let (name, value) = target.auth;
    headers.insert(name, value);
    if let Some(beta) = beta {
        headers.insert(OPENAI_BETA, beta.clone());
    }
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("sluicegate/", env!("CARGO_PKG_VERSION"))),
    );
    Ok(request)
}

/// The TLS client config for `wss://` upstreams: rustls with the ring
/// provider and the platform's roots (the same verifier reqwest uses), built
/// once. `None` if the platform verifier cannot be set up, in which case
/// only `ws://` upstreams work (and the failure is logged).
fn tls_config() -> Option<&'static Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls_platform_verifier::BuilderVerifierExt;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let built = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .and_then(|builder| builder.with_platform_verifier())
                .map(|builder| Arc::new(builder.with_no_client_auth()));
            built
                .map_err(|error| tracing::error!(%error, "building the realtime TLS config failed"))
                .ok()
        })
        .as_ref()
}

/// Sorts a failed handshake like `upstream` sorts a failed HTTP attempt.
fn classify(error: tungstenite::Error) -> Failure {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            if upstream::is_retryable(status) {
                Failure::Failed {
                    summary: format!("upstream returned {status}"),
                    usage: None,
                }
            } else {
                let body = response.into_body().map(Bytes::from).unwrap_or_default();
                Failure::Rejected {
                    status,
                    content_type: None,
                    body,
                }
            }
        }
        tungstenite::Error::Io(error) => Failure::Unreachable(error.to_string()),
        tungstenite::Error::Tls(error) => Failure::Unreachable(error.to_string()),
        other => Failure::Failed {
            summary: other.to_string(),
            usage: None,
        },
    }
}

/// One open session: the two sockets' frames, and its metering.
struct Relay {
    state: AppState,
    entry: Arc<ChannelEntry>,
    meter: Meter,
    /// Whether the channel's reaching its cap was already logged.
    capped_noted: bool,
}

impl Relay {
    /// Passes frames both ways until one side closes; the meter records the
    /// session when this returns.
    async fn run(mut self, client: WebSocket, upstream: Upstream) {
        let (mut to_client, mut from_client) = client.split();
        let (mut to_upstream, mut from_upstream) = upstream.split();
        loop {
            tokio::select! {
                incoming = from_client.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        // The client went away without a close frame.
                        Some(Err(_)) | None => {
                            let _ = to_upstream.send(UpstreamMessage::Close(None)).await;
                            break;
                        }
                    };
                    let closing = matches!(message, ws::Message::Close(_));
                    if let Some(message) = client_to_upstream(message)
                        && to_upstream.send(message).await.is_err()
                    {
                        self.broken(&mut to_client, "sending to the upstream failed").await;
                        return;
                    }
                    if closing {
                        self.drain(&mut from_upstream).await;
                        break;
                    }
                }
                outgoing = from_upstream.next() => {
                    let message = match outgoing {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => {
                            self.broken(&mut to_client, &error.to_string()).await;
                            return;
                        }
                        None => {
                            let _ = to_client.send(ws::Message::Close(None)).await;
                            break;
                        }
                    };
                    self.observe(&message);
                    let closing = matches!(message, UpstreamMessage::Close(_));
                    if let Some(message) = upstream_to_client(message)
                        && to_client.send(message).await.is_err()
                    {
                        // The client went away; the upstream session ends with it.
                        let _ = to_upstream.send(UpstreamMessage::Close(None)).await;
                        break;
                    }
                    if closing {
                        break;
                    }
                }
            }
        }
    }

    /// Counts a `response.done`'s usage the moment it passes.
    fn observe(&mut self, message: &UpstreamMessage) {
        let UpstreamMessage::Text(text) = message else {
            return;
        };
        let Some(usage) = response_usage(text.as_str()) else {
            return;
        };
        let tokens = self.meter.count_running(usage);
        let now = self.state.clock.now();
        let entry = &self.entry;
        if !self.capped_noted
            && self
                .state
                .counters
                .is_capped(entry.channel.id, entry.cap, now)
        {
            self.capped_noted = true;
            tracing::info!(
                request_id = self.meter.request_id(),
                channel = entry.channel.id.0,
                tokens,
                "channel reached its daily limit mid-session; the session continues"
            );
        }
    }

    /// After the client closed: reads the upstream until it closes too (or
    /// [`CLOSE_DRAIN`] passes), counting what it still reports.
    async fn drain(&mut self, from_upstream: &mut futures_util::stream::SplitStream<Upstream>) {
        let _ = tokio::time::timeout(CLOSE_DRAIN, async {
            while let Some(Ok(message)) = from_upstream.next().await {
                self.observe(&message);
                if matches!(message, UpstreamMessage::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }

    /// The upstream broke mid-session: the client gets close code 1011.
    async fn broken(
        &mut self,
        to_client: &mut futures_util::stream::SplitSink<WebSocket, ws::Message>,
        error: &str,
    ) {
        self.meter.interrupted(ErrorCode::UpstreamFailed.as_str());
        tracing::warn!(
            request_id = self.meter.request_id(),
            channel = self.entry.channel.id.0,
            error,
            "upstream realtime session broke"
        );
        let frame = ws::CloseFrame {
            code: 1011,
            reason: ws::Utf8Bytes::from_static("upstream connection failed"),
        };
        let _ = to_client.send(ws::Message::Close(Some(frame))).await;
    }
}

/// The usage of a `response.done` server event, if `text` is one. Other
/// events (most of them audio deltas) are not parsed at all.
pub(crate) fn response_usage(text: &str) -> Option<RawUsage> {
    #[derive(Deserialize)]
    struct Event {
        #[serde(rename = "type")]
        kind: String,
        response: Option<Response>,
    }
    #[derive(Deserialize)]
    struct Response {
        /// `input_tokens` / `output_tokens` / `total_tokens`, which
        /// `RawUsage` reads as prompt / completion / total.
        usage: Option<RawUsage>,
    }
    if !text.contains("response.done") {
        return None;
    }
    let event: Event = serde_json::from_str(text).ok()?;
    if event.kind != "response.done" {
        return None;
    }
    event.response?.usage
}

/// A client frame for the upstream; pings and pongs stay on their hop.
fn client_to_upstream(message: ws::Message) -> Option<UpstreamMessage> {
    match message {
        ws::Message::Text(text) => tungstenite::Utf8Bytes::try_from(Bytes::from(text))
            .ok()
            .map(UpstreamMessage::Text),
        ws::Message::Binary(data) => Some(UpstreamMessage::Binary(data)),
        ws::Message::Close(frame) => Some(UpstreamMessage::Close(frame.map(|frame| CloseFrame {
            code: frame.code.into(),
            reason: tungstenite::Utf8Bytes::from(frame.reason.as_str()),
        }))),
        ws::Message::Ping(_) | ws::Message::Pong(_) => None,
    }
}

/// An upstream frame for the client; pings and pongs stay on their hop.
fn upstream_to_client(message: UpstreamMessage) -> Option<ws::Message> {
    match message {
        UpstreamMessage::Text(text) => ws::Utf8Bytes::try_from(Bytes::from(text))
            .ok()
            .map(ws::Message::Text),
        UpstreamMessage::Binary(data) => Some(ws::Message::Binary(data)),
        UpstreamMessage::Close(frame) => {
            Some(ws::Message::Close(frame.map(|frame| ws::CloseFrame {
                code: frame.code.into(),
                reason: ws::Utf8Bytes::from(frame.reason.as_str()),
            })))
        }
        UpstreamMessage::Ping(_) | UpstreamMessage::Pong(_) | UpstreamMessage::Frame(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only `response.done` events yield usage; total wins, else the sum.
    #[test]
    fn reads_response_done_usage() {
        let done = r#"{"type":"response.done","response":{"usage":{"total_tokens":30,"input_tokens":10,"output_tokens":20}}}"#;
        let usage = response_usage(done).unwrap();
        assert_eq!(usage.total_tokens, Some(30));
        assert_eq!(usage.prompt_tokens, Some(10));
        let delta = r#"{"type":"response.text.delta","delta":"response.done"}"#;
        assert!(response_usage(delta).is_none());
        assert!(response_usage(r#"{"type":"session.created"}"#).is_none());
        assert!(response_usage("response.done but not json").is_none());
    }

    /// The key may come as a subprotocol; a header key wins over it.
    #[test]
    fn subprotocol_key_becomes_bearer() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(
                "realtime, openai-insecure-api-key.sk-abc, openai-beta.realtime-v1",
            ),
        );
        let auth = auth_headers(&headers);
        assert_eq!(auth.get(header::AUTHORIZATION).unwrap(), "Bearer sk-abc");
        assert_eq!(beta_header(&headers).unwrap(), "realtime=v1");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-h"),
        );
        assert_eq!(
            auth_headers(&headers).get(header::AUTHORIZATION).unwrap(),
            "Bearer sk-h"
        );
    }
}
