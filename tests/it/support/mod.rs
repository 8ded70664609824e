//! Test support: the fake OpenAI upstream and the gateway launchers.

#![allow(dead_code)]

pub mod gateway;
pub mod process;
pub mod prompt;
pub mod upstream;
