//! The integration tests' fake OpenAI upstream as a standalone server, for
//! benchmarks: `cargo run --release --example fake_upstream -- 127.0.0.1:9000`.
//! It answers `POST /v1/chat/completions` (plain and streamed) with usage.

#[path = "../tests/it/support/upstream/mod.rs"]
#[allow(
    dead_code,
    reason = "the tests use more of the fake than the benchmark does"
)]
mod upstream;

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".to_string())
        .parse()?;
    let fake = upstream::FakeUpstream::start_on("bench", addr).await?;
    println!("fake upstream listening on {}", fake.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
