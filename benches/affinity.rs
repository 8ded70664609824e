//! The channel-affinity cache (`affinity::AffinityCache`, quick_cache
//! with each entry's expiry checked on read) against bare
//! `quick_cache::sync::Cache` of the same capacity ([`DEFAULT_CAPACITY`]) and
//! keys, holding only the channel: what the TTL and the wrapper cost.
//!
//! One operation is what a relayed request does: `get` its affinity, then
//! `remember` the channel that served it. The keys follow a Zipf(1.0) trace
//! over a million sessions, ten times the capacity, so most requests find
//! their affinity and the rest evict one; each cache's hit rate on the trace
//! is printed first. It runs on one thread, then on two threads sharing the
//! cache. The heap bytes each cache holds per entry once full are printed
//! too, counted by the allocator.
//!
//! Why quick_cache: `AffinityCache` used to be a sharded LRU of our own
//! (slab + linked list, 16 `Mutex` shards, std `HashMap`; c86f725). Run in
//! the same process as the other two, on a 2-core machine with another
//! build running (so the spread is the load; ranges are criterion's middle
//! estimates over 4 or 5 runs), per request:
//!
//! | cache | 1 thread | 2 threads | hit rate | heap bytes per entry |
//! |---|---|---|---|---|
//! | old LRU | 221-306 ns | 601-1022 ns | 78.0% | 107.5 |
//! | `AffinityCache` now | 118-176 ns | 314-460 ns | 85.4% | 118.0 |
//! | bare quick_cache | 81-112 ns | 196-302 ns | 85.4% | 118.0 |
//!
//! (2 threads: the wall time for both threads' requests, per request of
//! one.) What `AffinityCache` adds to bare quick_cache is the expiry: two
//! `DateTime` to milliseconds conversions and a comparison per request.
//!
//! `cargo bench --bench affinity`

use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration as Elapsed, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluicegate::affinity::{AffinityCache, AffinityKey, DEFAULT_CAPACITY, DEFAULT_TTL};
use sluicegate::model::ChannelId;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

/// Counts the bytes each cache holds. A full cache does not allocate, so the
/// timed loops do not reach it.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Distinct sessions in the trace.
const SESSIONS: usize = 1_000_000;
/// Requests in the trace; each thread walks it from its own offset.
const TRACE: usize = 2_000_000;

/// The two caches behind one interface.
trait Affinity: Sync {
    fn get(&self, key: AffinityKey, now: DateTime<Utc>) -> Option<ChannelId>;
    fn remember(&self, key: AffinityKey, channel: ChannelId, now: DateTime<Utc>);
    fn len(&self) -> usize;
}

impl Affinity for AffinityCache {
    fn get(&self, key: AffinityKey, now: DateTime<Utc>) -> Option<ChannelId> {
        AffinityCache::get(self, key, now)
    }
    fn remember(&self, key: AffinityKey, channel: ChannelId, now: DateTime<Utc>) {
        AffinityCache::remember(self, key, channel, now);
    }
    fn len(&self) -> usize {
        AffinityCache::len(self)
    }
}

/// quick_cache with its defaults (sharded, foldhash) and nothing around it:
/// no expiry, only the channel.
struct Quick(quick_cache::sync::Cache<AffinityKey, ChannelId>);

impl Quick {
    fn new(capacity: usize) -> Quick {
        Quick(quick_cache::sync::Cache::new(capacity))
    }
}

impl Affinity for Quick {
    fn get(&self, key: AffinityKey, _now: DateTime<Utc>) -> Option<ChannelId> {
        self.0.get(&key)
    }
    fn remember(&self, key: AffinityKey, channel: ChannelId, _now: DateTime<Utc>) {
        self.0.insert(key, channel);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// One relayed request: read the affinity, remember who served it. Returns
/// whether the affinity was found.
fn request(cache: &impl Affinity, key: AffinityKey, now: DateTime<Utc>) -> bool {
    let found = cache.get(key, now);
    cache.remember(key, found.unwrap_or(ChannelId(1)), now);
    found.is_some()
}

/// A deterministic Zipf(1.0) trace of session keys (splitmix64 draws, so
/// every run and both caches see the same requests).
fn trace(keys: &AffinityCache) -> Vec<AffinityKey> {
    let mut cumulative = Vec::with_capacity(SESSIONS);
    let mut total = 0.0_f64;
    for rank in 1..=SESSIONS {
        total += 1.0 / rank as f64;
        cumulative.push(total);
    }
    let sessions: Vec<AffinityKey> = (0..SESSIONS)
        .map(|index| keys.key(&format!("session-{index}"), "gpt-4o", "default"))
        .collect();
    let mut state = 0x5eed_u64;
    (0..TRACE)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut mixed = state;
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            mixed ^= mixed >> 31;
            let target = (mixed >> 11) as f64 / (1_u64 << 53) as f64 * total;
            let rank = cumulative.partition_point(|&sum| sum < target);
            sessions[rank.min(SESSIONS - 1)]
        })
        .collect()
}

/// Runs the whole trace once (filling the cache) and returns the hit rate
/// of a second pass, the steady state the timings see.
fn warm(cache: &impl Affinity, trace: &[AffinityKey], now: DateTime<Utc>) -> f64 {
    for &key in trace {
        request(cache, key, now);
    }
    let hits = trace
        .iter()
        .filter(|&&key| request(cache, key, now))
        .count();
    hits as f64 / trace.len() as f64
}

/// Heap bytes per entry of a cache filled past capacity with distinct keys.
fn bytes_per_entry<C: Affinity>(
    build: impl FnOnce() -> C,
    keys: &AffinityCache,
    now: DateTime<Utc>,
) -> f64 {
    let region = Region::new(GLOBAL);
    let cache = build();
    for index in 0..DEFAULT_CAPACITY * 3 {
        let key = keys.key(&index.to_string(), "m", "g");
        cache.remember(key, ChannelId(1), now);
    }
    let change = region.change();
    // stats_alloc counts a realloc's growth in `bytes_allocated` already.
    let held = change.bytes_allocated as f64 - change.bytes_deallocated as f64;
    let per_entry = held / cache.len() as f64;
    drop(cache);
    per_entry
}

/// `requests` requests from the trace, from `start` on, wrapping around.
fn run(
    cache: &impl Affinity,
    trace: &[AffinityKey],
    start: usize,
    requests: u64,
    now: DateTime<Utc>,
) {
    let mut position = start;
    for _ in 0..requests {
        black_box(request(cache, black_box(trace[position]), now));
        position += 1;
        if position == trace.len() {
            position = 0;
        }
    }
}

fn compare(
    c: &mut Criterion,
    name: &str,
    cache: &impl Affinity,
    trace: &[AffinityKey],
    now: DateTime<Utc>,
) {
    let mut group = c.benchmark_group("affinity request (get + remember)");
    group.throughput(Throughput::Elements(1));
    let cursor = Cell::new(0_usize);
    group.bench_function(format!("{name}, 1 thread"), |b| {
        b.iter_custom(|requests| {
            let start = cursor.get();
            let began = Instant::now();
            run(cache, trace, start, requests, now);
            let elapsed = began.elapsed();
            let advance = usize::try_from(requests % trace.len() as u64).unwrap_or(0);
            cursor.set((start + advance) % trace.len());
            elapsed
        })
    });
    // Each thread makes `requests` requests; the time is the wall clock for
    // both, so it reads as one thread's cost per request under contention.
    group.throughput(Throughput::Elements(2));
    group.bench_function(format!("{name}, 2 threads"), |b| {
        b.iter_custom(|requests| {
            let start = cursor.get();
            let elapsed = std::thread::scope(|scope| {
                let began = Instant::now();
                let workers = [start, start + trace.len() / 2].map(|offset| {
                    scope.spawn(move || run(cache, trace, offset % trace.len(), requests, now))
                });
                for worker in workers {
                    _ = worker.join();
                }
                began.elapsed()
            });
            let advance = usize::try_from(requests % trace.len() as u64).unwrap_or(0);
            cursor.set((start + advance) % trace.len());
            elapsed.max(Elapsed::from_nanos(1))
        })
    });
    group.finish();
}

fn affinity(c: &mut Criterion) {
    let now = Utc
        .timestamp_opt(1_780_000_000, 0)
        .single()
        .unwrap_or_default();
    let ours = AffinityCache::new(DEFAULT_CAPACITY, DEFAULT_TTL);
    let quick = Quick::new(DEFAULT_CAPACITY);
    let trace = trace(&ours);

    let ours_bytes = bytes_per_entry(
        || AffinityCache::new(DEFAULT_CAPACITY, DEFAULT_TTL),
        &ours,
        now,
    );
    let quick_bytes = bytes_per_entry(|| Quick::new(DEFAULT_CAPACITY), &ours, now);
    let ours_hits = warm(&ours, &trace, now);
    let quick_hits = warm(&quick, &trace, now);
    eprintln!(
        "AffinityCache:    hit rate {:.1}%, {} entries, {ours_bytes:.1} heap bytes per entry",
        ours_hits * 100.0,
        ours.len()
    );
    eprintln!(
        "bare quick_cache: hit rate {:.1}%, {} entries, {quick_bytes:.1} heap bytes per entry",
        quick_hits * 100.0,
        quick.len()
    );

    compare(c, "AffinityCache", &ours, &trace, now);
    compare(c, "bare quick_cache", &quick, &trace, now);
}

criterion_group!(benches, affinity);
criterion_main!(benches);
