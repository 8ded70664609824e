//! The one boundary where internal failures become client-visible errors.
//!
//! Every error a client can see has a stable [`ErrorCode`]. From the code come
//! the HTTP status and the OpenAI `type`; the message is the only part that
//! varies, and it is localized (`i18n`) when the response is rendered, in
//! the locale of the request being handled. Three renderings exist: the
//! OpenAI envelope on `/v1/*`, the Anthropic envelope on `/v1/messages*`,
//! and the admin envelope on `/api/*`. Internal details
//! (SQL errors, upstream keys) are logged here once and never reach the client.

mod codes;

pub use codes::ErrorCode;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::i18n::{self, Message};

/// An error's message: a catalog entry, localized when rendered, or text
/// that is data (an upstream's own error message) and passes as it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Catalog(Message),
    Verbatim(String),
}

impl Text {
    /// The text in the current request's locale.
    pub fn render(&self) -> String {
        match self {
            Text::Catalog(message) => message.render(i18n::current()),
            Text::Verbatim(text) => text.clone(),
        }
    }
}

impl From<Message> for Text {
    fn from(message: Message) -> Text {
        Text::Catalog(message)
    }
}

/// An error on its way to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: Text,
    /// The request field at fault, as a dotted path (`settings.daily_token_limit`).
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Text>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// A validation failure on one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<Text>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message).with_field(field)
    }

    /// An unknown id; `what` is the store's name for the thing (`channel`, `token`).
    pub fn not_found(what: &str) -> ApiError {
        let message = match what {
            "channel" => Message::ChannelNotFound,
            "token" | "API key" => Message::TokenNotFound,
            _ => Message::NotFound,
        };
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// An internal failure: logged in full here, summarised to the client.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "{context}");
        ApiError::new(ErrorCode::Internal, Message::Internal)
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// Renders the OpenAI envelope `{"error":{"message","type","param","code"}}`.
    pub fn openai(self) -> OpenAiError {
        OpenAiError(self)
    }

    /// The OpenAI envelope's JSON, for errors that travel as an upstream
    /// body (a request an Anthropic channel cannot carry).
    pub fn openai_body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message.render(),
            "type": self.code.openai_type(),
            "param": self.field,
            "code": self.code.as_str(),
        }})
    }

    /// Renders the Anthropic envelope `{"type":"error","error":{"type","message"}}`.
    pub fn anthropic(self) -> AnthropicError {
        AnthropicError(self)
    }

    fn finish(&self, body: serde_json::Value) -> Response {
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message.render())
    }
}

/// The admin rendering: `{"error":{"code","message","field"}}`.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code.as_str(),
            "message": self.message.render(),
            "field": self.field,
        }});
        self.finish(body)
    }
}

/// An [`ApiError`] rendered in the OpenAI envelope, for `/v1/*`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> OpenAiError {
        OpenAiError(error)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let error = self.0;
        let body = error.openai_body();
        error.finish(body)
    }
}

/// An [`ApiError`] rendered in Anthropic's envelope, for `/v1/messages*`, so
/// the Anthropic SDKs raise their usual exceptions. Our stable code has no
/// slot there; the status, the `type` and `Retry-After` carry the meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(error: ApiError) -> AnthropicError {
        AnthropicError(error)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let error = self.0;
        let body = json!({"type": "error", "error": {
            "type": error.code.anthropic_type(),
            "message": error.message.render(),
        }});
        error.finish(body)
    }
}

/// A storage failure at the boundary: an unknown id is a 404, anything else
/// an internal error, logged here and never shown.
impl From<crate::store::Error> for ApiError {
    fn from(error: crate::store::Error) -> ApiError {
        match error {
            crate::store::Error::NotFound(what) => ApiError::not_found(what),
            other => ApiError::internal("store", other),
        }
    }
}
