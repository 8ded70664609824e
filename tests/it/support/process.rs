//! Runs the real `sluicegate` binary as a child process and talks HTTP/1.1
//! to it over a plain `TcpStream`, so callers need no runtime and no TLS
//! provider. Every server listens on 127.0.0.1:0 and reports its port in its
//! JSON log line `"message":"listening"`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use super::poll::Wait;

pub const BINARY: &str = env!("CARGO_BIN_EXE_sluicegate");
pub const STARTUP: Duration = Duration::from_secs(30);

/// A running binary whose stdout and stderr are collected into `output`.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Process {
    /// Starts the binary with exactly `args` and `env` (nothing inherited)
    /// and waits until it logs the address it listens on.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Process {
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

    pub fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// Kills the process with SIGKILL, as a crash would, and waits for it.
    pub fn kill9(&mut self) -> ExitStatus {
        self.child.kill().expect("kill -9");
        let status = self.child.wait().expect("wait");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// Sends SIGTERM and waits for the exit and for the pipes to drain.
    pub fn terminate(&mut self) -> ExitStatus {
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

    pub fn request(
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
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
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
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
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

/// Waits for `child` to exit on its own; kills it and panics after `limit`.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let exited = Wait::new("sluicegate to exit", limit)
        .try_until_blocking(|| child.try_wait().expect("try_wait"));
    exited.unwrap_or_else(|timeout| {
        let _ = child.kill();
        panic!("{timeout}");
    })
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

pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let event: Value = serde_json::from_str(line).ok()?;
    let fields = event.get("fields").unwrap_or(&event);
    if fields.get("message")?.as_str()? != "listening" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the
/// JSON body (`Null` when empty or not JSON).
pub fn http(
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
