//! Runtime settings: the part of the configuration an admin may change while
//! the gateway runs (`PATCH /api/settings`): the global time zone, retries,
//! upstream timeouts and the auto-disable rules.
//!
//! Precedence: flags, env vars and the TOML file give the *initial* values
//! (`RuntimeSettings::from_config`). Once an admin changes a setting, the
//! stored value wins, at every later start too, until it is changed again
//! through the API. A change is a `ConfigCommand::UpdateSettings` carrying a
//! [`SettingsPatch`], so it flows through `AppState::apply` like every other
//! replicated change. This module is pure: it neither stores nor validates
//! client input (`admin::settings` does that).

use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The live values the relay, the health monitor and the day math read.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    /// The zone whose midnight resets daily counters, unless a channel sets its own.
    pub timezone: Tz,
    /// Extra attempts on other channels after a retryable failure.
    pub max_retries: u32,
    /// Lives in the upstream client: a change rebuilds the client.
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub stream_idle_timeout: Duration,
    pub auto_disable_rules: Vec<String>,
}

/// Some runtime settings, each optional: what a PATCH changes, what a
/// command carries and what the store keeps (one row per present field).
/// Unknown keys (from a newer build) are ignored when read back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingsPatch {
    /// An IANA zone name, validated before the patch is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_disable_rules: Option<Vec<String>>,
}

impl SettingsPatch {
    /// Whether the patch changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self == &SettingsPatch::default()
    }

    /// `self` with every field `newer` sets written over it.
    pub fn merge(self, newer: SettingsPatch) -> SettingsPatch {
        SettingsPatch {
            timezone: newer.timezone.or(self.timezone),
            max_retries: newer.max_retries.or(self.max_retries),
            connect_timeout: newer.connect_timeout.or(self.connect_timeout),
            first_byte_timeout: newer.first_byte_timeout.or(self.first_byte_timeout),
            stream_idle_timeout: newer.stream_idle_timeout.or(self.stream_idle_timeout),
            auto_disable_rules: newer.auto_disable_rules.or(self.auto_disable_rules),
        }
    }
}

impl RuntimeSettings {
    /// The start-up values from the resolved configuration.
    pub fn from_config(config: &Config) -> RuntimeSettings {
        RuntimeSettings {
            timezone: config.timezone,
            max_retries: config.max_retries,
            connect_timeout: config.connect_timeout,
            first_byte_timeout: config.first_byte_timeout,
            stream_idle_timeout: config.stream_idle_timeout,
            auto_disable_rules: config.auto_disable_rules.clone(),
        }
    }

    /// These settings with `patch` applied. A zone name that no longer
    /// parses (a stored value from a newer zone database) keeps the current
    /// zone and is logged, rather than refusing to start.
    pub fn patched(&self, patch: &SettingsPatch) -> RuntimeSettings {
        let timezone = match &patch.timezone {
            None => self.timezone,
            Some(name) => crate::daily::day::parse_zone(name).unwrap_or_else(|| {
                tracing::warn!(zone = %name, "ignoring an unknown stored time zone");
                self.timezone
            }),
        };
        RuntimeSettings {
            timezone,
            max_retries: patch.max_retries.unwrap_or(self.max_retries),
            connect_timeout: patch.connect_timeout.unwrap_or(self.connect_timeout),
            first_byte_timeout: patch.first_byte_timeout.unwrap_or(self.first_byte_timeout),
            stream_idle_timeout: patch
                .stream_idle_timeout
                .unwrap_or(self.stream_idle_timeout),
            auto_disable_rules: patch
                .auto_disable_rules
                .clone()
                .unwrap_or_else(|| self.auto_disable_rules.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A patch changes only the fields it names; a bad stored zone is ignored.
    #[test]
    fn patch_overrides_only_present_fields() {
        let base = RuntimeSettings::from_config(&Config::default());
        let patch = SettingsPatch {
            max_retries: Some(0),
            timezone: Some("Asia/Shanghai".into()),
            ..SettingsPatch::default()
        };
        let patched = base.patched(&patch);
        assert_eq!(patched.max_retries, 0);
        assert_eq!(patched.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(patched.connect_timeout, base.connect_timeout);
        let bad = SettingsPatch {
            timezone: Some("Mars/Olympus".into()),
            ..SettingsPatch::default()
        };
        assert_eq!(patched.patched(&bad).timezone, chrono_tz::Asia::Shanghai);
    }

    /// Merging keeps older fields the newer patch leaves out; serde omits absent fields.
    #[test]
    fn patches_merge_and_serialize_sparsely() {
        let older = SettingsPatch {
            max_retries: Some(1),
            timezone: Some("UTC".into()),
            ..SettingsPatch::default()
        };
        let newer = SettingsPatch {
            max_retries: Some(3),
            ..SettingsPatch::default()
        };
        let merged = older.merge(newer);
        assert_eq!(merged.max_retries, Some(3));
        assert_eq!(merged.timezone.as_deref(), Some("UTC"));
        let json = serde_json::to_value(&merged).unwrap();
        assert_eq!(json.as_object().map(|map| map.len()), Some(2));
        assert!(SettingsPatch::default().is_empty());
    }
}
