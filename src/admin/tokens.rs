//! `/api/tokens`: the API keys clients present to the relay.
//!
//! A new key is `sk-` + 48 random alphanumerics. Only its hash and a display
//! prefix are stored, so the full key appears once, in the create response.
//! Reads come from the store (for fresh `last_used_at` times); writes become
//! a `Command` applied through `AppState::apply`.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::json::{Id, Json, Query};
use super::openapi::ErrorBody;
use super::validate::{self, TokenDraft};
use crate::AppState;
use crate::command::{Applied, ConfigCommand};
use crate::error::ApiError;
use crate::model::{ChannelId, KeyHash, Token, TokenId, TokenStatus};

/// Random characters after `sk-`.
const KEY_RANDOM_CHARS: usize = 48;
/// Characters of the key kept for display (`sk-AbCd`).
pub(crate) const KEY_PREFIX_CHARS: usize = 7;

/// An API key as the admin API shows it: never the full key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: TokenId,
    pub name: String,
    /// The first characters of the key, for recognising it.
    pub key_prefix: String,
    pub status: TokenStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub group: String,
    /// Allow-list of models; `null` allows every model of the group.
    pub models: Option<Vec<String>>,
    /// The channel every request with this key goes to, if bound.
    #[schema(value_type = Option<i64>)]
    pub channel_id: Option<ChannelId>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&Token> for TokenView {
    fn from(token: &Token) -> TokenView {
        TokenView {
            id: token.id,
            name: token.spec.name.clone(),
            key_prefix: token.key_prefix.clone(),
            status: token.spec.status,
            expires_at: token.spec.expires_at,
            group: token.spec.group.clone(),
            models: token.spec.models.clone(),
            channel_id: token.spec.channel_id,
            created_at: token.created_at,
            last_used_at: token.last_used_at,
        }
    }
}

/// The create response: the token plus its full key, shown only this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: TokenView,
    /// The full key. It cannot be shown again.
    pub key: String,
}

/// One page of API keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    pub items: Vec<TokenView>,
    pub total: u64,
}

/// The body of `POST /api/tokens`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// Defaults to `enabled`.
    #[serde(default)]
    pub status: Option<TokenStatus>,
    /// RFC 3339; `null` or absent never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Defaults to `default`.
    #[serde(default)]
    pub group: Option<String>,
    /// Allow-list of models; `null` or absent allows every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Bind the key to one existing channel.
    #[serde(default)]
    pub channel_id: Option<i64>,
}

impl NewToken {
    pub(crate) fn into_draft(self) -> Result<TokenDraft, ApiError> {
        Ok(TokenDraft {
            name: self.name,
            status: self.status.unwrap_or(TokenStatus::Enabled),
            expires_at: parse_expiry(self.expires_at.as_deref())?,
            group: self.group.unwrap_or_else(|| "default".to_string()),
            models: self.models,
            channel_id: self.channel_id,
        })
    }
}

/// The body of `PATCH /api/tokens/{id}`: every field optional. For
/// `expires_at`, `models` and `channel_id`, an explicit `null` clears the
/// value while an absent field keeps it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPatch {
    pub name: Option<String>,
    pub status: Option<TokenStatus>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, nullable)]
    pub expires_at: Option<Option<String>>,
    pub group: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>, nullable)]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>, nullable)]
    pub channel_id: Option<Option<i64>>,
}

impl TokenPatch {
    pub(crate) fn merge_into(self, current: &Token) -> Result<TokenDraft, ApiError> {
        let spec = current.spec.clone();
        let expires_at = match self.expires_at {
            Some(text) => parse_expiry(text.as_deref())?,
            None => spec.expires_at,
        };
        Ok(TokenDraft {
            name: self.name.unwrap_or(spec.name),
            status: self.status.unwrap_or(spec.status),
            expires_at,
            group: self.group.unwrap_or(spec.group),
            models: self.models.unwrap_or(spec.models),
            channel_id: self.channel_id.unwrap_or(spec.channel_id.map(|id| id.0)),
        })
    }
}

/// Distinguishes an explicit `null` (`Some(None)`) from an absent field (`None`).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn parse_expiry(text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|text| validate::rfc3339("expires_at", text))
        .transpose()
}

/// Filters for `GET /api/tokens`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// From 1.
    pub page: Option<u32>,
    /// 1..=500, default 50.
    pub per_page: Option<u32>,
}

/// Create an API key. The response holds the full key, shown only this once.
#[utoipa::path(
    post, path = "/api/tokens", tag = "tokens",
    request_body = NewToken,
    responses(
        (status = 201, description = "The created key, with the full `key`", body = CreatedToken),
        (status = 400, description = "Validation failure", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Json(input): Json<NewToken>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), ApiError> {
    let snapshot = state.snapshot();
    let spec = validate::token(input.into_draft()?, |id| snapshot.channel(id).is_some())?;
    let key = generate_key();
    let command = ConfigCommand::CreateToken {
        key_hash: KeyHash::of(&key),
        key_prefix: key.chars().take(KEY_PREFIX_CHARS).collect(),
        spec,
        at: state.clock.now(),
    };
    let token = applied_token(state.apply(command).await?)?;
    let created = CreatedToken {
        token: TokenView::from(&token),
        key,
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// List API keys, filtered and paged, in id order.
#[utoipa::path(
    get, path = "/api/tokens", tag = "tokens",
    params(TokenQuery),
    responses(
        (status = 200, description = "One page of API keys", body = TokenList),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
) -> Result<axum::Json<TokenList>, ApiError> {
    let page = validate::page(query.page, query.per_page)?;
    let needle = query.q.as_deref().map(str::to_lowercase);
    let matching: Vec<TokenView> = state
        .store
        .tokens()
        .await?
        .iter()
        .filter(|token| {
            needle
                .as_deref()
                .is_none_or(|q| token.spec.name.to_lowercase().contains(q))
        })
        .map(TokenView::from)
        .collect();
    let (items, total) = page.slice(matching);
    Ok(axum::Json(TokenList { items, total }))
}

/// Read one API key (without the full key).
#[utoipa::path(
    get, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "API key id")),
    responses(
        (status = 200, description = "The API key", body = TokenView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such API key", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<axum::Json<TokenView>, ApiError> {
    let id = TokenId(id);
    let tokens = state.store.tokens().await?;
    let token = tokens
        .iter()
        .find(|token| token.id == id)
        .ok_or_else(|| ApiError::not_found("API key"))?;
    Ok(axum::Json(TokenView::from(token)))
}

/// Update some fields of an API key.
#[utoipa::path(
    patch, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "API key id")),
    request_body = TokenPatch,
    responses(
        (status = 200, description = "The updated API key", body = TokenView),
        (status = 400, description = "Validation failure; nothing changed", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such API key", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Id(id): Id,
    Json(patch): Json<TokenPatch>,
) -> Result<axum::Json<TokenView>, ApiError> {
    let id = TokenId(id);
    let snapshot = state.snapshot();
    let current = snapshot
        .token(id)
        .ok_or_else(|| ApiError::not_found("API key"))?;
    let spec = validate::token(patch.merge_into(current)?, |channel| {
        snapshot.channel(channel).is_some()
    })?;
    let token = applied_token(state.apply(ConfigCommand::UpdateToken { id, spec }).await?)?;
    Ok(axum::Json(TokenView::from(&token)))
}

/// Delete an API key; it stops working at once.
#[utoipa::path(
    delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "API key id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such API key", body = ErrorBody),
    )
)]
pub async fn delete(State(state): State<AppState>, Id(id): Id) -> Result<StatusCode, ApiError> {
    let id = TokenId(id);
    if state.snapshot().token(id).is_none() {
        return Err(ApiError::not_found("API key"));
    }
    state.apply(ConfigCommand::DeleteToken { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new API key: `sk-` + 48 random alphanumerics.
fn generate_key() -> String {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(KEY_RANDOM_CHARS)
        .map(char::from)
        .collect();
    format!("sk-{random}")
}

fn applied_token(applied: Applied) -> Result<Token, ApiError> {
    match applied {
        Applied::Token(token) => Ok(token),
        other => Err(ApiError::internal(
            "applying a token command",
            format!("unexpected {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sk_plus_48_alphanumerics() {
        let key = generate_key();
        assert_eq!(key.len(), 51);
        assert!(key.starts_with("sk-"));
        assert!(key[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(generate_key(), key);
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let absent: TokenPatch = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.expires_at, None);
        let cleared: TokenPatch =
            serde_json::from_str(r#"{"expires_at":null,"models":null}"#).unwrap();
        assert_eq!(cleared.expires_at, Some(None));
        assert_eq!(cleared.models, Some(None));
    }
}
