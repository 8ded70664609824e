//! Which channel each attempt of a request goes to, with the daily cap
//! enforced on every path: the affinity channel, normal selection, retries,
//! and keys bound to one channel.
//!
//! A channel is offered only while its day is not capped, and an attempt
//! starts only once its [`Hold`] (the in-flight reservation) is taken. A
//! reservation refused because concurrent requests got there first counts
//! as capped: the channel is skipped, the attempt is not spent, and the next
//! channel is picked. What the selection left out for caps is remembered, so
//! the relay can tell "every candidate is capped" (429) from "nothing
//! serves this model" (404) and "the upstreams failed" (502/503).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::meter::Hold;
use crate::AppState;
use crate::affinity::{self, AffinityKey};
use crate::daily::day;
use crate::lease;
use crate::model::Token;
use crate::snapshot::{ChannelEntry, Route, Selection, Snapshot};
use crate::upstream::target::{self, Operation};

/// The channels a key may use for a model: its group's route, or a route of
/// its bound channel alone (empty if that channel cannot serve the model).
pub enum Candidates<'s> {
    Group(&'s Route),
    Bound(Route),
    /// The group's route less the channels that cannot take the operation.
    GroupServing(Route),
}

impl<'s> Candidates<'s> {
    pub fn of(snapshot: &'s Snapshot, token: &Token, model: &str) -> Candidates<'s> {
        let Some(bound) = token.spec.channel_id else {
            return Candidates::Group(snapshot.route(&token.spec.group, model));
        };
        let serving = snapshot.channel(bound).filter(|entry| {
            let spec = &entry.channel.spec;
            entry.channel.is_enabled() && spec.models.iter().any(|listed| listed == model)
        });
        Candidates::Bound(
            serving
                .map(|entry| Route::single(Arc::clone(entry)))
                .unwrap_or_default(),
        )
    }

    pub fn route(&self) -> &Route {
        match self {
            Candidates::Group(route) => route,
            Candidates::Bound(route) | Candidates::GroupServing(route) => route,
        }
    }

    /// Only the channels whose type can take `operation` (Anthropic's own
    /// operations only on `anthropic` channels, most OpenAI ones never
    /// there). When every channel can, the route is kept as it is.
    pub fn serving(self, operation: Operation) -> Candidates<'s> {
        let serves = |entry: &&Arc<ChannelEntry>| target::serves(&entry.target, operation);
        if self.route().entries().all(|entry| serves(&entry)) {
            return self;
        }
        let kept = Route::build(self.route().entries().filter(serves).cloned());
        match self {
            Candidates::Bound(_) => Candidates::Bound(kept),
            Candidates::Group(_) | Candidates::GroupServing(_) => Candidates::GroupServing(kept),
        }
    }

    /// The bound channel, for a key bound to one that can serve the model.
    pub fn bound(&self) -> Option<&Arc<ChannelEntry>> {
        match self {
            Candidates::Group(_) | Candidates::GroupServing(_) => None,
            Candidates::Bound(route) => route.entries().next(),
        }
    }
}

/// The tokens a request may consume, for its reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// The gateway's estimate of the prompt.
    pub prompt: u64,
    /// `max_completion_tokens` or `max_tokens`, when the client set one.
    pub completion: Option<u64>,
}

impl Demand {
    /// The reservation on `entry`: the prompt estimate plus the requested
    /// completion budget, or the channel's `daily_reserve_tokens` default.
    pub fn estimate(&self, entry: &ChannelEntry) -> u64 {
        self.prompt
            .saturating_add(self.completion.unwrap_or(entry.default_reserve))
    }
}

/// Cluster mode: before routing, waits (at most [`lease::COLD_WAIT`]) until
/// this node holds a lease for every capped candidate it has none for
/// today, so a cold node does not refuse what the cluster has headroom for.
/// Returns at once on a single node or when every lease is warm.
pub async fn warm_leases(state: &AppState, route: &Route, demand: Demand) {
    if !state.counters.is_cluster() {
        return;
    }
    lease::await_warm(|| {
        let now = state.clock.now();
        // Every cold candidate registers its want, so no short-circuit.
        route
            .entries()
            .filter(|entry| {
                state
                    .counters
                    .is_cold(entry.channel.id, entry.cap, demand.estimate(entry), now)
            })
            .count()
            == 0
    })
    .await;
}

/// The affinity a request arrived with, and the channel it points to.
pub struct Preferred<'r> {
    pub key: AffinityKey,
    pub entry: &'r Arc<ChannelEntry>,
}

/// One request's walk over its candidates.
pub struct Dispatch<'r> {
    state: &'r AppState,
    selection: Selection<'r>,
    preferred: Option<Preferred<'r>>,
    affinity: Option<AffinityKey>,
    demand: Demand,
    request_id: &'r str,
    /// The earliest reset among the candidates left out for their cap.
    capped_until: Option<DateTime<Utc>>,
}

impl<'r> Dispatch<'r> {
    pub fn new(
        state: &'r AppState,
        route: &'r Route,
        demand: Demand,
        request_id: &'r str,
    ) -> Dispatch<'r> {
        Dispatch {
            state,
            selection: Selection::new(route),
            preferred: None,
            affinity: None,
            demand,
            request_id,
            capped_until: None,
        }
    }

    /// Uses channel affinity when the request names a `source` and its key
    /// is not bound to a channel: the remembered channel is tried first if
    /// it is still on the route, and the serving channel is remembered.
    pub fn with_affinity(
        mut self,
        snapshot: &'r Snapshot,
        token: &Token,
        model: &str,
        source: Option<&str>,
    ) -> Self {
        let Some(source) = source.filter(|_| token.spec.channel_id.is_none()) else {
            return self;
        };
        let cache = &self.state.affinity;
        let key = cache.key(source, model, &token.spec.group);
        let now = self.state.clock.now();
        let scope = (model, token.spec.group.as_str());
        let preferred = affinity::recall(cache, snapshot, key, scope, self.request_id, now);
        self.affinity = Some(key);
        self.preferred = preferred.map(|entry| Preferred { key, entry });
        self
    }

    /// The next channel to try, with its hold taken; `None` when every
    /// candidate was tried or is capped.
    pub fn next_channel(&mut self) -> Option<(&'r Arc<ChannelEntry>, Hold)> {
        if let Some(Preferred { key, entry }) = self.preferred.take() {
            self.selection.exclude(entry.channel.id);
            match self.hold(entry) {
                Some(hold) => return Some((entry, hold)),
                None => affinity::fall_through(
                    &self.state.affinity,
                    key,
                    entry.channel.id,
                    "daily_limit",
                    self.request_id,
                ),
            }
        }
        loop {
            let now = self.state.clock.now();
            let counters = &self.state.counters;
            let capped_until = &mut self.capped_until;
            let entry = self.selection.next(&mut rand::rng(), |entry| {
                let capped = counters.is_capped(entry.channel.id, entry.cap, now);
                if capped {
                    note_reset(capped_until, day::next_reset(entry.cap.zone, now));
                }
                !capped
            })?;
            if let Some(hold) = self.hold(entry) {
                return Some((entry, hold));
            }
        }
    }

    /// Takes the hold on `entry`, or notes when it resets if it is capped.
    fn hold(&mut self, entry: &ChannelEntry) -> Option<Hold> {
        let now = self.state.clock.now();
        let estimate = self.demand.estimate(entry);
        match Hold::take(&self.state.counters, entry, estimate, now) {
            Ok(hold) => Some(hold),
            Err(capped) => {
                note_reset(&mut self.capped_until, capped.resets_at);
                None
            }
        }
    }

    /// `entry` served the request: related requests go there next time.
    pub fn served_by(&self, entry: &ChannelEntry) {
        if let Some(key) = self.affinity {
            let now = self.state.clock.now();
            self.state.affinity.remember(key, entry.channel.id, now);
        }
    }

    /// Seconds until the earliest reset among the candidates left out for
    /// their cap, if any was (at least 1, for `Retry-After`).
    pub fn capped_for(&self) -> Option<u64> {
        let until = self.capped_until?;
        let milliseconds = (until - self.state.clock.now()).num_milliseconds();
        Some(
            u64::try_from(milliseconds)
                .unwrap_or(0)
                .div_ceil(1000)
                .max(1),
        )
    }
}

fn note_reset(earliest: &mut Option<DateTime<Utc>>, resets_at: DateTime<Utc>) {
    if earliest.is_none_or(|current| resets_at < current) {
        *earliest = Some(resets_at);
    }
}
