//! Channel selection among 1,000 channels of one (group, model) with 10%
//! capped for the day. Target: ≤ 2 µs per selection.
//!
//! Two admit predicates: a `HashSet` of capped ids (selection alone), and
//! the real `daily::Counters` the relay asks (selection plus the cap check).

use std::collections::HashSet;
use std::hint::black_box;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use sluicegate::daily::Counters;
use sluicegate::model::{Channel, ChannelId, ChannelSpec, ChannelStatus, ChannelType};
use sluicegate::snapshot::Selection;
use sluicegate::snapshot::Snapshot;

const CHANNELS: i64 = 1_000;

fn channel(id: i64) -> Channel {
    let at = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    let mut settings = serde_json::Map::new();
    settings.insert("daily_token_limit".to_string(), 1_000.into());
    Channel {
        id: ChannelId(id),
        spec: ChannelSpec {
            name: format!("channel-{id}"),
            kind: ChannelType::Openai,
            base_url: "http://127.0.0.1:1/v1".to_string(),
            keys: vec![format!("sk-{id}")],
            models: vec!["gpt-4o".to_string()],
            model_mapping: Default::default(),
            groups: vec!["default".to_string()],
            priority: 0,
            weight: u32::try_from(1 + id % 7).unwrap_or(1),
            status: ChannelStatus::Enabled,
            settings,
        },
        created_at: at,
        updated_at: at,
        auto_disabled: None,
    }
}

fn selection(c: &mut Criterion) {
    let channels = (1..=CHANNELS).map(channel).collect();
    let snapshot = Snapshot::build(channels, Vec::new(), None, Tz::UTC);
    let route = snapshot.route("default", "gpt-4o");
    let capped: HashSet<ChannelId> = (1..=CHANNELS)
        .filter(|id| id % 10 == 0)
        .map(ChannelId)
        .collect();
    let now = Utc
        .timestamp_opt(1_780_000_000, 0)
        .single()
        .unwrap_or_default();
    let counters = Counters::new();
    for id in 1..=CHANNELS {
        let tokens = if capped.contains(&ChannelId(id)) {
            1_000
        } else {
            10
        };
        counters.count(ChannelId(id), Tz::UTC, tokens, None, now);
    }
    let mut rng = SmallRng::seed_from_u64(7);

    let mut group = c.benchmark_group("select 1000 channels, 10% capped");
    group.bench_function("hashset predicate", |b| {
        b.iter(|| {
            let mut selection = Selection::new(route);
            let picked = selection.next(&mut rng, |entry| !capped.contains(&entry.channel.id));
            black_box(picked.map(|entry| entry.channel.id))
        })
    });
    group.bench_function("real counters", |b| {
        b.iter(|| {
            let mut selection = Selection::new(route);
            let picked = selection.next(&mut rng, |entry| {
                !counters.is_capped(entry.channel.id, entry.cap, now)
            });
            black_box(picked.map(|entry| entry.channel.id))
        })
    });
    group.bench_function("first pick + 2 retries, real counters", |b| {
        b.iter(|| {
            let mut selection = Selection::new(route);
            for _ in 0..3 {
                let picked = selection.next(&mut rng, |entry| {
                    !counters.is_capped(entry.channel.id, entry.cap, now)
                });
                black_box(picked.map(|entry| entry.channel.id));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, selection);
criterion_main!(benches);
