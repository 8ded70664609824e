//! Day counters across restarts of the real binary: nothing is lost on a
//! graceful stop, and after `kill -9` every count the server reported
//! durable is still there. (How old a count must be to be durable, the
//! 100 ms window, is held by `crash_loop.rs`.)

use std::path::Path;

use serde_json::{Value, json};

use crate::support::poll::{self, PATIENCE};
use crate::support::process::Process;
use crate::support::upstream::FakeUpstream;

const ADMIN: &str = "durability-admin-token";

fn start(data_dir: &Path) -> Process {
    let dir = data_dir.display().to_string();
    Process::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
            &dir,
        ],
        &[("SLUICEGATE_ADMIN_TOKEN", ADMIN)],
    )
}

/// A channel with a daily limit on `upstream`, and a key bound to nothing.
async fn provision(client: &reqwest::Client, base: &str, upstream: &FakeUpstream) -> (i64, String) {
    let channel: Value = client
        .post(format!("{base}/api/channels"))
        .bearer_auth(ADMIN)
        .json(&json!({
            "name": "durable",
            "base_url": upstream.base_url(),
            "key": "sk-upstream-durable",
            "models": ["gpt-4o-mini"],
            "settings": {"daily_token_limit": 1_000_000_000u64, "daily_reset_timezone": "UTC"},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token: Value = client
        .post(format!("{base}/api/tokens"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "durable"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        channel["id"].as_i64().unwrap(),
        token["key"].as_str().unwrap().to_string(),
    )
}

/// Sends `count` chat completions, alternating plain and streamed.
async fn relay(client: &reqwest::Client, base: &str, key: &str, count: usize) {
    for index in 0..count {
        let response = client
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({
                "model": "gpt-4o-mini",
                "stream": index % 2 == 1,
                "messages": [{"role": "user", "content": "hello"}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
}

async fn used_today(client: &reqwest::Client, base: &str, channel: i64) -> u64 {
    let usage: Value = client
        .get(format!("{base}/api/channels/{channel}/usage"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    usage["used"].as_u64().unwrap()
}

/// `sluicegate_durable_tokens_total`: the tokens this process has made
/// durable since it started.
async fn durable_tokens(client: &reqwest::Client, base: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("sluicegate_durable_tokens_total "))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sluicegate_durable_tokens_total in {text}"))
}

/// A graceful stop right after the last response loses no count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_survive_a_graceful_restart() {
    let upstream = FakeUpstream::start("durable").await.unwrap();
    sluicegate::upstream::install_tls_provider();
    let client = reqwest::Client::new();
    let temp = tempfile::tempdir().unwrap();
    let mut first = start(temp.path());
    let base = format!("http://{}", first.addr);
    let (channel, key) = provision(&client, &base, &upstream).await;
    relay(&client, &base, &key, 12).await;
    // No pause: SIGTERM must flush what the last 50 ms counted.
    let status = first.terminate();
    assert_eq!(status.code(), Some(0), "{}", first.output());

    let second = start(temp.path());
    let base = format!("http://{}", second.addr);
    assert_eq!(
        used_today(&client, &base, channel).await,
        upstream.reported_tokens()
    );
    assert!(upstream.reported_tokens() > 0);
}

/// After `kill -9`, the counts the server reported durable survive;
/// repeated crashes neither lose nor double-count anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_counts_survive_kill_9() {
    let upstream = FakeUpstream::start("crashing").await.unwrap();
    sluicegate::upstream::install_tls_provider();
    let client = reqwest::Client::new();
    let temp = tempfile::tempdir().unwrap();
    let mut process = start(temp.path());
    let base = format!("http://{}", process.addr);
    let (channel, key) = provision(&client, &base, &upstream).await;
    for round in 1..=3 {
        let base = format!("http://{}", process.addr);
        let reported_before = upstream.reported_tokens();
        relay(&client, &base, &key, 5 * round).await;
        // Crash once this process reports every token it counted durable.
        let counted = upstream.reported_tokens() - reported_before;
        poll::until(
            "the counted tokens to be durable",
            PATIENCE,
            async || match durable_tokens(&client, &base).await {
                durable if durable >= counted => Ok(()),
                durable => Err(format!("{durable} of {counted} durable")),
            },
        )
        .await;
        process.kill9();

        process = start(temp.path());
        let base = format!("http://{}", process.addr);
        assert_eq!(
            used_today(&client, &base, channel).await,
            upstream.reported_tokens(),
            "after crash {round}"
        );
    }
}
