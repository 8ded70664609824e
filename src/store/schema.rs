//! Connection settings and versioned migrations for the SQLite file.
//!
//! `PRAGMA user_version` records how many migrations have run. Each new
//! migration is appended to `MIGRATIONS`; existing ones are never edited.

use std::path::Path;

use rusqlite::Connection;

use super::Error;
use super::secrets::{self, SecretKey};

pub(super) const MIGRATIONS: &[&str] = &[
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
    // 4: channel keys sealed at rest (`store/secrets.rs`). Plain keys are a
    // JSON array; sealed ones start with `enc:`, so a re-run seals nothing
    // twice. The file is scrubbed afterwards (`SCRUBBED`).
    r#"
    UPDATE channels SET keys = seal_secret(id, keys) WHERE keys NOT LIKE 'enc:%';
    "#,
];

/// Migrations that replace secrets in place. Their version is recorded only
/// once the file is scrubbed (VACUUM, WAL truncated), so a start that stops
/// in between runs them again rather than leaving the old text in free
/// pages or in the WAL.
const SCRUBBED: &[usize] = &[4];

/// Opens a connection with the settings every connection shares, and the
/// `seal_secret`/`open_secret` functions bound to `key`.
pub fn connect(path: &Path, key: &SecretKey) -> Result<Connection, Error> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )?;
    secrets::register(&connection, key)?;
    Ok(connection)
}

/// Whether the file at `path` (if any) holds sealed channel keys. Read
/// before a key exists, to tell a first start from a lost key file.
pub fn holds_sealed_keys(path: &Path) -> Result<bool, Error> {
    if !path.exists() {
        return Ok(false);
    }
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    let has_channels: bool = connection.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'channels')",
        [],
        |row| row.get(0),
    )?;
    if !has_channels {
        return Ok(false);
    }
    Ok(connection.query_row(
        "SELECT EXISTS(SELECT 1 FROM channels WHERE keys LIKE 'enc:%')",
        [],
        |row| row.get(0),
    )?)
}

/// Runs every migration the file has not seen, each in its own transaction.
pub fn migrate(connection: &mut Connection) -> Result<(), Error> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > known {
        return Err(Error::TooNew { found, known });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index + 1;
        let scrubbed = SCRUBBED.contains(&version);
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        if !scrubbed {
            transaction.pragma_update(None, "user_version", version as i64)?;
        }
        transaction.commit()?;
        if scrubbed {
            scrub(connection)?;
            connection.pragma_update(None, "user_version", version as i64)?;
        }
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

/// Leaves no replaced content anywhere in the files: VACUUM rebuilds the
/// database (no free pages, no stale bytes in live ones), and a TRUNCATE
/// checkpoint moves it out of the WAL and empties the WAL file. Old WAL
/// frames (say, from a crash before this start) go with it.
fn scrub(connection: &Connection) -> Result<(), Error> {
    connection.execute_batch("VACUUM;")?;
    let (busy, _, _): (i64, i64, i64) =
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    if busy != 0 {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::ResourceBusy,
            "another process holds the database open, so the WAL could not be emptied after \
             sealing channel keys; stop it and start again",
        )));
    }
    Ok(())
}
