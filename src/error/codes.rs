//! The table of stable error codes: one row per code, with its HTTP status
//! and OpenAI error type. Adding a code means choosing both here.

use axum::http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Malformed JSON, a wrong type, a missing or unknown field.
    InvalidRequest,
    /// No credentials, or credentials we do not know.
    Unauthorized,
    /// A known API key that is disabled or expired, or a model it may not use.
    Forbidden,
    /// A state-changing admin request authenticated by the session cookie
    /// without the session's `x-csrf-token`.
    CsrfFailed,
    /// Too many wrong admin tokens from this client address.
    TooManyAttempts,
    NotFound,
    /// The change conflicts with other state (a channel still bound by API keys).
    Conflict,
    /// No enabled channel serves the requested model for this key.
    ModelNotFound,
    PayloadTooLarge,
    /// Every candidate channel failed; the last upstream error is summarised.
    UpstreamFailed,
    /// Every candidate channel was unreachable (connect error or timeout).
    UpstreamUnavailable,
    /// An upstream 4xx that says the request itself is bad, passed through.
    UpstreamRejected,
    /// The channel an API key is bound to has reached its daily token limit.
    ChannelDailyLimitExceeded,
    /// Every candidate channel was left out only because of its daily limit.
    DailyLimitExhausted,
    /// Cluster mode: no leader or no quorum, so a write cannot be committed.
    ClusterUnavailable,
    /// A cluster endpoint was called on a node that runs without cluster flags.
    ClusterDisabled,
    Internal,
}

impl ErrorCode {
    /// Every code, for completeness tests (i18n, documentation).
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::CsrfFailed,
        ErrorCode::TooManyAttempts,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::ModelNotFound,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UpstreamFailed,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::UpstreamRejected,
        ErrorCode::ChannelDailyLimitExceeded,
        ErrorCode::DailyLimitExhausted,
        ErrorCode::ClusterUnavailable,
        ErrorCode::ClusterDisabled,
        ErrorCode::Internal,
    ];

    /// The stable code string clients may match on. Never localized.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "invalid_api_key",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UpstreamFailed => "upstream_error",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamRejected => "upstream_rejected",
            ErrorCode::ChannelDailyLimitExceeded => "channel_daily_token_limit_exceeded",
            ErrorCode::DailyLimitExhausted => "daily_token_limit_exhausted",
            ErrorCode::ClusterUnavailable => "cluster_unavailable",
            ErrorCode::ClusterDisabled => "cluster_disabled",
            ErrorCode::Internal => "internal_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::CsrfFailed => StatusCode::FORBIDDEN,
            ErrorCode::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::NotFound | ErrorCode::ModelNotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict | ErrorCode::ClusterDisabled => StatusCode::CONFLICT,
            ErrorCode::ClusterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UpstreamFailed => StatusCode::BAD_GATEWAY,
            ErrorCode::UpstreamUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::UpstreamRejected => StatusCode::BAD_REQUEST,
            ErrorCode::ChannelDailyLimitExceeded | ErrorCode::DailyLimitExhausted => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Anthropic error `type` for this code, for `/v1/messages`: the
    /// names Anthropic's API and SDKs use for the same statuses.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest
            | ErrorCode::Conflict
            | ErrorCode::UpstreamRejected
            | ErrorCode::ClusterDisabled => "invalid_request_error",
            ErrorCode::Unauthorized => "authentication_error",
            ErrorCode::Forbidden | ErrorCode::CsrfFailed => "permission_error",
            ErrorCode::TooManyAttempts => "rate_limit_error",
            ErrorCode::NotFound | ErrorCode::ModelNotFound => "not_found_error",
            ErrorCode::PayloadTooLarge => "request_too_large",
            ErrorCode::ChannelDailyLimitExceeded | ErrorCode::DailyLimitExhausted => {
                "rate_limit_error"
            }
            ErrorCode::UpstreamUnavailable | ErrorCode::ClusterUnavailable => "overloaded_error",
            ErrorCode::UpstreamFailed | ErrorCode::Internal => "api_error",
        }
    }

    /// The OpenAI error `type` for this code.
    ///
    /// The daily limits use `rate_limit_error`: OpenAI SDKs pick their
    /// exception from the status (429 → `RateLimitError`), and the type keeps
    /// our `*_error` naming (Anthropic's API uses the same word). Clients that
    /// need to tell a daily cap from an upstream rate limit match on `code`.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest
            | ErrorCode::NotFound
            | ErrorCode::Conflict
            | ErrorCode::ClusterDisabled
            | ErrorCode::ModelNotFound
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UpstreamRejected => "invalid_request_error",
            ErrorCode::Unauthorized | ErrorCode::Forbidden | ErrorCode::CsrfFailed => {
                "authentication_error"
            }
            ErrorCode::TooManyAttempts => "rate_limit_error",
            ErrorCode::UpstreamFailed | ErrorCode::UpstreamUnavailable => "upstream_error",
            ErrorCode::ChannelDailyLimitExceeded | ErrorCode::DailyLimitExhausted => {
                "rate_limit_error"
            }
            ErrorCode::Internal | ErrorCode::ClusterUnavailable => "server_error",
        }
    }
}
