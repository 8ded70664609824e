//! Sluicegate's integration tests: one test binary, real sockets on
//! 127.0.0.1:0, a fake upstream written in Rust and the real server.

// Test code may panic on setup failures: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod anthropic;
mod architecture;
mod binary;
mod cluster;
mod compat;
mod crash_loop;
mod daily;
mod durability;
mod hardening;
mod health;
mod import;
mod metrics;
mod realtime;
mod relay;
mod secrets;
mod session;
mod settings;
mod support;
mod surface;
mod ui_server;
mod usage;
