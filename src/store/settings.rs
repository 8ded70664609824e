//! Runtime settings rows: one per setting an admin has changed, its value
//! as JSON, so a stored patch reads back as a `SettingsPatch`.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{Error, time};
use crate::runtime::SettingsPatch;

/// Writes every field `patch` sets, replacing earlier values.
pub fn upsert(
    connection: &Connection,
    patch: &SettingsPatch,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    let value = serde_json::to_value(patch)
        .map_err(|error| Error::Corrupt(format!("encoding settings: {error}")))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(Error::Corrupt("settings are not an object".to_string()));
    };
    let mut statement = connection.prepare(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )?;
    for (key, value) in fields {
        statement.execute(params![key, value.to_string(), time::encode(at)])?;
    }
    Ok(())
}

/// The settings row holding the cluster's admin token hash. Its key starts
/// with `_`, which no runtime setting does, so [`load`] skips it.
const ADMIN_TOKEN_KEY: &str = "_admin_token";

/// The replicated admin token: its hex SHA-256 and the node that set it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdminTokenRow {
    pub sha256: String,
    pub node_id: u64,
}

/// Stores the cluster's admin token hash; with `if_unset`, only when none
/// is stored yet. A value that is not 64 hex digits is refused.
pub fn set_admin_token(
    connection: &Connection,
    sha256: &str,
    if_unset: bool,
    node_id: u64,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(Error::Corrupt(
            "admin token hash is not 64 hex digits".to_string(),
        ));
    }
    if if_unset && admin_token(connection)?.is_some() {
        return Ok(());
    }
    let row = AdminTokenRow {
        sha256: sha256.to_ascii_lowercase(),
        node_id,
    };
    let value = serde_json::to_string(&row)
        .map_err(|error| Error::Corrupt(format!("encoding the admin token row: {error}")))?;
    connection.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![ADMIN_TOKEN_KEY, value, time::encode(at)],
    )?;
    Ok(())
}

/// The stored cluster admin token, if any node has set one.
pub fn admin_token(connection: &Connection) -> Result<Option<AdminTokenRow>, Error> {
    let mut statement = connection.prepare("SELECT value FROM settings WHERE key = ?1")?;
    let mut rows = statement.query(params![ADMIN_TOKEN_KEY])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let text: String = row.get(0)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| Error::Corrupt(format!("admin token row: {error}")))
}

/// Every stored setting, as one patch.
pub fn load(connection: &Connection) -> Result<SettingsPatch, Error> {
    let mut statement =
        connection.prepare("SELECT key, value FROM settings WHERE substr(key, 1, 1) <> '_'")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut fields = serde_json::Map::new();
    for row in rows {
        let (key, text) = row?;
        let value = serde_json::from_str(&text)
            .map_err(|error| Error::Corrupt(format!("setting {key}: {error}")))?;
        fields.insert(key, value);
    }
    serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|error| Error::Corrupt(format!("settings: {error}")))
}
