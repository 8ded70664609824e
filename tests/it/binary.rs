//! Tests that run the real `sluicegate` binary: data dir creation and reuse,
//! the admin token's sources and rotation, config errors, flag placement,
//! SIGTERM, and secrets kept out of the logs.
//!
//! They talk HTTP/1.1 over a plain `TcpStream`, so they need no runtime and
//! no TLS provider. Every server listens on 127.0.0.1:0 and reports its port
//! in its JSON log line `"message":"listening"`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_sluicegate");
const STARTUP: Duration = Duration::from_secs(30);

/// A running binary whose stdout and stderr are collected into `output`.
struct Process {
    child: Child,
    addr: SocketAddr,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Process {
    /// Starts the binary with exactly `args` and `env` (nothing inherited)
    /// and waits until it logs the address it listens on.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut child = command(args, env).spawn().expect("spawn sluicegate");
        let output = Arc::new(Mutex::new(String::new()));
        let (addr_sender, addr_receiver) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let readers = vec![
            collect(stderr, Arc::clone(&output), Some(addr_sender)),
            collect(stdout, Arc::clone(&output), None),
        ];
        let mut process = Process {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            output,
            readers,
        };
        match addr_receiver.recv_timeout(STARTUP) {
            Ok(addr) => process.addr = addr,
            Err(_) => {
                let _ = process.child.kill();
                let status = process.child.wait();
                for reader in process.readers.drain(..) {
                    let _ = reader.join();
                }
                panic!(
                    "no `listening` line ({status:?}); output:\n{}",
                    process.output()
                );
            }
        }
        process
    }

    fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// Sends SIGTERM and waits for the exit and for the pipes to drain.
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = wait_with_deadline(&mut self.child, STARTUP);
        for reader in self.readers.drain(..) {
            reader.join().expect("reader thread");
        }
        status
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        http(self.addr, method, path, bearer, body)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with `args` and only the env given, so the caller's
/// `SLUICEGATE_*` or `RUST_LOG` variables cannot leak in.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs a command that must finish on its own; returns status, stdout, stderr.
fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut child = command(args, env).spawn().expect("spawn sluicegate");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (stdout, stderr) = (read_all(Box::new(stdout)), read_all(Box::new(stderr)));
    let status = wait_with_deadline(&mut child, STARTUP);
    (
        status,
        stdout.join().expect("stdout"),
        stderr.join().expect("stderr"),
    )
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluicegate did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies lines from `pipe` into `output`; the first `listening` line's
/// address goes to `addr`.
fn collect(
    pipe: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
    mut addr: Option<mpsc::Sender<SocketAddr>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if addr.is_some()
                && let Some(listening) = listening_addr(&line)
                && let Some(sender) = addr.take()
            {
                let _ = sender.send(listening);
            }
            if let Ok(mut output) = output.lock() {
                output.push_str(&line);
                output.push('\n');
            }
        }
    })
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let event: Value = serde_json::from_str(line).ok()?;
    let fields = event.get("fields").unwrap_or(&event);
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the
/// JSON body (`Null` when empty or not JSON).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(STARTUP)).expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body.as_bytes()).expect("write body");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut body: &str) -> String {
    let mut joined = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        joined.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    joined
}

/// `--listen 127.0.0.1:0 --log-format json --data-dir DIR`.
fn serve_args(data_dir: &Path) -> Vec<String> {
    [
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--data-dir",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .chain([data_dir.display().to_string()])
    .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn channel_body(name: &str, key: &str) -> Value {
    json!({"name": name, "base_url": "http://127.0.0.1:9/v1", "key": key, "models": ["gpt-4o-mini"]})
}

fn read_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin-token"))
        .expect("admin-token file")
        .trim()
        .to_string()
}

/// A first start creates the data dir with both stores and a private token
/// file; a restart reuses that token and still has the channel created before.
#[test]
fn first_start_creates_the_data_dir_and_a_restart_reuses_it() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let args = serve_args(&data_dir);

    let mut first = Process::start(&strs(&args), &[]);
    let token_path = data_dir.join("admin-token");
    assert!(data_dir.join("sluicegate.db").is_file());
    assert!(data_dir.join("counters.sled").is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        first.output().contains(&token_path.display().to_string()),
        "{}",
        first.output()
    );
    let token = read_token(&data_dir);
    let (status, created) = first.request(
        "POST",
        "/api/channels",
        &token,
        Some(&channel_body("a", "sk-test")),
    );
    assert_eq!(status, 201, "{created}");
    assert!(first.terminate().success(), "{}", first.output());

    let mut second = Process::start(&strs(&args), &[]);
    assert_eq!(read_token(&data_dir), token);
    assert!(
        !second.output().contains("generated"),
        "{}",
        second.output()
    );
    let (status, list) = second.request("GET", "/api/channels", &token, None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["name"], "a");
    assert!(second.terminate().success());
}

/// `SLUICEGATE_ADMIN_TOKEN` beats the token file: only the env token works.
#[test]
fn env_admin_token_overrides_the_file() {
    let temp = tempfile::tempdir().unwrap();
    let (status, file_token, _) = run_to_exit(
        &[
            "admin-token",
            "--rotate",
            "--data-dir",
            temp.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(status.success());
    let file_token = file_token.trim();

    let env_token = "sga-from-the-environment-0123456789";
    let mut process = Process::start(
        &strs(&serve_args(temp.path())),
        &[("SLUICEGATE_ADMIN_TOKEN", env_token)],
    );
    assert_eq!(
        process.request("GET", "/api/channels", env_token, None).0,
        200
    );
    assert_eq!(
        process.request("GET", "/api/channels", file_token, None).0,
        401
    );
    assert!(process.terminate().success());
    assert!(!process.output().contains(env_token));
}

/// `admin-token --rotate` prints a new token that a running server accepts
/// at once, while the old one stops working.
#[test]
fn rotation_takes_effect_on_a_running_server() {
    let temp = tempfile::tempdir().unwrap();
    let mut process = Process::start(&strs(&serve_args(temp.path())), &[]);
    let old = read_token(temp.path());
    assert_eq!(process.request("GET", "/api/channels", &old, None).0, 200);

    let (status, stdout, stderr) = run_to_exit(
        &[
            "admin-token",
            "--rotate",
            "--data-dir",
            temp.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(status.success(), "{stderr}");
    let new = stdout.trim();
    assert!(new.starts_with("sga-") && new != old, "{stdout}");
    assert!(stderr.contains("running server"), "{stderr}");

    assert_eq!(process.request("GET", "/api/channels", new, None).0, 200);
    assert_eq!(process.request("GET", "/api/channels", &old, None).0, 401);
    let (status, shown, _) = run_to_exit(
        &["admin-token", "--data-dir", temp.path().to_str().unwrap()],
        &[],
    );
    assert!(status.success());
    assert_eq!(shown.trim(), new);
    assert!(process.terminate().success());
}

/// An unknown key in the --config file stops the start, naming the key.
#[test]
fn unknown_config_file_key_stops_the_start() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("sluicegate.toml");
    std::fs::write(&file, "max_retries = 1\nmax_retry = 3\n").unwrap();
    let data_dir = temp.path().join("data");
    let mut args = serve_args(&data_dir);
    args.extend(["--config".to_string(), file.display().to_string()]);
    let (status, _, stderr) = run_to_exit(&strs(&args), &[]);
    assert!(!status.success());
    assert!(stderr.contains("unknown key `max_retry`"), "{stderr}");
    assert!(
        !data_dir.exists(),
        "nothing is created before the config is valid"
    );
}

/// An invalid env value stops the start, naming the variable.
#[test]
fn invalid_env_value_stops_the_start() {
    let temp = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_to_exit(
        &strs(&serve_args(temp.path())),
        &[("SLUICEGATE_MAX_RETRIES", "abc")],
    );
    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(stderr.contains("SLUICEGATE_MAX_RETRIES"), "{stderr}");
}

/// The same flags work without `serve`, after it, and on both sides of it.
#[test]
fn flags_work_with_and_without_serve() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().display().to_string();
    let placements: [&[&str]; 3] = [
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
            &dir,
        ],
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
            &dir,
        ],
        &[
            "--data-dir",
            &dir,
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
    ];
    for args in placements {
        let mut process = Process::start(args, &[]);
        assert!(temp.path().join("sluicegate.db").is_file(), "{args:?}");
        assert!(process.terminate().success(), "{args:?}");
    }
}

/// SIGTERM stops an idle server promptly with exit code 0.
#[test]
fn sigterm_exits_gracefully() {
    let temp = tempfile::tempdir().unwrap();
    let mut process = Process::start(&strs(&serve_args(temp.path())), &[]);
    let started = Instant::now();
    let status = process.terminate();
    assert_eq!(status.code(), Some(0), "{}", process.output());
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// With debug logging, a run that stores a channel key, creates an API key
/// and relays with it (and with a wrong key) logs none of the secrets.
#[test]
fn secrets_never_reach_the_logs() {
    let temp = tempfile::tempdir().unwrap();
    let admin = "sga-admin-secret-4242424242424242";
    let channel_key = "sk-upstream-secret-channel-key-1111";
    let wrong_key = "sk-not-a-real-key-but-still-secret-2222";
    let mut args = serve_args(temp.path());
    args.extend([
        "--log-level".to_string(),
        "debug".to_string(),
        "--max-retries".to_string(),
        "0".to_string(),
    ]);
    let mut process = Process::start(&strs(&args), &[("SLUICEGATE_ADMIN_TOKEN", admin)]);

    let (status, _) = process.request(
        "POST",
        "/api/channels",
        admin,
        Some(&channel_body("c", channel_key)),
    );
    assert_eq!(status, 201);
    let (status, created) =
        process.request("POST", "/api/tokens", admin, Some(&json!({"name": "t"})));
    assert_eq!(status, 201, "{created}");
    let api_key = created["key"]
        .as_str()
        .expect("full key in the create response")
        .to_string();
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = process.request("POST", "/v1/chat/completions", &api_key, Some(&chat));
    assert!(status >= 500, "the upstream port is closed: {status}");
    let (status, _) = process.request("POST", "/v1/chat/completions", wrong_key, Some(&chat));
    assert_eq!(status, 401);
    assert_eq!(
        process
            .request("GET", "/api/channels", "sga-wrong-admin", None)
            .0,
        401
    );

    assert!(process.terminate().success());
    let output = process.output();
    assert!(output.contains("listening"), "logs were captured: {output}");
    for secret in [
        admin,
        channel_key,
        wrong_key,
        api_key.as_str(),
        "sga-wrong-admin",
    ] {
        assert!(!output.contains(secret), "{secret} leaked into:\n{output}");
    }
}
