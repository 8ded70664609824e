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

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;
use crate::command::Command;
use crate::model::{ChannelStatus, ChannelType};
use crate::relay::target::{ChannelTarget, Operation, TargetError, upstream_request};
use crate::relay::upstream::summarise;
use crate::snapshot::ChannelEntry;

/// The longest a test or a model list may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// The `anthropic-version` header sent to Anthropic channels.
const ANTHROPIC_VERSION: &str = "2023-06-01";

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
    state: &AppState,
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
            let body = endpoint.body(upstream_model);
            match test_request(state, entry, endpoint, upstream_model, key) {
                Ok(request) => send(state, request.json(&body), entry, key).await,
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
        ok && channel.spec.status == ChannelStatus::AutoDisabled && reenable(state, entry).await;
    Probe {
        ok,
        latency,
        status,
        error,
        reenabled,
    }
}

/// Enables an auto-disabled channel again; true if it is now enabled.
async fn reenable(state: &AppState, entry: &ChannelEntry) -> bool {
    let id = entry.channel.id;
    let command = Command::ReenableChannel {
        id,
        at: state.clock.now(),
    };
    match state.apply(command).await {
        Ok(_) => {
            let enabled = state
                .snapshot()
                .channel(id)
                .is_some_and(|entry| entry.channel.is_enabled());
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
    state: &AppState,
    entry: &ChannelEntry,
) -> Result<Vec<String>, String> {
    let key = entry
        .next_key()
        .ok_or_else(|| "the channel has no upstream key".to_string())?;
    let request = models_request(state, entry, key)?;
    let (_, body) = send(state, request, entry, key)
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
    state: &AppState,
    entry: &ChannelEntry,
    endpoint: Endpoint,
    upstream_model: &str,
    key: &str,
) -> Result<reqwest::RequestBuilder, String> {
    let Some(operation) = endpoint.operation() else {
        let url = anthropic_url(entry, "messages")?;
        return Ok(authenticated(state.http().post(url), entry, key));
    };
    let target = upstream_request(entry, operation, upstream_model, key)
        .map_err(|error| error.to_string())?;
    Ok(state.http().post(target.url).headers(target.headers))
}

/// The model-list request: `{base_url}/models` (openai), `/openai/models`
/// (azure), `/v1/models` (anthropic).
fn models_request(
    state: &AppState,
    entry: &ChannelEntry,
    key: &str,
) -> Result<reqwest::RequestBuilder, String> {
    let url = match &entry.target {
        ChannelTarget::Openai { .. } => {
            let base = entry.channel.spec.base_url.trim_end_matches('/');
            parse_url(&format!("{base}/models"))?
        }
        ChannelTarget::Azure { endpoint, query } => {
            let base = endpoint.as_str().trim_end_matches('/');
            parse_url(&format!("{base}/openai/models?{query}"))?
        }
        ChannelTarget::Anthropic { .. } => anthropic_url(entry, "models?limit=1000")?,
        ChannelTarget::Invalid => return Err(TargetError::BadBaseUrl.to_string()),
    };
    Ok(authenticated(state.http().get(url), entry, key))
}

/// `{host}/v1/{path}` of an Anthropic channel.
fn anthropic_url(entry: &ChannelEntry, path: &str) -> Result<reqwest::Url, String> {
    match &entry.target {
        ChannelTarget::Anthropic { host } => parse_url(&format!(
            "{}/v1/{path}",
            host.as_str().trim_end_matches('/')
        )),
        _ => Err(TargetError::BadBaseUrl.to_string()),
    }
}

fn parse_url(text: &str) -> Result<reqwest::Url, String> {
    reqwest::Url::parse(text).map_err(|_| TargetError::BadBaseUrl.to_string())
}

/// `builder` with the channel type's auth header.
fn authenticated(
    builder: reqwest::RequestBuilder,
    entry: &ChannelEntry,
    key: &str,
) -> reqwest::RequestBuilder {
    match entry.channel.spec.kind {
        ChannelType::Openai => builder.bearer_auth(key),
        ChannelType::Azure => builder.header("api-key", key),
        ChannelType::Anthropic => builder
            .header("x-api-key", key)
            .header("anthropic-version", ANTHROPIC_VERSION),
    }
}

/// Sends `request`; a 2xx gives its status and body, anything else a
/// summary (and the status, if there was one). A failing status goes to the
/// auto-disable rules like relay traffic.
async fn send(
    state: &AppState,
    request: reqwest::RequestBuilder,
    entry: &ChannelEntry,
    key: &str,
) -> Result<(StatusCode, bytes::Bytes), (String, Option<StatusCode>)> {
    let response = request
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
        .map_err(|error| (transport(error), None))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| (transport(error), Some(status)))?;
    if status.is_success() {
        return Ok((status, body));
    }
    super::report_failure(state, entry.channel.id, status, &body);
    Err((summarise(status, &body, key), Some(status)))
}

/// A transport error with its causes, without the URL.
fn transport(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
