//! The lock-free building blocks of the registry: a counter, a histogram
//! with fixed buckets, and a family of series keyed by their labels.
//!
//! Recording is atomics only. A family is an `ArcSwap`ed map: looking a
//! series up never locks, and adding one (a label set seen for the first
//! time, which the label rules keep rare and bounded) copies the map.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
// Label keys are hashed on every request: foldhash, not SipHash. Only
// bounded, admin-made or fixed label values reach a family.
use foldhash::HashMap;

/// A monotonic count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, amount: u64) {
        self.0.fetch_add(amount, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the latency buckets: 5 ms to 5 min, since an
/// upstream answers a tiny completion in milliseconds and a long one in minutes.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
];

/// Durations in fixed buckets ([`LATENCY_BUCKETS`], plus `+Inf`). Each
/// observation lands in exactly one bucket; the exposition accumulates them,
/// so the cumulative counts are monotonic and `+Inf` is the count by
/// construction, even while observations race a scrape.
#[derive(Debug)]
pub struct Histogram {
    /// The bucket bounds in nanoseconds, for integer comparison.
    bounds: [u64; LATENCY_BUCKETS.len()],
    /// Non-cumulative: `buckets[i]` counts observations in (bound[i-1], bound[i]];
    /// the last one those above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            // The bounds are whole nanoseconds well inside u64.
            bounds: LATENCY_BUCKETS.map(|seconds| (seconds * 1e9).round() as u64),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// A histogram as read at one scrape: cumulative counts per bound.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramView {
    /// (upper bound in seconds, observations at or below it), then `+Inf`.
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let index = self.bounds.partition_point(|bound| *bound < nanos);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn view(&self) -> HistogramView {
        let mut running = 0u64;
        let mut cumulative = Vec::with_capacity(self.buckets.len());
        for (index, bucket) in self.buckets.iter().enumerate() {
            running = running.saturating_add(bucket.load(Ordering::Relaxed));
            let bound = LATENCY_BUCKETS.get(index).copied().unwrap_or(f64::INFINITY);
            cumulative.push((bound, running));
        }
        HistogramView {
            cumulative,
            count: running,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// Series of one metric (or one group of metrics) keyed by their labels.
pub struct Family<K, V> {
    series: ArcSwap<HashMap<K, Arc<V>>>,
    /// At most this many series; a new label set past it is recorded under
    /// the overflow key instead, so no client can grow memory without bound.
    limit: usize,
}

impl<K: Eq + Hash + Clone, V: Default> Family<K, V> {
    pub fn new(limit: usize) -> Family<K, V> {
        Family {
            series: ArcSwap::from_pointee(HashMap::default()),
            limit,
        }
    }

    /// Runs `record` on the series of `key` (created on first use), or on
    /// that of `overflow` once the family is full.
    pub fn with(&self, key: K, overflow: impl FnOnce() -> K, record: impl FnOnce(&V)) {
        if let Some(series) = self.series.load().get(&key) {
            record(series);
            return;
        }
        let series = self.insert(key, overflow);
        record(&series);
    }

    fn insert(&self, key: K, overflow: impl FnOnce() -> K) -> Arc<V> {
        let current = self.series.load();
        let key = if current.len() >= self.limit {
            overflow()
        } else {
            key
        };
        let mut created = None;
        self.series.rcu(|map| {
            if let Some(existing) = map.get(&key) {
                created = Some(Arc::clone(existing));
                return Arc::clone(map);
            }
            let mut next = HashMap::clone(map);
            let series = Arc::new(V::default());
            next.insert(key.clone(), Arc::clone(&series));
            created = Some(series);
            Arc::new(next)
        });
        created.unwrap_or_default()
    }

    /// Every series, for a scrape.
    pub fn snapshot(&self) -> Vec<(K, Arc<V>)> {
        self.series
            .load()
            .iter()
            .map(|(key, series)| (key.clone(), Arc::clone(series)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Observations land in the first bucket whose bound is at least them;
    /// the view is cumulative and ends with `+Inf` equal to the count.
    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::default();
        for millis in [1, 5, 6, 250, 400_000] {
            histogram.observe(Duration::from_millis(millis));
        }
        let view = histogram.view();
        assert_eq!(view.count, 5);
        assert_eq!(view.cumulative.first(), Some(&(0.005, 2)));
        assert_eq!(view.cumulative.get(1), Some(&(0.01, 3)));
        assert_eq!(view.cumulative.get(5), Some(&(0.25, 4)));
        assert_eq!(view.cumulative.get(15), Some(&(300.0, 4)));
        assert_eq!(view.cumulative.last(), Some(&(f64::INFINITY, 5)));
        let pairs = view.cumulative.windows(2);
        assert!(pairs.into_iter().all(|pair| pair[0].1 <= pair[1].1));
        assert!((view.sum_seconds - 400.262).abs() < 1e-9);
    }

    /// Past its limit a family records new label sets under the overflow key.
    #[test]
    fn a_full_family_folds_new_keys_into_overflow() {
        let family: Family<&str, Counter> = Family::new(2);
        for key in ["a", "b", "c", "d", "a"] {
            family.with(key, || "other", |counter| counter.add(1));
        }
        let mut seen: Vec<(&str, u64)> = family
            .snapshot()
            .into_iter()
            .map(|(key, counter)| (key, counter.get()))
            .collect();
        seen.sort();
        assert_eq!(seen, vec![("a", 2), ("b", 1), ("other", 2)]);
    }
}
