//! The per-channel-type seam: where an [`Operation`] goes on a channel and how
//! the request is authenticated there, for each [`ChannelType`].
//!
//! Everything that can be parsed once is parsed when the snapshot is built
//! ([`ChannelTarget::new`], held by `ChannelEntry::target`), so a request
//! only clones a ready URL (`openai`) or appends the deployment to one
//! (`azure`). This module owns no IO and knows nothing about bodies: the
//! pipeline sends whatever the endpoint prepared to the URL and headers
//! returned by [`upstream_request`].
//!
//! - `openai`: `{base_url}/{path}`, key as `Authorization: Bearer`.
//! - `azure`: `{base_url}/openai/deployments/{mapped model}/{path}?api-version=V`,
//!   key in the `api-key` header. `V` is `settings.api_version` when it is a
//!   non-empty string, else [`DEFAULT_AZURE_API_VERSION`].
//! - realtime ([`realtime_request`]): the same URL rules with a `ws`/`wss`
//!   scheme: `{base_url}/realtime?model=M` (openai) and
//!   `{base_url}/openai/realtime?api-version=V&deployment=M` (azure, where
//!   `V` defaults to [`DEFAULT_AZURE_REALTIME_API_VERSION`]: realtime is in
//!   no GA version of the Azure API that [`DEFAULT_AZURE_API_VERSION`] is).
//! - `anthropic`: `{base_url}/v1/messages` (and `/v1/messages/count_tokens`),
//!   key in `x-api-key`, `anthropic-version: 2023-06-01` unless the client
//!   sent its own (`anthropic::bridge::forward_headers`). Chat completions go
//!   there too, translated by `anthropic::bridge`; other OpenAI operations
//!   are [`TargetError::Unsupported`], and the Messages operations are
//!   unsupported on OpenAI and Azure channels.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use reqwest::Url;
use serde_json::{Map, Value};

use crate::model::{ChannelSpec, ChannelType};

/// The Azure OpenAI API version used when a channel sets none (the GA
/// version current when this was written; set `settings.api_version` to
/// use preview features such as the Responses API).
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";
/// The Azure API version a realtime session uses when a channel sets none:
/// Azure serves realtime only in preview versions.
pub const DEFAULT_AZURE_REALTIME_API_VERSION: &str = "2024-10-01-preview";
/// The channel setting naming the Azure API version.
pub const API_VERSION_SETTING: &str = "api_version";
/// The `anthropic-version` sent when the client named none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// One upstream operation of the OpenAI API surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    AudioTranscriptions,
    AudioTranslations,
    AudioSpeech,
    ImagesGenerations,
    Moderations,
    /// Anthropic's native `POST /v1/messages`.
    Messages,
    /// Anthropic's `POST /v1/messages/count_tokens`.
    MessagesCountTokens,
    /// `GET /v1/realtime`, the WebSocket session ([`realtime_request`]).
    Realtime,
}

impl Operation {
    pub const ALL: [Operation; 12] = [
        Operation::ChatCompletions,
        Operation::Completions,
        Operation::Embeddings,
        Operation::Responses,
        Operation::AudioTranscriptions,
        Operation::AudioTranslations,
        Operation::AudioSpeech,
        Operation::ImagesGenerations,
        Operation::Moderations,
        Operation::Messages,
        Operation::MessagesCountTokens,
        Operation::Realtime,
    ];

    /// The path under the API root (`{base_url}/…` for OpenAI).
    pub fn path(self) -> &'static str {
        match self {
            Operation::ChatCompletions => "chat/completions",
            Operation::Completions => "completions",
            Operation::Embeddings => "embeddings",
            Operation::Responses => "responses",
            Operation::AudioTranscriptions => "audio/transcriptions",
            Operation::AudioTranslations => "audio/translations",
            Operation::AudioSpeech => "audio/speech",
            Operation::ImagesGenerations => "images/generations",
            Operation::Moderations => "moderations",
            Operation::Messages => "messages",
            Operation::MessagesCountTokens => "messages/count_tokens",
            Operation::Realtime => "realtime",
        }
    }

    /// Anthropic's own operations, which only `anthropic` channels serve.
    pub fn is_anthropic(self) -> bool {
        matches!(self, Operation::Messages | Operation::MessagesCountTokens)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A channel's upstream address, parsed once per snapshot.
#[derive(Debug)]
pub enum ChannelTarget {
    /// One ready URI per operation (`None` if it does not parse).
    Openai { urls: Box<[Option<Uri>]> },
    /// The resource endpoint and the encoded `api-version=…` query, for
    /// HTTP operations and for realtime.
    Azure {
        endpoint: Url,
        query: String,
        realtime_query: String,
    },
    /// The host, as the Anthropic SDK takes it.
    Anthropic { host: Url },
    /// The base URL does not parse (admin validation prevents that).
    Invalid { kind: ChannelType },
}

impl ChannelTarget {
    pub fn new(spec: &ChannelSpec) -> ChannelTarget {
        let base = spec.base_url.trim_end_matches('/');
        match spec.kind {
            ChannelType::Openai => {
                let urls = Operation::ALL
                    .iter()
                    .map(|operation| {
                        let url = Url::parse(&format!("{base}/{}", operation.path())).ok()?;
                        Uri::try_from(url.as_str()).ok()
                    })
                    .collect();
                ChannelTarget::Openai { urls }
            }
            ChannelType::Azure => match Url::parse(base) {
                Ok(endpoint) if !endpoint.cannot_be_a_base() => ChannelTarget::Azure {
                    endpoint,
                    query: azure_query(&spec.settings, DEFAULT_AZURE_API_VERSION),
                    realtime_query: azure_query(&spec.settings, DEFAULT_AZURE_REALTIME_API_VERSION),
                },
                _ => ChannelTarget::Invalid { kind: spec.kind },
            },
            ChannelType::Anthropic => match Url::parse(base) {
                Ok(host) => ChannelTarget::Anthropic { host },
                Err(_) => ChannelTarget::Invalid { kind: spec.kind },
            },
        }
    }
}

/// `api-version=…` (the channel's, else `default`), percent-encoded once.
fn azure_query(settings: &Map<String, Value>, default: &str) -> String {
    let version = match settings.get(API_VERSION_SETTING) {
        Some(Value::String(version)) if !version.trim().is_empty() => version.trim(),
        _ => default,
    };
    let mut query = Url::parse("http://query.invalid/").ok();
    if let Some(url) = query.as_mut() {
        url.query_pairs_mut().append_pair("api-version", version);
    }
    query
        .and_then(|url| url.query().map(str::to_string))
        .unwrap_or_default()
}

/// Where one attempt goes and the headers that authenticate it. The
/// pipeline adds the content type and the body.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// Why a channel cannot take an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the channel's base URL does not parse")]
    BadBaseUrl,
    #[error("{kind} channels do not serve {path}")]
    Unsupported {
        kind: &'static str,
        path: &'static str,
    },
    #[error("the channel's key is not a valid header value")]
    BadKey,
}

impl ChannelTarget {
    /// The channel type this target was built for.
    pub fn kind(&self) -> ChannelType {
        match self {
            ChannelTarget::Openai { .. } => ChannelType::Openai,
            ChannelTarget::Azure { .. } => ChannelType::Azure,
            ChannelTarget::Anthropic { .. } => ChannelType::Anthropic,
            ChannelTarget::Invalid { kind } => *kind,
        }
    }
}

/// The URL and auth headers of `operation` on a channel's `target` for
/// `upstream_model` (the model name after the channel's mapping).
pub fn upstream_request(
    target: &ChannelTarget,
    operation: Operation,
    upstream_model: &str,
    key: &str,
) -> Result<UpstreamRequest, TargetError> {
    if !serves(target, operation) {
        return Err(TargetError::Unsupported {
            kind: target.kind().as_str(),
            path: operation.path(),
        });
    }
    let (url, auth_header, auth_value) = match target {
        ChannelTarget::Openai { urls } => {
            let url = urls.get(operation.index()).cloned().flatten();
            let url = url.ok_or(TargetError::BadBaseUrl)?;
            (url, header::AUTHORIZATION, format!("Bearer {key}"))
        }
        ChannelTarget::Azure {
            endpoint, query, ..
        } => {
            let url = azure_url(endpoint, query, upstream_model, operation)?;
            (
                uri(&url)?,
                HeaderName::from_static("api-key"),
                key.to_string(),
            )
        }
        ChannelTarget::Anthropic { host } => {
            let url = anthropic_url(host, operation)?;
            (
                uri(&url)?,
                HeaderName::from_static("x-api-key"),
                key.to_string(),
            )
        }
        ChannelTarget::Invalid { .. } => return Err(TargetError::BadBaseUrl),
    };
    let mut value = HeaderValue::from_str(&auth_value).map_err(|_| TargetError::BadKey)?;
    value.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(auth_header, value);
    if matches!(target, ChannelTarget::Anthropic { .. }) {
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION),
        );
    }
    Ok(UpstreamRequest { uri: url, headers })
}

/// Where a realtime session goes and the header that authenticates it.
#[derive(Debug)]
pub struct RealtimeRequest {
    /// A `ws` or `wss` URL.
    pub url: Url,
    pub auth: (HeaderName, HeaderValue),
}

/// The WebSocket URL and auth header of a realtime session on a channel's
/// `target` for `upstream_model`.
pub fn realtime_request(
    target: &ChannelTarget,
    upstream_model: &str,
    key: &str,
) -> Result<RealtimeRequest, TargetError> {
    let (mut url, name, value) = match target {
        ChannelTarget::Openai { urls } => {
            let uri = urls.get(Operation::Realtime.index()).cloned().flatten();
            let uri = uri.ok_or(TargetError::BadBaseUrl)?;
            let mut url = Url::parse(&uri.to_string()).map_err(|_| TargetError::BadBaseUrl)?;
            url.query_pairs_mut().append_pair("model", upstream_model);
            (url, header::AUTHORIZATION, format!("Bearer {key}"))
        }
        ChannelTarget::Azure {
            endpoint,
            realtime_query,
            ..
        } => {
            let mut url = endpoint.clone();
            url.path_segments_mut()
                .map_err(|_| TargetError::BadBaseUrl)?
                .pop_if_empty()
                .extend(["openai", "realtime"]);
            url.set_query(Some(realtime_query));
            url.query_pairs_mut()
                .append_pair("deployment", upstream_model);
            (url, HeaderName::from_static("api-key"), key.to_string())
        }
        ChannelTarget::Anthropic { .. } => {
            return Err(TargetError::Unsupported {
                kind: ChannelType::Anthropic.as_str(),
                path: Operation::Realtime.path(),
            });
        }
        ChannelTarget::Invalid { .. } => return Err(TargetError::BadBaseUrl),
    };
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(TargetError::BadBaseUrl),
    };
    url.set_scheme(scheme)
        .map_err(|()| TargetError::BadBaseUrl)?;
    let mut value = HeaderValue::from_str(&value).map_err(|_| TargetError::BadKey)?;
    value.set_sensitive(true);
    Ok(RealtimeRequest {
        url,
        auth: (name, value),
    })
}

/// A parsed URL as the client's URI.
fn uri(url: &Url) -> Result<Uri, TargetError> {
    Uri::try_from(url.as_str()).map_err(|_| TargetError::BadBaseUrl)
}

/// Whether a channel's `target` can take `operation` at all, so the relay
/// can leave it off the candidates instead of failing an attempt on it.
pub fn serves(target: &ChannelTarget, operation: Operation) -> bool {
    match target {
        ChannelTarget::Anthropic { .. } => {
            operation.is_anthropic() || operation == Operation::ChatCompletions
        }
        _ => !operation.is_anthropic(),
    }
}

/// `{host}/v1/messages[/count_tokens]`; chat completions go to the former.
fn anthropic_url(host: &Url, operation: Operation) -> Result<Url, TargetError> {
    let path = match operation {
        Operation::Messages | Operation::ChatCompletions => "v1/messages",
        Operation::MessagesCountTokens => "v1/messages/count_tokens",
        _ => {
            return Err(TargetError::Unsupported {
                kind: ChannelType::Anthropic.as_str(),
                path: operation.path(),
            });
        }
    };
    let base = host.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{path}")).map_err(|_| TargetError::BadBaseUrl)
}

/// `{endpoint}/openai/deployments/{deployment}/{path}?{query}`; the
/// deployment is one percent-encoded path segment.
fn azure_url(
    endpoint: &Url,
    query: &str,
    deployment: &str,
    operation: Operation,
) -> Result<Url, TargetError> {
    let mut url = endpoint.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|_| TargetError::BadBaseUrl)?;
        segments
            .pop_if_empty()
            .extend(["openai", "deployments", deployment])
            .extend(operation.path().split('/'));
    }
    url.set_query(Some(query));
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::ChannelStatus;

    fn spec(kind: ChannelType, base_url: &str, settings: Value) -> ChannelSpec {
        ChannelSpec {
            name: "c".into(),
            kind,
            base_url: base_url.into(),
            keys: vec!["k".into()],
            models: vec!["m".into()],
            model_mapping: BTreeMap::new(),
            groups: vec!["default".into()],
            priority: 0,
            weight: 1,
            status: ChannelStatus::Enabled,
            settings: match settings {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        }
    }

    /// OpenAI URLs are the base plus the operation path.
    #[test]
    fn openai_urls_append_the_path() {
        let target = ChannelTarget::new(&spec(
            ChannelType::Openai,
            "https://api.example.com/v1/",
            Value::Null,
        ));
        let ChannelTarget::Openai { urls } = target else {
            panic!("openai target expected");
        };
        let url = urls[Operation::AudioSpeech.index()].clone();
        assert_eq!(
            url.map(|uri| uri.to_string()).as_deref(),
            Some("https://api.example.com/v1/audio/speech")
        );
    }

    /// Azure URLs carry the deployment, the operation and the API version.
    #[test]
    fn azure_urls_name_the_deployment_and_version() {
        let cases = [
            (Value::Null, "2024-10-21"),
            (
                serde_json::json!({"api_version": "2025-04-01-preview"}),
                "2025-04-01-preview",
            ),
            (serde_json::json!({"api_version": ""}), "2024-10-21"),
            (serde_json::json!({"api_version": 7}), "2024-10-21"),
        ];
        for (settings, version) in cases {
            let target = ChannelTarget::new(&spec(
                ChannelType::Azure,
                "https://r.openai.azure.com/",
                settings,
            ));
            let ChannelTarget::Azure {
                endpoint, query, ..
            } = target
            else {
                panic!("azure target expected");
            };
            let url = azure_url(&endpoint, &query, "gpt 4o", Operation::ChatCompletions);
            assert_eq!(
                url.map(String::from),
                Ok(format!(
                    "https://r.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version={version}"
                ))
            );
        }
    }

    /// Realtime goes through the same target: ws/wss per the base URL's
    /// scheme, the model as a query (openai) or the deployment (azure, with
    /// its own default API version unless the channel sets one), never to
    /// an anthropic channel, and never over another scheme.
    #[test]
    fn realtime_urls() {
        let cases = [
            (
                ChannelType::Openai,
                "http://127.0.0.1:9/v1",
                Value::Null,
                Some("ws://127.0.0.1:9/v1/realtime?model=gpt-rt"),
            ),
            (
                ChannelType::Openai,
                "https://api.openai.com/v1/",
                Value::Null,
                Some("wss://api.openai.com/v1/realtime?model=gpt-rt"),
            ),
            (
                ChannelType::Azure,
                "https://r.openai.azure.com",
                Value::Null,
                Some(
                    "wss://r.openai.azure.com/openai/realtime?api-version=2024-10-01-preview&deployment=gpt-rt",
                ),
            ),
            (
                ChannelType::Azure,
                "https://r.openai.azure.com/",
                serde_json::json!({"api_version": "2025-04-01-preview"}),
                Some(
                    "wss://r.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-rt",
                ),
            ),
            (ChannelType::Openai, "ftp://x/v1", Value::Null, None),
            (
                ChannelType::Anthropic,
                "https://api.anthropic.com",
                Value::Null,
                None,
            ),
        ];
        for (kind, base, settings, expected) in cases {
            let target = ChannelTarget::new(&spec(kind, base, settings));
            let request = realtime_request(&target, "gpt-rt", "sk-1");
            assert_eq!(
                request.as_ref().ok().map(|request| request.url.as_str()),
                expected,
                "{base}"
            );
            if let Ok(request) = request {
                assert!(request.auth.1.is_sensitive());
            }
        }
    }
}
