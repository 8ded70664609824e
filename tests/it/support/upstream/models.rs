//! `GET /v1/models` of the fake upstream: a fixed OpenAI model list, whose
//! owner is the fake's name, so a test can tell upstreams apart.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, lock};

/// The model ids every fake lists.
pub const MODELS: [&str; 2] = ["fake-chat", "fake-embed"];

pub(super) async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    lock(&shared.auths).push(auth.unwrap_or_default().to_string());
    let data: Vec<_> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": shared.name}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}
