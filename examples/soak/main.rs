//! A bounded load soak of the real binary, run by `bench/soak.sh` (not CI).
//!
//! It starts the integration tests' fake upstream six times in-process (two
//! steady channels, one with a daily cap so every request reserves, one that
//! always answers 500, one slower than the gateway's first-byte timeout, one
//! that cuts its streams after two events), spawns the gateway, and keeps
//! `--concurrency` clients busy for `--duration` with a mix of plain and
//! streamed chat completions. Every 5 s it samples the gateway's RSS into
//! `rss.csv`. At the end it prints requests, errors by kind, latency
//! percentiles, the RSS figures with their slope, and whether the counters
//! are exact: the tokens counted (live, and again after a graceful restart)
//! must equal the tokens the fakes reported plus the gateway's own estimates
//! for the cut streams (the request-log rows marked `estimated`).
//!
//! `cargo run --release --example soak -- --binary target/release/sluicegate
//! --duration 5m --concurrency 128 --out DIR`

#[path = "../../tests/it/support/upstream/mod.rs"]
#[allow(
    dead_code,
    reason = "the tests use more of the fake than the soak does"
)]
mod upstream;

mod load;
mod report;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use upstream::{FakeUpstream, FakeUsage};

type Error = Box<dyn std::error::Error + Send + Sync>;

const ADMIN: &str = "soak-admin-token";
const MODEL: &str = "gpt-4o-mini";
const RSS_EVERY: Duration = Duration::from_secs(5);

/// The command line: `--binary PATH --duration 5m --concurrency 128 --out DIR`.
struct Options {
    binary: PathBuf,
    duration: Duration,
    concurrency: usize,
    out: PathBuf,
}

fn options() -> Result<Options, Error> {
    let mut options = Options {
        binary: PathBuf::from("target/release/sluicegate"),
        duration: Duration::from_secs(300),
        concurrency: 128,
        out: PathBuf::from("target/soak"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--binary" => options.binary = value.into(),
            "--duration" => options.duration = humantime::parse_duration(&value)?,
            "--concurrency" => options.concurrency = value.parse()?,
            "--out" => options.out = value.into(),
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(options)
}

/// One channel of the soak and the fake behind it.
pub struct Lane {
    pub name: &'static str,
    pub upstream: FakeUpstream,
    weight: u32,
    limit: Option<u64>,
    pub id: i64,
}

async fn lanes() -> Result<Vec<Lane>, Error> {
    let usage = |prompt, completion| {
        Some(FakeUsage {
            prompt,
            completion,
            total: prompt + completion,
        })
    };
    let mut lanes = Vec::new();
    let mut add = async |name, weight, limit, change: &dyn Fn(&mut upstream::Behavior)| {
        let upstream = FakeUpstream::start(name).await?;
        upstream.configure(change);
        lanes.push(Lane {
            name,
            upstream,
            weight,
            limit,
            id: 0,
        });
        Ok::<(), Error>(())
    };
    add("steady", 10, None, &|behavior| {
        behavior.usage = usage(11, 7)
    })
    .await?;
    add("long", 10, None, &|behavior| {
        behavior.usage = usage(20, 9);
        behavior.chunks = 8;
        behavior.chunk_delay = Duration::from_millis(5);
    })
    .await?;
    add("capped", 10, Some(1_000_000_000_000), &|behavior| {
        behavior.usage = usage(30, 10)
    })
    .await?;
    // Injected failures, about 14% of first attempts between them; the
    // gateway retries the first two on another channel.
    add("fails-500", 2, None, &|behavior| {
        behavior.failing = Some(upstream::Failing {
            status: 500,
            remaining: None,
        })
    })
    .await?;
    // Slower than --first-byte-timeout; it reports no usage, so a reply
    // nobody reads is not counted as reported either.
    add("times-out", 1, None, &|behavior| {
        behavior.usage = None;
        behavior.first_byte_delay = Duration::from_secs(3);
    })
    .await?;
    // Streams break after the role chunk and one content chunk; the client
    // sees a cut stream and the gateway counts its estimate.
    add("cuts-streams", 2, None, &|behavior| {
        behavior.usage = usage(9, 5);
        behavior.stop_after = Some(2);
        behavior.chunk_delay = Duration::from_millis(2);
    })
    .await?;
    Ok(lanes)
}

/// A gateway child process on a port chosen here, logging at warn.
fn spawn_gateway(options: &Options, port: u16) -> Result<Child, Error> {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(options.out.join("gateway.log"))?;
    let child = Command::new(&options.binary)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--data-dir",
            &options.out.join("data").display().to_string(),
        ])
        .args(["--log-level", "warn", "--first-byte-timeout", "1s"])
        .args(["--timezone", "UTC"])
        .env("SLUICEGATE_ADMIN_TOKEN", ADMIN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("the gateway did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// SIGTERM, then wait for a clean exit.
fn stop_gateway(mut child: Child) -> Result<(), Error> {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    if !sent.success() || !status.success() {
        return Err(format!("the gateway did not stop cleanly: {status}").into());
    }
    Ok(())
}

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?
        .local_addr()?
        .port())
}

async fn admin(client: &reqwest::Client, url: String, body: Option<Value>) -> Result<Value, Error> {
    let request = match body {
        Some(body) => client.post(url).json(&body),
        None => client.get(url),
    };
    let response = request.bearer_auth(ADMIN).send().await?;
    if !response.status().is_success() {
        return Err(format!("admin call failed: {}", response.text().await?).into());
    }
    Ok(response.json().await?)
}

/// Creates every lane's channel and one API key; returns the key.
async fn provision(
    client: &reqwest::Client,
    base: &str,
    lanes: &mut [Lane],
) -> Result<String, Error> {
    for lane in lanes.iter_mut() {
        let mut settings = json!({});
        if let Some(limit) = lane.limit {
            settings["daily_token_limit"] = json!(limit);
        }
        let body = json!({
            "name": lane.name, "base_url": lane.upstream.base_url(), "key": "sk-soak",
            "models": [MODEL], "weight": lane.weight, "settings": settings,
        });
        let channel = admin(client, format!("{base}/api/channels"), Some(body)).await?;
        lane.id = channel["id"].as_i64().ok_or("no channel id")?;
    }
    let token = admin(
        client,
        format!("{base}/api/tokens"),
        Some(json!({"name": "soak"})),
    )
    .await?;
    Ok(token["key"].as_str().ok_or("no key")?.to_string())
}

/// Every lane's count over all kept days, as the gateway reports it.
async fn counted(client: &reqwest::Client, base: &str, lanes: &[Lane]) -> Result<u64, Error> {
    let mut total = 0;
    for lane in lanes {
        let usage = admin(
            client,
            format!("{base}/api/channels/{}/usage", lane.id),
            None,
        )
        .await?;
        for day in usage["history"].as_array().ok_or("no history")? {
            total += day["used"].as_u64().ok_or("no used")?;
        }
    }
    Ok(total)
}

/// Request-log rows, the tokens of those marked estimated, and SQLite's
/// integrity check, read from the stopped gateway's file.
fn logged(data_dir: &Path) -> Result<(u64, u64, String), Error> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let connection = rusqlite::Connection::open_with_flags(data_dir.join("sluicegate.db"), flags)?;
    let (rows, estimated): (i64, i64) = connection.query_row(
        "SELECT count(*), coalesce(sum(CASE WHEN estimated = 1 THEN total_tokens END), 0) \
         FROM request_logs",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let integrity = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    Ok((u64::try_from(rows)?, u64::try_from(estimated)?, integrity))
}

/// Samples the child's RSS into `rss.csv` until `stop` fires.
async fn sample_rss(
    pid: u32,
    out: PathBuf,
    start: Instant,
    stop: tokio_util::sync::CancellationToken,
) -> Vec<(f64, u64)> {
    let mut samples = Vec::new();
    let mut csv = std::fs::File::create(out.join("rss.csv")).ok();
    if let Some(file) = csv.as_mut() {
        let _ = writeln!(file, "elapsed_s,rss_kb,requests");
    }
    let mut ticks = tokio::time::interval(RSS_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return samples,
        }
        let Some(rss) = report::rss_kb(pid, "VmRSS") else {
            return samples;
        };
        let elapsed = start.elapsed().as_secs_f64();
        let finished = load::FINISHED.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(file) = csv.as_mut() {
            let _ = writeln!(file, "{elapsed:.1},{rss},{finished}");
        }
        eprintln!(
            "  {elapsed:>6.1} s  RSS {:>7.1} MiB  {finished} requests",
            rss as f64 / 1024.0
        );
        samples.push((elapsed, rss));
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let options = options()?;
    sluicegate::upstream::install_tls_provider();
    std::fs::create_dir_all(&options.out)?;
    let client = reqwest::Client::new();
    let mut lanes = lanes().await?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let gateway = spawn_gateway(&options, port)?;
    let pid = gateway.id();
    let key = provision(&client, &base, &mut lanes).await?;
    println!(
        "soak: {} clients for {:?} against pid {pid}; RSS every {RSS_EVERY:?} into {}",
        options.concurrency,
        options.duration,
        options.out.join("rss.csv").display()
    );

    let start = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = tokio::spawn(sample_rss(pid, options.out.clone(), start, stop.clone()));
    let url = format!("{base}/v1/chat/completions");
    let tally = load::run(&url, &key, MODEL, options.concurrency, options.duration).await;
    let elapsed = start.elapsed();
    stop.cancel();
    let samples = sampler.await?;
    let peak = report::rss_kb(pid, "VmHWM").unwrap_or(0);

    let reported: u64 = lanes
        .iter()
        .map(|lane| lane.upstream.reported_tokens())
        .sum();
    let live = counted(&client, &base, &lanes).await?;
    stop_gateway(gateway)?;
    let (rows, estimated, integrity) = logged(&options.out.join("data"))?;
    let restarted = spawn_gateway(&options, port)?;
    let durable = counted(&client, &base, &lanes).await;
    stop_gateway(restarted)?;
    let durable = durable?;

    report::print(&report::Figures {
        elapsed,
        tally: &tally,
        samples: &samples,
        peak_kb: peak,
        reported,
        estimated,
        live,
        durable,
        rows,
        integrity: &integrity,
    });
    let expected = reported + estimated;
    if live != expected || durable != expected || integrity != "ok" {
        return Err("the counts are not exact".into());
    }
    Ok(())
}
