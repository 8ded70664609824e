//! The precomputed routes of a snapshot: for one (group, model), the enabled
//! channels in priority tiers, highest first, each tier with the cumulative
//! weights a weighted pick needs.
//!
//! Routes are built once per snapshot (that is, once per admin write), so a
//! request never sorts or sums anything: it binary-searches a ready array.

use std::sync::Arc;

use crate::model::ChannelId;
use crate::snapshot::ChannelEntry;

/// The channels that may serve one (group, model), in priority tiers.
#[derive(Debug, Default)]
pub struct Route {
    tiers: Vec<Tier>,
    /// Whether any channel on the route has a daily limit, so a request
    /// knows whether it must size itself for a reservation.
    limited: bool,
}

/// Channels of equal priority.
#[derive(Debug)]
pub(super) struct Tier {
    pub(super) priority: i64,
    /// In id order, so seeded selections are reproducible.
    pub(super) members: Vec<Arc<ChannelEntry>>,
    /// `cumulative[i]` is the summed weight of `members[..=i]`.
    pub(super) cumulative: Vec<u64>,
}

impl Tier {
    /// The summed weight of the tier; 0 when every member weighs 0.
    pub(super) fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The index of the member whose weight band holds `ticket` (< total).
    pub(super) fn member_at(&self, ticket: u64) -> usize {
        self.cumulative.partition_point(|&upto| upto <= ticket)
    }
}

impl Route {
    /// The empty route, for a (group, model) nothing serves.
    pub const EMPTY: Route = Route {
        tiers: Vec::new(),
        limited: false,
    };

    /// Groups `entries` into tiers by descending priority. Duplicates (by id)
    /// are dropped; inside a tier members keep id order.
    pub fn build(entries: impl IntoIterator<Item = Arc<ChannelEntry>>) -> Route {
        let mut entries: Vec<Arc<ChannelEntry>> = entries.into_iter().collect();
        entries.sort_by_key(|entry| (std::cmp::Reverse(priority(entry)), entry.channel.id));
        entries.dedup_by_key(|entry| entry.channel.id);
        let mut tiers: Vec<Tier> = Vec::new();
        let limited = entries.iter().any(|entry| entry.cap.limit > 0);
        for entry in entries {
            let weight = u64::from(entry.channel.spec.weight);
            match tiers.last_mut() {
                Some(tier) if tier.priority == priority(&entry) => {
                    tier.cumulative.push(tier.total() + weight);
                    tier.members.push(entry);
                }
                _ => tiers.push(Tier {
                    priority: priority(&entry),
                    members: vec![entry],
                    cumulative: vec![weight],
                }),
            }
        }
        Route { tiers, limited }
    }

    /// Whether any channel on the route has a daily limit.
    pub fn is_limited(&self) -> bool {
        self.limited
    }

    /// A route of one channel (a key bound to it).
    pub fn single(entry: Arc<ChannelEntry>) -> Route {
        Route::build([entry])
    }

    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// How many channels the route holds.
    pub fn len(&self) -> usize {
        self.tiers.iter().map(|tier| tier.members.len()).sum()
    }

    /// Every channel, best tier first.
    pub fn entries(&self) -> impl Iterator<Item = &Arc<ChannelEntry>> {
        self.tiers.iter().flat_map(|tier| tier.members.iter())
    }

    /// Every channel id, best tier first.
    pub fn ids(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.entries().map(|entry| entry.channel.id)
    }

    pub(super) fn tiers(&self) -> &[Tier] {
        &self.tiers
    }
}

fn priority(entry: &ChannelEntry) -> i64 {
    entry.channel.spec.priority
}
