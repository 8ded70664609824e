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
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::{Error, Store, apply_in, counters};
use crate::command::{Applied, Command};
use crate::daily::UsageDelta;
use crate::model::ChannelId;

const APPLIED_KEY: &[u8] = b"raft:applied";
const ORIGIN_PREFIX: &str = "raft:origin:";
/// `raft:lease:{channel}:{yyyymmdd}` → JSON `{node: [granted, used]}`.
const LEASE_PREFIX: &str = "raft:lease:";
/// The config tables a snapshot carries, in insert order.
const CONFIG_TABLES: &[&str] = &["channels", "tokens", "settings"];

/// One committed raft entry's payload, as the store applies it.
#[derive(Debug, Clone)]
pub struct ReplicatedEntry {
    pub index: u64,
    /// `(node_id, sequence)` of a counter batch, for deduplication.
    pub origin: Option<(u64, u64)>,
    pub commands: Vec<Command>,
}

/// One node's lease on one channel's day, as the replicated state keeps it:
/// `granted` in all, and `used` = the replicated usage that came in this
/// node's batches. Its outstanding grant is `granted − used` (0 if below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub channel_id: ChannelId,
    pub date: NaiveDate,
    pub node_id: u64,
    pub granted: u64,
    pub used: u64,
    /// Set on the lease a `GrantLease` reports: what that command added
    /// (0: no headroom left) and the limit it was asked under.
    #[serde(default)]
    pub added: u64,
    #[serde(default)]
    pub limit: u64,
}

/// What applying one entry produced.
#[derive(Debug)]
pub struct EntryOutcome {
    /// The entry's origin had already been applied; nothing changed.
    pub duplicate: bool,
    /// The leases this entry's `GrantLease` commands left, in order.
    pub leases: Vec<Lease>,
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
    pub origins: Vec<(u64, u64)>,
    /// Every node's lease per channel and day (same days as `counters`).
    #[serde(default)]
    pub leases: Vec<Lease>,
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
            for (entry, (duplicate, leases)) in entries.into_iter().zip(applied) {
                let mut outcome = apply_config(&transaction, entry, duplicate)?;
                outcome.leases = leases;
                outcomes.push(outcome);
            }
            write_raft_state(&transaction, &raft_state)?;
            transaction.commit()?;
            Ok(outcomes)
        })
        .await
    }

    /// The highest counter-batch sequence applied from `node` (0: none).
    pub fn applied_origin(&self, node: u64) -> Result<u64, Error> {
        Ok(read_origins(&self.counters)?
            .into_iter()
            .find(|(id, _)| *id == node)
            .map_or(0, |(_, sequence)| sequence))
    }

    /// Every lease `node` holds (for its counters at start-up and after a
    /// snapshot install).
    pub fn leases_of(&self, node: u64) -> Result<Vec<Lease>, Error> {
        Ok(read_leases(&self.counters)?
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
            let leases = read_leases(&tree)?
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

/// Commands applied to sled (counts and leases), not to SQLite.
fn is_usage(command: &Command) -> bool {
    matches!(
        command,
        Command::AddUsage { .. } | Command::ResetUsage { .. } | Command::GrantLease { .. }
    )
}

fn lease_key(channel_id: ChannelId, date: NaiveDate) -> String {
    format!("{LEASE_PREFIX}{}:{}", channel_id.0, date.format("%Y%m%d"))
}

/// One channel-day's leases: node → (granted, used).
pub type LeaseMap = BTreeMap<u64, (u64, u64)>;

fn decode_leases(bytes: &[u8]) -> Result<LeaseMap, Error> {
    serde_json::from_slice(bytes).map_err(|error| Error::Corrupt(format!("lease record: {error}")))
}

fn encode_leases(map: &LeaseMap) -> Vec<u8> {
    serde_json::to_vec(map).unwrap_or_default()
}

fn read_lease_map(
    tx: &TransactionalTree,
    key: &str,
) -> Result<LeaseMap, ConflictableTransactionError<Error>> {
    match tx.get(key.as_bytes())? {
        Some(bytes) => decode_leases(&bytes).map_err(ConflictableTransactionError::Abort),
        None => Ok(LeaseMap::new()),
    }
}

/// What a `GrantLease` adds: at least `tokens` (or a `1/(2·voters)` share
/// of the free headroom if larger), never more than the free headroom
/// `limit − replicated − Σ outstanding`, where a node's outstanding grant
/// is its grant minus the replicated usage of its own batches. So the
/// grants never add up to more than the limit.
pub fn lease_grant(map: &LeaseMap, replicated: u64, tokens: u64, limit: u64, voters: u64) -> u64 {
    let outstanding = map.values().fold(0u64, |sum, (granted, used)| {
        sum.saturating_add(granted.saturating_sub(*used))
    });
    let free = limit.saturating_sub(replicated).saturating_sub(outstanding);
    let share = free / voters.max(1).saturating_mul(2);
    tokens.max(share).min(free)
}

fn decode_u64(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

fn origin_key(node_id: u64) -> String {
    format!("{ORIGIN_PREFIX}{node_id}")
}

/// The sled half of a batch: returns, per entry, whether it was a duplicate
/// and the leases its `GrantLease` commands left.
fn apply_usage(
    tree: &sled::Tree,
    entries: &[ReplicatedEntry],
) -> Result<Vec<(bool, Vec<Lease>)>, Error> {
    let applied = tree.get(APPLIED_KEY)?.map(|bytes| decode_u64(&bytes));
    let fresh = |entry: &ReplicatedEntry| applied.is_none_or(|mark| entry.index > mark);
    // Only entries that touch sled move its mark, so config-only batches
    // cost no sled fsync.
    let touches_sled =
        |entry: &ReplicatedEntry| entry.origin.is_some() || entry.commands.iter().any(is_usage);
    let Some(last) = entries
        .iter()
        .filter(|entry| fresh(entry) && touches_sled(entry))
        .map(|e| e.index)
        .max()
    else {
        // Every entry is a replay whose usage part is already in sled.
        return Ok(entries.iter().map(|_| (false, Vec::new())).collect());
    };
    let result = tree.transaction(|tx| {
        let mut duplicates = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut leases = Vec::new();
            let duplicate = fresh(entry) && apply_entry_usage(tx, entry, &mut leases)?;
            duplicates.push((duplicate, leases));
        }
        tx.insert(APPLIED_KEY, &last.to_be_bytes())?;
        Ok(duplicates)
    });
    let duplicates = result.map_err(|error: TransactionError<Error>| match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => Error::Sled(error),
    })?;
    tree.flush()?;
    Ok(duplicates)
}

/// Applies one entry's usage commands inside the sled transaction; returns
/// whether the entry was a duplicate (and so skipped).
fn apply_entry_usage(
    tx: &TransactionalTree,
    entry: &ReplicatedEntry,
    leases: &mut Vec<Lease>,
) -> Result<bool, ConflictableTransactionError<Error>> {
    if let Some((node_id, sequence)) = entry.origin {
        let key = origin_key(node_id);
        let seen = tx.get(key.as_bytes())?.map(|bytes| decode_u64(&bytes));
        if seen.is_some_and(|seen| sequence <= seen) {
            return Ok(true);
        }
        tx.insert(key.as_bytes(), &sequence.to_be_bytes())?;
    }
    for command in &entry.commands {
        match command {
            Command::AddUsage { deltas } => {
                for delta in deltas {
                    let key = counters::key(delta.channel_id, delta.date);
                    let old = tx
                        .get(key.as_bytes())?
                        .map_or(0, |bytes| decode_u64(&bytes));
                    let total = old.saturating_add(delta.tokens);
                    tx.insert(key.as_bytes(), &total.to_be_bytes())?;
                    // Attribute the usage to the batch's node, for its lease.
                    if let Some((node_id, _)) = entry.origin
                        && delta.tokens > 0
                    {
                        let key = lease_key(delta.channel_id, delta.date);
                        let mut map = read_lease_map(tx, &key)?;
                        let slot = map.entry(node_id).or_default();
                        slot.1 = slot.1.saturating_add(delta.tokens);
                        tx.insert(key.as_bytes(), encode_leases(&map))?;
                    }
                }
            }
            Command::ResetUsage {
                channel_id, date, ..
            } => {
                let key = counters::key(*channel_id, *date);
                tx.insert(key.as_bytes(), &0u64.to_be_bytes())?;
                tx.remove(lease_key(*channel_id, *date).as_bytes())?;
            }
            Command::GrantLease {
                channel_id,
                date,
                node_id,
                tokens,
                limit,
                voters,
            } => {
                let replicated = tx
                    .get(counters::key(*channel_id, *date).as_bytes())?
                    .map_or(0, |bytes| decode_u64(&bytes));
                let key = lease_key(*channel_id, *date);
                let mut map = read_lease_map(tx, &key)?;
                let added = lease_grant(&map, replicated, *tokens, *limit, *voters);
                let slot = map.entry(*node_id).or_default();
                slot.0 = slot.0.saturating_add(added);
                let (granted, used) = *slot;
                tx.insert(key.as_bytes(), encode_leases(&map))?;
                leases.push(Lease {
                    channel_id: *channel_id,
                    date: *date,
                    node_id: *node_id,
                    granted,
                    used,
                    added,
                    limit: *limit,
                });
            }
            _ => {}
        }
    }
    Ok(false)
}

/// The SQLite half of one entry. Config commands in an entry with an origin
/// are refused: origins mark counter batches only, and their deduplication
/// lives in sled.
fn apply_config(
    transaction: &Transaction<'_>,
    entry: ReplicatedEntry,
    duplicate: bool,
) -> Result<EntryOutcome, Error> {
    if duplicate {
        return Ok(EntryOutcome {
            duplicate,
            leases: Vec::new(),
            results: Vec::new(),
        });
    }
    let mut results = Vec::with_capacity(entry.commands.len());
    for command in entry.commands {
        if is_usage(&command) {
            results.push(Ok(Applied::Counted));
        } else if entry.origin.is_some() {
            results.push(Err(Error::Corrupt(
                "a counter batch may carry only usage commands".to_string(),
            )));
        } else {
            results.push(apply_one(transaction, command)?);
        }
    }
    Ok(EntryOutcome {
        duplicate,
        leases: Vec::new(),
        results,
    })
}

/// Applies one config command in a savepoint, so a failed command leaves
/// nothing behind. Deterministic failures become the command's answer;
/// anything else (I/O) aborts the whole batch.
fn apply_one(
    transaction: &Transaction<'_>,
    command: Command,
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

fn read_origins(tree: &sled::Tree) -> Result<Vec<(u64, u64)>, Error> {
    let mut origins = Vec::new();
    for item in tree.scan_prefix(ORIGIN_PREFIX) {
        let (key, value) = item?;
        let node = std::str::from_utf8(&key)
            .ok()
            .and_then(|text| text.strip_prefix(ORIGIN_PREFIX))
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| Error::Corrupt("bad raft origin key".to_string()))?;
        origins.push((node, decode_u64(&value)));
    }
    Ok(origins)
}

/// Removes the lease records of days before `before` and of channels
/// `keep` rejects. Leases only ever matter for the current day, so the
/// caller keeps a couple of days (zones differ) and drops the rest.
pub fn prune_leases(
    tree: &sled::Tree,
    before: NaiveDate,
    keep: &dyn Fn(ChannelId) -> bool,
) -> Result<usize, Error> {
    let mut removed = 0;
    for item in tree.scan_prefix(LEASE_PREFIX) {
        let (key, _) = item?;
        let parsed = std::str::from_utf8(&key)
            .ok()
            .and_then(|text| text.strip_prefix(LEASE_PREFIX))
            .and_then(|text| text.split_once(':'))
            .and_then(|(channel, date)| {
                Some((
                    ChannelId(channel.parse().ok()?),
                    NaiveDate::parse_from_str(date, "%Y%m%d").ok()?,
                ))
            });
        if let Some((channel_id, date)) = parsed
            && (date < before || !keep(channel_id))
        {
            tree.remove(&key)?;
            removed += 1;
        }
    }
    if removed > 0 {
        tree.flush()?;
    }
    Ok(removed)
}

fn read_leases(tree: &sled::Tree) -> Result<Vec<Lease>, Error> {
    let mut leases = Vec::new();
    for item in tree.scan_prefix(LEASE_PREFIX) {
        let (key, value) = item?;
        let (channel, date) = std::str::from_utf8(&key)
            .ok()
            .and_then(|text| text.strip_prefix(LEASE_PREFIX))
            .and_then(|text| text.split_once(':'))
            .ok_or_else(|| Error::Corrupt("bad lease key".to_string()))?;
        let channel_id = ChannelId(
            channel
                .parse()
                .map_err(|_| Error::Corrupt("bad lease key".to_string()))?,
        );
        let date = NaiveDate::parse_from_str(date, "%Y%m%d")
            .map_err(|_| Error::Corrupt("bad lease key".to_string()))?;
        for (node_id, (granted, used)) in decode_leases(&value)? {
            leases.push(Lease {
                channel_id,
                date,
                node_id,
                granted,
                used,
                added: 0,
                limit: 0,
            });
        }
    }
    Ok(leases)
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
    let mut leases: BTreeMap<(ChannelId, NaiveDate), LeaseMap> = BTreeMap::new();
    for lease in &state.leases {
        leases
            .entry((lease.channel_id, lease.date))
            .or_default()
            .insert(lease.node_id, (lease.granted, lease.used));
    }
    for ((channel_id, date), map) in &leases {
        batch.insert(lease_key(*channel_id, *date).as_bytes(), encode_leases(map));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A grant is at least the asked amount or a 1/(2N) share of the free
    /// headroom, never more than the free headroom: limit − replicated −
    /// Σ outstanding (grant − own replicated usage, floored at 0).
    #[test]
    fn grants_never_exceed_the_free_headroom() {
        let mut map = LeaseMap::new();
        // Empty: free 20,000, share 20,000 / 6.
        assert_eq!(lease_grant(&map, 0, 1600, 20_000, 3), 3333);
        map.insert(1, (3333, 0));
        map.insert(2, (3000, 4000));
        // Node 2 overshot its grant: outstanding 0, its usage in replicated.
        // free = 20,000 − 4,000 − 3,333 = 12,667; share 2,111.
        assert_eq!(lease_grant(&map, 4000, 1600, 20_000, 3), 2111);
        // Near the end the asked minimum wins, clamped to what is free.
        assert_eq!(lease_grant(&map, 15_000, 1600, 20_000, 3), 1600);
        assert_eq!(lease_grant(&map, 16_000, 1600, 20_000, 3), 667);
        assert_eq!(lease_grant(&map, 17_000, 1600, 20_000, 3), 0);
    }

    /// Old days and deleted channels lose their lease records; the rest and
    /// every other key stay.
    #[test]
    fn pruning_leases_keeps_recent_days_of_live_channels() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("counters").unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let mut map = LeaseMap::new();
        map.insert(1, (100, 10));
        for (channel, date) in [(1, day(20)), (1, day(27)), (1, day(28)), (2, day(28))] {
            tree.insert(lease_key(ChannelId(channel), date), encode_leases(&map))
                .unwrap();
        }
        tree.insert("channel_daily_tokens:1:20261120", &5u64.to_be_bytes())
            .unwrap();
        let removed = prune_leases(&tree, day(26), &|id| id != ChannelId(2)).unwrap();
        assert_eq!(removed, 2);
        let left: Vec<(ChannelId, NaiveDate)> = read_leases(&tree)
            .unwrap()
            .into_iter()
            .map(|lease| (lease.channel_id, lease.date))
            .collect();
        assert_eq!(left, vec![(ChannelId(1), day(27)), (ChannelId(1), day(28))]);
        assert!(
            tree.contains_key("channel_daily_tokens:1:20261120")
                .unwrap()
        );
    }
}
