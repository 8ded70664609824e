//! Counting that matches the upstream exactly, and survives a failing
//! counter store: counts stay in memory, enforced, and reach sled later.

use chrono_tz::Tz;
use serde_json::json;
use sluicegate::model::ChannelId;

use super::events;
use super::{DayRig, assert_429, capped_at, date, upstream_reporting, utc};
use crate::support::poll::{self, PATIENCE};

/// While counter writes fail, counts stay in memory and enforced with a warning logged; once writes work again sled catches up.
#[tokio::test]
async fn failing_store_keeps_counts_and_catches_up() {
    events::capture();
    let rig = DayRig::start(utc(2026, 11, 28, 12, 0, 0), Tz::UTC).await;
    let fake = upstream_reporting("durable", 1_000).await;
    let id = rig.channel(&fake, capped_at(3_000)).await;
    let store = rig.state().store.clone();
    store.fail_counter_writes(u32::MAX);
    for index in 0..3 {
        assert_eq!(rig.chat(&format!("store-{index}")).await.status(), 200);
    }
    assert_429(
        rig.chat("store-capped").await,
        "daily_token_limit_exhausted",
        12 * 3_600,
    )
    .await;
    assert_eq!(rig.used(id, date(2026, 11, 28)), 3_000);

    let warned = || {
        !events::events(|event| {
            event.level == tracing::Level::WARN
                && event
                    .field("message")
                    .is_some_and(|message| message.contains("counter store write failed"))
        })
        .is_empty()
    };
    // The warning is what shows a flush has run (and failed), so the
    // empty store below is the failure's doing, not a flush yet to come.
    poll::until(
        "a warning naming the failing counter store",
        PATIENCE,
        async || warned(),
    )
    .await;
    let today = date(2026, 11, 28);
    assert!(
        store
            .usage_history(ChannelId(id), today)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(rig.state().counters.pending_tokens() >= 3_000);

    store.fail_counter_writes(0);
    poll::until("sled to catch up", PATIENCE, async || {
        let durable = store.usage_history(ChannelId(id), today).await.unwrap();
        if durable == [(today, 3_000)] {
            Ok(())
        } else {
            Err(format!("{durable:?}"))
        }
    })
    .await;
}

/// Counted tokens equal the upstream's reported totals exactly, for whole and streamed replies, capped and unlimited channels.
#[tokio::test]
async fn counts_match_reported_usage_exactly() {
    let rig = DayRig::start(utc(2026, 11, 28, 12, 0, 0), Tz::UTC).await;
    let (limited, unlimited) = (
        upstream_reporting("limited", 123).await,
        upstream_reporting("unlimited", 77).await,
    );
    let limited_id = rig.channel(&limited, capped_at(1_000_000)).await;
    let unlimited_id = rig.channel(&unlimited, json!({})).await;
    for (id, fake) in [(limited_id, &limited), (unlimited_id, &unlimited)] {
        let key = rig.bound_key(id).await;
        for index in 0..6 {
            let mut body = super::ask();
            if index % 2 == 1 {
                body["stream"] = json!(true);
            }
            let response = rig
                .chat_as(&key, &format!("exact-{id}-{index}"), &body)
                .await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }
        let today = date(2026, 11, 28);
        let used = poll::until("the count to match the upstream", PATIENCE, async || {
            let used = rig.used(id, today);
            if used == fake.reported_tokens() {
                Ok(used)
            } else {
                Err(format!("{used} of {}", fake.reported_tokens()))
            }
        })
        .await;
        let view = rig
            .state()
            .counters
            .view(ChannelId(id), Tz::UTC, utc(2026, 11, 28, 13, 0, 0));
        assert_eq!((view.used, view.reserved), (used, 0));
    }
    assert_eq!(limited.reported_tokens(), 6 * 123);
    assert_eq!(unlimited.reported_tokens(), 6 * 77);
}
