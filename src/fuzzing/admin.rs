//! Fuzz entry points for admin input: the JSON bodies of the channel, API
//! key and runtime-settings routes, through the real extractor and
//! validators, and a channel's daily-limit settings.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::{assert_client_error, assert_field_error, same_json};
use crate::admin::channels::{ChannelPatch, NewChannel};
use crate::admin::json::Json;
use crate::admin::settings::SettingsUpdate;
use crate::admin::tokens::{NewToken, TokenPatch};
use crate::admin::validate::{self, ChannelDraft, TokenDraft};
use crate::daily::settings as daily;
use crate::error::{ApiError, Text};
use crate::i18n::Message;
use crate::model::{
    Channel, ChannelId, ChannelSpec, ChannelStatus, ChannelType, KeyHash, Token, TokenId,
    TokenSpec, TokenStatus,
};
use crate::runtime::SettingsPatch;

/// `POST /api/channels` and `PATCH /api/channels/{id}` bodies.
pub fn admin_channel_body(data: &[u8]) {
    if let Some(new) = extract::<NewChannel>(data) {
        match new.into_draft() {
            Ok(draft) => check_channel(draft),
            Err(error) => assert_eq!(assert_field_error(&error), "key"),
        }
    }
    if let Some(patch) = extract::<ChannelPatch>(data) {
        match patch.merge_into(&stored_channel()) {
            Ok(draft) => check_channel(draft),
            Err(error) => assert_eq!(assert_field_error(&error), "key"),
        }
    }
}

/// `POST /api/tokens` and `PATCH /api/tokens/{id}` bodies.
pub fn admin_token_body(data: &[u8]) {
    if let Some(new) = extract::<NewToken>(data) {
        match new.into_draft() {
            Ok(draft) => check_token(draft),
            Err(error) => assert_eq!(assert_field_error(&error), "expires_at"),
        }
    }
    if let Some(patch) = extract::<TokenPatch>(data) {
        match patch.merge_into(&stored_token()) {
            Ok(draft) => check_token(draft),
            Err(error) => assert_eq!(assert_field_error(&error), "expires_at"),
        }
    }
}

/// `PATCH /api/settings` bodies: an accepted patch, written back as the
/// admin API shows it, is accepted as the same patch.
pub fn admin_settings_body(data: &[u8]) {
    let Some(update) = extract::<SettingsUpdate>(data) else {
        return;
    };
    let patch = match update.into_patch() {
        Ok(patch) => patch,
        Err(error) => {
            let field = assert_field_error(&error);
            let fields = [
                "timezone",
                "max_retries",
                "connect_timeout",
                "first_byte_timeout",
                "stream_idle_timeout",
                "auto_disable_rules",
            ];
            let top = field.split('.').next().unwrap_or_default();
            assert!(fields.contains(&top), "{field}");
            return;
        }
    };
    let text = |duration: Option<std::time::Duration>| {
        duration.map(|duration| humantime::format_duration(duration).to_string())
    };
    let shown = SettingsUpdate {
        timezone: patch.timezone.clone(),
        max_retries: patch.max_retries,
        connect_timeout: text(patch.connect_timeout),
        first_byte_timeout: text(patch.first_byte_timeout),
        stream_idle_timeout: text(patch.stream_idle_timeout),
        auto_disable_rules: patch.auto_disable_rules.clone(),
    };
    let again: Result<SettingsPatch, _> = shown.into_patch();
    assert_eq!(again.as_ref(), Ok(&patch));
}

/// A channel's `settings` object: the daily-limit keys are read as they
/// were validated, other keys kept verbatim, and the object survives a
/// JSON round trip.
pub fn channel_settings(data: &[u8]) {
    let Ok(settings) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let text = serde_json::to_string(&settings).unwrap_or_default();
    let reread = serde_json::from_str::<Value>(&text).unwrap_or_default();
    let original = Value::Object(settings.clone());
    assert!(
        same_json(&reread, &original),
        "{text} read back as {reread}"
    );

    let cap = daily::cap_of(&settings, Tz::UTC);
    let reserve = daily::default_reserve(&settings);
    assert!(cap.limit <= daily::MAX_LIMIT);
    assert!(reserve <= 100_000_000);
    let present = |key: &str| settings.get(key).filter(|value| !value.is_null());
    match daily::validate(&settings) {
        Ok(()) => {
            let limit = present(daily::LIMIT).map_or(Some(0), Value::as_u64);
            assert_eq!(Some(cap.limit), limit);
            let wanted =
                present(daily::RESERVE).map_or(Some(daily::DEFAULT_RESERVE), Value::as_u64);
            assert_eq!(Some(reserve), wanted);
            match present(daily::ZONE).and_then(Value::as_str) {
                Some(name) if !name.is_empty() => {
                    let zone = daily::zone_of(&settings);
                    assert_eq!(zone.map(|zone| zone.name()), Some(name.trim()));
                    assert_eq!(Some(cap.zone), zone);
                }
                _ => assert_eq!(cap.zone, Tz::UTC),
            }
        }
        Err(invalid) => {
            let key = invalid.field.strip_prefix("settings.").unwrap_or_default();
            assert!([daily::LIMIT, daily::RESERVE, daily::ZONE].contains(&key));
        }
    }

    let mut draft = base_draft();
    draft.settings = settings.clone();
    let auto_disable_ok = settings.get("auto_disable").is_none_or(Value::is_boolean);
    match validate::channel(draft) {
        Ok(spec) => {
            assert!(auto_disable_ok && daily::validate(&settings).is_ok());
            assert_eq!(spec.settings, settings, "settings are kept verbatim");
        }
        Err(error) => {
            let field = assert_field_error(&error);
            assert!(field.starts_with("settings."), "{field}");
            assert!(!auto_disable_ok || daily::validate(&settings).is_err());
        }
    }
}

/// Extracts `T` as the admin routes do. A rejection is a 400; for a JSON
/// object it names the field at fault.
fn extract<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    let request = Request::new(Body::from(data.to_vec()));
    let Some(result) = Json::<T>::from_request(request, &()).now_or_never() else {
        panic!("reading an in-memory body waited");
    };
    match result {
        Ok(Json(value)) => Some(value),
        Err(error) => {
            let object = serde_json::from_slice::<Value>(data).ok();
            match object.filter(Value::is_object) {
                Some(object) if !has_unclear_key(&object) && !is_syntax_error(&error) => {
                    _ = assert_field_error(&error);
                }
                _ => assert_client_error(&error),
            }
            None
        }
    }
}

/// Whether serde_json called the body malformed. It does so for some wrong
/// types in a well-formed body too (an array where an enum such as `type`
/// goes), and `admin::json` names no field for those (a known limit).
fn is_syntax_error(error: &ApiError) -> bool {
    matches!(&error.message, Text::Catalog(Message::InvalidValue { detail })
        if detail.starts_with("Failed to parse the request body as JSON"))
}

/// Whether `value` holds an empty key: an error about it (an unknown
/// field `""`) has the root as its path, so no field can be named.
fn has_unclear_key(value: &Value) -> bool {
    match value {
        Value::Object(object) => {
            object.keys().any(String::is_empty) || object.values().any(has_unclear_key)
        }
        Value::Array(items) => items.iter().any(has_unclear_key),
        _ => false,
    }
}

/// A valid channel validates again to itself, survives JSON, and is
/// accepted back from the body the admin API would be sent.
fn check_channel(draft: ChannelDraft) {
    let spec = match validate::channel(draft) {
        Ok(spec) => spec,
        Err(error) => {
            assert_field_error(&error);
            return;
        }
    };
    assert_eq!(validate::channel(draft_of(&spec)).as_ref(), Ok(&spec));
    let encoded = serde_json::to_vec(&spec).unwrap_or_default();
    let decoded = serde_json::from_slice::<ChannelSpec>(&encoded).ok();
    assert_eq!(
        decoded.map(|decoded| same_spec(&decoded, &spec)),
        Some(true)
    );
    let body = json!({
        "name": spec.name, "type": spec.kind, "base_url": spec.base_url,
        "key": spec.keys.join("\n"), "models": spec.models,
        "model_mapping": spec.model_mapping, "groups": spec.groups,
        "priority": spec.priority, "weight": spec.weight, "status": spec.status,
        "settings": spec.settings,
    });
    let resent = extract::<NewChannel>(body.to_string().as_bytes())
        .map(|new| new.into_draft().and_then(validate::channel));
    let resent = resent.and_then(Result::ok);
    assert_eq!(resent.map(|resent| same_spec(&resent, &spec)), Some(true));
}

/// Equal specs, their settings compared as stored JSON (see `same_json`).
fn same_spec(one: &ChannelSpec, other: &ChannelSpec) -> bool {
    let settings = |spec: &ChannelSpec| Value::Object(spec.settings.clone());
    let without = |spec: &ChannelSpec| ChannelSpec {
        settings: Map::new(),
        ..spec.clone()
    };
    same_json(&settings(one), &settings(other)) && without(one) == without(other)
}

/// A valid API key validates again to itself, survives JSON, and is
/// accepted back from the body the admin API would be sent.
fn check_token(draft: TokenDraft) {
    let bound = draft.channel_id;
    let spec = match validate::token(draft, channel_exists) {
        Ok(spec) => spec,
        Err(error) => {
            let field = assert_field_error(&error);
            if bound.is_some_and(|id| !channel_exists(ChannelId(id))) {
                assert_eq!(field, "channel_id");
            }
            return;
        }
    };
    let again = validate::token(token_draft_of(&spec), channel_exists);
    assert_eq!(again.as_ref(), Ok(&spec));
    let encoded = serde_json::to_vec(&spec).unwrap_or_default();
    let decoded = serde_json::from_slice::<TokenSpec>(&encoded).ok();
    assert_eq!(decoded.as_ref(), Some(&spec));
    let body = json!({
        "name": spec.name, "status": spec.status,
        "expires_at": spec.expires_at.map(|at| at.to_rfc3339()),
        "group": spec.group, "models": spec.models,
        "channel_id": spec.channel_id.map(|id| id.0),
    });
    let resent = extract::<NewToken>(body.to_string().as_bytes()).map(|new| {
        new.into_draft()
            .and_then(|draft| validate::token(draft, channel_exists))
    });
    assert_eq!(resent.as_ref(), Some(&Ok(spec)));
}

/// The fuzzed world: channels with even ids exist.
fn channel_exists(id: ChannelId) -> bool {
    id.0 % 2 == 0
}

fn draft_of(spec: &ChannelSpec) -> ChannelDraft {
    ChannelDraft {
        name: spec.name.clone(),
        kind: spec.kind,
        base_url: spec.base_url.clone(),
        keys: spec.keys.clone(),
        models: spec.models.clone(),
        model_mapping: spec.model_mapping.clone(),
        groups: spec.groups.clone(),
        priority: spec.priority,
        weight: i64::from(spec.weight),
        status: spec.status,
        settings: spec.settings.clone(),
    }
}

fn token_draft_of(spec: &TokenSpec) -> TokenDraft {
    TokenDraft {
        name: spec.name.clone(),
        status: spec.status,
        expires_at: spec.expires_at,
        group: spec.group.clone(),
        models: spec.models.clone(),
        channel_id: spec.channel_id.map(|id| id.0),
    }
}

fn base_draft() -> ChannelDraft {
    ChannelDraft {
        name: "main".to_string(),
        kind: ChannelType::Openai,
        base_url: "https://api.openai.com/v1".to_string(),
        keys: vec!["sk-one".to_string(), "sk-two".to_string()],
        models: vec!["gpt-4o".to_string()],
        model_mapping: BTreeMap::from([("gpt-4o".to_string(), "gpt-4o-2024".to_string())]),
        groups: vec!["default".to_string()],
        priority: 0,
        weight: 1,
        status: ChannelStatus::Enabled,
        settings: Map::new(),
    }
}

/// The channel a fuzzed PATCH is laid over.
fn stored_channel() -> Channel {
    let draft = base_draft();
    let mut settings = Map::new();
    settings.insert(daily::LIMIT.to_string(), json!(1_000_000));
    Channel {
        id: ChannelId(2),
        spec: ChannelSpec {
            name: draft.name,
            kind: draft.kind,
            base_url: draft.base_url,
            keys: draft.keys,
            models: draft.models,
            model_mapping: draft.model_mapping,
            groups: draft.groups,
            priority: draft.priority,
            weight: 1,
            status: draft.status,
            settings,
        },
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        updated_at: DateTime::<Utc>::UNIX_EPOCH,
        auto_disabled: None,
    }
}

/// The API key a fuzzed PATCH is laid over.
fn stored_token() -> Token {
    Token {
        id: TokenId(1),
        key_hash: KeyHash::of("sk-fuzz"),
        key_prefix: "sk-fuzz".to_string(),
        spec: TokenSpec {
            name: "ci".to_string(),
            status: TokenStatus::Enabled,
            expires_at: None,
            group: "default".to_string(),
            models: Some(vec!["gpt-4o".to_string()]),
            channel_id: Some(ChannelId(2)),
        },
        created_at: DateTime::<Utc>::UNIX_EPOCH,
        last_used_at: None,
    }
}
