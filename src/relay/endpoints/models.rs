//! `GET /v1/models`: the models a key may use, in OpenAI's list shape.
//!
//! A bound key sees its channel's models; any other key the models of the
//! enabled channels in its group. Either way the key's allow-list cuts the list.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;

use crate::AppState;
use crate::error::OpenAiError;
use crate::model::Token;
use crate::relay::auth;
use crate::relay::request_id::RequestId;
use crate::snapshot::Snapshot;

const ENDPOINT: &str = "/v1/models";

#[derive(Debug, Serialize)]
pub struct ModelList {
    object: &'static str,
    data: Vec<ModelEntry>,
}

#[derive(Debug, Serialize)]
struct ModelEntry {
    id: String,
    object: &'static str,
    /// When the earliest channel serving it was created (Unix seconds).
    created: i64,
    owned_by: &'static str,
}

pub async fn list_models(
    State(state): State<AppState>,
    request_id: RequestId,
    headers: HeaderMap,
) -> Result<Json<ModelList>, OpenAiError> {
    let snapshot = state.snapshot();
    let token = auth::authenticate(&headers, &snapshot, state.clock.now())
        .map_err(|error| crate::relay::rejected(&request_id, ENDPOINT, error))?;
    let data = usable_models(&snapshot, &token)
        .into_iter()
        .map(|(id, created)| ModelEntry {
            id,
            object: "model",
            created,
            owned_by: "sluicegate",
        })
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// Model name → earliest creation time of a channel serving it, for `token`.
fn usable_models(snapshot: &Snapshot, token: &Token) -> BTreeMap<String, i64> {
    let mut models: BTreeMap<String, i64> = BTreeMap::new();
    let channels = snapshot
        .channels()
        .map(|entry| &entry.channel)
        .filter(|channel| {
            channel.is_enabled()
                && match token.spec.channel_id {
                    Some(bound) => channel.id == bound,
                    None => channel.spec.groups.contains(&token.spec.group),
                }
        });
    for channel in channels {
        let created = channel.created_at.timestamp();
        for model in channel
            .spec
            .models
            .iter()
            .filter(|model| token.allows_model(model))
        {
            models
                .entry(model.clone())
                .and_modify(|earliest| *earliest = (*earliest).min(created))
                .or_insert(created);
        }
    }
    models
}
