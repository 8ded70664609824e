//! The soak's clients: each sends chat completions back to back until the
//! deadline, a quarter each plain, plain, streamed, and streamed with
//! `include_usage`, and tallies what came back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Requests finished so far, for the progress line.
pub static FINISHED: AtomicU64 = AtomicU64::new(0);

/// A client gives up on a request after this long (a hang, not a slow reply).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    /// Failed requests by kind: `status 502 upstream_error`, `stream cut`, …
    pub errors: BTreeMap<String, u64>,
    /// Microseconds from sending to the end of the body, successes only.
    pub plain_us: Vec<u32>,
    pub stream_us: Vec<u32>,
}

impl Tally {
    pub fn requests(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }

    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.plain_us.extend(other.plain_us);
        self.stream_us.extend(other.stream_us);
    }
}

/// Runs `concurrency` clients against `url` for `duration`.
pub async fn run(
    url: &str,
    key: &str,
    model: &str,
    concurrency: usize,
    duration: Duration,
) -> Tally {
    let client = reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (client, url, key, model) = (
                client.clone(),
                url.to_string(),
                key.to_string(),
                model.to_string(),
            );
            tokio::spawn(
                async move { client_loop(client, url, key, model, worker, deadline).await },
            )
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        match task.await {
            Ok(seen) => tally.merge(seen),
            Err(error) => {
                *tally
                    .errors
                    .entry(format!("client task failed: {error}"))
                    .or_default() += 1
            }
        }
    }
    tally
}

async fn client_loop(
    client: reqwest::Client,
    url: String,
    key: String,
    model: String,
    worker: usize,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut index = worker;
    while Instant::now() < deadline {
        index += 1;
        let stream = index % 4 >= 2;
        let mut body = json!({
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hello in five words."}],
        });
        if stream {
            body["stream"] = json!(true);
        }
        if index % 4 == 3 {
            body["stream_options"] = json!({"include_usage": true});
        }
        let started = Instant::now();
        let outcome = one(&client, &url, &key, &body, stream).await;
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        FINISHED.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) if stream => tally.stream_us.push(micros),
            Ok(()) => tally.plain_us.push(micros),
            Err(kind) => *tally.errors.entry(kind).or_default() += 1,
        }
    }
    tally.ok = (tally.plain_us.len() + tally.stream_us.len()) as u64;
    tally
}

/// One request; `Err` names the kind of failure.
async fn one(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    body: &Value,
    stream: bool,
) -> Result<(), String> {
    let response = client
        .post(url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .map_err(|error| transport("send", &error))?;
    let status = response.status();
    let text = response.text().await.map_err(|error| {
        if stream && status.is_success() {
            "stream cut (body error)".to_string()
        } else {
            transport("body", &error)
        }
    })?;
    if !status.is_success() {
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|error| {
                error
                    .pointer("/error/code")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        return Err(format!("status {} {code}", status.as_u16()));
    }
    if stream && !text.contains("data: [DONE]") {
        return Err(if text.contains("\"error\"") {
            "stream cut (error event)".to_string()
        } else {
            "stream cut (no [DONE])".to_string()
        });
    }
    Ok(())
}

fn transport(stage: &str, error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "client timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    };
    format!("{kind} ({stage})")
}
