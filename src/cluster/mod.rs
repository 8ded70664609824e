//! Raft replication of `Command`s across a three-node cluster (issue 6).
//!
//! NOT WIRED YET: nothing in the server starts any of this, and a single
//! node never touches it. The pieces are groundwork that a later change
//! connects to `AppState::apply` and the CLI flags.
//!
//! - `types`: the raft type configuration and the entry payload.
//! - `log_store`: the raft log and vote, in a sled Db of their own.
//! - `state_machine`: applies committed entries through `store::Store`.
//! - `snapshot`: the snapshot format, persisted under the data dir.

pub mod log_store;
pub mod network;
pub mod peers;
pub mod rpc;
pub mod secret;
pub mod snapshot;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod in_process_tests;
