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

/// Every stored setting, as one patch.
pub fn load(connection: &Connection) -> Result<SettingsPatch, Error> {
    let mut statement = connection.prepare("SELECT key, value FROM settings")?;
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
