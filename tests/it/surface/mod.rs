//! The whole OpenAI relay surface beyond chat, over real sockets: each
//! endpoint whole and streamed where it has both, its exact usage counted
//! in the daily counters and the log, retries, caps, Azure channels, and
//! bad input in the OpenAI envelope.
//!
//! `text` covers completions, embeddings, responses, images and
//! moderations; `audio` the three audio endpoints; `routing` retries, caps
//! and Azure; `errors` what is refused.

use serde_json::Value;
use sluicegate::model::ChannelId;

use crate::relay::{Rig, log_row};
use crate::support::upstream::FakeUsage;

mod audio;
mod errors;
mod routing;
mod text;

/// The fake's default usage: 11 + 7 = 18.
pub(crate) const DEFAULT_TOTAL: u64 = 18;

/// Tokens counted today for `channel`.
pub(crate) fn used(rig: &Rig, channel: i64) -> u64 {
    let state = rig.gateway.state();
    state
        .counters
        .view(ChannelId(channel), state.config.timezone, state.clock.now())
        .used
}

/// POSTs JSON `body` to `path` with the rig's key and `request_id`.
pub(crate) async fn post(
    rig: &Rig,
    path: &str,
    request_id: &str,
    body: &Value,
) -> reqwest::Response {
    rig.gateway
        .relay(&rig.key, path)
        .header("x-request-id", request_id)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The log row of `request_id`, with its endpoint checked.
pub(crate) async fn logged(rig: &Rig, request_id: &str, endpoint: &str) -> Value {
    let row = log_row(&rig.gateway, request_id).await;
    assert_eq!(row["endpoint"], endpoint, "{row}");
    row
}

/// Asserts a log row's (prompt, completion, total, estimated).
pub(crate) fn assert_counts(
    row: &Value,
    prompt: u64,
    completion: u64,
    total: u64,
    estimated: bool,
) {
    let actual = (
        row["prompt_tokens"].as_u64(),
        row["completion_tokens"].as_u64(),
        row["total_tokens"].as_u64(),
        row["estimated"].as_bool(),
    );
    assert_eq!(
        actual,
        (Some(prompt), Some(completion), Some(total), Some(estimated)),
        "{row}"
    );
}

/// A usage other than the default, to tell endpoints' counts apart.
pub(crate) fn usage(prompt: u64, completion: u64) -> FakeUsage {
    FakeUsage {
        prompt,
        completion,
        total: prompt + completion,
    }
}
