//! The OpenAI-compatible relay under `/v1`: client auth, routing across
//! channels, upstream calls with retries, streaming and usage capture.
//!
//! It reads only the in-memory snapshot (never SQLite) and hands each finished
//! request to `meter::finish`, the one place requests are logged and counted.
//!
//! - `auth`: the client key → its token.
//! - `chat`: `POST /v1/chat/completions` and its retry loop.
//! - `dispatch`: which channel each attempt goes to, with the daily cap
//!   enforced on every path (affinity, selection, retries, bound keys).
//! - `affinity`: sticky routing for upstream prompt-cache hits.
//! - `upstream`: one attempt against one channel.
//! - `stream`, `sse`: relaying a stream event by event.
//! - `usage`: reported and estimated token counts.
//! - `meter`: the request-log row, tracing event and daily count of each
//!   request; the only place the daily counters are charged.
//! - `models`: `GET /v1/models`.
//! - `request_id`: the `x-request-id` middleware for every response.

pub mod affinity;
pub mod auth;
pub mod chat;
pub mod dispatch;
pub mod meter;
pub mod models;
pub mod request_id;
pub mod sse;
pub mod stream;
pub mod upstream;
pub mod usage;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::AppState;
use crate::error::{ApiError, OpenAiError};
pub use request_id::{RequestId, request_id_layer};

/// The `/v1` routes. The body limit comes from the config; oversize bodies are
/// answered in the OpenAI envelope by `chat`, not by axum's plain-text rejection.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/models", get(models::list_models))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
}

/// A request refused before its key was known: traced, but not written to the
/// request log, so unauthenticated traffic cannot fill the store.
fn rejected(request_id: &RequestId, endpoint: &'static str, error: ApiError) -> OpenAiError {
    tracing::info!(
        request_id = request_id.as_str(),
        endpoint,
        status = error.status().as_u16(),
        error = error.code.as_str(),
        "request rejected"
    );
    error.openai()
}
