//! The only module that touches storage engines: SQLite (channels, API keys,
//! request logs) and sled (day counters).
//!
//! All SQLite work runs on the blocking pool, never on the async runtime.
//! Writes go through one connection; reads (the logs API) use a second one,
//! which WAL mode lets run beside the writer.

mod channels;
pub mod counters;
mod logs;
pub mod newapi;
pub mod replicated;
mod schema;
#[cfg(test)]
mod sealing_tests;
pub mod secrets;
pub mod settings;
mod stats;
mod time;
mod tokens;
pub mod usage;

pub use stats::HourStats;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Connection;

use crate::command::{Applied, Command, ConfigCommand};
use crate::daily::UsageDelta;
use crate::model::{Channel, ChannelId, LogFilter, RequestLog, Token, TokenId};

/// The SQLite file inside the data dir.
pub const SQLITE_FILE: &str = "sluicegate.db";
/// The sled directory inside the data dir.
pub const SLED_DIR: &str = "counters.sled";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(
        "the database was written by a newer Sluicegate (schema {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error("a storage task failed: {0}")]
    Task(String),
    #[error("injected counter-store failure")]
    Injected,
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
}

/// Handle to both stores; cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
    sled: sled::Db,
    counters: sled::Tree,
    /// Counter writes still to fail on purpose (see [`Store::fail_counter_writes`]).
    injected_failures: Arc<AtomicU32>,
    /// The data dir's key, also for the raft log and snapshot (cluster).
    key: secrets::SecretKey,
}

impl Store {
    /// Opens (creating if needed) both stores in `data_dir` and runs the
    /// SQLite migrations, with the key that seals channel keys
    /// (`<data-dir>/secret.key`, created on first start). A key file that is
    /// loose, malformed, missing while the database holds sealed keys, or
    /// not the one they were sealed with stops the open. Blocking: call it
    /// at start-up.
    pub fn open(data_dir: &Path) -> Result<Store, Error> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(SQLITE_FILE);
        let key = secret_key(data_dir, &path)?;
        let mut writer = schema::connect(&path, &key)?;
        schema::migrate(&mut writer)?;
        channels::check_sealed(&writer, &key)?;
        let reader = schema::connect(&path, &key)?;
        let sealing = key.clone();
        // Counter writes fsync explicitly after each batch; the background
        // flush is a backstop.
        let sled = sled::Config::new()
            .path(data_dir.join(SLED_DIR))
            .flush_every_ms(Some(500))
            .open()?;
        let counters = counters::open_tree(&sled)?;
        Ok(Store {
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
            sled,
            counters,
            injected_failures: Arc::new(AtomicU32::new(0)),
            key: sealing,
        })
    }

    /// The data dir's key (`secret.key`), which the cluster's raft log and
    /// snapshot file are sealed with too.
    pub fn secret_key(&self) -> &secrets::SecretKey {
        &self.key
    }

    /// Makes the next `writes` counter writes fail, as a broken disk would.
    /// Fault injection for tests of the pending-counter fallback; the data
    /// itself is untouched.
    pub fn fail_counter_writes(&self, writes: u32) {
        self.injected_failures.store(writes, Ordering::SeqCst);
    }

    fn injected_failure(&self) -> Result<(), Error> {
        let fail = self
            .injected_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if fail { Err(Error::Injected) } else { Ok(()) }
    }

    /// Every stored day count on or after `since`.
    pub async fn usage_since(&self, since: NaiveDate) -> Result<Vec<UsageDelta>, Error> {
        let tree = self.counters.clone();
        blocking(move || counters::since(&tree, since)).await
    }

    /// One channel's stored day counts from `from` on, most recent first.
    pub async fn usage_history(
        &self,
        channel_id: ChannelId,
        from: NaiveDate,
    ) -> Result<Vec<(NaiveDate, u64)>, Error> {
        let tree = self.counters.clone();
        blocking(move || counters::history(&tree, channel_id, from)).await
    }

    /// Applies one state change: a config change in one SQLite
    /// transaction, a usage change to the counters tree (flushed before
    /// returning). Deleting a channel also deletes its day counts and
    /// leases (after the SQLite commit; a crash in between leaves counts
    /// that no channel reads).
    pub async fn apply(&self, command: impl Into<Command>) -> Result<Applied, Error> {
        let tree = self.counters.clone();
        match command.into() {
            Command::Config(command) => {
                self.write(move |connection| {
                    let deleted = command.deleted_channel();
                    let transaction = connection.transaction()?;
                    let applied = apply_in(&transaction, command)?;
                    transaction.commit()?;
                    if let Some(id) = deleted {
                        let mut overlay = usage::Overlay::new(&tree);
                        usage::forget_channel(&mut overlay, id)?;
                        overlay.commit()?;
                    }
                    Ok(applied)
                })
                .await
            }
            Command::Usage(command) => {
                self.injected_failure()?;
                self.write(move |_| {
                    let mut overlay = usage::Overlay::new(&tree);
                    let applied = usage::apply(&mut overlay, &command, None)?;
                    overlay.commit()?;
                    Ok(applied)
                })
                .await
            }
        }
    }

    /// Every channel and API key, for building a snapshot.
    pub async fn load(&self) -> Result<(Vec<Channel>, Vec<Token>), Error> {
        self.write(|connection| Ok((channels::all(connection)?, tokens::all(connection)?)))
            .await
    }

    /// The runtime settings an admin has changed, as one patch.
    pub async fn settings(&self) -> Result<crate::runtime::SettingsPatch, Error> {
        self.write(|connection| settings::load(connection)).await
    }

    /// Cluster mode: the replicated admin token's hex SHA-256 and the node
    /// that set it, if any node has.
    pub async fn admin_token(&self) -> Result<Option<settings::AdminTokenRow>, Error> {
        self.write(|connection| settings::admin_token(connection))
            .await
    }

    /// Requests, errors and tokens per hour in `[since, until)` (admin reads).
    pub async fn hourly_stats(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<stats::HourStats>, Error> {
        self.read(move |connection| stats::hourly(connection, since, until))
            .await
    }

    /// Every API key, with fresh `last_used_at` times (admin reads).
    pub async fn tokens(&self) -> Result<Vec<Token>, Error> {
        self.read(|connection| tokens::all(connection)).await
    }

    pub async fn insert_logs(&self, rows: Vec<RequestLog>) -> Result<(), Error> {
        self.write(move |connection| logs::insert(connection, &rows))
            .await
    }

    /// One page of request logs matching `filter`, newest first, and the total.
    pub async fn query_logs(&self, filter: LogFilter) -> Result<(Vec<RequestLog>, u64), Error> {
        self.read(move |connection| logs::query(connection, &filter))
            .await
    }

    /// Records when API keys were last used. Node-local bookkeeping, like the
    /// request logs, so it is not a `Command`.
    pub async fn touch_tokens(&self, used: Vec<(TokenId, DateTime<Utc>)>) -> Result<(), Error> {
        if used.is_empty() {
            return Ok(());
        }
        self.write(move |connection| tokens::touch(connection, &used))
            .await
    }

    /// Makes everything written so far durable: a WAL checkpoint and a sled flush.
    pub async fn flush(&self) -> Result<(), Error> {
        self.write(|connection| {
            connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE);")?;
            Ok(())
        })
        .await?;
        self.sled.flush_async().await?;
        Ok(())
    }

    async fn write<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        run_on(Arc::clone(&self.writer), work).await
    }

    async fn read<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    {
        run_on(Arc::clone(&self.reader), work).await
    }
}

/// The data dir's key: the key file if there is one; else a new one, unless
/// the database already holds sealed keys (then the file was lost, and a
/// new key would only hide that).
fn secret_key(data_dir: &Path, database: &Path) -> Result<secrets::SecretKey, Error> {
    if let Some(key) = secrets::SecretKey::load(data_dir)? {
        return Ok(key);
    }
    if schema::holds_sealed_keys(database)? {
        let path = data_dir.join(secrets::KEY_FILE).display().to_string();
        return Err(secrets::SecretError::Missing { path }.into());
    }
    Ok(secrets::SecretKey::create(data_dir)?)
}

async fn blocking<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Task(error.to_string()))?
}

async fn run_on<T, F>(connection: Arc<Mutex<Connection>>, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut guard = connection
            .lock()
            .map_err(|_| Error::Task("a previous storage task panicked".to_string()))?;
        work(&mut guard)
    })
    .await
    .map_err(|error| Error::Task(error.to_string()))?
}

/// What each config command does to SQLite.
fn apply_in(connection: &Connection, command: ConfigCommand) -> Result<Applied, Error> {
    match command {
        ConfigCommand::CreateChannel { spec, at } => {
            channels::insert(connection, &spec, at).map(Applied::Channel)
        }
        ConfigCommand::UpdateChannel { id, spec, at } => {
            channels::update(connection, id, &spec, at).map(Applied::Channel)
        }
        ConfigCommand::DeleteChannel { id } => {
            channels::delete(connection, id).map(|()| Applied::Deleted)
        }
        ConfigCommand::AutoDisableChannel { id, reason, at } => {
            channels::auto_disable(connection, id, &reason, at).map(Applied::Channel)
        }
        ConfigCommand::ReenableChannel { id, at } => {
            channels::reenable(connection, id, at).map(Applied::Channel)
        }
        ConfigCommand::CreateToken {
            key_hash,
            key_prefix,
            spec,
            at,
        } => tokens::insert(connection, &key_hash, &key_prefix, &spec, at).map(Applied::Token),
        ConfigCommand::UpdateToken { id, spec } => {
            tokens::update(connection, id, &spec).map(Applied::Token)
        }
        ConfigCommand::DeleteToken { id } => {
            tokens::delete(connection, id).map(|()| Applied::Deleted)
        }
        ConfigCommand::UpdateSettings { patch, at } => {
            settings::upsert(connection, &patch, at).map(|()| Applied::Settings)
        }
        ConfigCommand::SetAdminToken {
            sha256,
            if_unset,
            node_id,
            at,
        } => settings::set_admin_token(connection, &sha256, if_unset, node_id.0, at)
            .map(|()| Applied::Settings),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::model::{
        ChannelId, ChannelSpec, ChannelStatus, ChannelType, KeyHash, TokenSpec, TokenStatus,
    };

    fn spec(name: &str) -> ChannelSpec {
        let mut settings = serde_json::Map::new();
        settings.insert(
            "future_option".into(),
            serde_json::json!({"nested": [1, 2]}),
        );
        ChannelSpec {
            name: name.to_string(),
            kind: ChannelType::Openai,
            base_url: "http://127.0.0.1:9/v1".to_string(),
            keys: vec!["sk-a".to_string(), "sk-b".to_string()],
            models: vec!["gpt-4o-mini".to_string()],
            model_mapping: BTreeMap::from([(
                "gpt-4o-mini".to_string(),
                "upstream-mini".to_string(),
            )]),
            groups: vec!["default".to_string(), "vip".to_string()],
            priority: 5,
            weight: 3,
            status: ChannelStatus::Enabled,
            settings,
        }
    }

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, second).unwrap()
    }

    /// Channels and tokens round-trip through SQLite and survive a reopen.
    #[tokio::test]
    async fn config_round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let Applied::Channel(channel) = store
            .apply(ConfigCommand::CreateChannel {
                spec: spec("one"),
                at: at(1),
            })
            .await
            .unwrap()
        else {
            panic!("expected a channel");
        };
        assert_eq!(channel.spec, spec("one"));
        let token_spec = TokenSpec {
            name: "client".into(),
            status: TokenStatus::Enabled,
            expires_at: Some(at(30)),
            group: "vip".into(),
            models: Some(vec!["gpt-4o-mini".into()]),
            channel_id: Some(channel.id),
        };
        store
            .apply(ConfigCommand::CreateToken {
                key_hash: KeyHash::of("sk-full"),
                key_prefix: "sk-full".into(),
                spec: token_spec.clone(),
                at: at(2),
            })
            .await
            .unwrap();
        drop(store);

        let reopened = Store::open(dir.path()).unwrap();
        let (channels, tokens) = reopened.load().await.unwrap();
        assert_eq!(channels, vec![channel]);
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].spec, token_spec);
        assert_eq!(tokens[0].key_hash, KeyHash::of("sk-full"));
    }

    /// Updating or deleting an unknown id is NotFound and changes nothing.
    #[tokio::test]
    async fn unknown_ids_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let missing = store
            .apply(ConfigCommand::UpdateChannel {
                id: ChannelId(42),
                spec: spec("x"),
                at: at(1),
            })
            .await;
        assert!(matches!(missing, Err(Error::NotFound("channel"))));
        let missing = store
            .apply(ConfigCommand::DeleteChannel { id: ChannelId(42) })
            .await;
        assert!(matches!(missing, Err(Error::NotFound("channel"))));
        assert!(store.load().await.unwrap().0.is_empty());
    }

    /// Auto-disable records why and when, only on an enabled channel that
    /// allows it; re-enabling or an admin's enable clears the record.
    #[tokio::test]
    async fn auto_disable_and_reenable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let create = |spec| ConfigCommand::CreateChannel { spec, at: at(1) };
        let Applied::Channel(channel) = store.apply(create(spec("one"))).await.unwrap() else {
            panic!("expected a channel");
        };
        let id = channel.id;
        let disable = |reason: &str| ConfigCommand::AutoDisableChannel {
            id,
            reason: reason.to_string(),
            at: at(2),
        };
        let Applied::Channel(disabled) = store.apply(disable("401")).await.unwrap() else {
            panic!("expected a channel");
        };
        assert_eq!(disabled.spec.status, ChannelStatus::AutoDisabled);
        let record = crate::model::AutoDisabled {
            reason: "401".into(),
            at: at(2),
        };
        assert_eq!(disabled.auto_disabled, Some(record.clone()));
        // A second report keeps the first reason; a PATCH that keeps the status keeps it too.
        store.apply(disable("later")).await.unwrap();
        let mut renamed = disabled.spec.clone();
        renamed.name = "renamed".into();
        let update = |spec| ConfigCommand::UpdateChannel {
            id,
            spec,
            at: at(3),
        };
        let Applied::Channel(kept) = store.apply(update(renamed.clone())).await.unwrap() else {
            panic!("expected a channel");
        };
        assert_eq!(kept.auto_disabled, Some(record));
        let Applied::Channel(back) = store
            .apply(ConfigCommand::ReenableChannel { id, at: at(4) })
            .await
            .unwrap()
        else {
            panic!("expected a channel");
        };
        assert_eq!(
            (back.spec.status, back.auto_disabled),
            (ChannelStatus::Enabled, None)
        );
        // An admin's enable clears the record as well.
        store.apply(disable("again")).await.unwrap();
        renamed.status = ChannelStatus::Enabled;
        let Applied::Channel(enabled) = store.apply(update(renamed)).await.unwrap() else {
            panic!("expected a channel");
        };
        assert_eq!(enabled.auto_disabled, None);
        // A channel with `auto_disable: false` is left alone.
        let mut stubborn = spec("stubborn");
        stubborn
            .settings
            .insert("auto_disable".into(), false.into());
        let Applied::Channel(stubborn) = store.apply(create(stubborn)).await.unwrap() else {
            panic!("expected a channel");
        };
        let command = ConfigCommand::AutoDisableChannel {
            id: stubborn.id,
            reason: "401".into(),
            at: at(5),
        };
        let Applied::Channel(after) = store.apply(command).await.unwrap() else {
            panic!("expected a channel");
        };
        assert_eq!(after, stubborn);
    }

    /// A database from a newer build is refused rather than misread.
    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let connection = Connection::open(dir.path().join(SQLITE_FILE)).unwrap();
        connection.pragma_update(None, "user_version", 999).unwrap();
        drop(connection);
        assert!(matches!(
            Store::open(dir.path()),
            Err(Error::TooNew { found: 999, .. })
        ));
    }

    /// Log rows are filtered by any channel tried, by time, and paginated newest first.
    #[tokio::test]
    async fn logs_filter_and_paginate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rows: Vec<RequestLog> = (0..5)
            .map(|index| RequestLog {
                id: 0,
                time: at(index),
                request_id: format!("req-{index}"),
                token_id: Some(TokenId(1)),
                channel_ids: if index % 2 == 0 {
                    vec![ChannelId(1), ChannelId(2)]
                } else {
                    vec![ChannelId(3)]
                },
                model: "m".into(),
                upstream_model: Some("m".into()),
                endpoint: "/v1/chat/completions".into(),
                stream: false,
                status: 200,
                error_code: None,
                prompt_tokens: 1,
                completion_tokens: 2,
                total_tokens: 3,
                estimated: false,
                latency_ms: 4,
                ttft_ms: None,
            })
            .collect();
        store.insert_logs(rows).await.unwrap();
        let filter = LogFilter {
            channel_id: Some(ChannelId(1)),
            page: 1,
            per_page: 2,
            ..LogFilter::default()
        };
        let (page, total) = store.query_logs(filter).await.unwrap();
        assert_eq!(total, 3);
        let ids: Vec<&str> = page.iter().map(|row| row.request_id.as_str()).collect();
        assert_eq!(ids, ["req-4", "req-2"]);
        let filter = LogFilter {
            since: Some(at(1)),
            until: Some(at(3)),
            page: 1,
            per_page: 50,
            ..LogFilter::default()
        };
        let (page, total) = store.query_logs(filter).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(page[0].request_id, "req-2");
    }
}
