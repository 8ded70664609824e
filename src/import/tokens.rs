//! A source token row → a validated [`TokenSpec`] with the full key clients
//! send, or the reason it cannot be carried over. Pure: no IO, no clock.
//!
//! new-api and one-api store a key without its `sk-` prefix and clients
//! send `sk-<key>`, so the imported key is `sk-` + the stored text and the
//! same string keeps working. Only its hash and display prefix are stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::admin::validate::{self, TokenDraft};
use crate::model::{KeyHash, TokenSpec, TokenStatus};
use crate::store::newapi::{TokenRow, UserRow};

/// A key ready to import, with what did not carry over.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedToken {
    pub key_hash: KeyHash,
    /// What the admin API shows of the key (`sk-AbCd`).
    pub key_prefix: String,
    pub spec: TokenSpec,
    pub notes: Vec<String>,
}

/// Maps one row; `Err` is the skip reason.
pub fn map_token(row: &TokenRow, users: &BTreeMap<i64, UserRow>) -> Result<MappedToken, String> {
    if row.deleted {
        return Err("it was deleted in the source".to_string());
    }
    let stored = row.key.trim();
    if stored.is_empty() || stored.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("its key is empty or malformed".to_string());
    }
    let key = format!("sk-{stored}");
    let mut notes = Vec::new();
    let owner = row.user_id.and_then(|id| users.get(&id));
    let mut status = match row.status {
        1 => TokenStatus::Enabled,
        2 => TokenStatus::Disabled,
        3 => {
            notes.push("expired in the source: imported disabled".to_string());
            TokenStatus::Disabled
        }
        4 => {
            notes.push("quota exhausted in the source: imported disabled".to_string());
            TokenStatus::Disabled
        }
        other => {
            notes.push(format!("unknown status {other}: imported disabled"));
            TokenStatus::Disabled
        }
    };
    if status == TokenStatus::Enabled && owner.is_some_and(|user| user.deleted || user.status != 1)
    {
        notes.push("its owner is disabled or deleted in the source: imported disabled".into());
        status = TokenStatus::Disabled;
    }
    let group = group(row, owner, &mut notes);
    let models = models(row)?;
    if row.unlimited_quota == Some(false) {
        notes.push(format!(
            "its remaining quota ({}) is not carried over: Sluicegate keys have no quota",
            row.remain_quota.unwrap_or(0)
        ));
    }
    if row
        .allow_ips
        .as_deref()
        .is_some_and(|ips| !ips.trim().is_empty())
    {
        notes.push("its IP allow-list is not carried over".to_string());
    }
    let draft = TokenDraft {
        name: name(&row.name, row.id),
        status,
        expires_at: expiry(row.expired_time)?,
        group,
        models,
        channel_id: None,
    };
    let spec = validate::token(draft, |_| false).map_err(|error| {
        let field = error.field.clone().unwrap_or_default();
        format!("{field}: {}", error.message.render())
    })?;
    Ok(MappedToken {
        key_hash: KeyHash::of(&key),
        key_prefix: key
            .chars()
            .take(crate::admin::tokens::KEY_PREFIX_CHARS)
            .collect(),
        spec,
        notes,
    })
}

fn name(name: &str, id: i64) -> String {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return format!("key {id}");
    }
    trimmed.chars().take(validate::MAX_NAME).collect()
}

/// The token's own group, else its owner's (new-api's rule for an empty
/// group), else `default`. new-api's `auto` group has no equivalent.
fn group(row: &TokenRow, owner: Option<&UserRow>, notes: &mut Vec<String>) -> String {
    let owner_group = owner
        .and_then(|user| user.group.as_deref())
        .map(str::trim)
        .filter(|group| !group.is_empty())
        .unwrap_or("default");
    match row.group.as_deref().map(str::trim) {
        Some("auto") => {
            notes.push(format!(
                "group `auto` has no equivalent: imported into `{owner_group}`"
            ));
            owner_group.to_string()
        }
        Some(group) if !group.is_empty() => group.to_string(),
        _ => owner_group.to_string(),
    }
}

/// new-api's `model_limits` when enabled, else one-api's `models`; `None`
/// allows every model.
fn models(row: &TokenRow) -> Result<Option<Vec<String>>, String> {
    let list = |text: &str| -> Vec<String> {
        text.split(',')
            .map(str::trim)
            .filter(|model| !model.is_empty())
            .map(str::to_string)
            .collect()
    };
    if row.model_limits_enabled == Some(true) {
        let limits = list(row.model_limits.as_deref().unwrap_or(""));
        if limits.is_empty() {
            return Err("its model limits are enabled but empty (it allows no model)".into());
        }
        return Ok(Some(limits));
    }
    if row.model_limits_enabled.is_none() {
        let models = list(row.models.as_deref().unwrap_or(""));
        if !models.is_empty() {
            return Ok(Some(models));
        }
    }
    Ok(None)
}

fn expiry(expired_time: Option<i64>) -> Result<Option<DateTime<Utc>>, String> {
    match expired_time {
        None | Some(-1) | Some(0) => Ok(None),
        Some(seconds) if seconds > 0 => DateTime::from_timestamp(seconds, 0)
            .map(Some)
            .ok_or_else(|| format!("expired_time {seconds} is out of range")),
        Some(other) => Err(format!("expired_time {other} is not a time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TokenRow {
        TokenRow {
            id: 3,
            user_id: Some(1),
            key: "AbCdEf0123456789AbCdEf0123456789AbCdEf0123456789".into(),
            status: 1,
            name: "ci".into(),
            expired_time: Some(-1),
            unlimited_quota: Some(true),
            model_limits_enabled: Some(false),
            group: Some(String::new()),
            ..TokenRow::default()
        }
    }

    fn users(group: &str, status: i64) -> BTreeMap<i64, UserRow> {
        BTreeMap::from([(
            1,
            UserRow {
                group: Some(group.into()),
                status,
                deleted: false,
            },
        )])
    }

    /// The same `sk-` string works: the hash is of `sk-` + the stored key.
    #[test]
    fn key_gets_its_prefix_back() {
        let mapped = map_token(&row(), &users("vip", 1)).unwrap();
        assert_eq!(
            mapped.key_hash,
            KeyHash::of("sk-AbCdEf0123456789AbCdEf0123456789AbCdEf0123456789")
        );
        assert_eq!(mapped.key_prefix, "sk-AbCd");
        assert_eq!(mapped.spec.group, "vip", "an empty group is the owner's");
        assert_eq!(mapped.spec.models, None);
        assert_eq!(mapped.spec.expires_at, None);
        assert_eq!(mapped.spec.status, TokenStatus::Enabled);
        assert!(mapped.notes.is_empty());
    }

    /// Expiry, model limits, groups and statuses carry over.
    #[test]
    fn limits_expiry_and_status() {
        let mut source = row();
        source.expired_time = Some(1_900_000_000);
        source.model_limits_enabled = Some(true);
        source.model_limits = Some("gpt-4o, gpt-4o-mini".into());
        source.group = Some("team".into());
        source.status = 3;
        let mapped = map_token(&source, &users("vip", 1)).unwrap();
        assert_eq!(
            mapped.spec.expires_at,
            DateTime::from_timestamp(1_900_000_000, 0)
        );
        assert_eq!(
            mapped.spec.models,
            Some(vec!["gpt-4o".to_string(), "gpt-4o-mini".to_string()])
        );
        assert_eq!(mapped.spec.group, "team");
        assert_eq!(mapped.spec.status, TokenStatus::Disabled);
        // A disabled owner disables the key; `auto` falls back to the owner's group.
        let mut source = row();
        source.group = Some("auto".into());
        let mapped = map_token(&source, &users("", 2)).unwrap();
        assert_eq!(mapped.spec.status, TokenStatus::Disabled);
        assert_eq!(mapped.spec.group, "default");
        assert_eq!(mapped.notes.len(), 2);
    }

    /// Rows that cannot be keys are skip reasons.
    #[test]
    fn unusable_rows_are_skipped() {
        type Edit = fn(&mut TokenRow);
        let cases: [(Edit, &str); 4] = [
            (|r| r.deleted = true, "deleted"),
            (|r| r.key = "has space".into(), "malformed"),
            (|r| r.model_limits_enabled = Some(true), "allows no model"),
            (|r| r.expired_time = Some(-7), "expired_time"),
        ];
        for (edit, expected) in cases {
            let mut source = row();
            edit(&mut source);
            let reason = map_token(&source, &BTreeMap::new()).unwrap_err();
            assert!(reason.contains(expected), "{expected}: got {reason}");
        }
    }

    /// one-api's `models` column is its allow-list.
    #[test]
    fn one_api_models_column() {
        let mut source = row();
        source.model_limits_enabled = None;
        source.models = Some("gpt-4o".into());
        let mapped = map_token(&source, &BTreeMap::new()).unwrap();
        assert_eq!(mapped.spec.models, Some(vec!["gpt-4o".to_string()]));
        assert_eq!(mapped.spec.group, "default");
    }
}
