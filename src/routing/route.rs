//! The precomputed routes of a snapshot: for one (group, model), the enabled
//! channels in priority tiers, highest first, each tier with the cumulative
//! weights a weighted pick needs.
//!
//! Routes are built once per snapshot (that is, once per admin write), so a
//! request never sorts or sums anything: it binary-searches a ready array.

use std::sync::Arc;

use super::Candidate;
use crate::model::ChannelId;

/// The channels that may serve one (group, model), in priority tiers.
#[derive(Debug)]
pub struct Route<C> {
    tiers: Vec<Tier<C>>,
    /// Whether any channel on the route has a daily limit, so a request
    /// knows whether it must size itself for a reservation.
    limited: bool,
}

impl<C> Default for Route<C> {
    fn default() -> Route<C> {
        Route::EMPTY
    }
}

/// Channels of equal priority.
#[derive(Debug)]
pub(super) struct Tier<C> {
    pub(super) priority: i64,
    /// In id order, so seeded selections are reproducible.
    pub(super) members: Vec<Arc<C>>,
    /// `cumulative[i]` is the summed weight of `members[..=i]`.
    pub(super) cumulative: Vec<u64>,
}

impl<C> Tier<C> {
    /// The summed weight of the tier; 0 when every member weighs 0.
    pub(super) fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The index of the member whose weight band holds `ticket` (< total).
    pub(super) fn member_at(&self, ticket: u64) -> usize {
        self.cumulative.partition_point(|&upto| upto <= ticket)
    }
}

impl<C> Route<C> {
    /// The empty route, for a (group, model) nothing serves.
    pub const EMPTY: Route<C> = Route {
        tiers: Vec::new(),
        limited: false,
    };

    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// How many channels the route holds.
    pub fn len(&self) -> usize {
        self.tiers.iter().map(|tier| tier.members.len()).sum()
    }

    /// Every channel, best tier first.
    pub fn entries(&self) -> impl Iterator<Item = &Arc<C>> {
        self.tiers.iter().flat_map(|tier| tier.members.iter())
    }

    /// Whether any channel on the route has a limit.
    pub fn is_limited(&self) -> bool {
        self.limited
    }

    pub(super) fn tiers(&self) -> &[Tier<C>] {
        &self.tiers
    }
}

impl<C: Candidate> Route<C> {
    /// Groups `entries` into tiers by descending priority. Duplicates (by id)
    /// are dropped; inside a tier members keep id order.
    pub fn build(entries: impl IntoIterator<Item = Arc<C>>) -> Route<C> {
        let mut entries: Vec<Arc<C>> = entries.into_iter().collect();
        entries.sort_by_key(|entry| (std::cmp::Reverse(entry.priority()), entry.id()));
        entries.dedup_by_key(|entry| entry.id());
        let mut tiers: Vec<Tier<C>> = Vec::new();
        let limited = entries.iter().any(|entry| entry.limited());
        for entry in entries {
            let weight = u64::from(entry.weight());
            match tiers.last_mut() {
                Some(tier) if tier.priority == entry.priority() => {
                    tier.cumulative.push(tier.total() + weight);
                    tier.members.push(entry);
                }
                _ => tiers.push(Tier {
                    priority: entry.priority(),
                    members: vec![entry],
                    cumulative: vec![weight],
                }),
            }
        }
        Route { tiers, limited }
    }

    /// A route of one channel (a key bound to it).
    pub fn single(entry: Arc<C>) -> Route<C> {
        Route::build([entry])
    }

    /// Every channel id, best tier first.
    pub fn ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.entries().map(|entry| entry.id())
    }
}
