//! API keys ("tokens") that clients present to Sluicegate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::ChannelId;

/// An API key's id, assigned by the store.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
pub struct TokenId(pub i64);

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// SHA-256 of a full API key, hex encoded. Keys carry 48 random characters,
/// so a fast hash is enough: there is nothing to brute-force.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHash(pub String);

impl KeyHash {
    pub fn of(key: &str) -> KeyHash {
        KeyHash(hex::encode(KeyDigest::of(key).0))
    }

    /// The digest this hex text encodes; `None` if it is not one.
    pub fn digest(&self) -> Option<KeyDigest> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&self.0, &mut bytes).ok()?;
        Some(KeyDigest(bytes))
    }
}

/// SHA-256 of a full API key, as bytes: what the relay looks keys up by,
/// with no text to allocate or compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    pub fn of(key: &str) -> KeyDigest {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Enabled,
    Disabled,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Enabled => "enabled",
            TokenStatus::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<TokenStatus> {
        match text {
            "enabled" => Some(TokenStatus::Enabled),
            "disabled" => Some(TokenStatus::Disabled),
            _ => None,
        }
    }
}

/// Everything an admin sets on an API key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSpec {
    pub name: String,
    pub status: TokenStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub group: String,
    /// Allow-list of model names; `None` allows every model of the group.
    pub models: Option<Vec<String>>,
    /// Every request with this key goes to this channel only.
    pub channel_id: Option<ChannelId>,
}

/// A stored API key. The full key is never stored: only its hash and a
/// display prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub id: TokenId,
    pub key_hash: KeyHash,
    /// The first characters of the key, for recognising it in lists (`sk-AbCd`).
    pub key_prefix: String,
    #[serde(flatten)]
    pub spec: TokenSpec,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl Token {
    /// Whether the key may be used at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.spec.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether the key's allow-list admits `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.spec
            .models
            .as_ref()
            .is_none_or(|models| models.iter().any(|allowed| allowed == model))
    }
}
