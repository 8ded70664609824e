//! Pure channel selection: which channel serves a request, and which one a
//! retry goes to next.
//!
//! Nothing here does IO or reads a clock, and randomness is injected, so every
//! rule is unit-tested with a seeded rng. The relay builds a [`Plan`] from the
//! snapshot once per request and asks it for channels until one succeeds.
//!
//! Rules: candidates are the enabled channels of the key's group that list the
//! model, or only the key's bound channel. The `admit` predicate drops
//! candidates before tiers are formed (the daily-limit issue uses it to skip
//! channels capped for today). The highest `priority` tier goes first; inside
//! a tier the choice is weighted random by `weight`, and channels share
//! equally when every remaining weight is zero. A retry never repeats a
//! channel: it takes the rest of the same tier first, then lower tiers.

use rand::Rng;

use crate::model::{ChannelId, Token};
use crate::snapshot::Snapshot;

/// What selection needs to know about one candidate channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub id: ChannelId,
    pub priority: i64,
    pub weight: u32,
}

/// The remaining choices for one request, best tier first.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Tiers in descending priority; a channel leaves its tier once picked.
    tiers: Vec<Vec<Candidate>>,
}

impl Plan {
    /// Groups the admitted candidates into priority tiers.
    pub fn new(
        candidates: impl IntoIterator<Item = Candidate>,
        admit: &dyn Fn(ChannelId) -> bool,
    ) -> Plan {
        let mut admitted: Vec<Candidate> = candidates
            .into_iter()
            .filter(|candidate| admit(candidate.id))
            .collect();
        // Stable: equal priorities keep their given (id) order, so tests are reproducible.
        admitted.sort_by_key(|candidate| std::cmp::Reverse(candidate.priority));
        let mut tiers: Vec<Vec<Candidate>> = Vec::new();
        for candidate in admitted {
            match tiers.last_mut() {
                Some(tier) if tier[0].priority == candidate.priority => tier.push(candidate),
                _ => tiers.push(vec![candidate]),
            }
        }
        Plan { tiers }
    }

    /// The plan for `token` asking for `model`: its bound channel if it has
    /// one (when that channel is enabled and lists the model), otherwise the
    /// routes of its group.
    pub fn for_token(
        snapshot: &Snapshot,
        token: &Token,
        model: &str,
        admit: &dyn Fn(ChannelId) -> bool,
    ) -> Plan {
        let candidate = |id: &ChannelId| {
            snapshot.channel(*id).map(|entry| Candidate {
                id: *id,
                priority: entry.channel.spec.priority,
                weight: entry.channel.spec.weight,
            })
        };
        match token.spec.channel_id {
            Some(bound) => {
                let serves = snapshot.channel(bound).is_some_and(|entry| {
                    entry.channel.is_enabled()
                        && entry
                            .channel
                            .spec
                            .models
                            .iter()
                            .any(|listed| listed == model)
                });
                let ids: &[ChannelId] = if serves { &[bound] } else { &[] };
                Plan::new(ids.iter().filter_map(candidate), admit)
            }
            None => Plan::new(
                snapshot
                    .routes(&token.spec.group, model)
                    .iter()
                    .filter_map(candidate),
                admit,
            ),
        }
    }

    /// Whether no channel is left to try.
    pub fn is_empty(&self) -> bool {
        self.tiers.iter().all(Vec::is_empty)
    }

    /// Picks the next channel to try and removes it from the plan.
    pub fn next(&mut self, rng: &mut impl Rng) -> Option<ChannelId> {
        let tier = self.tiers.iter_mut().find(|tier| !tier.is_empty())?;
        let index = pick_weighted(tier, rng);
        Some(tier.remove(index).id)
    }
}

/// An index into a non-empty `tier`, chosen with probability proportional to
/// weight; uniform when all weights are zero.
fn pick_weighted(tier: &[Candidate], rng: &mut impl Rng) -> usize {
    let total: u64 = tier
        .iter()
        .map(|candidate| u64::from(candidate.weight))
        .sum();
    if total == 0 {
        return rng.random_range(0..tier.len());
    }
    let mut ticket = rng.random_range(0..total);
    for (index, candidate) in tier.iter().enumerate() {
        let weight = u64::from(candidate.weight);
        if ticket < weight {
            return index;
        }
        ticket -= weight;
    }
    tier.len() - 1
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn candidate(id: i64, priority: i64, weight: u32) -> Candidate {
        Candidate {
            id: ChannelId(id),
            priority,
            weight,
        }
    }

    fn admit_all(_: ChannelId) -> bool {
        true
    }

    /// Drains a plan into the full order it would try channels in.
    fn order(candidates: &[Candidate], admit: &dyn Fn(ChannelId) -> bool, seed: u64) -> Vec<i64> {
        let mut plan = Plan::new(candidates.iter().copied(), admit);
        let mut rng = StdRng::seed_from_u64(seed);
        std::iter::from_fn(|| plan.next(&mut rng))
            .map(|id| id.0)
            .collect()
    }

    /// Tiers are exhausted from the highest priority down, and nothing repeats.
    #[test]
    fn tiers_go_highest_first_without_repeats() {
        struct Case {
            name: &'static str,
            candidates: Vec<Candidate>,
            tiers: Vec<Vec<i64>>,
        }
        let cases = [
            Case {
                name: "empty",
                candidates: vec![],
                tiers: vec![],
            },
            Case {
                name: "single",
                candidates: vec![candidate(1, 0, 1)],
                tiers: vec![vec![1]],
            },
            Case {
                name: "two tiers",
                candidates: vec![candidate(1, 0, 5), candidate(2, 10, 1), candidate(3, 10, 1)],
                tiers: vec![vec![2, 3], vec![1]],
            },
            Case {
                name: "negative priority last",
                candidates: vec![candidate(1, -1, 1), candidate(2, 0, 0), candidate(3, 5, 0)],
                tiers: vec![vec![3], vec![2], vec![1]],
            },
            Case {
                name: "zero weights still served",
                candidates: vec![candidate(1, 0, 0), candidate(2, 0, 0)],
                tiers: vec![vec![1, 2]],
            },
        ];
        for case in cases {
            for seed in 0..20 {
                let got = order(&case.candidates, &admit_all, seed);
                let mut position = 0;
                for tier in &case.tiers {
                    let mut slice = got[position..position + tier.len()].to_vec();
                    slice.sort_unstable();
                    assert_eq!(&slice, tier, "{} (seed {seed}): {got:?}", case.name);
                    position += tier.len();
                }
                assert_eq!(position, got.len(), "{}: extra picks {got:?}", case.name);
            }
        }
    }

    /// The admit predicate removes channels before tiers are formed.
    #[test]
    fn admit_filters_before_tiers() {
        let candidates = [candidate(1, 10, 1), candidate(2, 10, 1), candidate(3, 0, 1)];
        let skip_one = |id: ChannelId| id != ChannelId(1);
        let skip_top = |id: ChannelId| id == ChannelId(3);
        let none = |_: ChannelId| false;
        assert_eq!(order(&candidates, &skip_one, 1), vec![2, 3]);
        assert_eq!(order(&candidates, &skip_top, 1), vec![3]);
        assert!(Plan::new(candidates, &none).is_empty());
    }

    /// A zero-weight channel is only chosen after its weighted tier-mates.
    #[test]
    fn zero_weight_waits_for_weighted_peers() {
        let candidates = [candidate(1, 0, 0), candidate(2, 0, 3), candidate(3, 0, 1)];
        for seed in 0..50 {
            let got = order(&candidates, &admit_all, seed);
            assert_eq!(got.last(), Some(&1), "seed {seed}: {got:?}");
        }
    }

    /// First picks split by weight (3:1) and equally when all weights are zero.
    #[test]
    fn first_pick_follows_weights() {
        let cases: [(&[Candidate], [f64; 2]); 3] = [
            (&[candidate(1, 0, 3), candidate(2, 0, 1)], [0.75, 0.25]),
            (&[candidate(1, 0, 0), candidate(2, 0, 0)], [0.5, 0.5]),
            (&[candidate(1, 0, 1), candidate(2, 0, 1)], [0.5, 0.5]),
        ];
        let rounds = 20_000;
        for (candidates, expected) in cases {
            let mut rng = StdRng::seed_from_u64(7);
            let mut counts: HashMap<i64, u32> = HashMap::new();
            for _ in 0..rounds {
                let mut plan = Plan::new(candidates.iter().copied(), &admit_all);
                if let Some(id) = plan.next(&mut rng) {
                    *counts.entry(id.0).or_default() += 1;
                }
            }
            for (index, share) in expected.iter().enumerate() {
                let id = candidates[index].id.0;
                let seen = f64::from(counts.get(&id).copied().unwrap_or(0)) / f64::from(rounds);
                assert!(
                    (seen - share).abs() < 0.02,
                    "channel {id}: {seen} vs {share}"
                );
            }
        }
    }
}
