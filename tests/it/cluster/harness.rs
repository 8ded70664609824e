//! Three real `sluicegate` processes on 127.0.0.1 forming a raft cluster,
//! plus the fake upstream they relay to.
//!
//! Ports are bound on 127.0.0.1:0 first, read, released and then handed to
//! the processes, so a node can be restarted on the same ports. Every node
//! has its own data dir under one temp dir; all share one 64-hex-char
//! secret file (mode 0600) unless a test writes another. Every child is
//! killed when the [`Cluster`] is dropped, stopped (SIGSTOP) ones included.
//!
//! Everything waits by bounded polling (`support::poll`); a timeout panics
//! with the state last seen and the tail of every node's log.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::support::poll::Wait;
use crate::support::process::{command, listening_addr};
use crate::support::upstream::FakeUpstream;

pub const ADMIN: &str = "cluster-admin-token";
/// The model every test channel serves.
pub const MODEL: &str = "gpt-4o-mini";
/// How long a node may take to log `listening`.
const STARTUP: Duration = Duration::from_secs(30);
/// The bound of every wait on the cluster (a `support::poll` wait).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One running incarnation of a node's process.
struct Running {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    listening: mpsc::Receiver<SocketAddr>,
    stopped: bool,
}

impl Running {
    fn spawn(args: &[String], env: &[(&str, &str)]) -> Running {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = command(&args, env).spawn().expect("spawn sluicegate");
        let output = Arc::new(Mutex::new(String::new()));
        let (sender, listening) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let readers = vec![
            collect(stderr, Arc::clone(&output), sender.clone()),
            collect(stdout, Arc::clone(&output), sender),
        ];
        Running {
            child,
            output,
            readers,
            listening,
            stopped: false,
        }
    }

    fn output(&self) -> String {
        self.output
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// SIGKILL (works on a stopped process too), then reap and drain.
    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.output()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies `pipe` line by line into `output`; every `listening` address goes
/// to `listening` (the node may log one per listener).
fn collect(
    pipe: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
    listening: mpsc::Sender<SocketAddr>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = listening_addr(&line) {
                let _ = listening.send(addr);
            }
            if let Ok(mut output) = output.lock() {
                output.push_str(&line);
                output.push('\n');
            }
        }
    })
}

/// A node's fixed identity: id, ports, data dir, secret file.
pub struct Node {
    pub id: u64,
    pub http: SocketAddr,
    pub cluster: SocketAddr,
    pub data_dir: PathBuf,
    pub secret_file: PathBuf,
    /// Flags appended to this node's command line (e.g. cluster TLS).
    pub extra_args: Vec<String>,
    /// Whether the node gets `SLUICEGATE_ADMIN_TOKEN` (else it generates
    /// its own token file in its data dir).
    pub env_admin_token: bool,
    running: Option<Running>,
    /// Logs of earlier incarnations of this node.
    past_output: String,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.running.as_ref().expect("node is running").child.id()
    }

    /// Every log line of every incarnation so far.
    pub fn output(&self) -> String {
        let current = self
            .running
            .as_ref()
            .map(Running::output)
            .unwrap_or_default();
        format!("{}{}", self.past_output, current)
    }

    /// The log lines of the current incarnation only.
    pub fn current_output(&self) -> String {
        self.running
            .as_ref()
            .map(Running::output)
            .unwrap_or_default()
    }
}

pub struct Cluster {
    pub upstream: FakeUpstream,
    pub nodes: Vec<Node>,
    pub client: reqwest::Client,
    peers: String,
    temp: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            drop(node.running.take());
        }
    }
}

/// Binds `count` ports on 127.0.0.1:0 at once (so they are distinct),
/// reads them and releases them.
fn free_ports(count: usize) -> Vec<SocketAddr> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("local addr"))
        .collect()
}

/// Writes a fresh random secret (64 hex chars) with mode 0600.
pub fn write_secret(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    std::fs::write(path, format!("{secret}\n")).expect("write secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

impl Cluster {
    /// Three nodes, not started yet, and a fake upstream named `name`.
    pub async fn new(name: &str) -> Cluster {
        sluicegate::upstream::install_tls_provider();
        let upstream = FakeUpstream::start(name).await.expect("fake upstream");
        let temp = tempfile::tempdir().expect("temp dir");
        let secret_file = temp.path().join("cluster.secret");
        write_secret(&secret_file);
        let ports = free_ports(6);
        let peers = (0..3)
            .map(|index| format!("{}={}", index + 1, ports[3 + index]))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (0..3)
            .map(|index| {
                let data_dir = temp.path().join(format!("node{}", index + 1));
                std::fs::create_dir_all(&data_dir).expect("data dir");
                Node {
                    id: index as u64 + 1,
                    http: ports[index],
                    cluster: ports[3 + index],
                    data_dir,
                    secret_file: secret_file.clone(),
                    extra_args: Vec::new(),
                    env_admin_token: true,
                    running: None,
                    past_output: String::new(),
                }
            })
            .collect();
        let client = reqwest::Client::builder()
            // A restarted node reuses its port: never reuse a connection.
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Cluster {
            upstream,
            nodes,
            client,
            peers,
            temp,
        }
    }

    /// Three nodes started at once, with an elected leader all agree on.
    pub async fn start(name: &str) -> Cluster {
        let mut cluster = Cluster::new(name).await;
        cluster.launch(&[1, 2, 3]);
        cluster.leader(&[1, 2, 3]).await;
        cluster
    }

    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn args(&self, id: u64) -> Vec<String> {
        let node = self.node(id);
        [
            "--listen",
            &node.http.to_string(),
            "--data-dir",
            &node.data_dir.display().to_string(),
            "--log-format",
            "json",
            "--node-id",
            &id.to_string(),
            "--cluster-listen",
            &node.cluster.to_string(),
            "--cluster-peers",
            &self.peers,
            "--cluster-secret-file",
            &node.secret_file.display().to_string(),
        ]
        .iter()
        .map(|arg| arg.to_string())
        .chain(node.extra_args.iter().cloned())
        .collect()
    }

    /// Spawns `ids` together, then waits until each logs `listening` on its
    /// HTTP address (a node may wait for its peers before it listens).
    pub fn launch(&mut self, ids: &[u64]) {
        for &id in ids {
            assert!(!self.node(id).is_running(), "node {id} already runs");
            let args = self.args(id);
            let env: &[(&str, &str)] = if self.node(id).env_admin_token {
                &[("SLUICEGATE_ADMIN_TOKEN", ADMIN)]
            } else {
                &[]
            };
            let running = Running::spawn(&args, env);
            self.node_mut(id).running = Some(running);
        }
        let deadline = Instant::now() + STARTUP;
        for &id in ids {
            let node = self.node(id);
            let running = node.running.as_ref().expect("spawned");
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match running.listening.recv_timeout(left) {
                    Ok(addr) if addr == node.http => break,
                    Ok(_) => continue,
                    Err(_) => panic!(
                        "node {id} never logged `listening` on {}:\n{}",
                        node.http,
                        self.dump()
                    ),
                }
            }
        }
    }

    /// `kill -9`: the node's process is gone, its data dir stays.
    pub fn kill9(&mut self, id: u64) {
        let node = self.node_mut(id);
        let running = node.running.take().expect("node is running");
        let output = running.kill();
        node.past_output.push_str(&output);
        node.past_output
            .push_str(&format!("---- node {id} killed with SIGKILL ----\n"));
    }

    /// `kill -9`, then an empty data dir.
    pub fn kill9_and_wipe(&mut self, id: u64) {
        self.kill9(id);
        let dir = self.node(id).data_dir.clone();
        std::fs::remove_dir_all(&dir).expect("wipe data dir");
        std::fs::create_dir_all(&dir).expect("recreate data dir");
    }

    fn signal(&mut self, id: u64, signal: &str) {
        send_signal(self.node(id).pid(), signal);
        self.node_mut(id).running.as_mut().expect("running").stopped = signal == "STOP";
    }

    /// SIGSTOP: the process is frozen, its sockets stay open but silent.
    pub fn freeze(&mut self, id: u64) {
        self.signal(id, "STOP");
    }

    /// SIGCONT after [`Cluster::freeze`].
    pub fn thaw(&mut self, id: u64) {
        self.signal(id, "CONT");
    }

    /// The ids of nodes that run and are not frozen.
    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|node| {
                node.running
                    .as_ref()
                    .is_some_and(|running| !running.stopped)
            })
            .map(|node| node.id)
            .collect()
    }

    /// The last 60 lines of every node's log, for failure messages; the
    /// full logs go to files under `CARGO_TARGET_TMPDIR`, named here.
    pub fn dump(&self) -> String {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "cluster-{}-{}",
            std::process::id(),
            self.nodes[0].http.port()
        ));
        let mut text = String::new();
        if std::fs::create_dir_all(&dir).is_ok() {
            for node in &self.nodes {
                let _ = std::fs::write(dir.join(format!("node{}.log", node.id)), node.output());
            }
            text.push_str(&format!("full logs: {}\n", dir.display()));
        }
        for node in &self.nodes {
            let output = node.output();
            let lines: Vec<&str> = output.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            text.push_str(&format!(
                "===== node {} (running: {}) =====\n{}\n",
                node.id,
                node.is_running(),
                tail.join("\n")
            ));
        }
        text
    }

    // ---- HTTP ----

    /// An admin request; `Err` on a transport failure or timeout.
    pub async fn try_admin(
        &self,
        id: u64,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        self.try_admin_as(id, ADMIN, method, path, body).await
    }

    /// An admin request with `token`; `Err` on a transport failure.
    pub async fn try_admin_as(
        &self,
        id: u64,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.node(id).base()))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// An admin request that must reach the node.
    pub async fn admin(
        &self,
        id: u64,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        match self.try_admin(id, method.clone(), path, body).await {
            Ok(answer) => answer,
            Err(error) => panic!("{method} {path} on node {id}: {error}\n{}", self.dump()),
        }
    }

    /// `GET /api/cluster` on `id`, or `None` when it does not answer 200.
    pub async fn view(&self, id: u64) -> Option<Value> {
        match self
            .try_admin(id, reqwest::Method::GET, "/api/cluster", None)
            .await
        {
            Ok((200, view)) => Some(view),
            _ => None,
        }
    }

    /// Polls until exactly one of `among` reports itself leader and every one
    /// of them names it as `leader_id`; returns its id.
    pub async fn leader(&self, among: &[u64]) -> u64 {
        let what = format!("a single agreed leader among {among:?}");
        let agreed = Wait::new(&what, PATIENCE)
            .try_until(async || {
                let mut views = Vec::new();
                for &id in among {
                    views.push((id, self.view(id).await));
                }
                let leaders: Vec<u64> = views
                    .iter()
                    .filter(|(_, view)| view.as_ref().is_some_and(|view| view["role"] == "leader"))
                    .map(|(id, _)| *id)
                    .collect();
                match leaders[..] {
                    [leader]
                        if views.iter().all(|(_, view)| {
                            view.as_ref()
                                .is_some_and(|view| view["leader_id"].as_u64() == Some(leader))
                        }) =>
                    {
                        Ok(leader)
                    }
                    _ => Err(format!("views: {views:#?}")),
                }
            })
            .await;
        agreed.unwrap_or_else(|timeout| panic!("{timeout}\n{}", self.dump()))
    }

    /// Any live node other than `leader`.
    pub fn follower_of(&self, leader: u64) -> u64 {
        self.live()
            .into_iter()
            .find(|id| *id != leader)
            .expect("a live follower")
    }

    /// Creates a channel on node `id` (answered once committed); its id.
    pub async fn create_channel(&self, id: u64, body: Value) -> i64 {
        let (status, channel) = self
            .admin(id, reqwest::Method::POST, "/api/channels", Some(&body))
            .await;
        assert_eq!(status, 201, "create channel on node {id}: {channel}");
        channel["id"].as_i64().expect("channel id")
    }

    /// A channel on the fake upstream serving [`MODEL`], with `extra` fields
    /// (settings, priority…) merged in.
    pub async fn upstream_channel(&self, id: u64, name: &str, extra: Value) -> i64 {
        let mut body = json!({
            "name": name,
            "base_url": self.upstream.base_url(),
            "key": format!("sk-upstream-{name}"),
            "models": [MODEL],
        });
        if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
            body.extend(extra);
        }
        self.create_channel(id, body).await
    }

    /// Creates an API key on node `id`; returns (its id, the full key).
    pub async fn create_key(&self, id: u64, name: &str) -> (i64, String) {
        let (status, token) = self
            .admin(
                id,
                reqwest::Method::POST,
                "/api/tokens",
                Some(&json!({"name": name})),
            )
            .await;
        assert_eq!(status, 201, "create key on node {id}: {token}");
        (
            token["id"].as_i64().expect("token id"),
            token["key"].as_str().expect("full key").to_string(),
        )
    }

    /// Polls until `GET path` answers 200 on every node of `among`.
    pub async fn visible_on(&self, among: &[u64], path: &str) -> Vec<Value> {
        let what = format!("{path} to be visible on all of {among:?}");
        let visible = Wait::new(&what, PATIENCE)
            .try_until(async || {
                let mut found = Vec::new();
                for &id in among {
                    match self.try_admin(id, reqwest::Method::GET, path, None).await {
                        Ok((200, value)) => found.push(value),
                        other => return Err(format!("node {id}: {other:?}")),
                    }
                }
                Ok(found)
            })
            .await;
        visible.unwrap_or_else(|timeout| panic!("{timeout}\n{}", self.dump()))
    }

    /// A channel with a huge daily cap and a key, visible on every node.
    pub async fn provision(&self, on: u64, cap: u64) -> (i64, String) {
        let channel = self
            .upstream_channel(
                on,
                "capped",
                json!({"settings": {"daily_token_limit": cap, "daily_reset_timezone": "UTC"}}),
            )
            .await;
        let (token, key) = self.create_key(on, "load").await;
        let all = self.live();
        self.visible_on(&all, &format!("/api/channels/{channel}"))
            .await;
        self.visible_on(&all, &format!("/api/tokens/{token}")).await;
        (channel, key)
    }

    /// `used` today for `channel` as node `id` sees it.
    pub async fn used(&self, id: u64, channel: i64) -> Option<u64> {
        let path = format!("/api/channels/{channel}/usage");
        match self.try_admin(id, reqwest::Method::GET, &path, None).await {
            Ok((200, usage)) => usage["used"].as_u64(),
            _ => None,
        }
    }

    /// Polls until every node of `among` reports `used == expected`.
    pub async fn converge(&self, among: &[u64], channel: i64, expected: u64) {
        let what = format!("counts to converge to {expected} (the upstream's total)");
        let converged = Wait::new(&what, PATIENCE)
            .try_until(async || {
                let mut seen = Vec::new();
                for &id in among {
                    seen.push((id, self.used(id, channel).await));
                }
                if seen.iter().all(|(_, used)| *used == Some(expected)) {
                    Ok(())
                } else {
                    Err(format!("{seen:?}"))
                }
            })
            .await;
        converged.unwrap_or_else(|timeout| panic!("{timeout}\n{}", self.dump()));
    }

    /// One chat completion on node `id`; the status, or `Err` when the node
    /// could not be reached.
    pub async fn chat(&self, id: u64, key: &str, body: &Value) -> Result<u16, String> {
        let response = self
            .client
            .post(format!("{}/v1/chat/completions", self.node(id).base()))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        // Read the whole body so a stream is counted when it ends.
        response.bytes().await.map_err(|error| error.to_string())?;
        Ok(status)
    }

    /// `count` requests spread round-robin over `nodes`, `concurrency` at
    /// a time, alternating plain and streamed; every outcome.
    pub async fn load(
        &self,
        nodes: &[u64],
        key: &str,
        count: usize,
        concurrency: usize,
    ) -> Vec<(u64, Result<u16, String>)> {
        futures_util::stream::iter(0..count)
            .map(|index| {
                let id = nodes[index % nodes.len()];
                let body = chat_body(index % 2 == 1);
                async move { (id, self.chat(id, key, &body).await) }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await
    }
}

/// `kill -SIGNAL pid`, for a signal sent while the cluster is borrowed
/// (reap a killed node with [`Cluster::kill9`] afterwards).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A small chat completion request, plain or streamed.
pub fn chat_body(stream: bool) -> Value {
    json!({
        "model": MODEL,
        "stream": stream,
        "messages": [{"role": "user", "content": "hello"}],
    })
}

/// Asserts every outcome is a 200.
pub fn all_ok(outcomes: &[(u64, Result<u16, String>)], what: &str) {
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, outcome)| *outcome != Ok(200))
        .collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} relay requests failed: {failed:?}",
        failed.len(),
        outcomes.len()
    );
}
