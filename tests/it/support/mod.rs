//! Test support: the fake OpenAI upstream, the gateway launchers and the
//! one bounded polling helper every wait goes through.

#![allow(dead_code)]

pub mod gateway;
pub mod poll;
pub mod process;
pub mod prompt;
pub mod upstream;
