//! The raft log and vote, in a sled Db of their own: `<data-dir>/raft.sled`.
//!
//! Why a separate Db rather than trees in the counters Db: sled locks its
//! directory, so sharing would mean handing the `Store`'s Db out of `store`;
//! a log fsync would also flush the counters and vice versa; and a node can
//! drop its whole raft state (rejoin from a snapshot) by deleting one
//! directory without touching the counters. The cost is a second Db.
//!
//! Two trees: `raft_log` maps a big-endian index to a JSON entry (so sled's
//! byte order is log order), and `raft_meta` holds the vote, the committed
//! log id and the last purged log id. Every write is flushed before it
//! returns, and `append` reports completion only after that flush.
//!
//! Entries carry `Command`s, and channel commands carry upstream keys, so
//! each entry is sealed with the data dir's key (`store::secrets`) before
//! it reaches sled; entries written before sealing existed still read.

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits return its large StorageError; helpers return the same type"
)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, ErrorSubject, ErrorVerb, RaftLogReader, StorageError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{LogId, NodeId, TypeConfig};
use crate::store::secrets::SecretKey;

/// The context entries are sealed under.
const SEAL_CONTEXT: &str = "raft-log";

/// The sled directory inside the data dir.
pub const RAFT_DIR: &str = "raft.sled";

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const PURGED_KEY: &[u8] = b"last_purged";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// The raft log store; clones share the same trees (the log reader is a clone).
#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    key: SecretKey,
}

impl LogStore {
    /// Opens (creating if needed) `<data_dir>/raft.sled`. Blocking: call it
    /// at start-up.
    pub fn open(data_dir: &Path, key: SecretKey) -> std::result::Result<LogStore, sled::Error> {
        let db = sled::Config::new()
            .path(data_dir.join(RAFT_DIR))
            // Every write flushes explicitly; the background flush is a backstop.
            .flush_every_ms(Some(500))
            .open()?;
        let log = db.open_tree("raft_log")?;
        let meta = db.open_tree("raft_meta")?;
        Ok(LogStore { db, log, meta, key })
    }

    async fn flush(&self, subject: ErrorSubject<NodeId>) -> Result<()> {
        self.db
            .flush_async()
            .await
            .map_err(|error| io_error(subject, ErrorVerb::Write, &error))?;
        Ok(())
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        let subject = ErrorSubject::Store;
        let Some(bytes) = self
            .meta
            .get(key)
            .map_err(|error| io_error(subject.clone(), ErrorVerb::Read, &error))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| io_error(subject, ErrorVerb::Read, &error))
    }

    fn write_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<()> {
        let subject = ErrorSubject::Store;
        let bytes = serde_json::to_vec(value)
            .map_err(|error| io_error(subject.clone(), ErrorVerb::Write, &error))?;
        self.meta
            .insert(key, bytes)
            .map_err(|error| io_error(subject, ErrorVerb::Write, &error))?;
        Ok(())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>> {
        let last = self
            .log
            .last()
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?;
        match last {
            Some((_, bytes)) => Ok(Some(self.decode_entry(&bytes)?.log_id)),
            None => Ok(None),
        }
    }

    /// Removes every entry whose index falls in `range`, then flushes.
    async fn remove_range(&self, range: impl RangeBounds<[u8; 8]>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for item in self.log.range(range) {
            let (key, _) =
                item.map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Delete, &error))?;
            batch.remove(key);
        }
        self.log
            .apply_batch(batch)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Delete, &error))?;
        self.flush(ErrorSubject::Logs).await
    }
}

fn io_error<E: std::error::Error + 'static>(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    error: &E,
) -> StorageError<NodeId> {
    StorageError::IO {
        source: openraft::StorageIOError::new(subject, verb, AnyError::new(error)),
    }
}

impl LogStore {
    fn decode_entry(&self, bytes: &[u8]) -> Result<Entry<TypeConfig>> {
        let json = self
            .key
            .open_bytes(SEAL_CONTEXT, bytes)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?;
        serde_json::from_slice(&json)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Read, &error))
    }

    fn encode_entry(&self, entry: &Entry<TypeConfig>) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(entry)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &error))?;
        self.key
            .seal_bytes(SEAL_CONTEXT, &json)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &error))
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_bounds<R: RangeBounds<u64>>(range: &R) -> (Bound<[u8; 8]>, Bound<[u8; 8]>) {
    let map = |bound: Bound<&u64>| match bound {
        Bound::Included(index) => Bound::Included(index_key(*index)),
        Bound::Excluded(index) => Bound::Excluded(index_key(*index)),
        Bound::Unbounded => Bound::Unbounded,
    };
    (map(range.start_bound()), map(range.end_bound()))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let mut entries = Vec::new();
        for item in self.log.range(key_bounds(&range)) {
            let (_, bytes) =
                item.map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Read, &error))?;
            entries.push(self.decode_entry(&bytes)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId> = self.read_meta(PURGED_KEY)?;
        let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Stores the vote and fsyncs before returning: a node must never vote
    /// twice in one term, even across a crash.
    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.write_meta(VOTE_KEY, vote)?;
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.read_meta(VOTE_KEY)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<()> {
        self.write_meta(COMMITTED_KEY, &committed)?;
        self.flush(ErrorSubject::Store).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>> {
        Ok(self.read_meta::<Option<LogId>>(COMMITTED_KEY)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = self.encode_entry(&entry)?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(|error| io_error(ErrorSubject::Logs, ErrorVerb::Write, &error))?;
        // Completion is reported only once the entries are on disk.
        match self.db.flush_async().await {
            Ok(_) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                let message = error.to_string();
                callback.log_io_completed(Err(std::io::Error::other(message)));
                Err(io_error(ErrorSubject::Logs, ErrorVerb::Write, &error))
            }
        }
    }

    /// Deletes every entry at or after `log_id.index` (a conflicting suffix).
    async fn truncate(&mut self, log_id: LogId) -> Result<()> {
        self.remove_range(index_key(log_id.index)..).await
    }

    /// Deletes every entry up to and including `log_id.index`. The purge
    /// mark is written (and flushed) first, so a crash in between leaves
    /// entries that `get_log_state` already reports as purged, never a gap.
    async fn purge(&mut self, log_id: LogId) -> Result<()> {
        self.write_meta(PURGED_KEY, &log_id)?;
        self.flush(ErrorSubject::Store).await?;
        self.remove_range(..=index_key(log_id.index)).await
    }
}
