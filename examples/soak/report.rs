//! The soak's closing figures: requests, errors by kind, latency
//! percentiles, RSS over time with its least-squares slope, and the count
//! check.

use std::time::Duration;

use crate::load::Tally;

/// Everything the report shows.
pub struct Figures<'a> {
    pub elapsed: Duration,
    pub tally: &'a Tally,
    /// (seconds since the start, RSS in KiB), one every 5 s.
    pub samples: &'a [(f64, u64)],
    pub peak_kb: u64,
    /// Σ total_tokens of every usage object the fakes sent.
    pub reported: u64,
    /// Σ total_tokens of request-log rows the gateway estimated (cut streams).
    pub estimated: u64,
    /// Σ counted tokens from the usage API while the gateway still ran.
    pub live: u64,
    /// The same after a graceful stop and a restart.
    pub durable: u64,
    pub rows: u64,
    pub integrity: &'a str,
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
pub fn rss_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|line| line.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `q`-quantile (0..=1) of sorted microsecond latencies, in ms.
fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

/// The least-squares slope of RSS over time, in KiB per minute.
fn slope_kb_per_min(samples: &[(f64, u64)]) -> f64 {
    let count = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|(t, _)| t).sum::<f64>() / count;
    let mean_r = samples.iter().map(|(_, r)| *r as f64).sum::<f64>() / count;
    let covariance: f64 = samples
        .iter()
        .map(|(t, r)| (t - mean_t) * (*r as f64 - mean_r))
        .sum();
    let variance: f64 = samples.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance * 60.0
    }
}

fn latency_line(name: &str, latencies: &[u32]) {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    println!(
        "  {name:<7} {:>9} ok   p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
        sorted.len(),
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.99),
        percentile(&sorted, 1.0),
    );
}

pub fn print(figures: &Figures) {
    let tally = figures.tally;
    let seconds = figures.elapsed.as_secs_f64();
    let requests = tally.requests();
    println!();
    println!(
        "requests  {requests} in {seconds:.0} s ({:.0}/s); {} ok, {} failed ({:.2}%)",
        requests as f64 / seconds,
        tally.ok,
        requests - tally.ok,
        (requests - tally.ok) as f64 * 100.0 / requests.max(1) as f64
    );
    for (kind, count) in &tally.errors {
        println!("  error   {count:>9}  {kind}");
    }
    println!("latency (client side, successes)");
    latency_line("plain", &tally.plain_us);
    latency_line("stream", &tally.stream_us);
    let mut all = tally.plain_us.clone();
    all.extend(&tally.stream_us);
    latency_line("all", &all);

    let rss: Vec<u64> = figures.samples.iter().map(|(_, rss)| *rss).collect();
    let mib = |kb: u64| kb as f64 / 1024.0;
    println!(
        "RSS MiB   first {:.1}  min {:.1}  max {:.1}  last {:.1}  (peak VmHWM {:.1}, {} samples)",
        mib(rss.first().copied().unwrap_or(0)),
        mib(rss.iter().copied().min().unwrap_or(0)),
        mib(rss.iter().copied().max().unwrap_or(0)),
        mib(rss.last().copied().unwrap_or(0)),
        mib(figures.peak_kb),
        rss.len()
    );
    let second_half = &figures.samples[figures.samples.len() / 2..];
    println!(
        "RSS slope {:+.1} KiB/min over the run, {:+.1} KiB/min over its second half",
        slope_kb_per_min(figures.samples),
        slope_kb_per_min(second_half)
    );

    let expected = figures.reported + figures.estimated;
    let verdict = |counted: u64| {
        if counted == expected {
            "exact".to_string()
        } else {
            format!("OFF BY {:+}", counted as i128 - expected as i128)
        }
    };
    println!(
        "counts    upstream reported {} + gateway estimates (cut streams) {} = {expected}",
        figures.reported, figures.estimated
    );
    println!(
        "          live /api usage {}: {}",
        figures.live,
        verdict(figures.live)
    );
    println!(
        "          after graceful restart {}: {}",
        figures.durable,
        verdict(figures.durable)
    );
    println!(
        "sqlite    {} request-log rows for {requests} requests; integrity_check {}",
        figures.rows, figures.integrity
    );
}
