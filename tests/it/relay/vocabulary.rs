//! The tokenizer's vocabularies stay unloaded on the real binary while
//! upstreams report usage, capped channels included (their reservations
//! are sized without a tokenizer), and load on the first reply without
//! usage, after that reply.

use serde_json::{Value, json};

use crate::support::poll::{self, PATIENCE};
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
    // A reply is recorded after its estimate, if it needs one, has run on
    // the blocking pool; once all four are recorded, no load can be late.
    poll::until("the four replies' `relayed` events", PATIENCE, async || {
        let seen = relayed(&gateway.output());
        if seen >= 4 {
            Ok(())
        } else {
            Err(format!("{seen} relayed"))
        }
    })
    .await;
    assert!(
        !gateway.output().contains(LOADED),
        "a vocabulary loaded though every reply reported usage: {}",
        gateway.output()
    );

    upstream.omit_usage();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    post(&client, chat, &key, &body).await;
    let loaded = async || gateway.output().contains(LOADED);
    poll::Wait::new("the estimate to load the vocabulary", PATIENCE)
        .try_until(loaded)
        .await
        .unwrap_or_else(|timeout| panic!("{timeout}: {}", gateway.output()));
}

/// How many `relayed` events (one a finished relay request) `output` holds.
fn relayed(output: &str) -> usize {
    output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| {
            let fields = event.get("fields").unwrap_or(event);
            fields["message"] == "relayed"
        })
        .count()
}
