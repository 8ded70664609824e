//! `/api/channels`: create, list, read, update and delete upstream channels.
//!
//! Reads come from the in-memory snapshot; writes become a `Command` applied
//! through `AppState::apply`. Upstream keys leave this module only masked.
//! Every channel read carries today's usage (`daily_usage`), a derived view
//! that never changes the stored `status`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::json::{Id, Json, Query};
use super::openapi::ErrorBody;
use super::usage::DailyUsage;
use super::validate::{self, ChannelDraft};
use crate::AppState;
use crate::command::{Applied, ConfigCommand};
use crate::daily::settings;
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;
use crate::model::{Channel, ChannelId, ChannelStatus, ChannelType, mask_key};
use crate::snapshot::ChannelEntry;

type Settings = serde_json::Map<String, serde_json::Value>;

/// A channel as the admin API shows it. `key` is masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChannelView {
    pub id: ChannelId,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChannelType,
    pub base_url: String,
    /// Every upstream key, masked (`sk-…abcd`), one per line.
    pub key: String,
    pub key_count: usize,
    pub models: Vec<String>,
    pub model_mapping: BTreeMap<String, String>,
    pub groups: Vec<String>,
    pub priority: i64,
    pub weight: u32,
    /// The admin's decision. A channel at its daily limit stays `enabled`;
    /// see `daily_usage.capped`.
    pub status: ChannelStatus,
    /// Why the gateway set `auto_disabled` (an upstream 401 or a matched
    /// quota rule); null unless the status is `auto_disabled`.
    #[serde(default)]
    pub auto_disabled_reason: Option<String>,
    /// When the gateway set `auto_disabled`.
    #[serde(default)]
    pub auto_disabled_at: Option<DateTime<Utc>>,
    /// Today's token usage against `settings.daily_token_limit`.
    pub daily_usage: DailyUsage,
    /// Per-channel options; unknown keys are kept. `daily_token_limit` (raw
    /// tokens a day, 0 or absent = unlimited, at most 10^15) and
    /// `daily_reset_timezone` (an IANA zone) configure the daily limit;
    /// `auto_disable: false` keeps the gateway from disabling the channel.
    #[schema(value_type = Object)]
    pub settings: Settings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ChannelView {
    /// The view of a snapshot entry, with today's usage.
    fn of(state: &AppState, entry: &ChannelEntry, now: DateTime<Utc>) -> ChannelView {
        let usage = DailyUsage::of(state, entry.channel.id, entry.cap, now);
        ChannelView::new(&entry.channel, usage)
    }

    /// The view of a channel just written. Its cap comes from the snapshot
    /// the write swapped in, or, if the channel is already gone again, from
    /// its settings.
    fn written(state: &AppState, channel: &Channel) -> ChannelView {
        let cap = match state.snapshot().channel(channel.id) {
            Some(entry) => entry.cap,
            None => settings::cap_of(&channel.spec.settings, state.settings().timezone),
        };
        let usage = DailyUsage::of(state, channel.id, cap, state.clock.now());
        ChannelView::new(channel, usage)
    }

    fn new(channel: &Channel, daily_usage: DailyUsage) -> ChannelView {
        let spec = &channel.spec;
        ChannelView {
            id: channel.id,
            name: spec.name.clone(),
            kind: spec.kind,
            base_url: spec.base_url.clone(),
            key: spec
                .keys
                .iter()
                .map(|key| mask_key(key))
                .collect::<Vec<_>>()
                .join("\n"),
            key_count: spec.keys.len(),
            models: spec.models.clone(),
            model_mapping: spec.model_mapping.clone(),
            groups: spec.groups.clone(),
            priority: spec.priority,
            weight: spec.weight,
            status: spec.status,
            auto_disabled_reason: channel
                .auto_disabled
                .as_ref()
                .map(|auto| auto.reason.clone()),
            auto_disabled_at: channel.auto_disabled.as_ref().map(|auto| auto.at),
            daily_usage,
            settings: spec.settings.clone(),
            created_at: channel.created_at,
            updated_at: channel.updated_at,
        }
    }
}

/// One page of channels.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelList {
    pub items: Vec<ChannelView>,
    pub total: u64,
}

/// The body of `POST /api/channels`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    pub name: String,
    /// Defaults to `openai`.
    #[serde(rename = "type", default)]
    pub kind: Option<ChannelType>,
    /// The upstream API root including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// One or more upstream keys, one per line.
    pub key: String,
    pub models: Vec<String>,
    #[serde(default)]
    pub model_mapping: Option<BTreeMap<String, String>>,
    /// Defaults to `["default"]`.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// Higher is tried first. Defaults to 0.
    #[serde(default)]
    pub priority: Option<i64>,
    /// Share inside a priority tier, 0..=1000000. Defaults to 1.
    #[serde(default)]
    pub weight: Option<i64>,
    /// Defaults to `enabled`.
    #[serde(default)]
    pub status: Option<ChannelStatus>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Settings>,
}

impl NewChannel {
    pub(crate) fn into_draft(self) -> Result<ChannelDraft, ApiError> {
        Ok(ChannelDraft {
            name: self.name,
            kind: self.kind.unwrap_or(ChannelType::Openai),
            base_url: self.base_url,
            keys: validate::keys(&self.key)?,
            models: self.models,
            model_mapping: self.model_mapping.unwrap_or_default(),
            groups: self.groups.unwrap_or_else(|| vec!["default".to_string()]),
            priority: self.priority.unwrap_or(0),
            weight: self.weight.unwrap_or(1),
            status: self.status.unwrap_or(ChannelStatus::Enabled),
            settings: self.settings.unwrap_or_default(),
        })
    }
}

/// The body of `PATCH /api/channels/{id}`: every field optional. `settings`
/// merges key by key (a `null` value removes that key); an omitted `key`
/// keeps the stored keys; other fields replace the stored value.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<ChannelType>,
    pub base_url: Option<String>,
    pub key: Option<String>,
    pub models: Option<Vec<String>>,
    pub model_mapping: Option<BTreeMap<String, String>>,
    pub groups: Option<Vec<String>>,
    pub priority: Option<i64>,
    pub weight: Option<i64>,
    pub status: Option<ChannelStatus>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Settings>,
}

impl ChannelPatch {
    /// The stored channel with this patch laid over it.
    pub(crate) fn merge_into(self, current: &Channel) -> Result<ChannelDraft, ApiError> {
        let spec = current.spec.clone();
        let keys = match &self.key {
            Some(text) => validate::keys(text)?,
            None => spec.keys,
        };
        let mut settings = spec.settings;
        for (name, value) in self.settings.unwrap_or_default() {
            if value.is_null() {
                settings.remove(&name);
            } else {
                settings.insert(name, value);
            }
        }
        Ok(ChannelDraft {
            name: self.name.unwrap_or(spec.name),
            kind: self.kind.unwrap_or(spec.kind),
            base_url: self.base_url.unwrap_or(spec.base_url),
            keys,
            models: self.models.unwrap_or(spec.models),
            model_mapping: self.model_mapping.unwrap_or(spec.model_mapping),
            groups: self.groups.unwrap_or(spec.groups),
            priority: self.priority.unwrap_or(spec.priority),
            weight: self.weight.unwrap_or(i64::from(spec.weight)),
            status: self.status.unwrap_or(spec.status),
            settings,
        })
    }
}

/// Filters for `GET /api/channels`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChannelQuery {
    /// Case-insensitive substring of the name or base URL.
    pub q: Option<String>,
    /// Channels in this group.
    pub group: Option<String>,
    /// Channels that list this model.
    pub model: Option<String>,
    pub status: Option<ChannelStatus>,
    /// `true`: only channels at their daily limit now; `false`: only those below it.
    pub capped: Option<bool>,
    /// From 1.
    pub page: Option<u32>,
    /// 1..=500, default 50.
    pub per_page: Option<u32>,
}

impl ChannelQuery {
    fn matches(&self, channel: &Channel) -> bool {
        let spec = &channel.spec;
        let text_matches = self.q.as_deref().is_none_or(|q| {
            let q = q.to_lowercase();
            spec.name.to_lowercase().contains(&q) || spec.base_url.to_lowercase().contains(&q)
        });
        text_matches
            && self
                .group
                .as_ref()
                .is_none_or(|group| spec.groups.contains(group))
            && self
                .model
                .as_ref()
                .is_none_or(|model| spec.models.contains(model))
            && self.status.is_none_or(|status| spec.status == status)
    }
}

/// Create a channel.
#[utoipa::path(
    post, path = "/api/channels", tag = "channels",
    request_body = NewChannel,
    responses(
        (status = 201, description = "The created channel", body = ChannelView),
        (status = 400, description = "Validation failure", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Json(input): Json<NewChannel>,
) -> Result<(StatusCode, axum::Json<ChannelView>), ApiError> {
    let spec = validate::channel(input.into_draft()?)?;
    let channel = applied_channel(
        state
            .apply(ConfigCommand::CreateChannel {
                spec,
                at: state.clock.now(),
            })
            .await?,
    )?;
    let view = ChannelView::written(&state, &channel);
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// List channels, filtered and paged, in id order.
#[utoipa::path(
    get, path = "/api/channels", tag = "channels",
    params(ChannelQuery),
    responses(
        (status = 200, description = "One page of channels", body = ChannelList),
        (status = 400, description = "A bad query parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ChannelQuery>,
) -> Result<axum::Json<ChannelList>, ApiError> {
    let page = validate::page(query.page, query.per_page)?;
    let snapshot = state.snapshot();
    let now = state.clock.now();
    let matching: Vec<ChannelView> = snapshot
        .channels()
        .filter(|entry| query.matches(&entry.channel))
        .map(|entry| ChannelView::of(&state, entry, now))
        .filter(|view| {
            query
                .capped
                .is_none_or(|capped| view.daily_usage.capped == capped)
        })
        .collect();
    let (items, total) = page.slice(matching);
    Ok(axum::Json(ChannelList { items, total }))
}

/// Read one channel.
#[utoipa::path(
    get, path = "/api/channels/{id}", tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 200, description = "The channel", body = ChannelView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<axum::Json<ChannelView>, ApiError> {
    let entry = entry(&state, ChannelId(id))?;
    Ok(axum::Json(ChannelView::of(
        &state,
        &entry,
        state.clock.now(),
    )))
}

/// Update some fields of a channel.
#[utoipa::path(
    patch, path = "/api/channels/{id}", tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    request_body = ChannelPatch,
    responses(
        (status = 200, description = "The updated channel", body = ChannelView),
        (status = 400, description = "Validation failure; nothing changed", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Id(id): Id,
    Json(patch): Json<ChannelPatch>,
) -> Result<axum::Json<ChannelView>, ApiError> {
    let id = ChannelId(id);
    let spec = validate::channel(patch.merge_into(&current(&state, id)?)?)?;
    let channel = applied_channel(
        state
            .apply(ConfigCommand::UpdateChannel {
                id,
                spec,
                at: state.clock.now(),
            })
            .await?,
    )?;
    Ok(axum::Json(ChannelView::written(&state, &channel)))
}

/// Delete a channel. Refused with 409 while an API key is bound to it.
#[utoipa::path(
    delete, path = "/api/channels/{id}", tag = "channels",
    params(("id" = i64, Path, description = "Channel id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        (status = 409, description = "An API key is bound to this channel", body = ErrorBody),
    )
)]
pub async fn delete(State(state): State<AppState>, Id(id): Id) -> Result<StatusCode, ApiError> {
    let id = ChannelId(id);
    let snapshot = state.snapshot();
    if snapshot.channel(id).is_none() {
        return Err(ApiError::not_found("channel"));
    }
    let bound: Vec<String> = snapshot
        .tokens()
        .filter(|token| token.spec.channel_id == Some(id))
        .map(|token| token.id.to_string())
        .collect();
    if !bound.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            Message::ChannelInUse {
                keys: bound.join(", "),
            },
        ));
    }
    state.apply(ConfigCommand::DeleteChannel { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The snapshot entry of channel `id`, or a 404.
pub(super) fn entry(state: &AppState, id: ChannelId) -> Result<Arc<ChannelEntry>, ApiError> {
    state
        .snapshot()
        .channel(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("channel"))
}

fn current(state: &AppState, id: ChannelId) -> Result<Channel, ApiError> {
    entry(state, id).map(|entry| entry.channel.clone())
}

fn applied_channel(applied: Applied) -> Result<Channel, ApiError> {
    match applied {
        Applied::Channel(channel) => Ok(channel),
        other => Err(ApiError::internal(
            "applying a channel command",
            format!("unexpected {other:?}"),
        )),
    }
}
