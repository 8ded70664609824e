//! Days roll over at local midnight: in the global zone, across a 25-hour
//! DST day, and in a channel's own zone; counts land on the completion day.

use std::sync::Arc;

use chrono::Duration;
use chrono_tz::Tz;
use sluicegate::model::ChannelId;

use crate::support::poll::{self, PATIENCE};

use super::{DayRig, assert_429, capped_at, date, upstream_reporting, utc, zone};

/// A channel capped at 23:59 serves again at 00:00, and the new day's count starts at 0.
#[tokio::test]
async fn capped_channel_serves_again_at_midnight() {
    let rig = DayRig::start(utc(2026, 11, 28, 23, 58, 0), Tz::UTC).await;
    let fake = upstream_reporting("midnight", 1_000).await;
    let id = rig.channel(&fake, capped_at(1_000)).await;
    assert_eq!(rig.chat("before-midnight").await.status(), 200);
    assert_eq!(rig.used(id, date(2026, 11, 28)), 1_000);

    rig.clock.set(utc(2026, 11, 28, 23, 59, 0));
    assert_429(
        rig.chat("capped-at-2359").await,
        "daily_token_limit_exhausted",
        60,
    )
    .await;

    rig.clock.set(utc(2026, 11, 29, 0, 0, 0));
    let view = rig
        .state()
        .counters
        .view(ChannelId(id), Tz::UTC, rig.clock_now());
    assert_eq!(
        (view.date, view.used, view.reserved),
        (date(2026, 11, 29), 0, 0)
    );
    assert_eq!(rig.chat("after-midnight").await.status(), 200);
    assert_eq!(rig.used(id, date(2026, 11, 29)), 1_000);
    assert_eq!(rig.used(id, date(2026, 11, 28)), 1_000);
    assert_eq!(fake.requests(), 2);
}

/// On New York's 25-hour 2026-11-01 the cap resets at local midnight, not 24 h after the day began.
#[tokio::test]
async fn dst_day_resets_at_local_midnight() {
    let new_york = zone("America/New_York");
    // 00:30 EDT on the long day (it began at 04:00 UTC and ends at 05:00 UTC the next day).
    let rig = DayRig::start(utc(2026, 11, 1, 4, 30, 0), new_york).await;
    let fake = upstream_reporting("dst", 500).await;
    let id = rig.channel(&fake, capped_at(500)).await;
    assert_eq!(rig.chat("dst-early").await.status(), 200);
    assert_eq!(rig.used(id, date(2026, 11, 1)), 500);

    // 24 hours after the day began it is 23:00 EST, still the same day.
    rig.clock.set(utc(2026, 11, 2, 4, 0, 0));
    assert_429(
        rig.chat("dst-24h").await,
        "daily_token_limit_exhausted",
        3_600,
    )
    .await;

    rig.clock.set(utc(2026, 11, 2, 5, 0, 0));
    assert_eq!(rig.chat("dst-next-day").await.status(), 200);
    assert_eq!(rig.used(id, date(2026, 11, 2)), 500);
}

/// A channel in Asia/Shanghai resets at Shanghai midnight while a channel on the global UTC zone stays capped.
#[tokio::test]
async fn channel_zone_overrides_the_global_zone() {
    // 23:30 in Shanghai, 15:30 UTC.
    let rig = DayRig::start(utc(2026, 11, 28, 15, 30, 0), Tz::UTC).await;
    let (east, west) = (
        upstream_reporting("east", 1_000).await,
        upstream_reporting("west", 1_000).await,
    );
    let east_id = rig
        .channel(
            &east,
            serde_json::json!({"settings": {"daily_token_limit": 1_000, "daily_reset_timezone": "Asia/Shanghai"}}),
        )
        .await;
    let west_id = rig.channel(&west, capped_at(1_000)).await;
    let (east_key, west_key) = (rig.bound_key(east_id).await, rig.bound_key(west_id).await);
    let ask = super::ask();
    assert_eq!(rig.chat_as(&east_key, "east-1", &ask).await.status(), 200);
    assert_eq!(rig.chat_as(&west_key, "west-1", &ask).await.status(), 200);
    assert_429(
        rig.chat_as(&east_key, "east-capped", &ask).await,
        "channel_daily_token_limit_exceeded",
        30 * 60,
    )
    .await;

    // 00:00 in Shanghai, 16:00 UTC: only the Shanghai channel has a new day.
    rig.clock.set(utc(2026, 11, 28, 16, 0, 0));
    assert_eq!(rig.chat_as(&east_key, "east-2", &ask).await.status(), 200);
    assert_429(
        rig.chat_as(&west_key, "west-capped", &ask).await,
        "channel_daily_token_limit_exceeded",
        8 * 3_600,
    )
    .await;
    assert_eq!(rig.used(east_id, date(2026, 11, 28)), 1_000);
    assert_eq!(rig.used(east_id, date(2026, 11, 29)), 1_000);
    assert_eq!(rig.used(west_id, date(2026, 11, 28)), 1_000);
    assert_eq!(rig.used(west_id, date(2026, 11, 29)), 0);
}

/// A request admitted at 23:59:59 that completes after midnight counts on the new day, and its reservation is released.
#[tokio::test]
async fn counts_land_on_the_day_the_request_completes() {
    let rig = DayRig::start(utc(2026, 11, 28, 23, 59, 59), Tz::UTC).await;
    let fake = upstream_reporting("late", 700).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    fake.configure(|behavior| behavior.gate = Some(Arc::clone(&gate)));
    let id = rig.channel(&fake, capped_at(100_000)).await;

    let request = rig.chat("straddles-midnight");
    let (response, ()) = tokio::join!(request, async {
        poll::until("the request to reach the upstream", PATIENCE, async || {
            fake.requests() >= 1
        })
        .await;
        assert_eq!(fake.requests(), 1, "the request reached the upstream");
        let held = rig
            .state()
            .counters
            .view(ChannelId(id), Tz::UTC, rig.clock_now());
        assert!(held.reserved > 0, "the request holds a reservation");
        rig.clock.advance(Duration::seconds(2));
        gate.add_permits(1);
    });
    assert_eq!(response.status(), 200);
    assert_eq!(rig.used(id, date(2026, 11, 28)), 0);
    assert_eq!(rig.used(id, date(2026, 11, 29)), 700);
    let before = rig
        .state()
        .counters
        .view(ChannelId(id), Tz::UTC, utc(2026, 11, 28, 23, 0, 0));
    assert_eq!((before.used, before.reserved), (0, 0));
}
