//! The tokenizer's vocabularies stay unloaded on the real binary while
//! upstreams report usage, capped channels included (their reservations
//! are sized without a tokenizer), and load on the first reply without
//! usage, after that reply.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::process::Process;
use crate::support::upstream::FakeUpstream;

const ADMIN: &str = "vocabulary-admin-token";
const LOADED: &str = "tokenizer vocabulary loaded";

fn start(data_dir: &std::path::Path) -> Process {
    let dir = data_dir.display().to_string();
    Process::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "info",
            "--data-dir",
            &dir,
        ],
        &[("SLUICEGATE_ADMIN_TOKEN", ADMIN)],
    )
}

async fn post(client: &reqwest::Client, url: String, bearer: &str, body: &Value) -> String {
    let response = client
        .post(url)
        .bearer_auth(bearer)
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.text().await.unwrap()
}

/// Only a reply without usage loads a vocabulary; reported usage never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vocabularies_load_only_for_an_estimate() {
    let upstream = FakeUpstream::start("vocab").await.unwrap();
    sluicegate::upstream::install_tls_provider();
    let client = reqwest::Client::new();
    let temp = tempfile::tempdir().unwrap();
    let gateway = start(temp.path());
    let base = format!("http://{}", gateway.addr);
    let channel = json!({
        "name": "capped",
        "base_url": upstream.base_url(),
        "key": "sk-upstream",
        "models": ["gpt-4o-mini", "gpt-4"],
        "settings": {"daily_token_limit": 1_000_000_000u64},
    });
    post(&client, format!("{base}/api/channels"), ADMIN, &channel).await;
    let key: Value = serde_json::from_str(
        &post(
            &client,
            format!("{base}/api/tokens"),
            ADMIN,
            &json!({"name": "k"}),
        )
        .await,
    )
    .unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let chat = format!("{base}/v1/chat/completions");
    let long = "All work and no play makes a dull prompt. ".repeat(2_000);
    for model in ["gpt-4o-mini", "gpt-4"] {
        for stream in [false, true] {
            let body = json!({"model": model, "stream": stream,
                "messages": [{"role": "user", "content": long}]});
            post(&client, chat.clone(), &key, &body).await;
        }
    }
    assert!(upstream.reported_tokens() > 0);
    assert!(
        !gateway.output().contains(LOADED),
        "a vocabulary loaded though every reply reported usage: {}",
        gateway.output()
    );

    upstream.omit_usage();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    post(&client, chat, &key, &body).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway.output().contains(LOADED) {
        assert!(
            Instant::now() < deadline,
            "the estimate did not load the vocabulary: {}",
            gateway.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
