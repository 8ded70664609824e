//! Reconciling the mapped source with what the data dir already holds:
//! which channels and keys to create, which to update, which are unchanged,
//! and the `Command`s that do it. Pure: the caller passes the stored
//! channels and keys, and the time the commands carry.
//!
//! Identity, so a re-run creates nothing new: a channel is the stored one
//! whose `settings.imported_from` names the same source and id
//! (`"new-api:7"`); a key is the stored one with the same key hash (the key
//! itself is the identity). A re-run makes them match the source again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::channels::{self, IMPORTED_FROM};
use super::tokens;
use crate::command::ConfigCommand;
use crate::model::{Channel, ChannelId, KeyHash, Token, TokenId};
use crate::store::newapi::{ChannelRow, Flavor, SourceDb, TokenRow};

/// What happens to one source row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Skip(String),
}

impl Action {
    pub fn label(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Skip(_) => "skip",
        }
    }
}

/// One source row's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub source_id: i64,
    pub name: String,
    /// Short facts for the report (type and URL, key prefix and group).
    pub summary: String,
    pub action: Action,
    pub notes: Vec<String>,
}

/// The whole import: the report lines and the commands that realise them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub flavor: Flavor,
    pub channels: Vec<Outcome>,
    pub tokens: Vec<Outcome>,
    pub commands: Vec<ConfigCommand>,
}

/// Plans the import of `source` (read as `flavor`) into a store holding
/// `channels` and `tokens`.
pub fn plan(
    source: &SourceDb,
    flavor: Flavor,
    stored_channels: &[Channel],
    stored_tokens: &[Token],
    at: DateTime<Utc>,
) -> Plan {
    let by_marker: HashMap<&str, &Channel> = stored_channels
        .iter()
        .filter_map(|channel| {
            let marker = channel
                .spec
                .settings
                .get(IMPORTED_FROM)
                .and_then(Value::as_str)?;
            Some((marker, channel))
        })
        .collect();
    let by_hash: HashMap<&KeyHash, &Token> = stored_tokens
        .iter()
        .map(|token| (&token.key_hash, token))
        .collect();
    let mut commands = Vec::new();
    let channels = source
        .channels
        .iter()
        .map(|row| plan_channel(row, flavor, &by_marker, at, &mut commands))
        .collect();
    let tokens = source
        .tokens
        .iter()
        .map(|row| plan_token(row, source, &by_hash, at, &mut commands))
        .collect();
    Plan {
        flavor,
        channels,
        tokens,
        commands,
    }
}

/// One source channel: what happens to it, and the command that does it.
fn plan_channel(
    row: &ChannelRow,
    flavor: Flavor,
    by_marker: &HashMap<&str, &Channel>,
    at: DateTime<Utc>,
    commands: &mut Vec<ConfigCommand>,
) -> Outcome {
    let mut outcome = Outcome {
        source_id: row.id,
        name: row.name.trim().to_string(),
        summary: format!("type {}", row.kind),
        action: Action::Unchanged,
        notes: Vec::new(),
    };
    let mapped = match channels::map_channel(row, flavor) {
        Ok(mapped) => mapped,
        Err(reason) => {
            outcome.action = Action::Skip(reason);
            return outcome;
        }
    };
    outcome.summary = format!(
        "{} {}, {} key(s), {} model(s)",
        mapped.spec.kind.as_str(),
        mapped.spec.base_url,
        mapped.spec.keys.len(),
        mapped.spec.models.len()
    );
    outcome.notes = mapped.notes;
    let marker = channels::marker(flavor, row.id);
    outcome.action = match by_marker.get(marker.as_str()) {
        Some(stored) if stored.spec == mapped.spec => Action::Unchanged,
        Some(stored) => {
            commands.push(update_channel(stored.id, mapped.spec, at));
            Action::Update
        }
        None => {
            commands.push(ConfigCommand::CreateChannel {
                spec: mapped.spec,
                at,
            });
            Action::Create
        }
    };
    outcome
}

/// One source key: what happens to it, and the command that does it.
fn plan_token(
    row: &TokenRow,
    source: &SourceDb,
    by_hash: &HashMap<&KeyHash, &Token>,
    at: DateTime<Utc>,
    commands: &mut Vec<ConfigCommand>,
) -> Outcome {
    let mut outcome = Outcome {
        source_id: row.id,
        name: row.name.trim().to_string(),
        summary: String::new(),
        action: Action::Unchanged,
        notes: Vec::new(),
    };
    let mapped = match tokens::map_token(row, &source.users) {
        Ok(mapped) => mapped,
        Err(reason) => {
            outcome.action = Action::Skip(reason);
            return outcome;
        }
    };
    outcome.summary = format!("{}…, group {}", mapped.key_prefix, mapped.spec.group);
    outcome.notes = mapped.notes;
    outcome.action = match by_hash.get(&mapped.key_hash) {
        Some(stored) if stored.spec == mapped.spec => Action::Unchanged,
        Some(stored) => {
            commands.push(update_token(stored.id, mapped.spec));
            Action::Update
        }
        None => {
            commands.push(ConfigCommand::CreateToken {
                key_hash: mapped.key_hash,
                key_prefix: mapped.key_prefix,
                spec: mapped.spec,
                at,
            });
            Action::Create
        }
    };
    outcome
}

fn update_channel(
    id: ChannelId,
    spec: crate::model::ChannelSpec,
    at: DateTime<Utc>,
) -> ConfigCommand {
    ConfigCommand::UpdateChannel { id, spec, at }
}

fn update_token(id: TokenId, spec: crate::model::TokenSpec) -> ConfigCommand {
    ConfigCommand::UpdateToken { id, spec }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::store::newapi::{ChannelRow, TokenRow};

    fn source() -> SourceDb {
        SourceDb {
            detected: Flavor::NewApi,
            channels: vec![
                ChannelRow {
                    id: 1,
                    kind: 1,
                    key: "sk-up".into(),
                    status: 1,
                    name: "one".into(),
                    models: "gpt-4o".into(),
                    ..ChannelRow::default()
                },
                ChannelRow {
                    id: 2,
                    kind: 24,
                    key: "g".into(),
                    status: 1,
                    name: "gemini".into(),
                    models: "gemini-pro".into(),
                    ..ChannelRow::default()
                },
            ],
            tokens: vec![TokenRow {
                id: 1,
                key: "abcdefghijklmnop".into(),
                status: 1,
                name: "client".into(),
                ..TokenRow::default()
            }],
            users: BTreeMap::new(),
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    /// A first run creates; once stored, the same source is unchanged; a
    /// changed source row becomes an update of the same channel.
    #[test]
    fn creates_then_is_idempotent_then_updates() {
        let first = plan(&source(), Flavor::NewApi, &[], &[], at());
        let actions: Vec<&str> = first.channels.iter().map(|o| o.action.label()).collect();
        assert_eq!(actions, ["create", "skip"]);
        assert_eq!(first.tokens[0].action, Action::Create);
        assert_eq!(first.commands.len(), 2);

        let ConfigCommand::CreateChannel { spec, .. } = first.commands[0].clone() else {
            panic!("expected a channel first");
        };
        let ConfigCommand::CreateToken {
            key_hash,
            key_prefix,
            spec: token_spec,
            ..
        } = first.commands[1].clone()
        else {
            panic!("expected a token second");
        };
        let channel = Channel {
            id: ChannelId(10),
            spec,
            created_at: at(),
            updated_at: at(),
            auto_disabled: None,
        };
        let token = Token {
            id: TokenId(20),
            key_hash,
            key_prefix,
            spec: token_spec,
            created_at: at(),
            last_used_at: None,
        };
        let again = plan(
            &source(),
            Flavor::NewApi,
            std::slice::from_ref(&channel),
            std::slice::from_ref(&token),
            at(),
        );
        assert!(again.commands.is_empty());
        assert_eq!(again.channels[0].action, Action::Unchanged);
        assert_eq!(again.tokens[0].action, Action::Unchanged);

        let mut changed = source();
        changed.channels[0].priority = Some(9);
        changed.tokens[0].status = 2;
        let update = plan(&changed, Flavor::NewApi, &[channel], &[token], at());
        assert!(matches!(
            update.commands[0],
            ConfigCommand::UpdateChannel {
                id: ChannelId(10),
                ..
            }
        ));
        assert!(matches!(
            update.commands[1],
            ConfigCommand::UpdateToken {
                id: TokenId(20),
                ..
            }
        ));
    }
}
