//! `/api/settings`: the runtime settings (global time zone, retries,
//! upstream timeouts, auto-disable rules). `PATCH` validates every field
//! it is given before anything is stored, then hands one
//! `ConfigCommand::UpdateSettings` to `AppState::apply`. Stored values win over
//! the config file and flags, which only set the initial values.

use std::time::Duration;

use axum::extract::State;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json::Json;
use super::openapi::ErrorBody;
use crate::AppState;
use crate::command::ConfigCommand;
use crate::error::ApiError;
use crate::i18n::Message;
use crate::runtime::{RuntimeSettings, SettingsPatch};

/// Retries beyond this only prolong a failure: each is a full upstream attempt.
const MAX_RETRIES: u32 = 10;
/// Characters in one auto-disable rule at most.
const MAX_RULE: usize = 500;
/// Auto-disable rules at most.
const MAX_RULES: u64 = 100;

/// The runtime settings. Durations are humantime strings (`10s`, `5m`, `1h 30m`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SettingsView {
    /// The IANA zone whose midnight resets daily counters, unless a channel sets its own.
    #[schema(example = "Asia/Shanghai")]
    pub timezone: String,
    /// Extra attempts on other channels after a retryable failure (0..=10).
    pub max_retries: u32,
    /// Upstream TCP + TLS connect timeout (100ms..=5m).
    #[schema(example = "10s")]
    pub connect_timeout: String,
    /// Time allowed until the upstream's first byte (1s..=1h).
    #[schema(example = "5m")]
    pub first_byte_timeout: String,
    /// Longest silence between two chunks of a stream (1s..=1h).
    #[schema(example = "2m")]
    pub stream_idle_timeout: String,
    /// Case-insensitive substrings of an upstream error body that disable the
    /// channel; an upstream 401 disables it regardless. `[]` turns matching off.
    pub auto_disable_rules: Vec<String>,
}

/// Any subset of the runtime settings; fields left out keep their values.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    pub timezone: Option<String>,
    pub max_retries: Option<u32>,
    pub connect_timeout: Option<String>,
    pub first_byte_timeout: Option<String>,
    pub stream_idle_timeout: Option<String>,
    pub auto_disable_rules: Option<Vec<String>>,
}

impl SettingsView {
    pub fn of(settings: &RuntimeSettings) -> SettingsView {
        let text = |duration: Duration| humantime::format_duration(duration).to_string();
        SettingsView {
            timezone: settings.timezone.name().to_string(),
            max_retries: settings.max_retries,
            connect_timeout: text(settings.connect_timeout),
            first_byte_timeout: text(settings.first_byte_timeout),
            stream_idle_timeout: text(settings.stream_idle_timeout),
            auto_disable_rules: settings.auto_disable_rules.clone(),
        }
    }
}

impl SettingsUpdate {
    /// The validated patch; the first bad field is named in the error.
    pub(crate) fn into_patch(self) -> Result<SettingsPatch, ApiError> {
        let second = Duration::from_secs(1);
        Ok(SettingsPatch {
            timezone: self.timezone.as_deref().map(zone).transpose()?,
            max_retries: self.max_retries.map(retries).transpose()?,
            connect_timeout: self
                .connect_timeout
                .map(|text| {
                    duration(
                        "connect_timeout",
                        &text,
                        Duration::from_millis(100),
                        300 * second,
                    )
                })
                .transpose()?,
            first_byte_timeout: self
                .first_byte_timeout
                .map(|text| duration("first_byte_timeout", &text, second, 3600 * second))
                .transpose()?,
            stream_idle_timeout: self
                .stream_idle_timeout
                .map(|text| duration("stream_idle_timeout", &text, second, 3600 * second))
                .transpose()?,
            auto_disable_rules: self.auto_disable_rules.map(rules).transpose()?,
        })
    }
}

/// The runtime settings in force.
#[utoipa::path(
    get, path = "/api/settings", tag = "settings",
    responses(
        (status = 200, description = "The runtime settings", body = SettingsView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn get(State(state): State<AppState>) -> axum::Json<SettingsView> {
    axum::Json(SettingsView::of(&state.settings()))
}

/// Change some runtime settings. They take effect at once, are stored, and
/// win over the config file and flags from then on, across restarts.
#[utoipa::path(
    patch, path = "/api/settings", tag = "settings",
    request_body = SettingsUpdate,
    responses(
        (status = 200, description = "The runtime settings now in force", body = SettingsView),
        (status = 400, description = "A bad value; `field` names it and nothing is stored", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "Session cookie without its CSRF token", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Json(update): Json<SettingsUpdate>,
) -> Result<axum::Json<SettingsView>, ApiError> {
    let patch = update.into_patch()?;
    if !patch.is_empty() {
        let at = state.clock.now();
        state
            .apply(ConfigCommand::UpdateSettings { patch, at })
            .await?;
    }
    Ok(axum::Json(SettingsView::of(&state.settings())))
}

fn zone(name: &str) -> Result<String, ApiError> {
    crate::daily::day::parse_zone(name)
        .map(|zone: Tz| zone.name().to_string())
        .ok_or_else(|| {
            let field = "timezone".to_string();
            ApiError::invalid("timezone", Message::ZoneInvalid { field })
        })
}

fn retries(count: u32) -> Result<u32, ApiError> {
    if count <= MAX_RETRIES {
        return Ok(count);
    }
    Err(ApiError::invalid(
        "max_retries",
        Message::NumberRange {
            field: "max_retries".to_string(),
            min: 0,
            max: u64::from(MAX_RETRIES),
        },
    ))
}

fn duration(field: &str, text: &str, min: Duration, max: Duration) -> Result<Duration, ApiError> {
    match humantime::parse_duration(text.trim()) {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(ApiError::invalid(
            field,
            Message::DurationRange {
                field: field.to_string(),
                min: humantime::format_duration(min).to_string(),
                max: humantime::format_duration(max).to_string(),
            },
        )),
    }
}

/// Each rule trimmed and non-empty (an empty rule would match every error).
fn rules(items: Vec<String>) -> Result<Vec<String>, ApiError> {
    if items.len() as u64 > MAX_RULES {
        return Err(ApiError::invalid(
            "auto_disable_rules",
            Message::NumberRange {
                field: "auto_disable_rules.length".to_string(),
                min: 0,
                max: MAX_RULES,
            },
        ));
    }
    let mut kept = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let field = format!("auto_disable_rules.{index}");
        let rule = item.trim();
        if rule.is_empty() {
            return Err(ApiError::invalid(
                &field,
                Message::FieldEmpty {
                    field: field.clone(),
                },
            ));
        }
        if rule.chars().count() > MAX_RULE {
            let message = Message::FieldTooLong {
                field: field.clone(),
                max: MAX_RULE,
            };
            return Err(ApiError::invalid(&field, message));
        }
        kept.push(rule.to_string());
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each bad value names its field; good values are normalized.
    #[test]
    fn values_are_validated_per_field() {
        let bad = [
            (r#"{"timezone":"Mars/Base"}"#, "timezone"),
            (r#"{"max_retries":11}"#, "max_retries"),
            (r#"{"connect_timeout":"0s"}"#, "connect_timeout"),
            (r#"{"first_byte_timeout":"soon"}"#, "first_byte_timeout"),
            (r#"{"stream_idle_timeout":"2h"}"#, "stream_idle_timeout"),
            (
                r#"{"auto_disable_rules":["ok"," "]}"#,
                "auto_disable_rules.1",
            ),
        ];
        for (body, field) in bad {
            let update: SettingsUpdate = serde_json::from_str(body).unwrap();
            let error = update.into_patch().unwrap_err();
            assert_eq!(error.field.as_deref(), Some(field), "{body}");
        }
        let good: SettingsUpdate = serde_json::from_str(
            r#"{"timezone":" Asia/Shanghai ","connect_timeout":"1m 30s","auto_disable_rules":[" x "]}"#,
        )
        .unwrap();
        let patch = good.into_patch().unwrap();
        assert_eq!(patch.timezone.as_deref(), Some("Asia/Shanghai"));
        assert_eq!(patch.connect_timeout, Some(Duration::from_secs(90)));
        assert_eq!(patch.auto_disable_rules, Some(vec!["x".to_string()]));
    }

    /// Durations render as humantime strings.
    #[test]
    fn view_uses_humantime() {
        let view = SettingsView::of(&RuntimeSettings::from_config(&Default::default()));
        assert_eq!(
            (
                view.max_retries,
                view.connect_timeout.as_str(),
                view.first_byte_timeout.as_str()
            ),
            (2, "10s", "5m")
        );
    }
}
