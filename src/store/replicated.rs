//! Storage for the raft state machine (`cluster::state_machine`): applying
//! committed entries exactly once, and exporting/importing the replicated
//! state for snapshots. Unused by a single node.
//!
//! Two engines cannot share one transaction, so each keeps its own
//! "applied up to" mark, written atomically with its data:
//! - sled: the counters tree holds `raft:applied` (the last log index whose
//!   usage commands are in the counters) and `raft:origin:{node}` (the
//!   highest batch sequence applied per node), updated in the same sled
//!   transaction as the counts;
//! - SQLite: the `raft_state` table (last applied log id, membership, as
//!   opaque JSON from the caller), written in the same transaction as the
//!   config commands.
//!
//! Each batch of entries writes sled first (and flushes), then commits
//! SQLite. A crash in between leaves SQLite's mark behind; raft re-applies
//! those entries, and their usage part is skipped because the sled mark
//! already covers them. So every command is applied once per store.
//!
//! The `raft_state` table is created on first use rather than by a
//! migration, so a single node's schema does not change.

use rusqlite::{Connection, Transaction, params};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::counters::{self, decode_u64};
use super::usage::{self, Overlay};
use super::{Error, Store, apply_in};
use crate::command::{Applied, Command, ConfigCommand};
use crate::daily::UsageDelta;
use crate::lease::{Ledger, NodeId, NodeLease};
use crate::model::ChannelId;

const APPLIED_KEY: &[u8] = b"raft:applied";
const ORIGIN_PREFIX: &str = "raft:origin:";
/// The config tables a snapshot carries, in insert order.
const CONFIG_TABLES: &[&str] = &["channels", "tokens", "settings"];

/// One committed raft entry's payload, as the store applies it.
#[derive(Debug, Clone)]
pub struct ReplicatedEntry {
    pub index: u64,
    /// The node and sequence of a counter batch, for deduplication.
    pub origin: Option<(NodeId, u64)>,
    pub commands: Vec<Command>,
}

/// What applying one entry produced.
#[derive(Debug)]
pub struct EntryOutcome {
    /// The entry's origin had already been applied; nothing changed.
    pub duplicate: bool,
    /// One result per command. Errors here are deterministic (every node
    /// gets the same one), so they are answers, not failures.
    pub results: Vec<Result<Applied, Error>>,
}

/// One SQLite value, serde-friendly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Every row of one table, column by column as SQLite stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDump {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<SqlValue>>,
}

/// The replicated state of one node: config rows, the AUTOINCREMENT
/// high-water marks, recent day counts and the per-node batch sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicatedState {
    pub tables: Vec<TableDump>,
    /// `sqlite_sequence` rows for channels and tokens. Without them a node
    /// installing a snapshot would reuse the id of a deleted channel.
    pub sequences: Vec<(String, i64)>,
    pub counters: Vec<UsageDelta>,
    /// `(node_id, highest applied sequence)`.
    pub origins: Vec<(NodeId, u64)>,
    /// Every node's lease per channel and day (same days as `counters`).
    #[serde(default)]
    pub leases: Vec<NodeLease>,
}

impl Store {
    /// Applies committed entries: usage commands to sled (one transaction,
    /// flushed), then config commands and `raft_state` to SQLite (one
    /// transaction). See the module docs for the crash window.
    pub async fn apply_replicated(
        &self,
        entries: Vec<ReplicatedEntry>,
        raft_state: Vec<(String, String)>,
    ) -> Result<Vec<EntryOutcome>, Error> {
        let tree = self.counters.clone();
        self.write(move |connection| {
            ensure_table(connection)?;
            let applied = apply_usage(&tree, &entries)?;
            let transaction = connection.transaction()?;
            let mut outcomes = Vec::with_capacity(entries.len());
            for (entry, usage) in entries.into_iter().zip(applied) {
                outcomes.push(apply_config(&transaction, entry, usage)?);
            }
            write_raft_state(&transaction, &raft_state)?;
            transaction.commit()?;
            Ok(outcomes)
        })
        .await
    }

    /// The highest counter-batch sequence applied from `node` (0: none).
    pub fn applied_origin(&self, node: NodeId) -> Result<u64, Error> {
        Ok(read_origins(&self.counters)?
            .into_iter()
            .find(|(id, _)| *id == node)
            .map_or(0, |(_, sequence)| sequence))
    }

    /// Every lease `node` holds (for its counters at start-up and after a
    /// snapshot install).
    pub fn leases_of(&self, node: NodeId) -> Result<Vec<NodeLease>, Error> {
        Ok(counters::read_leases(&self.counters)?
            .into_iter()
            .filter(|lease| lease.node_id == node)
            .collect())
    }

    /// The `raft_state` rows (empty on a node that never applied an entry).
    pub async fn raft_state(&self) -> Result<Vec<(String, String)>, Error> {
        self.write(|connection| {
            ensure_table(connection)?;
            let mut statement = connection.prepare("SELECT key, value FROM raft_state")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Reads the replicated state, with the day counts of the `days` days
    /// up to the newest stored day. The caller must stop `apply_replicated`
    /// meanwhile, so the two engines are read at the same log position.
    pub async fn export_replicated(&self, days: i64) -> Result<ReplicatedState, Error> {
        let tree = self.counters.clone();
        self.write(move |connection| {
            let transaction = connection.transaction()?;
            let mut tables = Vec::new();
            for table in CONFIG_TABLES {
                tables.push(dump_table(&transaction, table)?);
            }
            super::channels::reveal_keys(&transaction, &mut tables)?;
            let sequences = read_sequences(&transaction)?;
            let all = counters::since(&tree, chrono::NaiveDate::MIN)?;
            let newest = all.iter().map(|delta| delta.date).max();
            let cutoff =
                newest.map(|newest| newest - chrono::Duration::days(days.saturating_sub(1)));
            let counters = match cutoff {
                Some(cutoff) => all
                    .into_iter()
                    .filter(|delta| delta.date >= cutoff)
                    .collect(),
                None => Vec::new(),
            };
            let leases = counters::read_leases(&tree)?
                .into_iter()
                .filter(|lease| cutoff.is_none_or(|cutoff| lease.date >= cutoff))
                .collect();
            Ok(ReplicatedState {
                tables,
                sequences,
                counters,
                origins: read_origins(&tree)?,
                leases,
            })
        })
        .await
    }

    /// Replaces the replicated state with `state` (a snapshot install).
    /// sled first (one atomic batch: counters, origins and the applied mark
    /// `applied_index`, flushed), then SQLite in one transaction (config
    /// tables, sequences and `raft_state`). A crash in between is repaired
    /// by raft re-sending the log or the snapshot; see the module docs.
    pub async fn import_replicated(
        &self,
        state: ReplicatedState,
        applied_index: Option<u64>,
        raft_state: Vec<(String, String)>,
    ) -> Result<(), Error> {
        let tree = self.counters.clone();
        self.write(move |connection| {
            ensure_table(connection)?;
            replace_counters(&tree, &state, applied_index)?;
            let transaction = connection.transaction()?;
            let mut state = state;
            super::channels::seal_dump_keys(&transaction, &mut state.tables)?;
            replace_tables(&transaction, &state)?;
            super::channels::seal_plain_keys(&transaction)?;
            transaction.execute("DELETE FROM raft_state", [])?;
            write_raft_state(&transaction, &raft_state)?;
            transaction.commit()?;
            Ok(())
        })
        .await
    }
}

fn ensure_table(connection: &Connection) -> Result<(), Error> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS raft_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )?;
    Ok(())
}

fn write_raft_state(connection: &Connection, rows: &[(String, String)]) -> Result<(), Error> {
    let mut statement = connection.prepare(
        "INSERT INTO raft_state (key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?;
    for (key, value) in rows {
        statement.execute(params![key, value])?;
    }
    Ok(())
}

fn origin_key(node_id: NodeId) -> String {
    format!("{ORIGIN_PREFIX}{node_id}")
}

/// The counters half of one entry.
enum UsageOutcome {
    /// A counter batch whose origin was applied before: skipped.
    Duplicate,
    /// An entry the counters' mark already covers (a replay after a crash
    /// between the two engines): its usage part is not applied again.
    Replayed,
    /// Applied: the result of each usage command, in order (`None` for a
    /// config command).
    Fresh(Vec<Option<Applied>>),
}

/// The counters half of a batch of entries: usage commands, and the day
/// counts of deleted channels, in one atomic sled batch with the mark.
fn apply_usage(tree: &sled::Tree, entries: &[ReplicatedEntry]) -> Result<Vec<UsageOutcome>, Error> {
    let mark = tree.get(APPLIED_KEY)?.map(|bytes| decode_u64(&bytes));
    let mut overlay = Overlay::new(tree);
    let mut last = None;
    let mut outcomes = Vec::with_capacity(entries.len());
    for entry in entries {
        if mark.is_some_and(|mark| entry.index <= mark) {
            outcomes.push(UsageOutcome::Replayed);
            continue;
        }
        let outcome = apply_entry_usage(&mut overlay, entry)?;
        // Only entries that touch the counters move their mark, so
        // config-only batches cost no sled fsync.
        let touches = entry.origin.is_some()
            || entry.commands.iter().any(|command| match command {
                Command::Usage(_) => true,
                Command::Config(config) => config.deleted_channel().is_some(),
            });
        if touches {
            last = Some(entry.index);
        }
        outcomes.push(outcome);
    }
    if let Some(last) = last {
        overlay.insert(APPLIED_KEY, last.to_be_bytes());
    }
    overlay.commit()?;
    Ok(outcomes)
}

fn apply_entry_usage(
    overlay: &mut Overlay<'_>,
    entry: &ReplicatedEntry,
) -> Result<UsageOutcome, Error> {
    let node = match entry.origin {
        Some((node, sequence)) => {
            let key = origin_key(node);
            if overlay
                .get(key.as_bytes())?
                .is_some_and(|seen| sequence <= decode_u64(&seen))
            {
                return Ok(UsageOutcome::Duplicate);
            }
            overlay.insert(key, sequence.to_be_bytes());
            Some(node)
        }
        None => None,
    };
    let mut results = Vec::with_capacity(entry.commands.len());
    for command in &entry.commands {
        match command {
            Command::Usage(command) => results.push(Some(usage::apply(overlay, command, node)?)),
            Command::Config(command) => {
                if let (None, Some(id)) = (node, command.deleted_channel()) {
                    usage::forget_channel(overlay, id)?;
                }
                results.push(None);
            }
        }
    }
    Ok(UsageOutcome::Fresh(results))
}

/// The SQLite half of one entry. Config commands in an entry with an origin
/// are refused: origins mark counter batches only, and their deduplication
/// lives in sled.
fn apply_config(
    transaction: &Transaction<'_>,
    entry: ReplicatedEntry,
    usage: UsageOutcome,
) -> Result<EntryOutcome, Error> {
    let mut usage_results = match usage {
        UsageOutcome::Duplicate => {
            return Ok(EntryOutcome {
                duplicate: true,
                results: Vec::new(),
            });
        }
        UsageOutcome::Replayed => Vec::new(),
        UsageOutcome::Fresh(results) => results,
    }
    .into_iter();
    let mut results = Vec::with_capacity(entry.commands.len());
    for command in entry.commands {
        let usage_result = usage_results.next().flatten();
        match command {
            Command::Usage(_) => results.push(Ok(usage_result.unwrap_or(Applied::Counted))),
            Command::Config(_) if entry.origin.is_some() => results.push(Err(Error::Corrupt(
                "a counter batch may carry only usage commands".to_string(),
            ))),
            Command::Config(command) => results.push(apply_one(transaction, command)?),
        }
    }
    Ok(EntryOutcome {
        duplicate: false,
        results,
    })
}

/// Applies one config command in a savepoint, so a failed command leaves
/// nothing behind. Deterministic failures become the command's answer;
/// anything else (I/O) aborts the whole batch.
fn apply_one(
    transaction: &Transaction<'_>,
    command: ConfigCommand,
) -> Result<Result<Applied, Error>, Error> {
    transaction.execute_batch("SAVEPOINT command")?;
    match apply_in(transaction, command) {
        Ok(applied) => {
            transaction.execute_batch("RELEASE command")?;
            Ok(Ok(applied))
        }
        Err(error) => {
            transaction.execute_batch("ROLLBACK TO command; RELEASE command")?;
            if is_deterministic(&error) {
                Ok(Err(error))
            } else {
                Err(error)
            }
        }
    }
}

/// Whether every node applying the same command to the same state gets
/// this error too.
fn is_deterministic(error: &Error) -> bool {
    match error {
        Error::NotFound(_) | Error::Corrupt(_) => true,
        Error::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
            failure.code == rusqlite::ErrorCode::ConstraintViolation
        }
        _ => false,
    }
}

fn read_origins(tree: &sled::Tree) -> Result<Vec<(NodeId, u64)>, Error> {
    let mut origins = Vec::new();
    for item in tree.scan_prefix(ORIGIN_PREFIX) {
        let (key, value) = item?;
        let node = std::str::from_utf8(&key)
            .ok()
            .and_then(|text| text.strip_prefix(ORIGIN_PREFIX))
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| Error::Corrupt("bad raft origin key".to_string()))?;
        origins.push((NodeId(node), decode_u64(&value)));
    }
    Ok(origins)
}

fn replace_counters(
    tree: &sled::Tree,
    state: &ReplicatedState,
    applied_index: Option<u64>,
) -> Result<(), Error> {
    let mut batch = sled::Batch::default();
    for item in tree.iter() {
        let (key, _) = item?;
        batch.remove(key);
    }
    for delta in &state.counters {
        batch.insert(
            counters::key(delta.channel_id, delta.date).as_bytes(),
            &delta.tokens.to_be_bytes(),
        );
    }
    for (node_id, sequence) in &state.origins {
        batch.insert(origin_key(*node_id).as_bytes(), &sequence.to_be_bytes());
    }
    let mut ledgers: BTreeMap<(ChannelId, NaiveDate), Ledger> = BTreeMap::new();
    for lease in &state.leases {
        ledgers
            .entry((lease.channel_id, lease.date))
            .or_default()
            .restore(lease);
    }
    for ((channel_id, date), ledger) in &ledgers {
        let bytes = serde_json::to_vec(ledger)
            .map_err(|error| Error::Corrupt(format!("lease record: {error}")))?;
        batch.insert(counters::lease_key(*channel_id, *date).as_bytes(), bytes);
    }
    if let Some(index) = applied_index {
        batch.insert(APPLIED_KEY, &index.to_be_bytes());
    }
    tree.apply_batch(batch)?;
    tree.flush()?;
    Ok(())
}

fn dump_table(connection: &Connection, table: &str) -> Result<TableDump, Error> {
    let mut statement = connection.prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))?;
    let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
    let width = columns.len();
    let rows = statement.query_map([], |row| {
        (0..width)
            .map(|index| {
                row.get::<_, rusqlite::types::Value>(index)
                    .map(SqlValue::from)
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(TableDump {
        table: table.to_string(),
        columns,
        rows: rows.collect::<Result<Vec<_>, _>>()?,
    })
}

fn read_sequences(connection: &Connection) -> Result<Vec<(String, i64)>, Error> {
    let mut statement = connection.prepare(
        "SELECT name, seq FROM sqlite_sequence WHERE name IN ('channels', 'tokens') ORDER BY name",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn replace_tables(connection: &Connection, state: &ReplicatedState) -> Result<(), Error> {
    for table in CONFIG_TABLES {
        connection.execute(&format!("DELETE FROM {table}"), [])?;
    }
    connection.execute(
        "DELETE FROM sqlite_sequence WHERE name IN ('channels', 'tokens')",
        [],
    )?;
    for dump in &state.tables {
        insert_rows(connection, dump)?;
    }
    for (name, seq) in &state.sequences {
        if name == "channels" || name == "tokens" {
            connection.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                params![name, seq],
            )?;
        }
    }
    Ok(())
}

/// Inserts a dump's rows. Table and column names come from another node,
/// so they are checked before they reach SQL text.
fn insert_rows(connection: &Connection, dump: &TableDump) -> Result<(), Error> {
    let plain = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte == b'_')
    };
    if !CONFIG_TABLES.contains(&dump.table.as_str()) || !dump.columns.iter().all(|c| plain(c)) {
        return Err(Error::Corrupt(format!("snapshot table {}", dump.table)));
    }
    let placeholders = vec!["?"; dump.columns.len()].join(", ");
    let mut statement = connection.prepare(&format!(
        "INSERT INTO {} ({}) VALUES ({placeholders})",
        dump.table,
        dump.columns.join(", ")
    ))?;
    for row in &dump.rows {
        let values = row.iter().cloned().map(rusqlite::types::Value::from);
        statement.execute(rusqlite::params_from_iter(values))?;
    }
    Ok(())
}

impl From<rusqlite::types::Value> for SqlValue {
    fn from(value: rusqlite::types::Value) -> Self {
        use rusqlite::types::Value;
        match value {
            Value::Null => SqlValue::Null,
            Value::Integer(number) => SqlValue::Integer(number),
            Value::Real(number) => SqlValue::Real(number),
            Value::Text(text) => SqlValue::Text(text),
            Value::Blob(bytes) => SqlValue::Blob(bytes),
        }
    }
}

impl From<SqlValue> for rusqlite::types::Value {
    fn from(value: SqlValue) -> Self {
        use rusqlite::types::Value;
        match value {
            SqlValue::Null => Value::Null,
            SqlValue::Integer(number) => Value::Integer(number),
            SqlValue::Real(number) => Value::Real(number),
            SqlValue::Text(text) => Value::Text(text),
            SqlValue::Blob(bytes) => Value::Blob(bytes),
        }
    }
}
