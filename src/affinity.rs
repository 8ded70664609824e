//! Channel affinity: related requests go back to the channel that served them
//! before, so the upstream's prompt cache keeps hitting.
//!
//! The key is the request's `prompt_cache_key`, else its `user`, else the
//! `x-session-id` header, together with the model and the key's group (keys
//! bound to a channel never use affinity). Entries live in a bounded
//! in-memory cache with a TTL ([`DEFAULT_TTL`]), read against the injected
//! clock. The cache only remembers a preference: whether the channel may
//! serve right now (it is still a candidate, enabled and not capped) is
//! checked on every request, and a stale entry is cleared with an
//! `affinity_fallthrough` event.
//!
//! The cache is `quick_cache`'s sharded S3-FIFO rather than an LRU of our own:
//! `benches/affinity.rs` measured it faster on one thread and under
//! contention, and it keeps more affinities on a skewed trace, because a
//! session seen once does not push out one that keeps coming back. The price:
//! a new session's entry waits in a small probationary queue (about 3% of
//! the capacity) and is kept only if the session comes back before that
//! queue has turned over; one that comes back later misses once and is then
//! remembered as returning (quick_cache still knows its hash). quick_cache
//! has no TTL, so each entry carries its expiry and a read past it clears it.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::model::ChannelId;
use crate::snapshot::{ChannelEntry, Snapshot};

/// How long an affinity lasts after the last request it served.
pub const DEFAULT_TTL: Duration = Duration::hours(1);
/// How many affinities are remembered before the coldest go.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// The header that names a session when the body names none.
pub const SESSION_HEADER: &str = "x-session-id";

/// A hashed (source, model, group). A collision only costs a cache miss
/// or an unusual first choice; it never breaks a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AffinityKey(u64);

/// The remembered channels: a bounded concurrent cache with a TTL.
pub struct AffinityCache {
    entries: quick_cache::sync::Cache<AffinityKey, Remembered>,
    hasher: RandomState,
    ttl: Duration,
    /// `ttl` in milliseconds, what expiries are counted in.
    ttl_millis: i64,
}

/// One affinity: the channel, and when it lapses unless remembered again.
/// The expiry is in Unix milliseconds rather than a `DateTime`: the entry is
/// 16 bytes instead of 24, and setting it is one addition.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    channel: ChannelId,
    expires_millis: i64,
}

impl std::fmt::Debug for AffinityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AffinityCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for AffinityCache {
    fn default() -> AffinityCache {
        AffinityCache::new(DEFAULT_CAPACITY, DEFAULT_TTL)
    }
}

impl AffinityCache {
    /// A cache of about `capacity` entries (quick_cache rounds it up to a
    /// whole number per shard).
    pub fn new(capacity: usize, ttl: Duration) -> AffinityCache {
        AffinityCache {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            hasher: RandomState::new(),
            ttl,
            ttl_millis: ttl.num_milliseconds(),
        }
    }

    pub fn key(&self, source: &str, model: &str, group: &str) -> AffinityKey {
        AffinityKey(self.hasher.hash_one((source, model, group)))
    }

    /// The channel remembered for `key`, unless the entry has expired.
    pub fn get(&self, key: AffinityKey, now: DateTime<Utc>) -> Option<ChannelId> {
        let remembered = self.entries.get(&key)?;
        let now = now.timestamp_millis();
        if remembered.expires_millis > now {
            return Some(remembered.channel);
        }
        // Only if it is still the expired entry: a request that remembered
        // the key again in between keeps its affinity.
        self.entries
            .remove_if(&key, |entry| entry.expires_millis <= now);
        None
    }

    /// Remembers that `channel` served `key`, for another TTL from `now`.
    pub fn remember(&self, key: AffinityKey, channel: ChannelId, now: DateTime<Utc>) {
        let expires_millis = now.timestamp_millis().saturating_add(self.ttl_millis);
        self.entries.insert(
            key,
            Remembered {
                channel,
                expires_millis,
            },
        );
    }

    pub fn forget(&self, key: AffinityKey) {
        self.entries.remove(&key);
    }

    /// Entries held, expired ones not yet evicted included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The remembered channel for `key` if it may still be tried first: it is on
/// the request's route (enabled, serving `model` to `group`). Otherwise the
/// entry is cleared and the fall-through is logged. Whether it is capped is
/// checked when its reservation is taken (see `dispatch`).
pub fn recall<'s>(
    cache: &AffinityCache,
    snapshot: &'s Snapshot,
    key: AffinityKey,
    (model, group): (&str, &str),
    request_id: &str,
    now: DateTime<Utc>,
) -> Option<&'s Arc<ChannelEntry>> {
    let id = cache.get(key, now)?;
    match snapshot.channel(id) {
        Some(entry) if entry.serves(group, model) => Some(entry),
        Some(entry) if !entry.channel.is_enabled() => {
            fall_through(cache, key, id, "disabled", request_id);
            None
        }
        _ => {
            fall_through(cache, key, id, "unavailable", request_id);
            None
        }
    }
}

/// Clears an affinity that cannot be honoured and records why: `daily_limit`
/// (capped for today), `disabled`, or `unavailable` (deleted, or no longer
/// serving the model to the group).
pub fn fall_through(
    cache: &AffinityCache,
    key: AffinityKey,
    channel: ChannelId,
    reason: &'static str,
    request_id: &str,
) {
    cache.forget(key);
    tracing::info!(
        request_id,
        channel = channel.0,
        reason,
        "affinity_fallthrough"
    );
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    /// Keys differ by model and group, entries expire after the TTL, and a
    /// hit refreshes nothing but recency (only `remember` extends the TTL).
    #[test]
    fn entries_expire_and_keys_are_scoped() {
        let cache = AffinityCache::new(100, Duration::minutes(10));
        let key = cache.key("session", "m", "default");
        assert_ne!(key, cache.key("session", "m2", "default"));
        assert_ne!(key, cache.key("session", "m", "vip"));
        cache.remember(key, ChannelId(3), noon());
        assert_eq!(
            cache.get(key, noon() + Duration::minutes(9)),
            Some(ChannelId(3))
        );
        assert_eq!(cache.get(key, noon() + Duration::minutes(10)), None);
        assert!(cache.is_empty(), "expired entries are dropped when read");
        cache.remember(key, ChannelId(4), noon());
        cache.forget(key);
        assert_eq!(cache.get(key, noon()), None);
    }

    /// Past capacity the cache stays bounded, and an entry read again since
    /// it arrived outlives a flood of sessions seen once, which go first.
    #[test]
    fn evicts_one_off_entries_before_returning_ones() {
        // A power of two, so every shard count divides it and the bound is exact.
        let capacity = 4096;
        let cache = AffinityCache::new(capacity, Duration::hours(1));
        let key = |name: &str, index: usize| cache.key(&format!("{name}{index}"), "m", "default");
        let remember = |key, channel| {
            cache.remember(key, ChannelId(channel), noon());
            assert!(cache.len() <= capacity, "{} entries", cache.len());
        };
        // Twice over, so every shard is full before the entries under test.
        for index in 0..capacity * 2 {
            remember(key("filler", index), 1);
        }
        let (returning, once) = (key("returning", 0), key("once", 0));
        remember(returning, 7);
        remember(once, 8);
        assert_eq!(cache.get(returning, noon()), Some(ChannelId(7)));
        for index in 0..capacity {
            remember(key("flood", index), 2);
        }
        assert_eq!(cache.get(returning, noon()), Some(ChannelId(7)));
        assert_eq!(cache.get(once, noon()), None);
        assert_eq!(cache.get(key("flood", 0), noon()), None);
        assert_eq!(
            cache.get(key("flood", capacity - 1), noon()),
            Some(ChannelId(2))
        );
    }

    /// A read past the expiry clears the entry; remembering it again in time
    /// keeps it.
    #[test]
    fn remembering_again_extends_the_ttl() {
        let cache = AffinityCache::new(100, Duration::minutes(10));
        let key = cache.key("session", "m", "default");
        cache.remember(key, ChannelId(3), noon());
        cache.remember(key, ChannelId(5), noon() + Duration::minutes(8));
        assert_eq!(
            cache.get(key, noon() + Duration::minutes(15)),
            Some(ChannelId(5))
        );
        assert_eq!(cache.get(key, noon() + Duration::minutes(18)), None);
        assert_eq!(cache.len(), 0);
    }
}
