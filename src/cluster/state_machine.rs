//! The raft state machine: applies committed entries through
//! `store::Store::apply_replicated`, builds snapshots and installs them.
//!
//! Applying is deterministic because commands carry their own times and
//! the store assigns ids with SQLite AUTOINCREMENT: the same commands in
//! the same log order give the same ids on every node (the snapshot carries
//! `sqlite_sequence` so this also holds after an install). It must never
//! read the clock or anything node-local.
//!
//! Last applied log id and membership go to the `raft_state` table in the
//! same SQLite transaction as the config commands; the counters' own mark
//! and the per-node batch sequences go to sled with the counts. The store's
//! module docs explain the crash window between the two.

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits return its large StorageError; helpers return the same type"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, StorageError,
};
use tokio::sync::Mutex;

use super::snapshot::{self, Meta, SNAPSHOT_DAYS, StoredSnapshot};
use super::types::{
    AppliedResult, ApplyError, ClusterResponse, LogId, NodeId, Origin, StoredMembership, TypeConfig,
};
use crate::command::{Applied, Command};
use crate::store::replicated::{EntryOutcome, ReplicatedEntry};
use crate::store::{self, Store};

const LAST_APPLIED: &str = "last_applied";
const LAST_MEMBERSHIP: &str = "last_membership";

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

/// The raft state machine over the node's `Store`.
pub struct StateMachine {
    store: Store,
    data_dir: PathBuf,
    /// Held while applying, exporting or installing, so a snapshot reads
    /// both engines at one log position.
    lock: Arc<Mutex<()>>,
    /// Told about every applied batch and installed snapshot, so the server
    /// can feed its counters and rebuild its in-memory snapshot.
    hook: HookSlot,
}

/// One committed entry as the hook sees it, after the store applied it.
#[derive(Debug, Clone)]
pub struct AppliedEntry {
    pub index: u64,
    pub origin: Option<Origin>,
    /// A counter batch whose origin had been applied before: nothing changed.
    pub duplicate: bool,
    pub commands: Vec<Command>,
    /// What each command produced (`None`: it failed, deterministically).
    pub results: Vec<Option<Applied>>,
}

/// What the state machine reports to its hook.
#[derive(Debug)]
pub enum Event<'a> {
    /// Entries the store has just applied, in log order.
    Applied(&'a [AppliedEntry]),
    /// The store's replicated state was replaced by a snapshot.
    SnapshotInstalled,
}

/// A callback for [`Event`]s. It runs inside the state machine's apply, so
/// it must be quick and must not wait on raft.
pub type Hook = Arc<dyn Fn(Event<'_>) + Send + Sync>;

/// Where the hook goes once the server has built what it feeds: set once,
/// after the state machine was handed to raft.
#[derive(Clone, Default)]
pub struct HookSlot(Arc<std::sync::OnceLock<Hook>>);

impl HookSlot {
    /// Installs the hook; a second call is ignored.
    pub fn set(&self, hook: Hook) {
        let _ = self.0.set(hook);
    }

    fn fire(&self, event: Event<'_>) {
        if let Some(hook) = self.0.get() {
            hook(event);
        }
    }
}

impl StateMachine {
    /// A state machine over `store`, keeping its snapshot in `data_dir`.
    pub fn new(store: Store, data_dir: &Path) -> StateMachine {
        StateMachine::with_hook(store, data_dir, HookSlot::default())
    }

    /// [`StateMachine::new`] reporting to `hook`.
    pub fn with_hook(store: Store, data_dir: &Path, hook: HookSlot) -> StateMachine {
        StateMachine {
            store,
            data_dir: data_dir.to_path_buf(),
            lock: Arc::new(Mutex::new(())),
            hook,
        }
    }
}

/// Builds a snapshot on openraft's request; shares the state machine's lock.
pub struct SnapshotBuilder {
    store: Store,
    data_dir: PathBuf,
    lock: Arc<Mutex<()>>,
}

fn state_error<E: std::error::Error + 'static>(verb: ErrorVerb, error: &E) -> StorageError<NodeId> {
    StorageError::IO {
        source: openraft::StorageIOError::new(
            ErrorSubject::StateMachine,
            verb,
            openraft::AnyError::new(error),
        ),
    }
}

/// Reads the last applied log id and membership from `raft_state`.
async fn read_applied(store: &Store) -> Result<(Option<LogId>, StoredMembership)> {
    let rows = store
        .raft_state()
        .await
        .map_err(|error| state_error(ErrorVerb::Read, &error))?;
    let mut last_applied = None;
    let mut membership = StoredMembership::default();
    for (key, value) in rows {
        let parsed = match key.as_str() {
            LAST_APPLIED => serde_json::from_str(&value).map(|id| last_applied = id),
            LAST_MEMBERSHIP => serde_json::from_str(&value).map(|stored| membership = stored),
            _ => Ok(()),
        };
        parsed.map_err(|error| state_error(ErrorVerb::Read, &error))?;
    }
    Ok((last_applied, membership))
}

fn raft_state_rows(
    last_applied: Option<LogId>,
    membership: &StoredMembership,
) -> Result<Vec<(String, String)>> {
    let encode = |value: serde_json::Result<String>| {
        value.map_err(|error| state_error(ErrorVerb::Write, &error))
    };
    Ok(vec![
        (
            LAST_APPLIED.to_string(),
            encode(serde_json::to_string(&last_applied))?,
        ),
        (
            LAST_MEMBERSHIP.to_string(),
            encode(serde_json::to_string(membership))?,
        ),
    ])
}

fn response(outcome: EntryOutcome, index: u64) -> ClusterResponse {
    let results = outcome
        .results
        .into_iter()
        .map(|result| match result {
            Ok(applied) => AppliedResult::Ok(applied.into()),
            Err(error) => AppliedResult::Err(apply_error(&error)),
        })
        .collect();
    ClusterResponse {
        results,
        duplicate: outcome.duplicate,
        log_index: Some(index),
    }
}

fn apply_error(error: &store::Error) -> ApplyError {
    let kind = match error {
        store::Error::NotFound(_) => "not_found",
        store::Error::Sqlite(_) => "conflict",
        _ => "invalid",
    };
    ApplyError {
        kind: kind.to_string(),
        message: error.to_string(),
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership)> {
        read_applied(&self.store).await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ClusterResponse>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let _guard = self.lock.lock().await;
        let (_, mut membership) = read_applied(&self.store).await?;
        let mut last_applied = None;
        let mut batch = Vec::new();
        let mut seen = Vec::new();
        for entry in entries {
            last_applied = Some(entry.log_id);
            let (origin, commands) = match entry.payload {
                EntryPayload::Blank => (None, Vec::new()),
                EntryPayload::Normal(request) => (
                    request
                        .origin
                        .map(|origin| (origin.node_id, origin.sequence)),
                    request.commands,
                ),
                EntryPayload::Membership(changed) => {
                    membership = StoredMembership::new(Some(entry.log_id), changed);
                    (None, Vec::new())
                }
            };
            seen.push(AppliedEntry {
                index: entry.log_id.index,
                origin: origin.map(|(node_id, sequence)| Origin { node_id, sequence }),
                duplicate: false,
                commands: commands.clone(),
                results: Vec::new(),
            });
            batch.push(ReplicatedEntry {
                index: entry.log_id.index,
                origin,
                commands,
            });
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let rows = raft_state_rows(last_applied, &membership)?;
        let outcomes = self
            .store
            .apply_replicated(batch, rows)
            .await
            .map_err(|error| state_error(ErrorVerb::Write, &error))?;
        for (entry, outcome) in seen.iter_mut().zip(&outcomes) {
            entry.duplicate = outcome.duplicate;
            entry.results = outcome
                .results
                .iter()
                .map(|result| result.as_ref().ok().cloned())
                .collect();
        }
        self.hook.fire(Event::Applied(&seen));
        Ok(outcomes
            .into_iter()
            .zip(&seen)
            .map(|(outcome, entry)| response(outcome, entry.index))
            .collect())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            store: self.store.clone(),
            data_dir: self.data_dir.clone(),
            lock: Arc::clone(&self.lock),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<std::io::Cursor<Vec<u8>>>> {
        Ok(Box::new(std::io::Cursor::new(Vec::new())))
    }

    /// Replaces config and counters with the snapshot's (see
    /// `Store::import_replicated` for how atomic that is), then persists
    /// the snapshot file. Nothing in memory is rebuilt here; the caller
    /// rebuilds `AppState`'s snapshot afterwards.
    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<std::io::Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let data = snapshot.into_inner();
        let state = snapshot::decode(&data)?;
        let rows = raft_state_rows(meta.last_log_id, &meta.last_membership)?;
        {
            let _guard = self.lock.lock().await;
            self.store
                .import_replicated(state, meta.last_log_id.map(|id| id.index), rows)
                .await
                .map_err(|error| state_error(ErrorVerb::Write, &error))?;
            self.hook.fire(Event::SnapshotInstalled);
        }
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        snapshot::save(&self.data_dir, self.store.secret_key(), stored).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        Ok(snapshot::load(&self.data_dir, self.store.secret_key())
            .await?
            .map(StoredSnapshot::into_snapshot))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let (last_applied, membership, state) = {
            let _guard = self.lock.lock().await;
            let (last_applied, membership) = read_applied(&self.store).await?;
            let state = self
                .store
                .export_replicated(SNAPSHOT_DAYS)
                .await
                .map_err(|error| state_error(ErrorVerb::Read, &error))?;
            (last_applied, membership, state)
        };
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, unique_suffix()),
            None => format!("none-{}", unique_suffix()),
        };
        let stored = StoredSnapshot {
            meta: Meta {
                last_log_id: last_applied,
                last_membership: membership,
                snapshot_id,
            },
            data: snapshot::encode(&state)?,
        };
        snapshot::save(&self.data_dir, self.store.secret_key(), stored.clone()).await?;
        Ok(stored.into_snapshot())
    }
}

/// Tells apart two snapshots built at the same log id (openraft's advice).
/// Snapshot building is node-local, so reading the clock here is fine.
fn unique_suffix() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
