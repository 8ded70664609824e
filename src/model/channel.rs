//! The upstream channel: where a request can be sent and under which rules.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A channel's id, assigned by the store.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
pub struct ChannelId(pub i64);

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The wire protocol a channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    /// Any OpenAI-compatible upstream; `base_url` includes the version path
    /// (`https://api.openai.com/v1`).
    Openai,
    /// Azure OpenAI: `base_url` is the resource endpoint
    /// (`https://NAME.openai.azure.com`), the deployment is the mapped model
    /// name, `settings.api_version` the API version, the key goes in `api-key`.
    Azure,
    /// Anthropic's native Messages API: `base_url` is the host as the
    /// Anthropic SDK takes it (`https://api.anthropic.com`).
    Anthropic,
}

impl ChannelType {
    pub const ALL: [ChannelType; 3] = [
        ChannelType::Openai,
        ChannelType::Azure,
        ChannelType::Anthropic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelType::Openai => "openai",
            ChannelType::Azure => "azure",
            ChannelType::Anthropic => "anthropic",
        }
    }

    pub fn parse(text: &str) -> Option<ChannelType> {
        ChannelType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// The admin's persistent decision about a channel. Derived states (such as
/// "capped for today") are never stored here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    Enabled,
    Disabled,
    AutoDisabled,
}

impl ChannelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelStatus::Enabled => "enabled",
            ChannelStatus::Disabled => "disabled",
            ChannelStatus::AutoDisabled => "auto_disabled",
        }
    }

    pub fn parse(text: &str) -> Option<ChannelStatus> {
        match text {
            "enabled" => Some(ChannelStatus::Enabled),
            "disabled" => Some(ChannelStatus::Disabled),
            "auto_disabled" => Some(ChannelStatus::AutoDisabled),
            _ => None,
        }
    }
}

/// Everything an admin sets on a channel. It is validated before it becomes
/// part of a `Command`, so applying it never fails on content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: ChannelType,
    pub base_url: String,
    /// Upstream keys, rotated round-robin. Never empty after validation.
    pub keys: Vec<String>,
    pub models: Vec<String>,
    pub model_mapping: BTreeMap<String, String>,
    pub groups: Vec<String>,
    pub priority: i64,
    pub weight: u32,
    pub status: ChannelStatus,
    /// Per-channel options. Unknown keys are kept verbatim.
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl ChannelSpec {
    /// Whether upstream failures may disable this channel automatically:
    /// unless `settings.auto_disable` is `false` (admin validation keeps it a
    /// boolean when present).
    pub fn allows_auto_disable(&self) -> bool {
        self.settings.get("auto_disable") != Some(&serde_json::Value::Bool(false))
    }
}

/// A stored channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub id: ChannelId,
    #[serde(flatten)]
    pub spec: ChannelSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Why and when the gateway disabled the channel on its own (an upstream
    /// 401 or an exhausted quota). Set only while `status` is `auto_disabled`.
    #[serde(default)]
    pub auto_disabled: Option<AutoDisabled>,
}

/// The gateway's record of an automatic disable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoDisabled {
    pub reason: String,
    pub at: DateTime<Utc>,
}

impl Channel {
    /// The upstream model name for a requested model, after this channel's mapping.
    pub fn upstream_model<'a>(&'a self, requested: &'a str) -> &'a str {
        self.spec
            .model_mapping
            .get(requested)
            .map(String::as_str)
            .unwrap_or(requested)
    }

    pub fn is_enabled(&self) -> bool {
        self.spec.status == ChannelStatus::Enabled
    }
}

/// A key as admins may see it: a short recognisable head and the last four
/// characters, so nothing usable leaks (`sk-…abcd`).
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "****".to_string();
    }
    let head: String = chars.iter().take(3).collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_head_and_tail() {
        assert_eq!(mask_key("sk-1234567890abcd"), "sk-…abcd");
        assert_eq!(mask_key("short"), "****");
        assert!(!mask_key("sk-secretsecretsecret").contains("secretsecret"));
    }
}
