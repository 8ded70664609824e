//! What a new-api or one-api database holds, as plain rows: the reader
//! (`store::newapi`) fills these, the pure mapping in `import` reads them. Column values are kept as the source stored them (text that
//! may be empty or malformed), so every judgement happens in the mapping,
//! where it is unit-tested.

use std::collections::BTreeMap;

/// Which project wrote the database. They share most of the schema but not
/// the channel type numbers above 25 (one-api's DeepSeek is 36, new-api's
/// is 43), so the mapping needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    NewApi,
    OneApi,
}

impl Flavor {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::NewApi => "new-api",
            Flavor::OneApi => "one-api",
        }
    }
}

/// One row of the `channels` table. Optional columns are `None` when the
/// column is absent or NULL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelRow {
    pub id: i64,
    pub kind: i64,
    /// One key, or several separated by newlines (multi-key channels).
    pub key: String,
    pub status: i64,
    pub name: String,
    pub weight: Option<i64>,
    pub created_time: Option<i64>,
    pub base_url: Option<String>,
    /// Azure's API version in new-api and older one-api.
    pub other: Option<String>,
    /// Comma-separated model names.
    pub models: String,
    /// Comma-separated group names.
    pub group: Option<String>,
    /// JSON object text, requested model → upstream model.
    pub model_mapping: Option<String>,
    pub priority: Option<i64>,
    /// new-api: 1 lets failures disable the channel, 0 forbids it.
    pub auto_ban: Option<i64>,
    /// new-api's `setting` JSON (`daily_token_limit`, `proxy`, …).
    pub setting: Option<String>,
    /// new-api's `channel_info` JSON (multi-key mode and per-key status).
    pub channel_info: Option<String>,
    /// one-api's `config` JSON (`api_version`, …).
    pub config: Option<String>,
    pub param_override: Option<String>,
    pub header_override: Option<String>,
    pub status_code_mapping: Option<String>,
}

/// One row of the `tokens` table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: Option<i64>,
    /// The key as stored: without the `sk-` clients put in front.
    pub key: String,
    pub status: i64,
    pub name: String,
    /// Unix seconds; -1 (or 0) never expires.
    pub expired_time: Option<i64>,
    pub remain_quota: Option<i64>,
    pub unlimited_quota: Option<bool>,
    /// new-api's allow-list switch and comma list.
    pub model_limits_enabled: Option<bool>,
    pub model_limits: Option<String>,
    /// one-api's comma list of allowed models.
    pub models: Option<String>,
    pub allow_ips: Option<String>,
    /// new-api: empty means "the owner's group".
    pub group: Option<String>,
    /// Soft-deleted rows (new-api's gorm `deleted_at`).
    pub deleted: bool,
}

/// The owner of tokens: its group and whether it may use them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserRow {
    pub group: Option<String>,
    pub status: i64,
    pub deleted: bool,
}

/// Everything the import reads from a source database.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDb {
    /// The flavour the columns suggest.
    pub detected: Flavor,
    pub channels: Vec<ChannelRow>,
    pub tokens: Vec<TokenRow>,
    pub users: BTreeMap<i64, UserRow>,
}
