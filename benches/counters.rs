//! In-memory counter increments (`Counters::count`), the per-request cost of
//! counting. Durability is batched by the flusher and not measured here.
//! Target: ≥ 1,000,000 increments per second.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluicegate::daily::{Cap, Counters};
use sluicegate::model::ChannelId;

const BATCH: u64 = 1_000;

fn increments(c: &mut Criterion) {
    let now = Utc
        .timestamp_opt(1_780_000_000, 0)
        .single()
        .unwrap_or_default();
    let counters = Counters::new();
    let cap = Cap {
        limit: 1_000_000_000_000,
        zone: Tz::UTC,
    };
    let mut group = c.benchmark_group("counter increments");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("count, 8 channels", |b| {
        b.iter(|| {
            for index in 0..BATCH {
                let channel = ChannelId(i64::try_from(index % 8).unwrap_or(0));
                counters.count(channel, Tz::UTC, black_box(800), None, now);
            }
            // Keep the pending map from growing without bound, as the flusher does.
            black_box(counters.take_pending());
        })
    });
    group.bench_function("reserve + count, 8 channels", |b| {
        b.iter(|| {
            for index in 0..BATCH {
                let channel = ChannelId(i64::try_from(index % 8).unwrap_or(0));
                if let Ok(reservation) = counters.try_reserve(channel, cap, 900, now) {
                    counters.count(channel, Tz::UTC, black_box(800), Some(reservation), now);
                }
            }
            black_box(counters.take_pending());
        })
    });
    group.finish();
}

criterion_group!(benches, increments);
criterion_main!(benches);
