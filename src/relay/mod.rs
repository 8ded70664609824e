//! The OpenAI-compatible relay under `/v1`: client auth, routing across
//! channels, upstream calls with retries, streaming and usage capture.
//!
//! It reads only the in-memory snapshot (never SQLite) and hands each finished
//! request to `meter::finish`, the one place requests are logged and counted.
//!
//! The stages every request passes through, in order, are this module's
//! files; what each API adds is in `endpoints/`.
//!
//! - `request_id`: the `x-request-id` middleware for every response.
//! - `auth`: the client key → its token.
//! - `body`: the one-pass JSON scanner and spliced edits (no DOM).
//! - `endpoint`: what an endpoint describes about itself (`Endpoint`).
//! - `pipeline`: the one path every endpoint runs: parse, candidates,
//!   attempts with retries, then the reply whole, as events, or as bytes.
//! - `estimate`, `tokenizer`: the byte bound reserved before a request,
//!   and real BPE counts for OpenAI models, loaded lazily.
//! - `dispatch`: which channel each attempt goes to, with the daily cap
//!   enforced on every path (affinity, selection, retries, bound keys).
//! - `upstream`: one attempt against one channel.
//! - `stream`, `sse`, `observe`: relaying a stream event by event (one SSE
//!   framer), and reading usage and text out of its events.
//! - `usage`: reported and estimated token counts.
//! - `meter`: the request-log row, tracing event and daily count of each
//!   request; the only place the daily counters are charged.
//! - `endpoints`: the families (`chat`, `completions`, `embeddings`,
//!   `responses`, `images`, `moderations`, `audio`, `anthropic`, `models`,
//!   `realtime`).

pub mod auth;
pub mod body;
pub mod dispatch;
pub mod endpoint;
pub mod endpoints;
pub mod estimate;
pub mod meter;
pub mod observe;
pub mod pipeline;
pub mod request_id;
pub mod sse;
pub mod stream;
pub mod tokenizer;
pub mod upstream;
pub mod usage;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, get, post};

use endpoint::Endpoint;

use crate::AppState;
use crate::error::{ApiError, ErrorCode, OpenAiError};
use crate::i18n::Message;
pub use request_id::{RequestId, request_id_layer};

/// The `/v1` routes. The body limit comes from the config; oversize bodies are
/// answered in the OpenAI envelope by `chat`, not by axum's plain-text rejection.
pub fn router(state: &AppState) -> Router<AppState> {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler)
        })
        // Another method on a route, or an unknown path: our envelope, not
        // axum's empty 405 or the admin shape.
        .method_not_allowed_fallback(no_such_route)
        .route("/v1/{*rest}", any(no_such_route))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
}

/// A 404 in the envelope of the path's family, as OpenAI answers an invalid URL.
async fn no_such_route(uri: Uri) -> Response {
    let error = ApiError::new(ErrorCode::NotFound, Message::NotFound);
    if uri
        .path()
        .starts_with(endpoints::anthropic::messages::MESSAGES_PATH)
    {
        error.anthropic().into_response()
    } else {
        error.openai().into_response()
    }
}

/// Every `/v1` route as (method, path), in registration order: the same
/// list [`router`] is built from, so tests can cover every route.
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// Every endpoint the pipeline serves (every `POST` under `/v1`): the
/// router's routes and the hot path ([`hot`]) are both built from it.
pub const ENDPOINTS: [&Endpoint; 11] = [
    &endpoints::chat::CHAT,
    &endpoints::completions::COMPLETIONS,
    &endpoints::embeddings::EMBEDDINGS,
    &endpoints::responses::RESPONSES,
    &endpoints::audio::TRANSCRIPTIONS,
    &endpoints::audio::TRANSLATIONS,
    &endpoints::audio::speech::SPEECH,
    &endpoints::images::IMAGES,
    &endpoints::moderations::MODERATIONS,
    &endpoints::anthropic::messages::MESSAGES,
    &endpoints::anthropic::messages::COUNT_TOKENS,
];

/// The one list of `/v1` routes: method, path and handler.
fn routes() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    let relayed = ENDPOINTS.iter().map(|endpoint| {
        let endpoint: &'static Endpoint = endpoint;
        let handler = post(
            move |State(state): State<AppState>, request_id: RequestId, request: Request| async move {
                pipeline::respond(&state, &request_id, endpoint, request).await
            },
        );
        (Method::POST, endpoint.path, handler)
    });
    relayed
        .chain([
            (
                Method::GET,
                "/v1/models",
                get(endpoints::models::list_models),
            ),
            (
                Method::GET,
                endpoints::realtime::ENDPOINT,
                get(endpoints::realtime::realtime),
            ),
        ])
        .collect()
}

/// The relayed endpoint a request names, for the server's hot path: the
/// same handler as the router's, without the router's per-request layers.
pub fn hot(method: &Method, path: &str) -> Option<&'static Endpoint> {
    if method != Method::POST {
        return None;
    }
    ENDPOINTS
        .iter()
        .find(|endpoint| endpoint.path == path)
        .copied()
}

/// Serves a request the hot path matched: what the router's layers do
/// for it (the request id, the locale), then the endpoint's handler.
pub async fn serve_hot(
    state: &AppState,
    endpoint: &'static Endpoint,
    request: Request,
) -> Response {
    let request_id = RequestId::from_header(request.headers().get(&request_id::X_REQUEST_ID));
    let locale = crate::i18n::negotiate(
        request
            .headers()
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok()),
    );
    // Boxed: the request's future is several kilobytes, and hyper and the
    // locale scope would otherwise move it by value.
    let respond = Box::pin(pipeline::respond(state, &request_id, endpoint, request));
    let mut response = crate::i18n::scope(locale, respond).await;
    request_id.stamp(&mut response);
    response
}

/// A request refused before its key was known: traced, but not written to the
/// request log, so unauthenticated traffic cannot fill the store.
fn rejected(request_id: &RequestId, endpoint: &'static str, error: ApiError) -> OpenAiError {
    rejected_raw(request_id, endpoint, error).openai()
}

/// [`rejected`], left for the caller to render in its own envelope.
pub fn rejected_raw(request_id: &RequestId, endpoint: &'static str, error: ApiError) -> ApiError {
    tracing::info!(
        request_id = request_id.as_str(),
        endpoint,
        status = error.status().as_u16(),
        error = error.code.as_str(),
        "request rejected"
    );
    error
}
