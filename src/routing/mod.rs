//! Pure channel selection: which channel serves a request, and which one a
//! retry goes to next.
//!
//! Nothing here does IO or reads a clock, and randomness is injected, so every
//! rule is unit-tested with a seeded rng. The snapshot precomputes a [`Route`]
//! per (group, model); the relay walks it with a [`Selection`] per request,
//! asking for channels until one succeeds.
//!
//! Rules: candidates are the enabled channels of the key's group that list the
//! model, or only the key's bound channel. The `admit` predicate the relay
//! passes (today: "not capped for the day") drops candidates before tiers
//! are considered, so a tier whose members are all capped is simply empty. The
//! highest `priority` tier goes first; inside a tier the choice is weighted
//! random by `weight`, and channels share equally when every remaining weight
//! is zero (a zero-weight channel waits for its weighted tier-mates). A retry
//! never repeats a channel: it takes the rest of the same tier first, then
//! lower tiers.
//!
//! # How a pick stays cheap
//! A pick draws a ticket and binary-searches the tier's cumulative weights.
//! A channel already tried, or refused by `admit`, is rejected and another
//! ticket drawn: rejection sampling gives exactly the weighted distribution
//! over the remaining channels. After [`MAX_DRAWS`] rejections the pick
//! falls back to one exact scan of the tier, which also proves a tier empty.

mod route;

use std::sync::Arc;

use rand::Rng;

pub use route::Route;
use route::Tier;

use crate::model::ChannelId;

/// What routing needs to know of a channel; the snapshot's entries
/// implement it, tests use plain structs.
pub trait Candidate {
    fn id(&self) -> ChannelId;
    fn priority(&self) -> i64;
    fn weight(&self) -> u32;
    /// Whether a request must reserve against a limit of this channel.
    fn limited(&self) -> bool;
}

/// Rejected draws in a tier before the exact scan takes over. With 10% of a
/// tier capped, eight rejections in a row happen once in 10^8 picks.
pub const MAX_DRAWS: usize = 8;

/// One request's walk over a [`Route`]: the channels it has tried or found
/// not admitted, and the tier it is in.
#[derive(Debug)]
pub struct Selection<'r, C> {
    tiers: &'r [Tier<C>],
    tier: usize,
    /// Tried or not admitted; never offered again. Small: a handful of
    /// attempts plus the capped channels this request came across.
    excluded: Vec<ChannelId>,
}

impl<'r, C: Candidate> Selection<'r, C> {
    pub fn new(route: &'r Route<C>) -> Selection<'r, C> {
        Selection {
            tiers: route.tiers(),
            tier: 0,
            excluded: Vec::new(),
        }
    }

    /// Never offers `id` (a channel tried first outside the selection, such
    /// as the affinity channel).
    pub fn exclude(&mut self, id: ChannelId) {
        if !self.excluded.contains(&id) {
            self.excluded.push(id);
        }
    }

    /// The next channel to try, among those `admit` accepts; `None` when every
    /// channel was tried or refused. The pick counts as tried.
    pub fn next(
        &mut self,
        rng: &mut impl Rng,
        mut admit: impl FnMut(&C) -> bool,
    ) -> Option<&'r Arc<C>> {
        let tiers = self.tiers;
        while let Some(tier) = tiers.get(self.tier) {
            let picked = match self.draw(tier, rng, &mut admit) {
                Some(index) => Some(index),
                None => self.scan(tier, rng, &mut admit),
            };
            if let Some(entry) = picked.and_then(|index| tier.members.get(index)) {
                self.excluded.push(entry.id());
                return Some(entry);
            }
            self.tier += 1;
        }
        None
    }

    /// Rejection sampling: up to [`MAX_DRAWS`] weighted draws over the whole tier.
    fn draw(
        &mut self,
        tier: &Tier<C>,
        rng: &mut impl Rng,
        admit: &mut impl FnMut(&C) -> bool,
    ) -> Option<usize> {
        let total = tier.total();
        for _ in 0..MAX_DRAWS {
            let index = if total == 0 {
                rng.random_range(0..tier.members.len())
            } else {
                tier.member_at(rng.random_range(0..total))
            };
            let entry = tier.members.get(index)?;
            if self.excluded.contains(&entry.id()) {
                continue;
            }
            if admit(entry) {
                return Some(index);
            }
            self.excluded.push(entry.id());
        }
        None
    }

    /// The exact pick: every remaining admitted member, weighted, or shared
    /// equally when their weights are all zero. `None` if none remains.
    fn scan(
        &mut self,
        tier: &Tier<C>,
        rng: &mut impl Rng,
        admit: &mut impl FnMut(&C) -> bool,
    ) -> Option<usize> {
        self.excluded.sort_unstable();
        let mut open: Vec<(usize, u64)> = Vec::new();
        let mut refused = Vec::new();
        for (index, entry) in tier.members.iter().enumerate() {
            let id = entry.id();
            if self.excluded.binary_search(&id).is_ok() {
                continue;
            }
            if admit(entry) {
                open.push((index, u64::from(entry.weight())));
            } else {
                refused.push(id);
            }
        }
        self.excluded.extend(refused);
        let total: u64 = open.iter().map(|(_, weight)| weight).sum();
        if total == 0 {
            if open.is_empty() {
                return None;
            }
            return open
                .get(rng.random_range(0..open.len()))
                .map(|(index, _)| *index);
        }
        let mut ticket = rng.random_range(0..total);
        for (index, weight) in &open {
            if ticket < *weight {
                return Some(*index);
            }
            ticket -= weight;
        }
        None
    }
}

#[cfg(test)]
mod tests;
