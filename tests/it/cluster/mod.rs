//! The three-node cluster (issue 6) with three real `sluicegate` processes
//! on 127.0.0.1: forming and replicating config, exact replicated counts,
//! failover after `kill -9`, a node cut off by freezing the other two
//! (SIGSTOP, a true partition: the isolated node is alive without quorum),
//! rejoining from an empty data dir, and the shared secret.
//!
//! `harness` starts the processes; the other modules are the tests.

mod admin_token;
mod failover;
mod forming;
pub(crate) mod harness;
mod logs;
mod overshoot;
mod partition;
mod secret;
mod snapshot;
mod tls;
