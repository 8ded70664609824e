//! Allocations per relayed request: the gateway and the fake upstream run
//! in this one process under a counting allocator, and a plain HTTP/1.1
//! client sends the same requests twice, straight to the upstream and
//! through the gateway. The difference, per request, is what the gateway
//! allocates (its own work, plus what hyper does for the extra hop).
//!
//!   cargo run --release --example allocations [-- REQUESTS]
//!
//! Cases: a tiny chat prompt, the same streamed, and a ~300 KB coding-agent
//! prompt (`bench/prompt.py`'s shape, generated here). `bench/run.sh`
//! runs it after the load runs.

#[path = "../tests/it/support/prompt.rs"]
mod prompt;
#[path = "../tests/it/support/upstream/mod.rs"]
#[allow(
    dead_code,
    reason = "the tests use more of the fake than this measurement does"
)]
mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const ADMIN: &str = "allocations-admin";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requests: usize = std::env::args()
        .nth(1)
        .and_then(|count| count.parse().ok())
        .unwrap_or(2_000);
    sluicegate::upstream::install_tls_provider();
    let fake = upstream::FakeUpstream::start("alloc").await?;
    let data = tempfile::tempdir()?;
    let config = sluicegate::config::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data.path().to_path_buf(),
        admin_token: Some(ADMIN.to_string()),
        ..sluicegate::config::Config::default()
    };
    let running = sluicegate::server::start(config).await?;
    let key = provision(running.addr, &fake.base_url()).await?;

    println!("allocations per request (gateway minus direct), {requests} requests each");
    println!("{:<8} {:>12} {:>14}", "case", "allocations", "bytes");
    for (case, body) in [
        ("plain", chat(false)),
        ("stream", chat(true)),
        ("big", prompt::coding_agent()),
    ] {
        let direct = measure(fake.addr, "sk-upstream", &body, requests).await?;
        let through = measure(running.addr, &key, &body, requests).await?;
        let per = |gateway: usize, direct: usize| {
            (gateway.saturating_sub(direct) as f64) / requests as f64
        };
        println!(
            "{case:<8} {:>12.1} {:>14.0}",
            per(through.allocations, direct.allocations),
            per(through.bytes_allocated, direct.bytes_allocated),
        );
    }
    running.stop().await;
    Ok(())
}

/// A channel on the fake and a key, through the admin API.
async fn provision(
    gateway: SocketAddr,
    base_url: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let channel = serde_json::json!({
        "name": "alloc", "base_url": base_url, "key": "sk-upstream",
        "models": ["bench-model", "gpt-4o-mini"],
    });
    send(gateway, "/api/channels", ADMIN, &channel.to_string()).await?;
    let token = send(gateway, "/api/tokens", ADMIN, r#"{"name":"alloc"}"#).await?;
    let body = token.split("\r\n\r\n").nth(1).unwrap_or_default();
    let token: serde_json::Value = serde_json::from_str(body)?;
    Ok(token["key"].as_str().unwrap_or_default().to_string())
}

/// The heap activity of `requests` sequential requests on one connection
/// (after a warm-up of the same requests).
async fn measure(
    addr: SocketAddr,
    key: &str,
    body: &str,
    requests: usize,
) -> Result<stats_alloc::Stats, Box<dyn std::error::Error>> {
    let mut connection = TcpStream::connect(addr).await?;
    connection.set_nodelay(true)?;
    for _ in 0..requests.min(200) {
        exchange(&mut connection, key, body).await?;
    }
    // Let background work of the warm-up (log batches) settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let region = Region::new(GLOBAL);
    for _ in 0..requests {
        exchange(&mut connection, key, body).await?;
    }
    // Count the log rows these requests queued, which are written in a
    // batch up to 200 ms later.
    tokio::time::sleep(Duration::from_millis(400)).await;
    Ok(region.change())
}

/// One `POST /v1/chat/completions` and its whole response.
async fn exchange(
    connection: &mut TcpStream,
    key: &str,
    body: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    send_on(connection, "/v1/chat/completions", key, body).await?;
    Ok(())
}

async fn send(
    addr: SocketAddr,
    path: &str,
    bearer: &str,
    body: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut connection = TcpStream::connect(addr).await?;
    send_on(&mut connection, path, bearer, body).await
}

/// Writes one request and reads its response (content-length or chunked).
async fn send_on(
    connection: &mut TcpStream,
    path: &str,
    bearer: &str,
    body: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {bearer}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    connection.write_all(head.as_bytes()).await?;
    connection.write_all(body.as_bytes()).await?;
    let mut response = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let read = connection.read(&mut buffer).await?;
        if read == 0 {
            return Err("the connection closed mid-response".into());
        }
        response.extend_from_slice(&buffer[..read]);
        if complete(&response) {
            return Ok(String::from_utf8_lossy(&response).into_owned());
        }
    }
}

/// Whether `response` holds a whole HTTP/1.1 response.
fn complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|window| window == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let body = &response[end + 4..];
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

fn chat(stream: bool) -> String {
    format!(
        r#"{{"model":"bench-model","stream":{stream},"messages":[{{"role":"user","content":"Say hello in five words."}}]}}"#
    )
}
