//! Connection settings and versioned migrations for the SQLite file.
//!
//! `PRAGMA user_version` records how many migrations have run. Each new
//! migration is appended to `MIGRATIONS`; existing ones are never edited.

use std::path::Path;

use rusqlite::Connection;

use super::Error;

const MIGRATIONS: &[&str] = &[
    // 1: channels, API keys and request logs.
    r#"
    CREATE TABLE channels (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT    NOT NULL,
        type          TEXT    NOT NULL,
        base_url      TEXT    NOT NULL,
        keys          TEXT    NOT NULL,
        models        TEXT    NOT NULL,
        model_mapping TEXT    NOT NULL,
        channel_groups TEXT   NOT NULL,
        priority      INTEGER NOT NULL,
        weight        INTEGER NOT NULL,
        status        TEXT    NOT NULL,
        settings      TEXT    NOT NULL,
        created_at    TEXT    NOT NULL,
        updated_at    TEXT    NOT NULL
    );
    CREATE TABLE tokens (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        name         TEXT    NOT NULL,
        key_hash     TEXT    NOT NULL UNIQUE,
        key_prefix   TEXT    NOT NULL,
        status       TEXT    NOT NULL,
        expires_at   TEXT,
        group_name   TEXT    NOT NULL,
        models       TEXT,
        channel_id   INTEGER,
        created_at   TEXT    NOT NULL,
        last_used_at TEXT
    );
    CREATE TABLE request_logs (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        time              TEXT    NOT NULL,
        request_id        TEXT    NOT NULL,
        token_id          INTEGER,
        channel_ids       TEXT    NOT NULL,
        model             TEXT    NOT NULL,
        upstream_model    TEXT,
        endpoint          TEXT    NOT NULL,
        stream            INTEGER NOT NULL,
        status            INTEGER NOT NULL,
        error_code        TEXT,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        total_tokens      INTEGER NOT NULL,
        estimated         INTEGER NOT NULL,
        latency_ms        INTEGER NOT NULL,
        ttft_ms           INTEGER
    );
    CREATE INDEX request_logs_time ON request_logs(time);
    CREATE INDEX request_logs_token_time ON request_logs(token_id, time);
    CREATE INDEX request_logs_model_time ON request_logs(model, time);
    "#,
    // 2: why and when the gateway disabled a channel on its own (channel health).
    r#"
    ALTER TABLE channels ADD COLUMN auto_disabled_reason TEXT;
    ALTER TABLE channels ADD COLUMN auto_disabled_at TEXT;
    "#,
    // 3: runtime settings changed through the admin API, one row per setting;
    // `value` is JSON. They win over the config file and flags.
    r#"
    CREATE TABLE settings (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    "#,
];

/// Opens a connection with the settings every connection shares.
pub fn connect(path: &Path) -> Result<Connection, Error> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )?;
    Ok(connection)
}

/// Runs every migration the file has not seen, each in its own transaction.
pub fn migrate(connection: &mut Connection) -> Result<(), Error> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > known {
        return Err(Error::TooNew { found, known });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        transaction.commit()?;
        tracing::info!(version = index + 1, "applied database migration");
    }
    Ok(())
}
