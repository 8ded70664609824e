//! A source channel row → a validated [`ChannelSpec`], or the reason it
//! cannot be carried over. Pure: no IO, no clock.
//!
//! Only channels whose upstream speaks one of Sluicegate's three protocols
//! are imported: OpenAI-compatible types (see [`protocol`]), Azure and
//! Anthropic. The spec then goes through the admin API's own validation
//! (`admin::validate::channel`), so an import cannot store what an admin
//! could not.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::admin::validate::{self, ChannelDraft};
use crate::daily::settings as daily_settings;
use crate::model::{ChannelSpec, ChannelStatus, ChannelType};
use crate::store::newapi::{ChannelRow, Flavor};
use crate::upstream::target::API_VERSION_SETTING;

/// The settings key that records where an imported channel came from
/// (`"new-api:7"`): the import's identity for re-runs.
pub const IMPORTED_FROM: &str = "imported_from";

/// new-api stopped removing dots from Azure deployment names for channels
/// created from 2025-05-10 00:00 UTC (`constant.AzureNoRemoveDotTime`).
const AZURE_KEEP_DOTS_SINCE: i64 = 1_746_835_200;

/// How Sluicegate reaches an upstream of a source type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protocol {
    pub kind: ChannelType,
    /// What the source type is called, for the report.
    pub label: &'static str,
    /// The base URL the source uses when the channel sets none.
    pub default_base: &'static str,
    /// Appended to the source base URL to get Sluicegate's `base_url`
    /// (Sluicegate's OpenAI base includes the version path).
    pub suffix: &'static str,
}

const fn openai(label: &'static str, default_base: &'static str) -> Option<Protocol> {
    Some(Protocol {
        kind: ChannelType::Openai,
        label,
        default_base,
        suffix: "/v1",
    })
}

/// The protocol of a source channel type, or `None` when Sluicegate cannot
/// speak to it. The OpenAI-compatible types are those the source relays
/// through its plain OpenAI adaptor (`{base}/v1/chat/completions`), and
/// those with their own adaptor whose upstream serves the OpenAI API at
/// `{base}/v1` (DeepSeek, Moonshot, OpenRouter, SiliconFlow, xAI, Groq,
/// and Ollama, whose `/v1` is its OpenAI-compatible endpoint).
/// Custom (8) is handled by [`base_url`].
pub fn protocol(flavor: Flavor, kind: i64) -> Option<Protocol> {
    let shared = match kind {
        1 => openai("OpenAI", "https://api.openai.com"),
        3 => Some(Protocol {
            kind: ChannelType::Azure,
            label: "Azure",
            default_base: "",
            suffix: "",
        }),
        6 => openai("OpenAIMax", "https://api.openaimax.com"),
        7 => openai("OhMyGPT", "https://api.ohmygpt.com"),
        8 => openai("Custom", ""),
        9 => openai("AILS", "https://api.caipacity.com"),
        10 => openai("AIProxy", "https://api.aiproxy.io"),
        12 => openai("API2GPT", "https://api.api2gpt.com"),
        13 => openai("AIGC2D", "https://api.aigc2d.com"),
        14 => Some(Protocol {
            kind: ChannelType::Anthropic,
            label: "Anthropic",
            default_base: "https://api.anthropic.com",
            suffix: "",
        }),
        19 => openai("360", "https://api.360.cn"),
        20 => openai("OpenRouter", "https://openrouter.ai/api"),
        25 => openai("Moonshot", "https://api.moonshot.cn"),
        31 => openai("LingYiWanWu", "https://api.lingyiwanwu.com"),
        _ => None,
    };
    if shared.is_some() {
        return shared;
    }
    match (flavor, kind) {
        (Flavor::NewApi, 4) | (Flavor::OneApi, 30) => openai("Ollama", "http://localhost:11434"),
        (Flavor::NewApi, 40) | (Flavor::OneApi, 44) => {
            openai("SiliconFlow", "https://api.siliconflow.cn")
        }
        (Flavor::NewApi, 43) | (Flavor::OneApi, 36) => {
            openai("DeepSeek", "https://api.deepseek.com")
        }
        (Flavor::NewApi, 48) => openai("xAI", "https://api.x.ai"),
        (Flavor::OneApi, 29) => openai("Groq", "https://api.groq.com/openai"),
        _ => None,
    }
}

/// A channel ready to import, with what did not carry over.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedChannel {
    pub spec: ChannelSpec,
    pub notes: Vec<String>,
}

/// Maps one row; `Err` is the skip reason.
pub fn map_channel(row: &ChannelRow, flavor: Flavor) -> Result<MappedChannel, String> {
    let protocol = protocol(flavor, row.kind).ok_or_else(|| {
        format!(
            "{} type {} is not an OpenAI-compatible, Azure or Anthropic channel",
            flavor.as_str(),
            row.kind
        )
    })?;
    let mut notes = Vec::new();
    let base_url = base_url(row, flavor, protocol)?;
    let keys = keys(row, &mut notes)?;
    let models = comma_list(&row.models);
    if models.is_empty() {
        return Err("it lists no models".to_string());
    }
    let mut model_mapping = model_mapping(row.model_mapping.as_deref())?;
    let setting = json_object("setting", row.setting.as_deref())?;
    let mut settings = Map::new();
    settings.insert(
        IMPORTED_FROM.to_string(),
        Value::String(marker(flavor, row.id)),
    );
    daily_limit(&setting, &mut settings)?;
    if row.auto_ban == Some(0) {
        settings.insert("auto_disable".to_string(), Value::Bool(false));
    }
    if protocol.kind == ChannelType::Azure {
        azure(row, flavor, &models, &mut model_mapping, &mut settings)?;
    }
    let status = match row.status {
        1 => ChannelStatus::Enabled,
        2 => ChannelStatus::Disabled,
        3 => ChannelStatus::AutoDisabled,
        other => {
            notes.push(format!("unknown status {other} imported as disabled"));
            ChannelStatus::Disabled
        }
    };
    for (column, value) in [
        ("param_override", &row.param_override),
        ("header_override", &row.header_override),
        ("status_code_mapping", &row.status_code_mapping),
    ] {
        if value
            .as_deref()
            .is_some_and(|text| !matches!(text.trim(), "" | "{}" | "null"))
        {
            notes.push(format!("{column} is not carried over"));
        }
    }
    if setting
        .get("proxy")
        .and_then(Value::as_str)
        .is_some_and(|proxy| !proxy.is_empty())
    {
        notes.push("the channel proxy is not carried over".to_string());
    }
    let groups = match comma_list(row.group.as_deref().unwrap_or("")) {
        groups if groups.is_empty() => vec!["default".to_string()],
        groups => groups,
    };
    let draft = ChannelDraft {
        name: name(&row.name, row.id),
        kind: protocol.kind,
        base_url,
        keys,
        models,
        model_mapping,
        groups,
        priority: row.priority.unwrap_or(0),
        weight: row.weight.unwrap_or(0),
        status,
        settings,
    };
    let spec = validate::channel(draft).map_err(|error| {
        let field = error.field.clone().unwrap_or_default();
        format!("{field}: {}", error.message.render())
    })?;
    Ok(MappedChannel { spec, notes })
}

/// The identity an imported channel carries in `settings.imported_from`.
pub fn marker(flavor: Flavor, id: i64) -> String {
    format!("{}:{id}", flavor.as_str())
}

fn name(name: &str, id: i64) -> String {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return format!("channel {id}");
    }
    trimmed.chars().take(validate::MAX_NAME).collect()
}

fn base_url(row: &ChannelRow, flavor: Flavor, protocol: Protocol) -> Result<String, String> {
    let stored = row.base_url.as_deref().unwrap_or("").trim();
    let base = if stored.is_empty() {
        protocol.default_base
    } else {
        stored
    };
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        return Err("it has no base URL".to_string());
    }
    // new-api's Custom channel holds the full request URL, `{model}` allowed;
    // one-api's is a base like any other.
    if row.kind == 8 && flavor == Flavor::NewApi {
        if base.contains("{model}") {
            return Err("its custom URL depends on the model ({model})".to_string());
        }
        return base
            .strip_suffix("/chat/completions")
            .map(str::to_string)
            .ok_or_else(|| "its custom URL does not end in /chat/completions".to_string());
    }
    Ok(format!("{base}{}", protocol.suffix))
}

/// The channel's keys: one per line (or a JSON array of strings), minus the
/// keys new-api disabled in a multi-key channel.
fn keys(row: &ChannelRow, notes: &mut Vec<String>) -> Result<Vec<String>, String> {
    let text = row.key.trim();
    let all: Vec<String> = match serde_json::from_str::<Vec<String>>(text) {
        Ok(list) if text.starts_with('[') => list,
        _ => text.lines().map(str::to_string).collect(),
    };
    let all: Vec<String> = all
        .into_iter()
        .map(|key| key.trim().to_string())
        .filter(|key| !key.is_empty())
        .collect();
    if all.is_empty() {
        return Err("it has no key".to_string());
    }
    let info = json_object("channel_info", row.channel_info.as_deref())?;
    let disabled: Vec<usize> = match info.get("multi_key_status_list") {
        Some(Value::Object(statuses)) => statuses
            .iter()
            .filter(|(_, status)| status.as_i64().is_some_and(|status| status != 1))
            .filter_map(|(index, _)| index.parse().ok())
            .collect(),
        _ => Vec::new(),
    };
    let total = all.len();
    let kept: Vec<String> = all
        .into_iter()
        .enumerate()
        .filter(|(index, _)| !disabled.contains(index))
        .map(|(_, key)| key)
        .collect();
    if kept.is_empty() {
        return Err("every key is disabled in the source".to_string());
    }
    if kept.len() < total {
        notes.push(format!(
            "{} of {total} keys were disabled in the source and left out",
            total - kept.len()
        ));
    }
    Ok(kept)
}

fn comma_list(text: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        if !seen.iter().any(|known| known == item) {
            seen.push(item.to_string());
        }
    }
    seen
}

fn model_mapping(text: Option<&str>) -> Result<BTreeMap<String, String>, String> {
    let object = json_object("model_mapping", text)?;
    let mut mapping = BTreeMap::new();
    for (requested, upstream) in object {
        match upstream {
            Value::String(upstream) if !upstream.trim().is_empty() => {
                mapping.insert(requested, upstream);
            }
            // The source ignores empty targets too.
            Value::String(_) | Value::Null => {}
            _ => return Err(format!("model_mapping.{requested} is not a string")),
        }
    }
    Ok(mapping)
}

/// A JSON-object column; empty, `null` and absent read as `{}`.
fn json_object(column: &str, text: Option<&str>) -> Result<Map<String, Value>, String> {
    let text = text.unwrap_or("").trim();
    if text.is_empty() || text == "null" {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(format!("{column} is not a JSON object")),
        Err(error) => Err(format!("{column} is not valid JSON ({error})")),
    }
}

/// Carries `setting.daily_token_limit` (0 or absent: no limit).
fn daily_limit(
    setting: &Map<String, Value>,
    settings: &mut Map<String, Value>,
) -> Result<(), String> {
    match setting.get(daily_settings::LIMIT) {
        None | Some(Value::Null) => Ok(()),
        Some(value) => match value.as_u64() {
            Some(0) => Ok(()),
            Some(limit) if limit <= daily_settings::MAX_LIMIT => {
                settings.insert(daily_settings::LIMIT.to_string(), Value::from(limit));
                Ok(())
            }
            _ => Err(format!(
                "setting.daily_token_limit is not a token count ({value})"
            )),
        },
    }
}

/// Azure's API version (new-api's `other`, one-api's `config.api_version`
/// or `other`), and the dots the source removed from deployment names.
fn azure(
    row: &ChannelRow,
    flavor: Flavor,
    models: &[String],
    mapping: &mut BTreeMap<String, String>,
    settings: &mut Map<String, Value>,
) -> Result<(), String> {
    let config = json_object("config", row.config.as_deref())?;
    let version = config
        .get("api_version")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| row.other.clone())
        .map(|version| version.trim().to_string())
        .filter(|version| !version.is_empty());
    if let Some(version) = version {
        settings.insert(API_VERSION_SETTING.to_string(), Value::String(version));
    }
    let removes_dots = match flavor {
        Flavor::OneApi => true,
        Flavor::NewApi => row
            .created_time
            .is_none_or(|created| created < AZURE_KEEP_DOTS_SINCE),
    };
    if removes_dots {
        for model in models {
            let upstream = mapping.get(model).unwrap_or(model);
            if upstream.contains('.') {
                let deployment = upstream.replace('.', "");
                mapping.insert(model.clone(), deployment);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: i64) -> ChannelRow {
        ChannelRow {
            id: 7,
            kind,
            key: "sk-upstream".into(),
            status: 1,
            name: " main ".into(),
            models: "gpt-4o, gpt-4o-mini,,gpt-4o".into(),
            group: Some("default,vip".into()),
            priority: Some(5),
            weight: Some(3),
            ..ChannelRow::default()
        }
    }

    fn mapped(row: &ChannelRow) -> ChannelSpec {
        map_channel(row, Flavor::NewApi).unwrap().spec
    }

    /// The plain fields carry over, trimmed and de-duplicated, with the marker.
    #[test]
    fn openai_channel_carries_every_field() {
        let mut source = row(1);
        source.model_mapping = Some(r#"{"gpt-4o":"gpt-4o-2024-08-06","x":""}"#.into());
        source.setting = Some(r#"{"daily_token_limit":250000,"force_format":true}"#.into());
        source.auto_ban = Some(0);
        let spec = mapped(&source);
        assert_eq!(spec.name, "main");
        assert_eq!(spec.kind, ChannelType::Openai);
        assert_eq!(spec.base_url, "https://api.openai.com/v1");
        assert_eq!(spec.models, ["gpt-4o", "gpt-4o-mini"]);
        assert_eq!(spec.groups, ["default", "vip"]);
        assert_eq!((spec.priority, spec.weight), (5, 3));
        assert_eq!(
            spec.model_mapping,
            BTreeMap::from([("gpt-4o".into(), "gpt-4o-2024-08-06".into())])
        );
        assert_eq!(spec.settings["daily_token_limit"], 250000);
        assert_eq!(spec.settings["auto_disable"], false);
        assert_eq!(spec.settings[IMPORTED_FROM], "new-api:7");
    }

    /// Types map by flavour: the same number can mean different upstreams.
    #[test]
    fn types_map_by_flavor() {
        let cases = [
            (Flavor::NewApi, 43, Some("https://api.deepseek.com/v1")),
            (Flavor::OneApi, 36, Some("https://api.deepseek.com/v1")),
            (Flavor::NewApi, 36, None),
            (Flavor::NewApi, 4, Some("http://localhost:11434/v1")),
            (Flavor::OneApi, 4, None),
            (Flavor::NewApi, 20, Some("https://openrouter.ai/api/v1")),
            (Flavor::NewApi, 14, Some("https://api.anthropic.com")),
            (Flavor::NewApi, 24, None),
            (Flavor::NewApi, 33, None),
        ];
        for (flavor, kind, expected) in cases {
            let result = map_channel(&row(kind), flavor);
            assert_eq!(
                result
                    .as_ref()
                    .ok()
                    .map(|mapped| mapped.spec.base_url.as_str()),
                expected,
                "{flavor:?} type {kind}: {result:?}"
            );
        }
    }

    /// Statuses: 1 enabled, 2 disabled by hand, 3 disabled automatically.
    #[test]
    fn statuses_map() {
        for (status, expected) in [
            (1, ChannelStatus::Enabled),
            (2, ChannelStatus::Disabled),
            (3, ChannelStatus::AutoDisabled),
            (9, ChannelStatus::Disabled),
        ] {
            let mut source = row(1);
            source.status = status;
            assert_eq!(mapped(&source).status, expected);
        }
    }

    /// Multi-key channels keep their enabled keys, in order.
    #[test]
    fn multi_key_drops_disabled_keys() {
        let mut source = row(1);
        source.key = "k1\nk2\n\nk3\n".into();
        source.channel_info =
            Some(r#"{"is_multi_key":true,"multi_key_status_list":{"1":3}}"#.into());
        let mapped = map_channel(&source, Flavor::NewApi).unwrap();
        assert_eq!(mapped.spec.keys, ["k1", "k3"]);
        assert_eq!(mapped.notes.len(), 1);
        source.channel_info = Some(r#"{"multi_key_status_list":{"0":2,"1":2,"2":2}}"#.into());
        assert!(map_channel(&source, Flavor::NewApi).is_err());
    }

    /// Bad input is a skip reason, never a panic.
    #[test]
    fn malformed_columns_are_skip_reasons() {
        type Edit = fn(&mut ChannelRow);
        let cases: [(Edit, &str); 9] = [
            (
                |r| r.model_mapping = Some("{not json".into()),
                "model_mapping is not valid JSON",
            ),
            (
                |r| r.model_mapping = Some("[1]".into()),
                "model_mapping is not a JSON object",
            ),
            (
                |r| r.model_mapping = Some(r#"{"a":1}"#.into()),
                "model_mapping.a",
            ),
            (
                |r| r.setting = Some("{".into()),
                "setting is not valid JSON",
            ),
            (
                |r| r.setting = Some(r#"{"daily_token_limit":-3}"#.into()),
                "setting.daily_token_limit",
            ),
            (|r| r.key = " \n ".into(), "no key"),
            (|r| r.models = " , ".into(), "no models"),
            (|r| r.base_url = Some("ftp://x".into()), "base_url"),
            (|r| r.weight = Some(-1), "weight"),
        ];
        for (edit, expected) in cases {
            let mut source = row(1);
            edit(&mut source);
            let reason = map_channel(&source, Flavor::NewApi).unwrap_err();
            assert!(reason.contains(expected), "{expected}: got {reason}");
        }
    }

    /// new-api's Custom holds the full URL; one-api's is a base.
    #[test]
    fn custom_urls() {
        let mut source = row(8);
        source.base_url = Some("https://proxy.example/v1/chat/completions".into());
        assert_eq!(mapped(&source).base_url, "https://proxy.example/v1");
        source.base_url = Some("https://proxy.example/{model}/chat/completions".into());
        assert!(map_channel(&source, Flavor::NewApi).is_err());
        source.base_url = Some("https://proxy.example".into());
        assert!(map_channel(&source, Flavor::NewApi).is_err());
        let one = map_channel(&source, Flavor::OneApi).unwrap();
        assert_eq!(one.spec.base_url, "https://proxy.example/v1");
    }

    /// Azure keeps its API version, and old channels keep deployment names
    /// without dots, as the source sent them.
    #[test]
    fn azure_version_and_dots() {
        let mut source = row(3);
        source.base_url = Some("https://res.openai.azure.com/".into());
        source.other = Some("2024-06-01".into());
        source.models = "gpt-3.5-turbo,gpt-4o".into();
        source.created_time = Some(1_700_000_000);
        let spec = mapped(&source);
        assert_eq!(spec.kind, ChannelType::Azure);
        assert_eq!(spec.base_url, "https://res.openai.azure.com");
        assert_eq!(spec.settings[API_VERSION_SETTING], "2024-06-01");
        assert_eq!(spec.model_mapping["gpt-3.5-turbo"], "gpt-35-turbo");
        assert!(!spec.model_mapping.contains_key("gpt-4o"));
        source.created_time = Some(AZURE_KEEP_DOTS_SINCE);
        assert!(mapped(&source).model_mapping.is_empty());
        source.base_url = None;
        assert!(map_channel(&source, Flavor::NewApi).is_err());
    }
}
