//! Pure validation of admin input: every rule a channel, an API key or a
//! list query must satisfy before it becomes part of a `Command`.
//!
//! Each failure is an [`ApiError`] whose `field` is the dotted path of the
//! offending input. Nothing here does IO or reads the clock; facts about the
//! world (does this channel exist?) are passed in. Messages never echo an
//! upstream key.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::daily::settings::{self as daily_settings, Problem};
use crate::error::ApiError;
use crate::i18n::Message;
use crate::model::{ChannelId, ChannelSpec, ChannelStatus, ChannelType, TokenSpec, TokenStatus};

/// The longest name, in characters.
pub const MAX_NAME: usize = 200;
/// The longest model or group name, in characters.
pub const MAX_LABEL: usize = 200;
/// The longest upstream key, in characters: real keys are a few hundred at
/// most, and a channel's keys are held in memory and sent on every request.
pub const MAX_KEY: usize = 4096;
pub const MAX_WEIGHT: i64 = 1_000_000;
pub const DEFAULT_PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 500;

/// A channel as sent on create, or as it results from merging a PATCH into
/// the stored channel, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelDraft {
    pub name: String,
    pub kind: ChannelType,
    pub base_url: String,
    pub keys: Vec<String>,
    pub models: Vec<String>,
    pub model_mapping: BTreeMap<String, String>,
    pub groups: Vec<String>,
    pub priority: i64,
    pub weight: i64,
    pub status: ChannelStatus,
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// An API key's settings before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenDraft {
    pub name: String,
    pub status: TokenStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub group: String,
    pub models: Option<Vec<String>>,
    pub channel_id: Option<i64>,
}

/// Validates and normalises a channel.
pub fn channel(draft: ChannelDraft) -> Result<ChannelSpec, ApiError> {
    Ok(ChannelSpec {
        name: name("name", &draft.name)?,
        kind: draft.kind,
        base_url: base_url(&draft.base_url)?,
        keys: key_list(draft.keys)?,
        models: labels("models", draft.models)?,
        model_mapping: model_mapping(draft.model_mapping)?,
        groups: labels("groups", draft.groups)?,
        priority: priority(draft.priority)?,
        weight: weight(draft.weight)?,
        status: draft.status,
        settings: settings(draft.settings)?,
    })
}

/// Validates an API key; `channel_exists` answers whether a bound channel is real.
pub fn token(
    draft: TokenDraft,
    channel_exists: impl Fn(ChannelId) -> bool,
) -> Result<TokenSpec, ApiError> {
    let channel_id = draft.channel_id.map(ChannelId);
    if let Some(id) = channel_id
        && !channel_exists(id)
    {
        return Err(ApiError::invalid(
            "channel_id",
            Message::ChannelMissing { id: id.0 },
        ));
    }
    let models = match draft.models {
        Some(models) if models.is_empty() => {
            return Err(ApiError::invalid("models", Message::TokenModelsEmpty));
        }
        Some(models) => Some(labels("models", models)?),
        None => None,
    };
    Ok(TokenSpec {
        name: name("name", &draft.name)?,
        status: draft.status,
        expires_at: draft.expires_at,
        group: label("group", &draft.group)?,
        models,
        channel_id,
    })
}

/// Splits the `key` text into upstream keys: one per line, trimmed, blank lines dropped.
pub fn keys(text: &str) -> Result<Vec<String>, ApiError> {
    key_list(
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn key_list(keys: Vec<String>) -> Result<Vec<String>, ApiError> {
    if keys.is_empty() {
        return Err(ApiError::invalid("key", Message::KeyRequired));
    }
    for (index, key) in keys.iter().enumerate() {
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            // The message names the line, never the key itself.
            return Err(ApiError::invalid(
                "key",
                Message::KeyMalformed { line: index + 1 },
            ));
        }
        if key.chars().count() > MAX_KEY {
            return Err(ApiError::invalid(
                "key",
                Message::FieldTooLong {
                    field: "key".to_string(),
                    max: MAX_KEY,
                },
            ));
        }
    }
    Ok(keys)
}

/// An RFC 3339 time, converted to UTC.
pub fn rfc3339(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid(
                field,
                Message::TimeInvalid {
                    field: field.to_string(),
                },
            )
        })
}

/// A page of a list: `page` counts from 1, `per_page` is 1..=500 (default 50).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl Page {
    /// The items of this page and the total before paging.
    pub fn slice<T>(self, items: Vec<T>) -> (Vec<T>, u64) {
        let total = items.len() as u64;
        let skip = (self.page as usize - 1).saturating_mul(self.per_page as usize);
        let items = items
            .into_iter()
            .skip(skip)
            .take(self.per_page as usize)
            .collect();
        (items, total)
    }
}

pub fn page(page: Option<u32>, per_page: Option<u32>) -> Result<Page, ApiError> {
    let page = page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid("page", Message::PageInvalid));
    }
    let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::invalid(
            "per_page",
            Message::PerPageInvalid { max: MAX_PER_PAGE },
        ));
    }
    Ok(Page { page, per_page })
}

fn name(field: &str, text: &str) -> Result<String, ApiError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid(
            field,
            Message::FieldEmpty {
                field: field.to_string(),
            },
        ));
    }
    if trimmed.chars().count() > MAX_NAME {
        return Err(ApiError::invalid(
            field,
            Message::FieldTooLong {
                field: field.to_string(),
                max: MAX_NAME,
            },
        ));
    }
    Ok(trimmed.to_string())
}

fn label(field: &str, text: &str) -> Result<String, ApiError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ApiError::invalid(
            field,
            Message::FieldEmpty {
                field: field.to_string(),
            },
        ));
    }
    if trimmed.chars().count() > MAX_LABEL {
        return Err(ApiError::invalid(
            field,
            Message::FieldTooLong {
                field: field.to_string(),
                max: MAX_LABEL,
            },
        ));
    }
    Ok(trimmed.to_string())
}

/// A non-empty list of labels, each trimmed and non-empty, duplicates dropped
/// (first occurrence wins, order kept).
fn labels(field: &str, items: Vec<String>) -> Result<Vec<String>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::invalid(
            field,
            Message::ListEmpty {
                field: field.to_string(),
            },
        ));
    }
    let mut seen = BTreeSet::new();
    let mut kept = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item = label(&format!("{field}.{index}"), item)?;
        if seen.insert(item.clone()) {
            kept.push(item);
        }
    }
    Ok(kept)
}

/// An http(s) URL without query, fragment or credentials; trailing slashes
/// are dropped because the relay appends `/chat/completions`.
fn base_url(text: &str) -> Result<String, ApiError> {
    let invalid = |message: Message| ApiError::invalid("base_url", message);
    let url = reqwest::Url::parse(text.trim()).map_err(|error| {
        invalid(Message::UrlInvalid {
            detail: error.to_string(),
        })
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(Message::UrlScheme));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(Message::UrlHost));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(Message::UrlQuery));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(Message::UrlCredentials));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn model_mapping(mapping: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    let mut normalised = BTreeMap::new();
    for (requested, upstream) in mapping {
        let field = format!("model_mapping.{requested}");
        let requested = label(&field, &requested)?;
        let upstream = label(&field, &upstream)?;
        normalised.insert(requested, upstream);
    }
    Ok(normalised)
}

/// A channel's `settings`: unknown keys pass untouched; the daily-limit keys
/// (`daily_token_limit`, `daily_reset_timezone`, `daily_reserve_tokens`) must
/// hold valid values, checked by the `daily` module that reads them, and
/// `auto_disable` must be a boolean.
fn settings(
    settings: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    // `auto_disable: false` keeps channel health from disabling the channel.
    if settings
        .get("auto_disable")
        .is_some_and(|value| !value.is_boolean())
    {
        let field = "settings.auto_disable".to_string();
        return Err(ApiError::invalid(
            field.clone(),
            Message::SettingNotBoolean { field },
        ));
    }
    match daily_settings::validate(&settings) {
        Ok(()) => Ok(settings),
        Err(invalid) => {
            let message = match invalid.problem {
                Problem::NotATokenCount { max } => Message::TokenCountInvalid {
                    field: invalid.field.clone(),
                    max,
                },
                Problem::UnknownZone => Message::ZoneInvalid {
                    field: invalid.field.clone(),
                },
            };
            Err(ApiError::invalid(invalid.field, message))
        }
    }
}

fn priority(value: i64) -> Result<i64, ApiError> {
    if i32::try_from(value).is_err() {
        return Err(ApiError::invalid(
            "priority",
            Message::PriorityRange {
                min: i64::from(i32::MIN),
                max: i64::from(i32::MAX),
            },
        ));
    }
    Ok(value)
}

fn weight(value: i64) -> Result<u32, ApiError> {
    if !(0..=MAX_WEIGHT).contains(&value) {
        return Err(ApiError::invalid(
            "weight",
            Message::WeightRange { max: MAX_WEIGHT },
        ));
    }
    u32::try_from(value)
        .map_err(|_| ApiError::invalid("weight", Message::WeightRange { max: MAX_WEIGHT }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ChannelDraft {
        ChannelDraft {
            name: "main".to_string(),
            kind: ChannelType::Openai,
            base_url: "https://api.openai.com/v1".to_string(),
            keys: vec!["sk-one".to_string()],
            models: vec!["gpt-4o".to_string()],
            model_mapping: BTreeMap::new(),
            groups: vec!["default".to_string()],
            priority: 0,
            weight: 1,
            status: ChannelStatus::Enabled,
            settings: serde_json::Map::new(),
        }
    }

    fn token_draft() -> TokenDraft {
        TokenDraft {
            name: "ci".to_string(),
            status: TokenStatus::Enabled,
            expires_at: None,
            group: "default".to_string(),
            models: None,
            channel_id: None,
        }
    }

    fn field_of<T: std::fmt::Debug>(result: Result<T, ApiError>) -> Option<String> {
        result.err().and_then(|error| error.field)
    }

    #[test]
    fn channel_rules_name_the_field_at_fault() {
        type Edit = fn(&mut ChannelDraft);
        let cases: [(Edit, Option<&str>); 22] = [
            (|_| {}, None),
            (|d| d.name = "  ".into(), Some("name")),
            (|d| d.name = "x".repeat(201), Some("name")),
            (|d| d.base_url = "not a url".into(), Some("base_url")),
            (|d| d.base_url = "ftp://host/v1".into(), Some("base_url")),
            (
                |d| d.base_url = "https://host/v1?x=1".into(),
                Some("base_url"),
            ),
            (
                |d| d.base_url = "https://host/v1#frag".into(),
                Some("base_url"),
            ),
            (
                |d| d.base_url = "https://user:pw@host/v1".into(),
                Some("base_url"),
            ),
            (|d| d.keys = vec![], Some("key")),
            (|d| d.models = vec![], Some("models")),
            (
                |d| d.models = vec!["a".into(), " ".into()],
                Some("models.1"),
            ),
            (|d| d.groups = vec![], Some("groups")),
            (|d| d.weight = -1, Some("weight")),
            (|d| d.weight = MAX_WEIGHT + 1, Some("weight")),
            (|d| d.priority = i64::from(i32::MAX) + 1, Some("priority")),
            (
                |d| _ = d.model_mapping.insert("gpt".into(), "".into()),
                Some("model_mapping.gpt"),
            ),
            (
                |d| _ = d.settings.insert("daily_token_limit".into(), (-5).into()),
                Some("settings.daily_token_limit"),
            ),
            (
                |d| _ = d.settings.insert("daily_token_limit".into(), 1000.into()),
                None,
            ),
            (
                |d| {
                    _ = d
                        .settings
                        .insert("daily_reset_timezone".into(), "Nowhere/X".into())
                },
                Some("settings.daily_reset_timezone"),
            ),
            (
                |d| _ = d.settings.insert("unrelated".into(), "anything".into()),
                None,
            ),
            (
                |d| _ = d.settings.insert("auto_disable".into(), "no".into()),
                Some("settings.auto_disable"),
            ),
            (
                |d| _ = d.settings.insert("auto_disable".into(), false.into()),
                None,
            ),
        ];
        for (index, (edit, expected)) in cases.into_iter().enumerate() {
            let mut input = draft();
            edit(&mut input);
            let result = channel(input);
            match expected {
                None => assert!(result.is_ok(), "case {index}: {result:?}"),
                Some(field) => assert_eq!(field_of(result).as_deref(), Some(field), "case {index}"),
            }
        }
    }

    #[test]
    fn channel_is_normalised() {
        let mut input = draft();
        input.base_url = " https://api.openai.com/v1/ ".into();
        input.models = vec![" gpt-4o ".into(), "gpt-4o".into(), "o3".into()];
        input.weight = 0;
        let spec = channel(input).unwrap();
        assert_eq!(spec.base_url, "https://api.openai.com/v1");
        assert_eq!(spec.models, ["gpt-4o", "o3"]);
        assert_eq!(spec.weight, 0);
    }

    #[test]
    fn keys_are_one_per_line() {
        let longest = "k".repeat(MAX_KEY);
        let too_long = "k".repeat(MAX_KEY + 1);
        let cases: [(&str, Option<Vec<&str>>); 7] = [
            ("sk-a", Some(vec!["sk-a"])),
            ("sk-a\n\n  sk-b  \r\n", Some(vec!["sk-a", "sk-b"])),
            ("", None),
            ("\n  \n", None),
            ("sk-a sk-b", None),
            (&longest, Some(vec![longest.as_str()])),
            (&too_long, None),
        ];
        for (text, expected) in cases {
            match expected {
                Some(keys_expected) => assert_eq!(keys(text).unwrap(), keys_expected, "{text:?}"),
                None => assert_eq!(field_of(keys(text)).as_deref(), Some("key"), "{text:?}"),
            }
        }
    }

    #[test]
    fn key_errors_never_echo_the_key() {
        let error = keys("sk-secret value").unwrap_err();
        assert!(!error.message.render().contains("secret"));
    }

    #[test]
    fn token_rules_name_the_field_at_fault() {
        type Edit = fn(&mut TokenDraft);
        let cases: [(Edit, Option<&str>); 7] = [
            (|_| {}, None),
            (|d| d.name = "".into(), Some("name")),
            (|d| d.group = " ".into(), Some("group")),
            (|d| d.models = Some(vec![]), Some("models")),
            (|d| d.models = Some(vec!["".into()]), Some("models.0")),
            (|d| d.channel_id = Some(7), Some("channel_id")),
            (|d| d.channel_id = Some(1), None),
        ];
        for (index, (edit, expected)) in cases.into_iter().enumerate() {
            let mut input = token_draft();
            edit(&mut input);
            let result = token(input, |id| id == ChannelId(1));
            match expected {
                None => assert!(result.is_ok(), "case {index}: {result:?}"),
                Some(field) => assert_eq!(field_of(result).as_deref(), Some(field), "case {index}"),
            }
        }
    }

    #[test]
    fn times_must_be_rfc3339() {
        let cases = [
            ("2025-01-31T00:00:00Z", true),
            ("2025-01-31T08:00:00+08:00", true),
            ("2025-01-31", false),
            ("tomorrow", false),
        ];
        for (text, ok) in cases {
            let result = rfc3339("expires_at", text);
            assert_eq!(result.is_ok(), ok, "{text}");
            if !ok {
                assert_eq!(field_of(result).as_deref(), Some("expires_at"));
            }
        }
        let parsed = rfc3339("since", "2025-01-31T08:00:00+08:00").unwrap();
        assert_eq!(parsed.to_rfc3339(), "2025-01-31T00:00:00+00:00");
    }

    #[test]
    fn pages_are_bounded() {
        let cases = [
            ((None, None), Ok((1, 50))),
            ((Some(3), Some(500)), Ok((3, 500))),
            ((Some(0), None), Err("page")),
            ((None, Some(0)), Err("per_page")),
            ((None, Some(501)), Err("per_page")),
        ];
        for ((page_number, per_page), expected) in cases {
            let result = page(page_number, per_page);
            match expected {
                Ok((p, n)) => assert_eq!(
                    result.unwrap(),
                    Page {
                        page: p,
                        per_page: n
                    }
                ),
                Err(field) => assert_eq!(field_of(result).as_deref(), Some(field)),
            }
        }
    }

    #[test]
    fn page_slices_and_counts() {
        let items: Vec<u32> = (1..=7).collect();
        assert_eq!(
            Page {
                page: 2,
                per_page: 3
            }
            .slice(items.clone()),
            (vec![4, 5, 6], 7)
        );
        assert_eq!(
            Page {
                page: 3,
                per_page: 3
            }
            .slice(items.clone()),
            (vec![7], 7)
        );
        assert_eq!(
            Page {
                page: 9,
                per_page: 3
            }
            .slice(items),
            (vec![], 7)
        );
    }
}
