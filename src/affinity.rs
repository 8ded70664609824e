//! Channel affinity: related requests go back to the channel that served them
//! before, so the upstream's prompt cache keeps hitting.
//!
//! The key is the request's `prompt_cache_key`, else its `user`, else the
//! `x-session-id` header, together with the model and the key's group (keys
//! bound to a channel never use affinity). Entries live in an in-memory LRU
//! with a TTL ([`DEFAULT_TTL`]), read against the injected clock. The cache
//! only remembers a preference: whether the channel may serve right now (it
//! is still a candidate, enabled and not capped) is checked on every request,
//! and a stale entry is cleared with an `affinity_fallthrough` event.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

use crate::model::ChannelId;
use crate::snapshot::{ChannelEntry, Snapshot};

/// How long an affinity lasts after the last request it served.
pub const DEFAULT_TTL: Duration = Duration::hours(1);
/// How many affinities are remembered before the least recently used go.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// The header that names a session when the body names none.
pub const SESSION_HEADER: &str = "x-session-id";
/// Shards, so concurrent requests rarely wait on the same lock.
const SHARDS: usize = 16;

/// A hashed (source, model, group). A collision only costs a cache miss
/// or an unusual first choice; it never breaks a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AffinityKey(u64);

/// The remembered channels: a sharded LRU with a TTL.
pub struct AffinityCache {
    shards: Box<[Mutex<Lru>]>,
    hasher: RandomState,
    ttl: Duration,
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
    pub fn new(capacity: usize, ttl: Duration) -> AffinityCache {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        AffinityCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Lru::new(per_shard)))
                .collect(),
            hasher: RandomState::new(),
            ttl,
        }
    }

    pub fn key(&self, source: &str, model: &str, group: &str) -> AffinityKey {
        AffinityKey(self.hasher.hash_one((source, model, group)))
    }

    /// The channel remembered for `key`, unless the entry has expired.
    pub fn get(&self, key: AffinityKey, now: DateTime<Utc>) -> Option<ChannelId> {
        self.shard(key).lock().ok()?.get(key.0, now)
    }

    /// Remembers that `channel` served `key`, for another TTL from `now`.
    pub fn remember(&self, key: AffinityKey, channel: ChannelId, now: DateTime<Utc>) {
        if let Ok(mut shard) = self.shard(key).lock() {
            shard.put(key.0, channel, now + self.ttl);
        }
    }

    pub fn forget(&self, key: AffinityKey) {
        if let Ok(mut shard) = self.shard(key).lock() {
            shard.remove(key.0);
        }
    }

    /// Entries held, expired ones not yet evicted included.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|shard| shard.lock().ok().map(|shard| shard.map.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: AffinityKey) -> &Mutex<Lru> {
        // The key is a hash already; its low bits spread evenly.
        let index = usize::try_from(key.0 % SHARDS as u64).unwrap_or(0);
        &self.shards[index % self.shards.len()]
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

const NIL: usize = usize::MAX;

struct Node {
    key: u64,
    channel: ChannelId,
    expires: DateTime<Utc>,
    /// Towards the most recently used end.
    newer: usize,
    /// Towards the least recently used end.
    older: usize,
}

/// A fixed-capacity LRU: a map into a slab of nodes on a doubly linked list.
struct Lru {
    map: HashMap<u64, usize>,
    nodes: Vec<Node>,
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
    capacity: usize,
}

impl Lru {
    fn new(capacity: usize) -> Lru {
        Lru {
            map: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
            capacity,
        }
    }

    fn get(&mut self, key: u64, now: DateTime<Utc>) -> Option<ChannelId> {
        let index = *self.map.get(&key)?;
        let node = self.nodes.get(index)?;
        if node.expires <= now {
            self.remove(key);
            return None;
        }
        let channel = node.channel;
        self.unlink(index);
        self.push_newest(index);
        Some(channel)
    }

    fn put(&mut self, key: u64, channel: ChannelId, expires: DateTime<Utc>) {
        if let Some(&index) = self.map.get(&key) {
            if let Some(node) = self.nodes.get_mut(index) {
                node.channel = channel;
                node.expires = expires;
            }
            self.unlink(index);
            self.push_newest(index);
            return;
        }
        if self.map.len() >= self.capacity
            && let Some(oldest) = self.nodes.get(self.oldest).map(|node| node.key)
        {
            self.remove(oldest);
        }
        let node = Node {
            key,
            channel,
            expires,
            newer: NIL,
            older: NIL,
        };
        let index = match self.free.pop() {
            Some(index) => {
                if let Some(slot) = self.nodes.get_mut(index) {
                    *slot = node;
                }
                index
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.map.insert(key, index);
        self.push_newest(index);
    }

    fn remove(&mut self, key: u64) {
        if let Some(index) = self.map.remove(&key) {
            self.unlink(index);
            self.free.push(index);
        }
    }

    /// Takes a node out of the list, mending its neighbours' links.
    fn unlink(&mut self, index: usize) {
        let Some((newer, older)) = self.nodes.get(index).map(|node| (node.newer, node.older))
        else {
            return;
        };
        match self.nodes.get_mut(newer) {
            Some(node) => node.older = older,
            None => self.newest = older,
        }
        match self.nodes.get_mut(older) {
            Some(node) => node.newer = newer,
            None => self.oldest = newer,
        }
        if let Some(node) = self.nodes.get_mut(index) {
            node.newer = NIL;
            node.older = NIL;
        }
    }

    fn push_newest(&mut self, index: usize) {
        let previous = self.newest;
        if let Some(node) = self.nodes.get_mut(index) {
            node.older = previous;
            node.newer = NIL;
        }
        match self.nodes.get_mut(previous) {
            Some(node) => node.newer = index,
            None => self.oldest = index,
        }
        self.newest = index;
    }
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

    /// Past capacity the least recently used entry goes; a read makes an
    /// entry recent again.
    #[test]
    fn evicts_least_recently_used() {
        let mut lru = Lru::new(3);
        let later = noon() + Duration::hours(1);
        for key in 1..=3 {
            lru.put(key, ChannelId(key as i64), later);
        }
        assert_eq!(lru.get(1, noon()), Some(ChannelId(1)));
        lru.put(4, ChannelId(4), later);
        assert_eq!(lru.get(2, noon()), None, "2 was the least recently used");
        for key in [1, 3, 4] {
            assert_eq!(lru.get(key, noon()), Some(ChannelId(key as i64)));
        }
        lru.put(3, ChannelId(30), later);
        lru.put(5, ChannelId(5), later);
        lru.put(6, ChannelId(6), later);
        assert_eq!(lru.map.len(), 3);
        assert_eq!(lru.get(3, noon()), Some(ChannelId(30)));
        assert_eq!(lru.get(1, noon()), None);
        // Slots are reused, not leaked.
        assert!(lru.nodes.len() <= 4);
    }
}
