//! The endpoint families: what each `/v1` API adds to the pipeline (its
//! `Endpoint` description, its body rules, its reply shape). The stages
//! every request passes through are in `relay` itself.
//!
//! - `anthropic`: `POST /v1/messages` (native) and the OpenAI ↔ Anthropic
//!   translation that lets `anthropic` channels serve chat completions.
//! - `chat`, `completions`, `embeddings`, `responses`, `images`,
//!   `moderations`, `audio`: each family's differences only.
//! - `models`: `GET /v1/models`.
//! - `realtime`: `GET /v1/realtime`, the WebSocket proxy.

pub mod anthropic;
pub mod audio;
pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod images;
pub mod models;
pub mod moderations;
pub mod realtime;
pub mod responses;
