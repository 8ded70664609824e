//! Tests of the cluster storage against the real `Store` in temp dirs: the
//! openraft storage suite, exactly-once application, snapshots and restarts.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use openraft::storage::RaftStateMachine;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, RaftSnapshotBuilder, StorageError};
use tempfile::TempDir;

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::types::{AppliedData, AppliedResult, ClusterRequest, LogId, NodeId, Origin, TypeConfig};
use crate::command::{Command, ConfigCommand, UsageCommand};
use crate::daily::UsageDelta;
use crate::model::{
    ChannelId, ChannelSpec, ChannelStatus, ChannelType, KeyHash, TokenSpec, TokenStatus,
};
use crate::runtime::SettingsPatch;
use crate::store::Store;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let log = LogStore::open(dir.path(), store.secret_key().clone()).unwrap();
        let machine = StateMachine::new(store, dir.path());
        Ok((dir, log, machine))
    }
}

/// The sled log store (with our state machine) passes openraft's storage suite.
#[test]
fn log_store_passes_openraft_suite() {
    Suite::test_all(Builder).unwrap();
}

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, second).unwrap()
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
}

fn spec(name: &str) -> ChannelSpec {
    ChannelSpec {
        name: name.to_string(),
        kind: ChannelType::Openai,
        base_url: "http://127.0.0.1:9/v1".to_string(),
        keys: vec!["sk-a".to_string()],
        models: vec!["gpt-4o-mini".to_string()],
        model_mapping: BTreeMap::new(),
        groups: vec!["default".to_string()],
        priority: 0,
        weight: 1,
        status: ChannelStatus::Enabled,
        settings: serde_json::Map::new(),
    }
}

fn token_spec(channel_id: ChannelId) -> TokenSpec {
    TokenSpec {
        name: "client".into(),
        status: TokenStatus::Enabled,
        expires_at: Some(at(30)),
        group: "default".into(),
        models: None,
        channel_id: Some(channel_id),
    }
}

fn entry(index: u64, request: ClusterRequest) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(request),
    }
}

fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(1, 1.into()), index)
}

fn usage(channel: i64, day: u32, tokens: u64) -> Command {
    UsageCommand::AddUsage {
        deltas: vec![UsageDelta {
            channel_id: ChannelId(channel),
            date: date(day),
            tokens,
        }],
    }
    .into()
}

fn batch(node_id: u64, sequence: u64, command: Command) -> ClusterRequest {
    let node_id = crate::model::NodeId(node_id);
    ClusterRequest::batch(Origin { node_id, sequence }, vec![command])
}

/// A mixed history: two channels, one deleted (so AUTOINCREMENT has a gap),
/// a token, settings and counter batches from two nodes.
fn history() -> Vec<Entry<TypeConfig>> {
    let create = |name: &str, second| {
        ClusterRequest::command(ConfigCommand::CreateChannel {
            spec: spec(name),
            at: at(second),
        })
    };
    let mut entries = vec![
        entry(1, create("one", 1)),
        entry(2, create("two", 2)),
        entry(
            3,
            ClusterRequest::command(ConfigCommand::DeleteChannel { id: ChannelId(1) }),
        ),
        entry(
            4,
            ClusterRequest::command(ConfigCommand::CreateToken {
                key_hash: KeyHash::of("sk-full"),
                key_prefix: "sk-full".into(),
                spec: token_spec(ChannelId(2)),
                at: at(4),
            }),
        ),
        entry(
            5,
            ClusterRequest::command(ConfigCommand::UpdateSettings {
                patch: SettingsPatch {
                    timezone: Some("Asia/Shanghai".into()),
                    max_retries: Some(4),
                    ..SettingsPatch::default()
                },
                at: at(5),
            }),
        ),
        entry(6, batch(1, 1, usage(2, 27, 100))),
        entry(7, batch(2, 1, usage(2, 28, 50))),
    ];
    entries.push(entry(8, create("three", 8)));
    entries
}

fn open(dir: &TempDir) -> (Store, StateMachine) {
    let store = Store::open(dir.path()).unwrap();
    let machine = StateMachine::new(store.clone(), dir.path());
    (store, machine)
}

/// The same log applied on two nodes gives identical ids, rows and counts.
#[tokio::test]
async fn same_log_gives_identical_state_and_ids() {
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, mut first_machine) = open(&first_dir);
    let (second, mut second_machine) = open(&second_dir);
    let replies = first_machine.apply(history()).await.unwrap();
    // Applied in two calls on the second node: batching must not matter.
    let mut entries = history();
    let tail = entries.split_off(4);
    second_machine.apply(entries).await.unwrap();
    second_machine.apply(tail).await.unwrap();

    assert_eq!(replies.len(), 8);
    let Some(AppliedResult::Ok(AppliedData::Channel(three))) = replies[7].first() else {
        panic!("expected a channel, got {:?}", replies[7]);
    };
    // AUTOINCREMENT never reuses the deleted channel's id 1.
    assert_eq!(three.id, ChannelId(3));
    assert_eq!(first.load().await.unwrap(), second.load().await.unwrap());
    assert_eq!(
        first.settings().await.unwrap(),
        second.settings().await.unwrap()
    );
    let counts = first.usage_since(date(1)).await.unwrap();
    assert_eq!(counts, second.usage_since(date(1)).await.unwrap());
    assert_eq!(counts.len(), 2);
    let (applied, _) = first_machine.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(8)));
}

/// A deterministic failure (updating a missing token) is an answer, not a
/// raft error, and leaves the rest of the batch applied.
#[tokio::test]
async fn failed_command_is_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut machine) = open(&dir);
    let missing = ClusterRequest::command(ConfigCommand::UpdateToken {
        id: crate::model::TokenId(42),
        spec: token_spec(ChannelId(1)),
    });
    let replies = machine
        .apply(vec![entry(1, missing), history().remove(0)])
        .await
        .unwrap();
    let Some(AppliedResult::Err(error)) = replies[0].first() else {
        panic!("expected an error, got {:?}", replies[0]);
    };
    assert_eq!(error.kind, "not_found");
    assert_eq!(store.load().await.unwrap().0.len(), 1);
}

/// A batch retried with the same or an older (node, sequence) counts once.
#[tokio::test]
async fn repeated_origin_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut machine) = open(&dir);
    let replies = machine
        .apply(vec![
            entry(1, batch(1, 5, usage(7, 28, 10))),
            entry(2, batch(1, 5, usage(7, 28, 10))),
            entry(3, batch(1, 4, usage(7, 28, 10))),
            entry(4, batch(2, 5, usage(7, 28, 1))),
        ])
        .await
        .unwrap();
    let duplicates: Vec<bool> = replies.iter().map(|reply| reply.duplicate).collect();
    assert_eq!(duplicates, [false, true, true, false]);
    // A retry in a later apply call is still recognised.
    let later = machine
        .apply(vec![
            entry(5, batch(1, 5, usage(7, 28, 10))),
            entry(6, batch(1, 6, usage(7, 28, 100))),
        ])
        .await
        .unwrap();
    assert!(later[0].duplicate && !later[1].duplicate);
    let counts = store.usage_since(date(1)).await.unwrap();
    assert_eq!(counts[0].tokens, 111);
}

/// Re-applying entries the counters already hold (raft replays after a
/// crash between the sled and SQLite writes) does not count them twice.
#[tokio::test]
async fn replayed_entry_does_not_count_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut machine) = open(&dir);
    let without_origin = ClusterRequest::command(usage(3, 28, 25));
    machine
        .apply(vec![entry(1, without_origin.clone())])
        .await
        .unwrap();
    machine.apply(vec![entry(1, without_origin)]).await.unwrap();
    assert_eq!(store.usage_since(date(1)).await.unwrap()[0].tokens, 25);
}

/// A snapshot installed on an empty node reproduces config, settings,
/// counts, sequences and AUTOINCREMENT, and the next create agrees on ids.
#[tokio::test]
async fn snapshot_round_trips_onto_a_fresh_store() {
    let (source_dir, target_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (source, mut source_machine) = open(&source_dir);
    let (target, mut target_machine) = open(&target_dir);
    let mut entries = history();
    entries.pop();
    source_machine.apply(entries).await.unwrap();

    let mut builder = source_machine.get_snapshot_builder().await;
    let snapshot = builder.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(7)));
    target_machine
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();

    assert_eq!(source.load().await.unwrap(), target.load().await.unwrap());
    assert_eq!(
        source.settings().await.unwrap(),
        target.settings().await.unwrap()
    );
    assert_eq!(
        source.usage_since(date(1)).await.unwrap(),
        target.usage_since(date(1)).await.unwrap()
    );
    assert_eq!(
        target_machine.applied_state().await.unwrap(),
        source_machine.applied_state().await.unwrap()
    );
    // The origins came along: node 1's batch 1 is a duplicate on the target.
    let retry = target_machine
        .apply(vec![entry(8, batch(1, 1, usage(2, 27, 100)))])
        .await
        .unwrap();
    assert!(retry[0].duplicate);
    // And the next channel gets id 3 on both, not 1 or 2.
    let last = history().pop().unwrap();
    for machine in [&mut source_machine, &mut target_machine] {
        let reply = machine.apply(vec![last.clone()]).await.unwrap();
        let Some(AppliedResult::Ok(AppliedData::Channel(channel))) = reply[0].first() else {
            panic!("expected a channel, got {reply:?}");
        };
        assert_eq!(channel.id, ChannelId(3));
    }
}

/// Last applied, membership and the current snapshot survive a reopen.
#[tokio::test]
async fn reopen_preserves_applied_state_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (before, snapshot_id) = {
        let (_store, mut machine) = open(&dir);
        machine.apply(history()).await.unwrap();
        let mut builder = machine.get_snapshot_builder().await;
        let snapshot = builder.build_snapshot().await.unwrap();
        (
            machine.applied_state().await.unwrap(),
            snapshot.meta.snapshot_id,
        )
    };
    let (_store, mut machine) = open(&dir);
    assert_eq!(machine.applied_state().await.unwrap(), before);
    assert_eq!(before.0, Some(log_id(8)));
    let current = machine.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.snapshot_id, snapshot_id);
    assert_eq!(current.meta.last_log_id, Some(log_id(8)));
}

fn grant(node_id: u64, tokens: u64) -> ClusterRequest {
    ClusterRequest::command(UsageCommand::GrantLease(crate::lease::LeaseRequest {
        channel_id: ChannelId(7),
        date: date(28),
        node_id: crate::model::NodeId(node_id),
        tokens,
        limit: 10_000,
        voters: 2,
    }))
}

/// Leases: grants never add up to more than the limit, usage is attributed
/// to the batch's node once (a duplicate batch does not spend its lease
/// twice), the leases travel in snapshots, and a reset drops them.
#[tokio::test]
async fn leases_are_granted_within_the_limit_and_travel_in_snapshots() {
    let (source_dir, target_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (source, mut machine) = open(&source_dir);
    let (target, mut target_machine) = open(&target_dir);
    // Free 10,000: share 10,000 / 4 = 2,500 beats the asked 1,000.
    machine.apply(vec![entry(1, grant(1, 1000))]).await.unwrap();
    // Node 1 spends 2,000 (a retried batch counts once); usage without an
    // origin is nobody's lease.
    machine
        .apply(vec![
            entry(2, batch(1, 1, usage(7, 28, 2000))),
            entry(3, batch(1, 1, usage(7, 28, 2000))),
            entry(4, ClusterRequest::command(usage(7, 28, 1000))),
        ])
        .await
        .unwrap();
    // Free = 10,000 − 3,000 − 500 outstanding = 6,500: node 2 gets 6,500 by asking that much.
    machine.apply(vec![entry(5, grant(2, 9000))]).await.unwrap();
    let leases = source.leases_of(crate::model::NodeId(2)).unwrap();
    assert_eq!((leases[0].granted, leases[0].used), (6500, 0));
    // Nothing left for anyone.
    machine.apply(vec![entry(6, grant(1, 1000))]).await.unwrap();
    let leases = source.leases_of(crate::model::NodeId(1)).unwrap();
    assert_eq!((leases[0].granted, leases[0].used), (2500, 2000));

    let snapshot = machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    target_machine
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(
        target.leases_of(crate::model::NodeId(1)).unwrap(),
        source.leases_of(crate::model::NodeId(1)).unwrap()
    );
    assert_eq!(
        target.leases_of(crate::model::NodeId(2)).unwrap(),
        source.leases_of(crate::model::NodeId(2)).unwrap()
    );

    machine
        .apply(vec![entry(
            7,
            ClusterRequest::command(UsageCommand::ResetUsage {
                channel_id: ChannelId(7),
                date: date(28),
                at: at(9),
            }),
        )])
        .await
        .unwrap();
    assert!(
        source
            .leases_of(crate::model::NodeId(1))
            .unwrap()
            .is_empty()
    );
}

/// `Prune` and a channel's deletion change the counters at their place in
/// the log, the same on every node however the entries are batched: a
/// count written just before a prune in the same batch is pruned with the
/// rest, and one written after it stays; a deleted channel's counts and
/// leases go with it; a replayed prune changes nothing more.
#[tokio::test]
async fn prune_and_delete_apply_at_their_log_position() {
    let log = || {
        vec![
            entry(
                1,
                ClusterRequest::command(ConfigCommand::CreateChannel {
                    spec: spec("one"),
                    at: at(1),
                }),
            ),
            entry(
                2,
                ClusterRequest::command(ConfigCommand::CreateChannel {
                    spec: spec("two"),
                    at: at(2),
                }),
            ),
            entry(3, ClusterRequest::command(usage(1, 10, 100))),
            entry(4, ClusterRequest::command(usage(2, 27, 200))),
            entry(
                5,
                ClusterRequest::command(UsageCommand::GrantLease(crate::lease::LeaseRequest {
                    channel_id: ChannelId(2),
                    date: date(27),
                    node_id: crate::model::NodeId(2),
                    tokens: 50,
                    limit: 10_000,
                    voters: 2,
                })),
            ),
            entry(6, ClusterRequest::command(usage(1, 11, 300))),
            entry(
                7,
                ClusterRequest::command(UsageCommand::Prune {
                    counts_before: date(20),
                    leases_before: date(20),
                }),
            ),
            entry(8, ClusterRequest::command(usage(1, 12, 400))),
            entry(
                9,
                ClusterRequest::command(ConfigCommand::DeleteChannel { id: ChannelId(2) }),
            ),
        ]
    };
    let counts = |deltas: Vec<UsageDelta>| -> Vec<(i64, u32, u64)> {
        let mut counts: Vec<_> = deltas
            .into_iter()
            .map(|delta| {
                (
                    delta.channel_id.0,
                    delta.date.format("%d").to_string().parse().unwrap(),
                    delta.tokens,
                )
            })
            .collect();
        counts.sort();
        counts
    };
    let (whole_dir, split_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (whole, mut whole_machine) = open(&whole_dir);
    let (split, mut split_machine) = open(&split_dir);
    let replies = whole_machine.apply(log()).await.unwrap();
    // Entry 7 answers with what it removed: the two counts of days 10 and 11.
    assert_eq!(
        replies[6].results,
        vec![AppliedResult::Ok(AppliedData::Pruned(2))]
    );
    let mut entries = log();
    let rest = entries.split_off(6);
    split_machine.apply(entries).await.unwrap();
    split_machine.apply(rest).await.unwrap();
    let expected = vec![(1, 12, 400)];
    assert_eq!(counts(whole.usage_since(date(1)).await.unwrap()), expected);
    assert_eq!(counts(split.usage_since(date(1)).await.unwrap()), expected);
    // Channel 2 was deleted at entry 9: its count and lease went with it.
    assert!(whole.leases_of(crate::model::NodeId(2)).unwrap().is_empty());
    assert!(split.leases_of(crate::model::NodeId(2)).unwrap().is_empty());
    // Replaying the tail changes no count.
    let mut replay = log();
    let tail = replay.split_off(6);
    split_machine.apply(tail).await.unwrap();
    assert_eq!(counts(split.usage_since(date(1)).await.unwrap()), expected);
}
