//! Raft replication of `Command`s across a three-node cluster (issue 6).
//!
//! Started by `server` only with the cluster flags (`--node-id` and
//! friends); a single node never touches any of it.
//!
//! - `node`: the running node: raft, the RPC listener, the write path,
//!   membership changes and the counter-batch proposer.
//! - `types`: the raft type configuration and the entry payload.
//! - `log_store`: the raft log and vote, in a sled Db of their own.
//! - `state_machine`: applies committed entries through `store::Store`.
//! - `snapshot`: the snapshot format, persisted under the data dir.
//! - `peer_query`: cluster-wide reads of node-local request logs and stats.
//! - `tls`: optional TLS on internal RPC.
//! - `token_sync`: one admin token for the whole cluster.

pub mod batcher;
pub mod log_store;
pub mod network;
pub mod node;
pub mod peer_query;
pub mod peers;
pub mod rpc;
pub mod secret;
pub mod snapshot;
pub mod state_machine;
pub mod tls;
pub mod token_sync;
pub mod types;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod in_process_tests;
