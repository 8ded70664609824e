//! The snapshot format and its file: the config tables, the day counts of
//! the last `SNAPSHOT_DAYS` days, the leases and the per-node batch sequences
//! (`store::replicated::ReplicatedState`), as JSON, with raft's snapshot
//! meta beside it.
//!
//! The current snapshot always lives in `<data-dir>/raft-snapshot.json`,
//! written to a temporary file, fsynced and renamed into place. A snapshot
//! kept only in memory makes a restarted node panic once the log it would
//! need has been purged.

#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits return its large StorageError; helpers return the same type"
)]

use std::io::Cursor;
use std::path::Path;

use openraft::{BasicNode, ErrorSubject, ErrorVerb, Snapshot, SnapshotMeta, StorageError};
use serde::{Deserialize, Serialize};

use super::types::{NodeId, TypeConfig};
use crate::store::replicated::ReplicatedState;
use crate::store::secrets::SecretKey;

/// The snapshot file inside the data dir.
pub const SNAPSHOT_FILE: &str = "raft-snapshot.json";

/// How many days of counts a snapshot carries (the "last 90 days").
pub const SNAPSHOT_DAYS: i64 = 90;

/// Our snapshot meta.
pub type Meta = SnapshotMeta<NodeId, BasicNode>;

/// The snapshot file's content: the meta and the data bytes raft ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub meta: Meta,
    /// JSON of a `ReplicatedState`, exactly the bytes sent to followers.
    pub data: Vec<u8>,
}

impl StoredSnapshot {
    /// The snapshot as raft hands it out.
    pub fn into_snapshot(self) -> Snapshot<TypeConfig> {
        Snapshot {
            meta: self.meta,
            snapshot: Box::new(Cursor::new(self.data)),
        }
    }
}

/// Serializes the replicated state into snapshot data.
pub fn encode(state: &ReplicatedState) -> Result<Vec<u8>, StorageError<NodeId>> {
    serde_json::to_vec(state).map_err(|error| snapshot_error(ErrorVerb::Write, &error))
}

/// Parses snapshot data back into the replicated state.
pub fn decode(data: &[u8]) -> Result<ReplicatedState, StorageError<NodeId>> {
    serde_json::from_slice(data).map_err(|error| snapshot_error(ErrorVerb::Read, &error))
}

/// The context the snapshot file is sealed under.
const SEAL_CONTEXT: &str = "raft-snapshot";

/// Writes the snapshot file durably (temp file with mode 0600, fsync,
/// rename, fsync dir), sealed with the data dir's key: it holds channel
/// keys. What raft sends to a peer is the unsealed data, over the
/// authenticated (optionally TLS) cluster port.
pub async fn save(
    data_dir: &Path,
    key: &SecretKey,
    snapshot: StoredSnapshot,
) -> Result<(), StorageError<NodeId>> {
    let path = data_dir.join(SNAPSHOT_FILE);
    let json =
        serde_json::to_vec(&snapshot).map_err(|error| snapshot_error(ErrorVerb::Write, &error))?;
    let sealed = key
        .seal_bytes(SEAL_CONTEXT, &json)
        .map_err(|error| snapshot_error(ErrorVerb::Write, &error))?;
    tokio::task::spawn_blocking(move || crate::durable::write_atomic(&path, &sealed, 0o600))
        .await
        .map_err(|error| snapshot_error(ErrorVerb::Write, &error))?
        .map_err(|error| snapshot_error(ErrorVerb::Write, &error))
}

/// Reads the snapshot file, if there is one.
pub async fn load(
    data_dir: &Path,
    key: &SecretKey,
) -> Result<Option<StoredSnapshot>, StorageError<NodeId>> {
    let path = data_dir.join(SNAPSHOT_FILE);
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(snapshot_error(ErrorVerb::Read, &error)),
    };
    let json = key
        .open_bytes(SEAL_CONTEXT, &bytes)
        .map_err(|error| snapshot_error(ErrorVerb::Read, &error))?;
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|error| snapshot_error(ErrorVerb::Read, &error))
}

fn snapshot_error<E: std::error::Error + 'static>(
    verb: ErrorVerb,
    error: &E,
) -> StorageError<NodeId> {
    StorageError::IO {
        source: openraft::StorageIOError::new(
            ErrorSubject::Snapshot(None),
            verb,
            openraft::AnyError::new(error),
        ),
    }
}
