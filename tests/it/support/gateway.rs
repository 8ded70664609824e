//! Starts a real Sluicegate server in-process on 127.0.0.1:0 with a fresh
//! data dir, and offers small helpers for the admin API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sluicegate::AppState;
use sluicegate::clock::{Clock, ManualClock, SystemClock};
use sluicegate::config::Config;
use sluicegate::server::{self, Running};

use super::poll::{self, PATIENCE};

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin_token: String,
    pub client: reqwest::Client,
    pub running: Option<Running>,
    pub data_dir: tempfile::TempDir,
}

impl TestGateway {
    /// A gateway with default settings.
    pub async fn start() -> TestGateway {
        TestGateway::start_with(|_| {}).await
    }

    /// A gateway whose config `adjust` may change before it starts.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestGateway {
        TestGateway::start_on_clock(Arc::new(SystemClock), adjust).await
    }

    /// A gateway whose time is `clock`, so tests can cross midnight.
    pub async fn start_with_clock(
        clock: Arc<ManualClock>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestGateway {
        TestGateway::start_on_clock(clock, adjust).await
    }

    async fn start_on_clock(
        clock: Arc<dyn Clock>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestGateway {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.path().to_path_buf(),
            admin_token: Some(ADMIN_TOKEN.to_string()),
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(5),
            stream_idle_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(5),
            ..Config::default()
        };
        adjust(&mut config);
        let running = server::start_with_clock(config, clock)
            .await
            .expect("gateway starts");
        TestGateway {
            addr: running.addr,
            admin_token: ADMIN_TOKEN.to_string(),
            client: reqwest::Client::new(),
            running: Some(running),
            data_dir,
        }
    }

    /// The running server's state (counters, store, snapshot).
    pub fn state(&self) -> &AppState {
        &self.running.as_ref().expect("gateway is running").state
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// An authenticated admin request builder.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.admin_token)
    }

    /// Creates a channel from `body` and returns its JSON; panics on failure.
    pub async fn create_channel(&self, body: Value) -> Value {
        let response = self
            .admin(reqwest::Method::POST, "/api/channels")
            .json(&body)
            .send()
            .await
            .expect("create channel request");
        let status = response.status();
        let value: Value = response.json().await.expect("channel json");
        assert_eq!(status, 201, "create channel failed: {value}");
        value
    }

    /// A channel pointing at `upstream_base` (e.g. `http://127.0.0.1:PORT/v1`) serving `models`.
    pub async fn openai_channel(&self, name: &str, upstream_base: &str, models: &[&str]) -> Value {
        self.create_channel(json!({
            "name": name,
            "base_url": upstream_base,
            "key": format!("sk-upstream-{name}"),
            "models": models,
        }))
        .await
    }

    /// Creates an API key from `body` and returns (its JSON, the full key).
    pub async fn create_token(&self, body: Value) -> (Value, String) {
        let response = self
            .admin(reqwest::Method::POST, "/api/tokens")
            .json(&body)
            .send()
            .await
            .expect("create token request");
        let status = response.status();
        let value: Value = response.json().await.expect("token json");
        assert_eq!(status, 201, "create token failed: {value}");
        let key = value["key"]
            .as_str()
            .expect("full key in create response")
            .to_string();
        (value, key)
    }

    /// An API key in the default group with no restrictions.
    pub async fn default_key(&self) -> String {
        self.create_token(json!({"name": "test"})).await.1
    }

    /// A relay request builder authenticated with `key`.
    pub fn relay(&self, key: &str, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(key)
    }

    /// Polls the logs API until at least `count` rows exist (logs are written
    /// in batches, after the request is counted), at most [`PATIENCE`].
    pub async fn wait_for_logs(&self, count: usize) -> Vec<Value> {
        let what = format!("{count} request-log rows");
        poll::until(&what, PATIENCE, async || {
            let items = self.logs().await;
            if items.len() >= count {
                Ok(items)
            } else {
                Err(format!("{} rows", items.len()))
            }
        })
        .await
    }

    /// The stored request-log rows, newest first (at most 500).
    pub async fn logs(&self) -> Vec<Value> {
        let response = self
            .admin(reqwest::Method::GET, "/api/logs?per_page=500")
            .send()
            .await
            .expect("logs request");
        let value: Value = response.json().await.expect("logs json");
        value["items"].as_array().cloned().unwrap_or_default()
    }

    /// Stops the server gracefully (drains logs, flushes stores).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}
