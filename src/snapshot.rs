//! The immutable, in-memory view of channels and API keys that serves every
//! request. It is rebuilt from the store after each admin write and swapped in
//! atomically (`ArcSwap` in `state`), so a request sees the old view or the
//! new one, never a mix. Nothing on the request path reads SQLite.

use std::collections::{BTreeMap, HashMap};

// Looked up on every request by the client's group, model and key digest:
// foldhash, not SipHash. The maps are built from admin data only.
type FastMap<K, V> = foldhash::HashMap<K, V>;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono_tz::Tz;

use crate::daily::{Cap, settings};
use crate::model::{Channel, ChannelId, KeyDigest, Token, TokenId};
use crate::routing::{self, Candidate};
use crate::upstream::target::ChannelTarget;

/// A route over the snapshot's channels.
pub type Route = routing::Route<ChannelEntry>;
/// A request's walk over a [`Route`].
pub type Selection<'r> = routing::Selection<'r, ChannelEntry>;

/// A channel plus the small amount of live state routing needs.
#[derive(Debug)]
pub struct ChannelEntry {
    pub channel: Channel,
    /// The daily limit and the zone of its day, parsed once from `settings`.
    pub cap: Cap,
    /// Tokens an admitted request reserves when it sets no `max_tokens`.
    pub default_reserve: u64,
    /// Where each relay operation goes on this channel and how it is
    /// authenticated, parsed once here (see `relay::target`).
    pub target: ChannelTarget,
    /// Round-robin position over the channel's keys. Carried over from the
    /// previous snapshot so that a config write does not restart rotation.
    key_cursor: Arc<AtomicUsize>,
}

impl ChannelEntry {
    /// An entry with a fresh key rotation; `default_zone` is the zone of its
    /// day unless its settings name one.
    pub fn new(channel: Channel, default_zone: Tz) -> ChannelEntry {
        ChannelEntry::with_cursor(channel, default_zone, Arc::default())
    }

    fn with_cursor(
        channel: Channel,
        default_zone: Tz,
        key_cursor: Arc<AtomicUsize>,
    ) -> ChannelEntry {
        ChannelEntry {
            target: ChannelTarget::new(&channel.spec),
            cap: settings::cap_of(&channel.spec.settings, default_zone),
            default_reserve: settings::default_reserve(&channel.spec.settings),
            channel,
            key_cursor,
        }
    }

    /// Whether the channel is enabled and serves `model` to `group`, i.e.
    /// whether it is on that route.
    pub fn serves(&self, group: &str, model: &str) -> bool {
        let spec = &self.channel.spec;
        self.channel.is_enabled()
            && spec.groups.iter().any(|listed| listed == group)
            && spec.models.iter().any(|listed| listed == model)
    }

    /// The next upstream key in round-robin order, or `None` if the channel has no key.
    pub fn next_key(&self) -> Option<&str> {
        let keys = &self.channel.spec.keys;
        if keys.is_empty() {
            return None;
        }
        let position = self.key_cursor.fetch_add(1, Ordering::Relaxed);
        keys.get(position % keys.len()).map(String::as_str)
    }
}

impl Candidate for ChannelEntry {
    fn id(&self) -> ChannelId {
        self.channel.id
    }

    fn priority(&self) -> i64 {
        self.channel.spec.priority
    }

    fn weight(&self) -> u32 {
        self.channel.spec.weight
    }

    fn limited(&self) -> bool {
        self.cap.limit > 0
    }
}

#[derive(Debug, Default)]
pub struct Snapshot {
    channels: BTreeMap<ChannelId, Arc<ChannelEntry>>,
    tokens_by_digest: FastMap<KeyDigest, Arc<Token>>,
    tokens_by_id: BTreeMap<TokenId, Arc<Token>>,
    /// group → model → the enabled channels serving it, in priority tiers
    /// with cumulative weights, ready for selection.
    routes: FastMap<String, FastMap<String, Route>>,
}

impl Snapshot {
    /// Builds a snapshot, keeping the key rotation of channels that `previous` knew.
    /// `default_zone` is the zone of channels that set none.
    pub fn build(
        channels: Vec<Channel>,
        tokens: Vec<Token>,
        previous: Option<&Snapshot>,
        default_zone: Tz,
    ) -> Snapshot {
        let mut members: HashMap<String, HashMap<String, Vec<Arc<ChannelEntry>>>> = HashMap::new();
        let mut entries = BTreeMap::new();
        for channel in channels {
            let key_cursor = previous
                .and_then(|snapshot| snapshot.channels.get(&channel.id))
                .map(|entry| Arc::clone(&entry.key_cursor))
                .unwrap_or_default();
            let entry = Arc::new(ChannelEntry::with_cursor(channel, default_zone, key_cursor));
            if entry.channel.is_enabled() {
                for group in &entry.channel.spec.groups {
                    let models = members.entry(group.clone()).or_default();
                    for model in &entry.channel.spec.models {
                        models
                            .entry(model.clone())
                            .or_default()
                            .push(Arc::clone(&entry));
                    }
                }
            }
            entries.insert(entry.channel.id, entry);
        }
        let routes = members
            .into_iter()
            .map(|(group, models)| {
                let models = models
                    .into_iter()
                    .map(|(model, entries)| (model, Route::build(entries)))
                    .collect();
                (group, models)
            })
            .collect();
        let mut tokens_by_digest = FastMap::default();
        tokens_by_digest.reserve(tokens.len());
        let mut tokens_by_id = BTreeMap::new();
        for token in tokens {
            let token = Arc::new(token);
            if let Some(digest) = token.key_hash.digest() {
                tokens_by_digest.insert(digest, Arc::clone(&token));
            }
            tokens_by_id.insert(token.id, token);
        }
        Snapshot {
            channels: entries,
            tokens_by_digest,
            tokens_by_id,
            routes,
        }
    }

    pub fn channel(&self, id: ChannelId) -> Option<&Arc<ChannelEntry>> {
        self.channels.get(&id)
    }

    /// Every channel, in id order.
    pub fn channels(&self) -> impl Iterator<Item = &Arc<ChannelEntry>> {
        self.channels.values()
    }

    /// The API key whose SHA-256 is `digest`.
    pub fn token_by_digest(&self, digest: &KeyDigest) -> Option<&Arc<Token>> {
        self.tokens_by_digest.get(digest)
    }

    pub fn token(&self, id: TokenId) -> Option<&Arc<Token>> {
        self.tokens_by_id.get(&id)
    }

    /// Every API key, in id order.
    pub fn tokens(&self) -> impl Iterator<Item = &Arc<Token>> {
        self.tokens_by_id.values()
    }

    /// The enabled channels in `group` that list `model`, in priority tiers.
    pub fn route(&self, group: &str, model: &str) -> &Route {
        static EMPTY: Route = Route::EMPTY;
        self.routes
            .get(group)
            .and_then(|models| models.get(model))
            .unwrap_or(&EMPTY)
    }
}
