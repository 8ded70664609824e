//! Channel keys sealed at rest, through the whole store: the migration of
//! an older database, the raw bytes of the files, the key file's failure
//! modes, and snapshots moving between nodes with different keys.

use std::path::Path;

use chrono::{TimeZone, Utc};
use rusqlite::{Connection, params};

use super::secrets::{KEY_FILE, SecretError, SecretKey};
use super::{Error, SQLITE_FILE, Store, schema, time};
use crate::command::{Applied, ConfigCommand};
use crate::model::{ChannelId, ChannelSpec, ChannelStatus, ChannelType};

const LIVE_KEY: &str = "sk-live-3f9a1c7e5b2d8046";
const DELETED_KEY: &str = "sk-gone-7c1e9b3a5d2f4068";

fn spec(name: &str, key: &str) -> ChannelSpec {
    ChannelSpec {
        name: name.to_string(),
        kind: ChannelType::Openai,
        base_url: "http://127.0.0.1:9/v1".to_string(),
        keys: vec![key.to_string()],
        models: vec!["gpt-4o-mini".to_string()],
        model_mapping: Default::default(),
        groups: vec!["default".to_string()],
        priority: 0,
        weight: 1,
        status: ChannelStatus::Enabled,
        settings: Default::default(),
    }
}

/// Whether `needle` appears in the raw bytes of any `sluicegate.db*` file.
fn files_contain(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        name.starts_with(SQLITE_FILE)
            && std::fs::read(entry.path())
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
    })
}

fn raw_keys(dir: &Path, id: i64) -> String {
    let connection = Connection::open(dir.join(SQLITE_FILE)).unwrap();
    connection
        .query_row("SELECT keys FROM channels WHERE id = ?1", [id], |row| {
            row.get(0)
        })
        .unwrap()
}

fn user_version(dir: &Path) -> i64 {
    let connection = Connection::open(dir.join(SQLITE_FILE)).unwrap();
    connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap()
}

/// Builds a schema-3 database (before sealing) in `dir` with two channels
/// holding plain keys, the second deleted, and returns a copy of its files
/// taken while the WAL still held every write, as a crash would leave them.
fn crashed_version_3_database(dir: &Path) -> tempfile::TempDir {
    let path = dir.join(SQLITE_FILE);
    let mut connection = Connection::open(&path).unwrap();
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;")
        .unwrap();
    for migration in &schema::MIGRATIONS[..3] {
        let transaction = connection.transaction().unwrap();
        transaction.execute_batch(migration).unwrap();
        transaction.commit().unwrap();
    }
    connection.pragma_update(None, "user_version", 3).unwrap();
    let stamp = time::encode(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    for (name, key) in [("live", LIVE_KEY), ("gone", DELETED_KEY)] {
        connection
            .execute(
                "INSERT INTO channels (name, type, base_url, keys, models, model_mapping, \
                 channel_groups, priority, weight, status, settings, created_at, updated_at) \
                 VALUES (?1, 'openai', 'http://127.0.0.1:9/v1', ?2, '[\"gpt-4o-mini\"]', '{}', \
                 '[\"default\"]', 0, 1, 'enabled', '{}', ?3, ?3)",
                params![name, format!("[\"{key}\"]"), stamp],
            )
            .unwrap();
    }
    connection
        .execute("DELETE FROM channels WHERE name = 'gone'", [])
        .unwrap();
    let crashed = tempfile::tempdir().unwrap();
    for suffix in ["", "-wal"] {
        let name = format!("{SQLITE_FILE}{suffix}");
        std::fs::copy(dir.join(&name), crashed.path().join(&name)).unwrap();
    }
    drop(connection);
    crashed
}

/// A schema-3 database with plain keys (in the WAL, in a deleted row's
/// free space) opens, gets a key file, serves the same keys, and afterwards
/// no file of the database holds either plain key.
#[tokio::test]
async fn old_database_is_sealed_and_scrubbed() {
    let built = tempfile::tempdir().unwrap();
    let crashed = crashed_version_3_database(built.path());
    let dir = crashed.path();
    assert!(files_contain(dir, LIVE_KEY), "the test must see plain keys");
    assert!(
        files_contain(dir, DELETED_KEY),
        "the test must see plain keys"
    );

    let store = Store::open(dir).unwrap();
    assert!(dir.join(KEY_FILE).is_file());
    assert_eq!(user_version(dir), 4);
    let (channels, _) = store.load().await.unwrap();
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].spec.keys, [LIVE_KEY]);
    assert!(raw_keys(dir, channels[0].id.0).starts_with("enc:v1:"));
    for key in [LIVE_KEY, DELETED_KEY] {
        assert!(!files_contain(dir, key), "{key} left in the files");
    }
    drop(store);
    for key in [LIVE_KEY, DELETED_KEY] {
        assert!(!files_contain(dir, key), "{key} left after close");
    }
}

/// Running the sealing migration again (a start that stopped before
/// recording it) seals nothing twice: the stored value is unchanged.
#[tokio::test]
async fn sealing_migration_is_idempotent() {
    let built = tempfile::tempdir().unwrap();
    let crashed = crashed_version_3_database(built.path());
    let dir = crashed.path();
    drop(Store::open(dir).unwrap());
    let sealed = raw_keys(dir, 1);
    let connection = Connection::open(dir.join(SQLITE_FILE)).unwrap();
    connection.pragma_update(None, "user_version", 3).unwrap();
    drop(connection);

    let store = Store::open(dir).unwrap();
    assert_eq!(user_version(dir), 4);
    assert_eq!(raw_keys(dir, 1), sealed);
    assert_eq!(store.load().await.unwrap().0[0].spec.keys, [LIVE_KEY]);
}

/// Keys written through commands are sealed in every file of the
/// database, before and after a checkpoint, and read back in clear.
#[tokio::test]
async fn written_keys_never_reach_the_files_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let Applied::Channel(channel) = store
        .apply(ConfigCommand::CreateChannel {
            spec: spec("a", LIVE_KEY),
            at: Utc::now(),
        })
        .await
        .unwrap()
    else {
        panic!("expected a channel");
    };
    assert_eq!(channel.spec.keys, [LIVE_KEY]);
    let Applied::Channel(updated) = store
        .apply(ConfigCommand::UpdateChannel {
            id: channel.id,
            spec: spec("a", DELETED_KEY),
            at: Utc::now(),
        })
        .await
        .unwrap()
    else {
        panic!("expected a channel");
    };
    assert_eq!(updated.spec.keys, [DELETED_KEY]);
    for key in [LIVE_KEY, DELETED_KEY] {
        assert!(!files_contain(dir.path(), key), "{key} in the WAL or db");
    }
    store.flush().await.unwrap();
    drop(store);
    for key in [LIVE_KEY, DELETED_KEY] {
        assert!(!files_contain(dir.path(), key), "{key} after checkpoint");
    }
}

/// Without its key file, a database holding sealed keys does not open,
/// and no new key file is made in its place.
#[tokio::test]
async fn missing_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .apply(ConfigCommand::CreateChannel {
            spec: spec("a", LIVE_KEY),
            at: Utc::now(),
        })
        .await
        .unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let Err(error) = Store::open(dir.path()) else {
        panic!("opened without its key file");
    };
    assert!(
        matches!(error, Error::Secret(SecretError::Missing { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("restore it from your backup"));
    assert!(!dir.path().join(KEY_FILE).exists());
}

/// Another valid key file is refused at open, naming the channel.
#[tokio::test]
async fn wrong_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .apply(ConfigCommand::CreateChannel {
            spec: spec("a", LIVE_KEY),
            at: Utc::now(),
        })
        .await
        .unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let other = tempfile::tempdir().unwrap();
    SecretKey::create(other.path()).unwrap();
    std::fs::rename(other.path().join(KEY_FILE), dir.path().join(KEY_FILE)).unwrap();
    let Err(error) = Store::open(dir.path()) else {
        panic!("opened with another key");
    };
    assert!(
        matches!(
            error,
            Error::Secret(SecretError::WrongKey { channel: 1, .. })
        ),
        "{error}"
    );
}

/// A raft snapshot from one node installs on a node with another key
/// file: it carries the keys in clear, and the installing node seals them
/// under its own key.
#[tokio::test]
async fn snapshots_move_between_nodes_with_different_keys() {
    let first_dir = tempfile::tempdir().unwrap();
    let first = Store::open(first_dir.path()).unwrap();
    first
        .apply(ConfigCommand::CreateChannel {
            spec: spec("a", LIVE_KEY),
            at: Utc::now(),
        })
        .await
        .unwrap();
    let state = first.export_replicated(90).await.unwrap();
    let exported = serde_json::to_string(&state).unwrap();
    assert!(
        exported.contains(LIVE_KEY),
        "the snapshot carries keys in clear"
    );

    let second_dir = tempfile::tempdir().unwrap();
    let second = Store::open(second_dir.path()).unwrap();
    second
        .import_replicated(state, None, Vec::new())
        .await
        .unwrap();
    let (channels, _) = second.load().await.unwrap();
    assert_eq!(channels, first.load().await.unwrap().0);
    assert_eq!(channels[0].id, ChannelId(1));
    assert!(raw_keys(second_dir.path(), 1).starts_with("enc:v1:"));
    assert_ne!(
        raw_keys(second_dir.path(), 1),
        raw_keys(first_dir.path(), 1)
    );
}
