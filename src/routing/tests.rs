//! Table-driven selection tests over seeded rngs.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
/// A channel as routing sees it.
#[derive(Debug)]
struct Test {
    id: ChannelId,
    priority: i64,
    weight: u32,
}

impl Candidate for Test {
    fn id(&self) -> ChannelId {
        self.id
    }

    fn priority(&self) -> i64 {
        self.priority
    }

    fn weight(&self) -> u32 {
        self.weight
    }

    fn limited(&self) -> bool {
        false
    }
}

fn entry(id: i64, priority: i64, weight: u32) -> Arc<Test> {
    Arc::new(Test {
        id: ChannelId(id),
        priority,
        weight,
    })
}

type Route = super::Route<Test>;

fn route(specs: &[(i64, i64, u32)]) -> Route {
    Route::build(
        specs
            .iter()
            .map(|&(id, priority, weight)| entry(id, priority, weight)),
    )
}

/// Drains a selection into the full order it would try channels in.
fn order(route: &Route, admit: impl Fn(ChannelId) -> bool, seed: u64) -> Vec<i64> {
    let mut selection = Selection::new(route);
    let mut rng = StdRng::seed_from_u64(seed);
    std::iter::from_fn(|| selection.next(&mut rng, |entry| admit(entry.id)))
        .map(|entry| entry.id.0)
        .collect()
}

fn admit_all(_: ChannelId) -> bool {
    true
}

type Spec = (i64, i64, u32);
type Admit = fn(ChannelId) -> bool;

/// Tiers are exhausted from the highest priority down, and nothing repeats.
#[test]
fn tiers_go_highest_first_without_repeats() {
    type Tiers = &'static [&'static [i64]];
    let cases: [(&str, &[Spec], Tiers); 6] = [
        ("empty", &[], &[]),
        ("single", &[(1, 0, 1)], &[&[1]]),
        (
            "two tiers",
            &[(1, 0, 5), (2, 10, 1), (3, 10, 1)],
            &[&[2, 3], &[1]],
        ),
        (
            "negative priority last",
            &[(1, -1, 1), (2, 0, 0), (3, 5, 0)],
            &[&[3], &[2], &[1]],
        ),
        (
            "zero weights still served",
            &[(1, 0, 0), (2, 0, 0)],
            &[&[1, 2]],
        ),
        (
            "duplicates collapse",
            &[(1, 0, 1), (1, 0, 1), (2, 0, 1)],
            &[&[1, 2]],
        ),
    ];
    for (name, specs, tiers) in cases {
        let route = route(specs);
        for seed in 0..20 {
            let got = order(&route, admit_all, seed);
            let mut position = 0;
            for tier in tiers {
                let mut slice = got[position..position + tier.len()].to_vec();
                slice.sort_unstable();
                assert_eq!(&slice, tier, "{name} (seed {seed}): {got:?}");
                position += tier.len();
            }
            assert_eq!(position, got.len(), "{name}: extra picks {got:?}");
        }
    }
}

/// The admit predicate removes channels before tiers are considered.
#[test]
fn admit_filters_before_tiers() {
    let route = route(&[(1, 10, 1), (2, 10, 1), (3, 0, 1)]);
    let cases: [(&str, Admit, Vec<i64>); 3] = [
        ("skip one", |id| id != ChannelId(1), vec![2, 3]),
        ("whole top tier capped", |id| id == ChannelId(3), vec![3]),
        ("all capped", |_| false, vec![]),
    ];
    for (name, admit, expected) in cases {
        for seed in 0..10 {
            let mut got = order(&route, admit, seed);
            if got.len() == 2 {
                got[..1].sort_unstable();
            }
            assert_eq!(got, expected, "{name} (seed {seed})");
        }
    }
}

/// A refused channel is asked about once per request, however often it is drawn.
#[test]
fn admit_is_asked_once_per_channel() {
    let route = route(&[(1, 0, 100), (2, 0, 1), (3, 0, 1)]);
    for seed in 0..20 {
        let mut asked = Vec::new();
        let mut selection = Selection::new(&route);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut picks = Vec::new();
        while let Some(entry) = selection.next(&mut rng, |entry| {
            asked.push(entry.id.0);
            entry.id != ChannelId(1)
        }) {
            picks.push(entry.id.0);
        }
        let refused = asked.iter().filter(|id| **id == 1).count();
        assert_eq!(refused, 1, "seed {seed}: {asked:?}");
        picks.sort_unstable();
        assert_eq!(picks, vec![2, 3]);
    }
}

/// A channel excluded up front (the affinity channel, tried first) is never offered.
#[test]
fn excluded_channels_are_not_offered() {
    let route = route(&[(1, 0, 1), (2, 0, 1)]);
    for seed in 0..10 {
        let mut selection = Selection::new(&route);
        selection.exclude(ChannelId(1));
        let mut rng = StdRng::seed_from_u64(seed);
        let picks: Vec<i64> = std::iter::from_fn(|| selection.next(&mut rng, |_| true))
            .map(|entry| entry.id.0)
            .collect();
        assert_eq!(picks, vec![2]);
    }
}

/// A zero-weight channel is only chosen after its weighted tier-mates.
#[test]
fn zero_weight_waits_for_weighted_peers() {
    let route = route(&[(1, 0, 0), (2, 0, 3), (3, 0, 1)]);
    for seed in 0..50 {
        let got = order(&route, admit_all, seed);
        assert_eq!(got.last(), Some(&1), "seed {seed}: {got:?}");
    }
}

/// First picks split by weight, equally when all weights are zero, and the
/// split stays exact among the admitted channels when others are capped.
#[test]
fn first_pick_follows_weights() {
    type Shares = &'static [(i64, f64)];
    let capped_two = |id: ChannelId| id != ChannelId(2);
    let cases: [(&[Spec], Admit, Shares); 4] = [
        (&[(1, 0, 3), (2, 0, 1)], admit_all, &[(1, 0.75), (2, 0.25)]),
        (&[(1, 0, 0), (2, 0, 0)], admit_all, &[(1, 0.5), (2, 0.5)]),
        (&[(1, 0, 1), (2, 0, 1)], admit_all, &[(1, 0.5), (2, 0.5)]),
        (
            &[(1, 0, 1), (2, 0, 6), (3, 0, 3)],
            capped_two,
            &[(1, 0.25), (2, 0.0), (3, 0.75)],
        ),
    ];
    let rounds = 20_000;
    for (specs, admit, expected) in cases {
        let route = route(specs);
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts: HashMap<i64, u32> = HashMap::new();
        for _ in 0..rounds {
            let mut selection = Selection::new(&route);
            if let Some(entry) = selection.next(&mut rng, |entry| admit(entry.id)) {
                *counts.entry(entry.id.0).or_default() += 1;
            }
        }
        for (id, share) in expected {
            let seen = f64::from(counts.get(id).copied().unwrap_or(0)) / f64::from(rounds);
            assert!(
                (seen - share).abs() < 0.02,
                "channel {id}: {seen} vs {share}"
            );
        }
    }
}

/// A large tier with most channels capped still finds the few open ones.
#[test]
fn mostly_capped_large_tier_falls_back_to_a_scan() {
    let specs: Vec<(i64, i64, u32)> = (0..1_000).map(|id| (id, 0, 1)).collect();
    let route = route(&specs);
    assert_eq!(route.len(), 1_000);
    let open = |id: ChannelId| id.0 % 250 == 7;
    for seed in 0..10 {
        let mut got = order(&route, open, seed);
        got.sort_unstable();
        assert_eq!(got, vec![7, 257, 507, 757], "seed {seed}");
    }
}
