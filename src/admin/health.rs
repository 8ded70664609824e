//! `/api/channels/{id}/test` and `/api/channels/{id}/upstream-models`: the
//! admin's view of channel health.
//!
//! Thin handlers over `health::probe`: they validate the input, call the
//! upstream and render the result. A successful test enables an
//! `auto_disabled` channel again (a `Command`, applied by `health`). Tests
//! are not relay traffic: they are not logged and never count toward a
//! channel's daily limit.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::channels::entry;
use super::json::{Id, OptionalJson};
use super::openapi::ErrorBody;
use super::validate::MAX_LABEL;
use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::health::probe::{self, Endpoint, Probing};
use crate::i18n::Message;
use crate::model::ChannelId;

/// The optional body of `POST /api/channels/{id}/test`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// The model to ask for (before the channel's mapping). Defaults to the
    /// channel's first model.
    pub model: Option<String>,
    /// `chat/completions` (the default), `completions`, `embeddings` or
    /// `responses` for openai channels; the first three for azure; `messages`
    /// for anthropic. A leading `/v1/` is accepted.
    pub endpoint: Option<String>,
}

/// What a channel test found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestResult {
    /// Whether the upstream answered with a 2xx status.
    pub ok: bool,
    /// From sending the request to the end of the upstream's answer.
    pub latency_ms: u64,
    /// The upstream's HTTP status; null if it could not be reached.
    pub status: Option<u16>,
    /// What went wrong, summarised, without the key; null on success.
    pub error: Option<String>,
    pub model: String,
    pub endpoint: String,
    /// Whether this success enabled an `auto_disabled` channel again.
    pub reenabled: bool,
}

/// The upstream's model list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpstreamModels {
    /// Model ids as the upstream names them, sorted.
    pub models: Vec<String>,
}

/// Send one minimal real request through a channel.
///
/// A chat completion with `max_tokens: 1` to the channel's first model,
/// unless the body names another model or endpoint. Not logged, and not
/// counted toward the daily limit.
#[utoipa::path(
    post, path = "/api/channels/{id}/test", tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    request_body(content = Option<TestRequest>, description = "Optional; an empty body tests the defaults"),
    responses(
        (status = 200, description = "The test ran; `ok` says whether the upstream answered", body = TestResult),
        (status = 400, description = "An endpoint the channel type cannot be tested on, or an empty model", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
pub async fn test(
    State(state): State<AppState>,
    Id(id): Id,
    OptionalJson(input): OptionalJson<TestRequest>,
) -> Result<axum::Json<TestResult>, ApiError> {
    let entry = entry(&state, ChannelId(id))?;
    let spec = &entry.channel.spec;
    let endpoint = endpoint(spec.kind, input.endpoint.as_deref())?;
    let model = match input.model {
        Some(model) if model.trim().is_empty() => {
            let field = "model".to_string();
            return Err(ApiError::invalid(
                field.clone(),
                Message::FieldEmpty { field },
            ));
        }
        Some(model) if model.trim().chars().count() > MAX_LABEL => {
            let field = "model".to_string();
            return Err(ApiError::invalid(
                field.clone(),
                Message::FieldTooLong {
                    field,
                    max: MAX_LABEL,
                },
            ));
        }
        Some(model) => model.trim().to_string(),
        None => spec.models.first().cloned().unwrap_or_default(),
    };
    let probe = probe::test(&Probing::of(&state), &entry, endpoint, &model).await;
    Ok(axum::Json(TestResult {
        ok: probe.ok,
        latency_ms: u64::try_from(probe.latency.as_millis()).unwrap_or(u64::MAX),
        status: probe.status,
        error: probe.error,
        model,
        endpoint: endpoint.path().to_string(),
        reenabled: probe.reenabled,
    }))
}

/// Fetch the model list from the channel's upstream.
#[utoipa::path(
    get, path = "/api/channels/{id}/upstream-models", tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 200, description = "The upstream's models", body = UpstreamModels),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 502, description = "The upstream failed; the message summarises why", body = ErrorBody),
    )
)]
pub async fn upstream_models(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<axum::Json<UpstreamModels>, ApiError> {
    let entry = entry(&state, ChannelId(id))?;
    match probe::upstream_models(&Probing::of(&state), &entry).await {
        Ok(models) => Ok(axum::Json(UpstreamModels { models })),
        Err(detail) => Err(ApiError::new(
            ErrorCode::UpstreamFailed,
            Message::UpstreamModelsFailed { detail },
        )),
    }
}

/// The endpoint to test: the named one if this channel type supports it,
/// else the type's default.
fn endpoint(kind: crate::model::ChannelType, named: Option<&str>) -> Result<Endpoint, ApiError> {
    let supported = Endpoint::supported(kind);
    let chosen = match named {
        None => supported.first().copied(),
        Some(text) => Endpoint::parse(text).filter(|endpoint| supported.contains(endpoint)),
    };
    chosen.ok_or_else(|| {
        let allowed = supported
            .iter()
            .map(|endpoint| endpoint.path())
            .collect::<Vec<_>>()
            .join(", ");
        ApiError::invalid("endpoint", Message::TestEndpointInvalid { allowed })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChannelType;

    /// Each type tests its default endpoint; others must be supported by the type.
    #[test]
    fn endpoints_are_checked_against_the_channel_type() {
        let cases = [
            (ChannelType::Openai, None, Ok(Endpoint::ChatCompletions)),
            (ChannelType::Anthropic, None, Ok(Endpoint::Messages)),
            (
                ChannelType::Openai,
                Some("/v1/embeddings"),
                Ok(Endpoint::Embeddings),
            ),
            (ChannelType::Openai, Some("messages"), Err("endpoint")),
            (ChannelType::Azure, Some("responses"), Err("endpoint")),
            (ChannelType::Anthropic, Some("nonsense"), Err("endpoint")),
        ];
        for (kind, named, expected) in cases {
            let result = endpoint(kind, named).map_err(|error| error.field.unwrap_or_default());
            assert_eq!(
                result,
                expected.map_err(str::to_string),
                "{kind:?} {named:?}"
            );
        }
    }
}
