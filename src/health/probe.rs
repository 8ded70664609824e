//! One minimal real request to a channel (the channel test), and the
//! upstream's model list, for each channel type.
//!
//! OpenAI operations (chat, completions, embeddings, responses) go to the
//! URL and auth headers the relay uses (`relay::target`), for `openai` and
//! `azure` channels alike. Anthropic's Messages API and the model lists are
//! built here: `/v1/messages` and `/v1/models` with `x-api-key` and
//! `anthropic-version`; `{base_url}/models` (openai); `/openai/models`
//! (azure, with the channel's API version). Nothing here passes through the relay's meter: a
//! test is not a logged request and never counts toward a daily limit.
//! Error texts are summarised and never carry the key.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};

use chrono::{DateTime, Utc};

use std::sync::Arc;

use super::{Host, Monitor};
use crate::command::{Applied, ConfigCommand, Proposer};
use crate::model::{ChannelStatus, ChannelType};
use crate::snapshot::{ChannelEntry, Snapshot};
use crate::upstream::client::UpstreamClient;
use crate::upstream::client::{USER_AGENT, chain};
use crate::upstream::summarise;
use crate::upstream::target::{ChannelTarget, Operation, TargetError, upstream_request};

/// The longest a test or a model list may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// The `anthropic-version` header sent to Anthropic channels.
const ANTHROPIC_VERSION: HeaderValue = HeaderValue::from_static("2023-06-01");
/// The most of a test's or a model list's answer that is read.
const ANSWER_LIMIT: usize = 16 * 1024 * 1024;

/// An upstream endpoint a channel test can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Messages,
}

impl Endpoint {
    pub const ALL: [Endpoint; 5] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Responses,
        Endpoint::Messages,
    ];

    /// The path after the API root (`/v1`), which is also the name a test takes.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::Messages => "messages",
        }
    }

    /// `chat/completions`, `/v1/chat/completions` and `/chat/completions` alike.
    pub fn parse(text: &str) -> Option<Endpoint> {
        let path = text.trim().trim_start_matches('/');
        let path = path.strip_prefix("v1/").unwrap_or(path);
        Endpoint::ALL
            .into_iter()
            .find(|endpoint| endpoint.path() == path)
    }

    /// The endpoints a channel type can be tested on; the first is the default.
    pub fn supported(kind: ChannelType) -> &'static [Endpoint] {
        match kind {
            ChannelType::Openai => &[
                Endpoint::ChatCompletions,
                Endpoint::Completions,
                Endpoint::Embeddings,
                Endpoint::Responses,
            ],
            ChannelType::Azure => &[
                Endpoint::ChatCompletions,
                Endpoint::Completions,
                Endpoint::Embeddings,
            ],
            ChannelType::Anthropic => &[Endpoint::Messages],
        }
    }

    /// The relay operation behind this endpoint; `None` for Anthropic's own API.
    fn operation(self) -> Option<Operation> {
        match self {
            Endpoint::ChatCompletions => Some(Operation::ChatCompletions),
            Endpoint::Completions => Some(Operation::Completions),
            Endpoint::Embeddings => Some(Operation::Embeddings),
            Endpoint::Responses => Some(Operation::Responses),
            Endpoint::Messages => None,
        }
    }

    /// The smallest request that proves the channel works: one output token.
    fn body(self, model: &str) -> Value {
        let messages = json!([{"role": "user", "content": "hi"}]);
        match self {
            Endpoint::ChatCompletions | Endpoint::Messages => {
                json!({"model": model, "messages": messages, "max_tokens": 1})
            }
            Endpoint::Completions => json!({"model": model, "prompt": "hi", "max_tokens": 1}),
            Endpoint::Embeddings => json!({"model": model, "input": "hi"}),
            // The Responses API refuses fewer than 16 output tokens.
            Endpoint::Responses => json!({"model": model, "input": "hi", "max_output_tokens": 16}),
        }
    }
}

/// What a probe is handed: the upstream client, the monitor its failures
/// go to (with the snapshot it decides from), and the proposer of a
/// re-enable, stamped `now`.
pub struct Probing<'a> {
    pub client: Arc<UpstreamClient>,
    pub monitor: &'a Monitor,
    pub snapshot: Arc<Snapshot>,
    pub proposer: &'a dyn Proposer,
    pub now: DateTime<Utc>,
}

impl<'a> Probing<'a> {
    /// A probe over what `host` has now.
    pub fn of(host: &'a impl Host) -> Probing<'a> {
        Probing {
            client: host.upstream(),
            monitor: host.monitor(),
            snapshot: host.snapshot(),
            proposer: host,
            now: host.now(),
        }
    }
}

/// What a channel test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub ok: bool,
    pub latency: Duration,
    /// The upstream's status; `None` when it could not be reached.
    pub status: Option<u16>,
    /// A summary of what went wrong, without the key.
    pub error: Option<String>,
    /// Whether the success enabled an `auto_disabled` channel again.
    pub reenabled: bool,
}

/// Sends one minimal request for `model` (already validated as non-empty) to
/// `endpoint` of `entry`'s channel. A failure goes through the same
/// auto-disable rules as relay traffic; a success enables an
/// `auto_disabled` channel again.
pub async fn test(
    probing: &Probing<'_>,
    entry: &ChannelEntry,
    endpoint: Endpoint,
    model: &str,
) -> Probe {
    let channel = &entry.channel;
    let upstream_model = channel.upstream_model(model);
    let started = Instant::now();
    let answer = match entry.next_key() {
        None => Err(("the channel has no upstream key".to_string(), None)),
        Some(key) => {
            let body = Bytes::from(endpoint.body(upstream_model).to_string());
            match test_request(entry, endpoint, upstream_model, key, body) {
                Ok(request) => send(probing, request, entry, key).await,
                Err(error) => Err((error, None)),
            }
        }
    };
    let latency = started.elapsed();
    let (ok, status, error) = match answer {
        Ok((status, _)) => (true, Some(status.as_u16()), None),
        Err((error, status)) => (false, status.map(|status| status.as_u16()), Some(error)),
    };
    let reenabled =
        ok && channel.spec.status == ChannelStatus::AutoDisabled && reenable(probing, entry).await;
    Probe {
        ok,
        latency,
        status,
        error,
        reenabled,
    }
}

/// Enables an auto-disabled channel again; true if it is now enabled.
async fn reenable(probing: &Probing<'_>, entry: &ChannelEntry) -> bool {
    let id = entry.channel.id;
    let command = ConfigCommand::ReenableChannel {
        id,
        at: probing.now,
    };
    match probing.proposer.propose(command.into()).await {
        Ok(applied) => {
            let enabled = matches!(applied, Applied::Channel(channel) if channel.is_enabled());
            if enabled {
                tracing::info!(
                    channel = id.0,
                    "channel test succeeded; channel enabled again"
                );
            }
            enabled
        }
        Err(error) => {
            tracing::error!(channel = id.0, %error, "enabling the channel again failed");
            false
        }
    }
}

/// The upstream's model ids, sorted, or a summary of why they could not be had.
pub async fn upstream_models(
    probing: &Probing<'_>,
    entry: &ChannelEntry,
) -> Result<Vec<String>, String> {
    let key = entry
        .next_key()
        .ok_or_else(|| "the channel has no upstream key".to_string())?;
    let request = models_request(entry, key)?;
    let (_, body) = send(probing, request, entry, key)
        .await
        .map_err(|(error, _)| error)?;
    let list: Value = serde_json::from_slice(&body)
        .map_err(|error| format!("the upstream's model list is not JSON: {error}"))?;
    let mut models: Vec<String> = list
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| "the upstream's model list has no `data` array".to_string())?
        .iter()
        .filter_map(|model| model.get("id").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    models.sort();
    models.dedup();
    Ok(models)
}

/// The test request for `endpoint`: OpenAI operations go where the relay
/// sends them (`relay::target`); Anthropic's Messages API is built here.
fn test_request(
    entry: &ChannelEntry,
    endpoint: Endpoint,
    upstream_model: &str,
    key: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let (uri, mut headers) = match endpoint.operation() {
        None => (anthropic_uri(entry, "messages")?, auth_headers(entry, key)?),
        Some(operation) => {
            let target = upstream_request(&entry.target, operation, upstream_model, key)
                .map_err(|error| error.to_string())?;
            (target.uri, target.headers)
        }
    };
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(request(Method::POST, uri, headers, body))
}

/// The model-list request: `{base_url}/models` (openai), `/openai/models`
/// (azure), `/v1/models` (anthropic).
fn models_request(entry: &ChannelEntry, key: &str) -> Result<Request<Full<Bytes>>, String> {
    let uri = match &entry.target {
        ChannelTarget::Openai { .. } => {
            let base = entry.channel.spec.base_url.trim_end_matches('/');
            parse_uri(&format!("{base}/models"))?
        }
        ChannelTarget::Azure {
            endpoint, query, ..
        } => {
            let base = endpoint.as_str().trim_end_matches('/');
            parse_uri(&format!("{base}/openai/models?{query}"))?
        }
        ChannelTarget::Anthropic { .. } => anthropic_uri(entry, "models?limit=1000")?,
        ChannelTarget::Invalid { .. } => return Err(TargetError::BadBaseUrl.to_string()),
    };
    let headers = auth_headers(entry, key)?;
    Ok(request(Method::GET, uri, headers, Bytes::new()))
}

fn request(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    request
}

/// `{host}/v1/{path}` of an Anthropic channel.
fn anthropic_uri(entry: &ChannelEntry, path: &str) -> Result<Uri, String> {
    match &entry.target {
        ChannelTarget::Anthropic { host } => parse_uri(&format!(
            "{}/v1/{path}",
            host.as_str().trim_end_matches('/')
        )),
        _ => Err(TargetError::BadBaseUrl.to_string()),
    }
}

/// A URL checked as one (so the same texts are refused as before), as the client's URI.
fn parse_uri(text: &str) -> Result<Uri, String> {
    let url = reqwest::Url::parse(text).map_err(|_| TargetError::BadBaseUrl.to_string())?;
    Uri::try_from(url.as_str()).map_err(|_| TargetError::BadBaseUrl.to_string())
}

/// The channel type's auth header (and Anthropic's version).
fn auth_headers(entry: &ChannelEntry, key: &str) -> Result<HeaderMap, String> {
    let (name, value) = match entry.channel.spec.kind {
        ChannelType::Openai => (header::AUTHORIZATION, format!("Bearer {key}")),
        ChannelType::Azure => (HeaderName::from_static("api-key"), key.to_string()),
        ChannelType::Anthropic => (HeaderName::from_static("x-api-key"), key.to_string()),
    };
    let mut value = HeaderValue::from_str(&value).map_err(|_| TargetError::BadKey.to_string())?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(name, value);
    if entry.channel.spec.kind == ChannelType::Anthropic {
        headers.insert("anthropic-version", ANTHROPIC_VERSION);
    }
    Ok(headers)
}

/// Sends `request`; a 2xx gives its status and body, anything else a
/// summary (and the status, if there was one). A failing status goes to the
/// auto-disable rules like relay traffic.
async fn send(
    probing: &Probing<'_>,
    mut request: Request<Full<Bytes>>,
    entry: &ChannelEntry,
    key: &str,
) -> Result<(StatusCode, Bytes), (String, Option<StatusCode>)> {
    request.headers_mut().insert(header::USER_AGENT, USER_AGENT);
    let client = &probing.client;
    let exchange = async {
        let response = client
            .send(request)
            .await
            .map_err(|error| (error.text, None))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map_err(|error| (chain(error.as_ref()), Some(status)))?
            .to_bytes();
        Ok((status, body))
    };
    let (status, body) = tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| (format!("no answer within {PROBE_TIMEOUT:?}"), None))??;
    if status.is_success() {
        return Ok((status, body));
    }
    probing
        .monitor
        .report(&probing.snapshot, entry.channel.id, status, &body);
    Err((summarise(status, &body, key), Some(status)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Endpoints parse with or without `/v1/`; unknown ones do not.
    #[test]
    fn endpoints_parse_from_paths() {
        let cases = [
            ("chat/completions", Some(Endpoint::ChatCompletions)),
            ("/v1/chat/completions", Some(Endpoint::ChatCompletions)),
            ("/embeddings", Some(Endpoint::Embeddings)),
            ("v1/messages", Some(Endpoint::Messages)),
            ("audio/speech", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(Endpoint::parse(text), expected, "{text}");
        }
        for kind in ChannelType::ALL {
            assert!(!Endpoint::supported(kind).is_empty());
        }
    }

    /// Test bodies ask for as little output as the endpoint allows.
    #[test]
    fn test_bodies_are_minimal() {
        assert_eq!(Endpoint::ChatCompletions.body("m")["max_tokens"], 1);
        assert_eq!(Endpoint::Messages.body("m")["max_tokens"], 1);
        assert_eq!(Endpoint::Responses.body("m")["max_output_tokens"], 16);
        assert_eq!(Endpoint::Embeddings.body("m")["model"], "m");
    }
}
