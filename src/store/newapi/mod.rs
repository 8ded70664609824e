//! Reading a new-api or one-api SQLite database (read-only) into the plain
//! rows of `import::source`, and applying the import's commands in one
//! SQLite transaction.
//!
//! The reader never writes to the source: it opens it with
//! `SQLITE_OPEN_READ_ONLY` and only runs `SELECT`s. Columns are looked up by
//! name, so older and newer schemas (and one-api's) read alike; what a value
//! means is left to the pure mapping in `import`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::{Error, Store, apply_in};
use crate::command::{Applied, ConfigCommand};
mod rows;

pub use rows::{ChannelRow, Flavor, SourceDb, TokenRow, UserRow};

/// Why a source database could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}: no such file")]
    Missing(String),
    #[error("{path}: not a readable SQLite database ({detail})")]
    NotSqlite { path: String, detail: String },
    #[error(
        "{path}: not a new-api or one-api database (no `{table}` table with the columns {columns})"
    )]
    NotNewApi {
        path: String,
        table: &'static str,
        columns: &'static str,
    },
    #[error("{path}: {detail}")]
    Read { path: String, detail: String },
}

/// Channel columns every new-api and one-api version has.
const CHANNEL_COLUMNS: [&str; 5] = ["id", "type", "key", "status", "models"];
/// Token columns every version has.
const TOKEN_COLUMNS: [&str; 4] = ["id", "key", "status", "name"];
/// Columns only new-api's `channels` table has.
const NEW_API_MARKERS: [&str; 5] = ["tag", "setting", "channel_info", "auto_ban", "settings"];

/// Reads the channels, tokens and users of the database at `path`.
/// Blocking: call it from the blocking pool.
pub fn read_source(path: &Path) -> Result<SourceDb, SourceError> {
    let shown = path.display().to_string();
    if !path.is_file() {
        return Err(SourceError::Missing(shown));
    }
    let not_sqlite = |error: rusqlite::Error| SourceError::NotSqlite {
        path: shown.clone(),
        detail: error.to_string(),
    };
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(not_sqlite)?;
    let tables = table_names(&connection).map_err(not_sqlite)?;
    let read = |error: rusqlite::Error| SourceError::Read {
        path: shown.clone(),
        detail: error.to_string(),
    };
    let channel_columns = columns_of(&connection, "channels", &tables).map_err(read)?;
    let token_columns = columns_of(&connection, "tokens", &tables).map_err(read)?;
    if !CHANNEL_COLUMNS
        .iter()
        .all(|column| channel_columns.contains(*column))
    {
        return Err(SourceError::NotNewApi {
            path: shown,
            table: "channels",
            columns: "id, type, key, status, models",
        });
    }
    if !TOKEN_COLUMNS
        .iter()
        .all(|column| token_columns.contains(*column))
    {
        return Err(SourceError::NotNewApi {
            path: shown,
            table: "tokens",
            columns: "id, key, status, name",
        });
    }
    let detected = if NEW_API_MARKERS
        .iter()
        .any(|column| channel_columns.contains(*column))
    {
        Flavor::NewApi
    } else {
        Flavor::OneApi
    };
    let channels = rows(&connection, "channels")
        .map_err(read)?
        .iter()
        .map(channel_row)
        .collect();
    let tokens = rows(&connection, "tokens")
        .map_err(read)?
        .iter()
        .map(token_row)
        .collect();
    let users = if tables.contains("users") {
        rows(&connection, "users")
            .map_err(read)?
            .iter()
            .filter_map(|row| Some((int(row, "id")?, user_row(row))))
            .collect()
    } else {
        BTreeMap::new()
    };
    Ok(SourceDb {
        detected,
        channels,
        tokens,
        users,
    })
}

type Row = HashMap<String, Value>;

fn table_names(connection: &Connection) -> rusqlite::Result<HashSet<String>> {
    let mut statement =
        connection.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let names = statement.query_map([], |row| row.get::<_, String>(0))?;
    names.collect()
}

fn columns_of(
    connection: &Connection,
    table: &str,
    tables: &HashSet<String>,
) -> rusqlite::Result<HashSet<String>> {
    if !tables.contains(table) {
        return Ok(HashSet::new());
    }
    let mut statement = connection.prepare(&format!("PRAGMA table_info(\"{table}\")"))?;
    let names = statement.query_map([], |row| row.get::<_, String>(1))?;
    names.collect()
}

/// Every row of `table` (a fixed name, never input) as column → value.
fn rows(connection: &Connection, table: &str) -> rusqlite::Result<Vec<Row>> {
    let mut statement = connection.prepare(&format!("SELECT * FROM \"{table}\" ORDER BY id"))?;
    let names: Vec<String> = statement.column_names().map(str::to_string).collect();
    let rows = statement.query_map([], |row| {
        let mut values = HashMap::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            values.insert(name.clone(), row.get::<_, Value>(index)?);
        }
        Ok(values)
    })?;
    rows.collect()
}

fn channel_row(row: &Row) -> ChannelRow {
    ChannelRow {
        id: int(row, "id").unwrap_or(0),
        kind: int(row, "type").unwrap_or(0),
        key: text(row, "key").unwrap_or_default(),
        status: int(row, "status").unwrap_or(1),
        name: text(row, "name").unwrap_or_default(),
        weight: int(row, "weight"),
        created_time: int(row, "created_time"),
        base_url: text(row, "base_url"),
        other: text(row, "other"),
        models: text(row, "models").unwrap_or_default(),
        group: text(row, "group"),
        model_mapping: text(row, "model_mapping"),
        priority: int(row, "priority"),
        auto_ban: int(row, "auto_ban"),
        setting: text(row, "setting"),
        channel_info: text(row, "channel_info"),
        config: text(row, "config"),
        param_override: text(row, "param_override"),
        header_override: text(row, "header_override"),
        status_code_mapping: text(row, "status_code_mapping"),
    }
}

fn token_row(row: &Row) -> TokenRow {
    TokenRow {
        id: int(row, "id").unwrap_or(0),
        user_id: int(row, "user_id"),
        key: text(row, "key").unwrap_or_default(),
        status: int(row, "status").unwrap_or(1),
        name: text(row, "name").unwrap_or_default(),
        expired_time: int(row, "expired_time"),
        remain_quota: int(row, "remain_quota"),
        unlimited_quota: int(row, "unlimited_quota").map(|flag| flag != 0),
        model_limits_enabled: int(row, "model_limits_enabled").map(|flag| flag != 0),
        model_limits: text(row, "model_limits"),
        models: text(row, "models"),
        allow_ips: text(row, "allow_ips"),
        group: text(row, "group"),
        deleted: is_set(row, "deleted_at"),
    }
}

fn user_row(row: &Row) -> UserRow {
    UserRow {
        group: text(row, "group"),
        status: int(row, "status").unwrap_or(1),
        deleted: is_set(row, "deleted_at"),
    }
}

/// An integer column; SQLite may hold it as text, a real or a boolean.
fn int(row: &Row, column: &str) -> Option<i64> {
    match row.get(column)? {
        Value::Integer(value) => Some(*value),
        Value::Real(value) if value.fract() == 0.0 => Some(*value as i64),
        Value::Text(text) => match text.trim() {
            "true" => Some(1),
            "false" => Some(0),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

/// A text column; numbers are rendered, blobs read as UTF-8.
fn text(row: &Row, column: &str) -> Option<String> {
    match row.get(column)? {
        Value::Text(text) => Some(text.clone()),
        Value::Blob(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::Integer(value) => Some(value.to_string()),
        Value::Real(value) => Some(value.to_string()),
        Value::Null => None,
    }
}

fn is_set(row: &Row, column: &str) -> bool {
    row.get(column).is_some_and(|value| *value != Value::Null)
}

impl Store {
    /// Applies config commands in one SQLite transaction, through the same
    /// `apply_in` as [`Store::apply`]: all of them or none.
    pub async fn apply_all(&self, commands: Vec<ConfigCommand>) -> Result<Vec<Applied>, Error> {
        self.write(move |connection| {
            let transaction = connection.transaction()?;
            let mut applied = Vec::with_capacity(commands.len());
            for command in commands {
                applied.push(apply_in(&transaction, command)?);
            }
            transaction.commit()?;
            Ok(applied)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file, a file that is not SQLite and a SQLite file without
    /// new-api's tables each get their own error, never a panic.
    #[test]
    fn bad_sources_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        assert!(matches!(
            read_source(&missing),
            Err(SourceError::Missing(_))
        ));
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, b"this is not a database, just some text....").unwrap();
        assert!(matches!(
            read_source(&garbage),
            Err(SourceError::NotSqlite { .. })
        ));
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE things (id INTEGER)")
            .unwrap();
        let error = read_source(&other).unwrap_err();
        assert!(matches!(
            error,
            SourceError::NotNewApi {
                table: "channels",
                ..
            }
        ));
    }

    /// A batch that fails part-way writes nothing: the channel created
    /// before the failing command (a missing key) is rolled back with it.
    #[tokio::test]
    async fn a_failing_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let spec = crate::model::ChannelSpec {
            name: "one".into(),
            kind: crate::model::ChannelType::Openai,
            base_url: "http://127.0.0.1:9/v1".into(),
            keys: vec!["k".into()],
            models: vec!["m".into()],
            model_mapping: BTreeMap::new(),
            groups: vec!["default".into()],
            priority: 0,
            weight: 1,
            status: crate::model::ChannelStatus::Enabled,
            settings: serde_json::Map::new(),
        };
        let at = chrono::Utc::now();
        let failed = store
            .apply_all(vec![
                ConfigCommand::CreateChannel {
                    spec: spec.clone(),
                    at,
                },
                ConfigCommand::DeleteToken {
                    id: crate::model::TokenId(404),
                },
            ])
            .await;
        assert!(failed.is_err());
        assert!(store.load().await.unwrap().0.is_empty());
        let applied = store
            .apply_all(vec![ConfigCommand::CreateChannel { spec, at }])
            .await
            .unwrap();
        assert_eq!(applied.len(), 1);
        assert_eq!(store.load().await.unwrap().0.len(), 1);
    }

    /// one-api's schema (a `config` column, no `tag`/`setting`) is told apart
    /// from new-api's, and odd storage classes read as numbers.
    #[test]
    fn detects_one_api_and_reads_loose_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE channels (id INTEGER PRIMARY KEY, type INTEGER, key TEXT, \
                 status INTEGER, name TEXT, models TEXT, config TEXT, weight TEXT);
                 CREATE TABLE tokens (id INTEGER PRIMARY KEY, key TEXT, status INTEGER, \
                 name TEXT, unlimited_quota NUMERIC);
                 INSERT INTO channels VALUES (1, 36, 'k', 1, 'ds', 'deepseek-chat', '{}', '7');
                 INSERT INTO tokens VALUES (1, 'abc', 1, 't', 'true');",
            )
            .unwrap();
        let source = read_source(&path).unwrap();
        assert_eq!(source.detected, Flavor::OneApi);
        assert_eq!(source.channels[0].weight, Some(7));
        assert_eq!(source.tokens[0].unlimited_quota, Some(true));
    }
}
