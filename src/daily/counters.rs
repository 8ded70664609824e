//! Live per-channel day counters: used tokens, in-flight reservations, and the
//! deltas not yet made durable.
//!
//! The counters are the in-memory truth the cap check reads, so the request path
//! does no IO. Counted tokens are also queued as pending deltas; a background
//! flusher makes them durable through `UsageCommand::AddUsage` and puts them back
//! if the store fails, so a failing store never drops a count and the cap
//! stays enforced from memory meanwhile.
//!
//! # Cluster mode
//! With `set_cluster_voters(n)` (n > 0) the counters split what they count:
//! `used` is the *replicated* count, fed only by the raft state machine
//! (`apply_replicated`), and `local` is this node's counted tokens that are
//! not replicated yet (pending, or proposed in a batch not yet applied
//! here). Enforcement reads replicated + local + reserved. When this node's
//! own batch is applied, its tokens move from `local` to `used` in one
//! critical section, so they are never counted twice or missed. Admission
//! on a capped channel is limited to this node's replicated lease (see
//! [`Counters::try_reserve`] and ARCHITECTURE.md). A single node never sets voters and
//! keeps the original path: `used` includes everything counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use super::day;
use crate::lease::{self, NodeLease, Wants};
use crate::model::ChannelId;

/// How many past days each channel keeps in memory besides today.
const DAYS_IN_MEMORY: usize = 3;

/// Tokens counted for one channel on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageDelta {
    pub channel_id: ChannelId,
    pub date: NaiveDate,
    pub tokens: u64,
}

/// One channel's counters.
#[derive(Debug, Default)]
struct ChannelDays {
    /// date → tokens used, for today and a few recent days.
    used: BTreeMap<NaiveDate, u64>,
    /// Tokens reserved by admitted, unfinished requests, by the day they were admitted.
    reserved: BTreeMap<NaiveDate, u64>,
    /// Cluster mode: this node's counted tokens not yet in `used` (not
    /// replicated yet). Always empty on a single node.
    local: BTreeMap<NaiveDate, u64>,
    /// Cluster mode: this node's replicated lease per day.
    lease: BTreeMap<NaiveDate, lease::Own>,
}

impl ChannelDays {
    fn prune(&mut self, today: NaiveDate) {
        while self.used.len() > DAYS_IN_MEMORY + 1 {
            match self.used.keys().next().copied() {
                Some(oldest) if oldest < today => {
                    self.used.remove(&oldest);
                }
                _ => break,
            }
        }
        self.reserved
            .retain(|date, amount| *date >= today || *amount > 0);
        self.local
            .retain(|date, amount| *date >= today || *amount > 0);
        let oldest = today - chrono::Duration::days(DAYS_IN_MEMORY as i64);
        self.lease.retain(|date, _| *date >= oldest);
    }

    fn used(&self, date: NaiveDate) -> u64 {
        let replicated = self.used.get(&date).copied().unwrap_or(0);
        replicated.saturating_add(self.local.get(&date).copied().unwrap_or(0))
    }
}

/// What a channel has spent on its current day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayView {
    pub date: NaiveDate,
    pub used: u64,
    pub reserved: u64,
    pub resets_at: DateTime<Utc>,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capped {
    pub resets_at: DateTime<Utc>,
}

/// A channel's cap as the counters need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// 0 means unlimited.
    pub limit: u64,
    pub zone: Tz,
}

#[derive(Default)]
pub struct Counters {
    /// Read on every counted request: foldhash, not SipHash.
    channels: RwLock<foldhash::HashMap<ChannelId, Arc<Mutex<ChannelDays>>>>,
    pending: Mutex<BTreeMap<(ChannelId, NaiveDate), u64>>,
    /// Cluster mode: the number of voters (0 on a single node).
    voters: AtomicU64,
    /// Cluster mode: this node's proposed batches not yet applied here, by
    /// sequence. Their tokens are still in `local`.
    inflight: Mutex<BTreeMap<u64, Vec<UsageDelta>>>,
    /// Cluster mode: leases wanted, for the lease task to propose.
    wants: Wants,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Counters {
    pub fn new() -> Counters {
        Counters::default()
    }

    /// Seeds the counters with durable counts read from the store at start-up.
    pub fn load(&self, counts: impl IntoIterator<Item = UsageDelta>) {
        for delta in counts {
            self.with_channel(delta.channel_id, |days| {
                *days.used.entry(delta.date).or_default() = delta.tokens;
            });
        }
    }

    /// Today's figures for a channel.
    pub fn view(&self, channel_id: ChannelId, zone: Tz, now: DateTime<Utc>) -> DayView {
        let date = day::date_in(zone, now);
        let (used, reserved) = self.spent(channel_id, date);
        DayView {
            date,
            used,
            reserved,
            resets_at: day::next_reset(zone, now),
        }
    }

    /// (used, reserved) on `date`.
    fn spent(&self, channel_id: ChannelId, date: NaiveDate) -> (u64, u64) {
        self.existing(channel_id)
            .and_then(|days| {
                days.lock().ok().map(|days| {
                    (
                        days.used(date),
                        days.reserved.get(&date).copied().unwrap_or(0),
                    )
                })
            })
            .unwrap_or((0, 0))
    }

    /// Tokens counted on `date` (memory only; days older than a few days
    /// are read from the store instead).
    pub fn used_on(&self, channel_id: ChannelId, date: NaiveDate) -> Option<u64> {
        let days = self.existing(channel_id)?;
        let days = days.lock().ok()?;
        if days.used.contains_key(&date) || days.local.contains_key(&date) {
            Some(days.used(date))
        } else {
            None
        }
    }

    /// Whether the channel may take no more requests today: used + reserved
    /// has reached its limit.
    pub fn is_capped(&self, channel_id: ChannelId, cap: Cap, now: DateTime<Utc>) -> bool {
        if cap.limit == 0 {
            return false;
        }
        let (used, reserved) = self.spent(channel_id, day::date_in(cap.zone, now));
        used.saturating_add(reserved) >= cap.limit
    }

    /// Admits a request if used + reserved is below the limit, reserving
    /// `estimate` tokens for it in the same critical section, so concurrent
    /// requests cannot all slip under the cap.
    pub fn try_reserve(
        &self,
        channel_id: ChannelId,
        cap: Cap,
        estimate: u64,
        now: DateTime<Utc>,
    ) -> Result<Reservation, Capped> {
        let date = day::date_in(cap.zone, now);
        let cluster = self.is_cluster();
        let mut admitted = true;
        let mut want = false;
        self.with_channel(channel_id, |days| {
            let replicated = days.used.get(&date).copied().unwrap_or(0);
            let local = days.local.get(&date).copied().unwrap_or(0);
            let lease = days.lease.get(&date).copied().unwrap_or_default();
            let reserved = days.reserved.entry(date).or_default();
            let refuse = if cap.limit == 0 {
                false
            } else if cluster {
                // Cluster mode: this node's unreplicated tokens and its
                // reservations must stay below its unspent lease.
                let mine = local.saturating_add(*reserved);
                let admission = lease.admit(replicated, mine, estimate, cap.limit);
                want = admission.want;
                !admission.admitted
            } else {
                replicated.saturating_add(*reserved) >= cap.limit
            };
            if refuse {
                admitted = false;
            } else {
                *reserved = reserved.saturating_add(estimate);
            }
        });
        if want {
            self.wants
                .add(lease::Want::before(channel_id, date, estimate, cap.limit));
        }
        if admitted {
            Ok(Reservation {
                channel_id,
                date,
                tokens: estimate,
            })
        } else {
            Err(Capped {
                resets_at: day::next_reset(cap.zone, now),
            })
        }
    }

    /// Releases a reservation without counting anything (the attempt failed
    /// and the upstream reported no usage).
    pub fn release(&self, reservation: Reservation) {
        self.with_channel(reservation.channel_id, |days| {
            if let Some(reserved) = days.reserved.get_mut(&reservation.date) {
                *reserved = reserved.saturating_sub(reservation.tokens);
            }
        });
    }

    /// Counts `tokens` for the channel on the day `now` falls on in `zone`
    /// (the day the request completed), replacing `reservation` if given.
    pub fn count(
        &self,
        channel_id: ChannelId,
        zone: Tz,
        tokens: u64,
        reservation: Option<Reservation>,
        now: DateTime<Utc>,
    ) {
        let date = day::date_in(zone, now);
        let cluster = self.is_cluster();
        self.with_channel(channel_id, |days| {
            if let Some(reservation) = reservation
                && let Some(reserved) = days.reserved.get_mut(&reservation.date)
            {
                *reserved = reserved.saturating_sub(reservation.tokens);
            }
            let used = if cluster {
                days.local.entry(date).or_default()
            } else {
                days.used.entry(date).or_default()
            };
            *used = used.saturating_add(tokens);
            days.prune(date);
        });
        if tokens > 0
            && let Ok(mut pending) = self.pending.lock()
        {
            let entry = pending.entry((channel_id, date)).or_default();
            *entry = entry.saturating_add(tokens);
        }
    }

    /// Takes every delta that is not yet durable.
    pub fn take_pending(&self) -> Vec<UsageDelta> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        std::mem::take(&mut *pending)
            .into_iter()
            .map(|((channel_id, date), tokens)| UsageDelta {
                channel_id,
                date,
                tokens,
            })
            .collect()
    }

    /// Puts deltas back after the store failed to take them; they are retried
    /// on the next flush and stay counted (and enforced) meanwhile.
    pub fn restore_pending(&self, deltas: Vec<UsageDelta>) {
        if let Ok(mut pending) = self.pending.lock() {
            for delta in deltas {
                let entry = pending.entry((delta.channel_id, delta.date)).or_default();
                *entry = entry.saturating_add(delta.tokens);
            }
        }
    }

    /// Tokens counted but not yet durable, in all.
    pub fn pending_tokens(&self) -> u64 {
        self.pending
            .lock()
            .map(|pending| pending.values().copied().sum())
            .unwrap_or(0)
    }

    /// Zeroes a channel's count for `date`, including deltas not yet durable.
    pub fn reset(&self, channel_id: ChannelId, date: NaiveDate) {
        self.with_channel(channel_id, |days| {
            days.used.insert(date, 0);
            days.local.remove(&date);
            days.lease.remove(&date);
        });
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&(channel_id, date));
        }
    }

    /// Forgets a deleted channel.
    pub fn forget(&self, channel_id: ChannelId) {
        if let Ok(mut channels) = self.channels.write() {
            channels.remove(&channel_id);
        }
    }

    /// Switches to cluster mode with `voters` voters (see the module docs).
    pub fn set_cluster_voters(&self, voters: u64) {
        self.voters.store(voters.max(1), Ordering::Relaxed);
    }

    /// Whether these counters run in cluster mode.
    pub fn is_cluster(&self) -> bool {
        self.voters.load(Ordering::Relaxed) > 0
    }

    /// Cluster mode: records that `deltas` (taken from pending) were
    /// proposed as this node's batch `sequence`; they stay in `local` until
    /// the batch is applied here.
    pub fn begin_batch(&self, sequence: u64, deltas: Vec<UsageDelta>) {
        if let Ok(mut inflight) = self.inflight.lock() {
            inflight.insert(sequence, deltas);
        }
    }

    /// Cluster mode, at start-up: this node's batch `sequence`, proposed
    /// before a restart and not yet applied here, is counted locally again
    /// until it is.
    pub fn restore_batch(&self, sequence: u64, deltas: Vec<UsageDelta>) {
        for delta in &deltas {
            self.with_channel(delta.channel_id, |days| {
                let local = days.local.entry(delta.date).or_default();
                *local = local.saturating_add(delta.tokens);
            });
        }
        self.begin_batch(sequence, deltas);
    }

    /// Whether this node's batch `sequence` is still waiting to be applied here.
    pub fn has_inflight(&self, sequence: u64) -> bool {
        self.inflight
            .lock()
            .map(|inflight| inflight.contains_key(&sequence))
            .unwrap_or(false)
    }

    /// Cluster mode: a committed, non-duplicate usage batch applied by the
    /// state machine. Adds `deltas` to the replicated count; if the batch is
    /// this node's own (`own_sequence`) and still in flight, its tokens leave
    /// `local` in the same critical section, so they are counted exactly once.
    ///
    /// A batch of this node's (`own_sequence` is set) also counts against
    /// this node's lease, as the state machine attributes it.
    pub fn apply_replicated(&self, deltas: &[UsageDelta], own_sequence: Option<u64>) {
        let mine = own_sequence.is_some();
        let own = own_sequence
            .and_then(|sequence| self.inflight.lock().ok()?.remove(&sequence))
            .is_some();
        for delta in deltas {
            self.with_channel(delta.channel_id, |days| {
                let used = days.used.entry(delta.date).or_default();
                *used = used.saturating_add(delta.tokens);
                if mine && delta.tokens > 0 {
                    days.lease
                        .entry(delta.date)
                        .or_default()
                        .record_use(delta.tokens);
                }
                if own && let Some(local) = days.local.get_mut(&delta.date) {
                    *local = local.saturating_sub(delta.tokens);
                }
            });
        }
    }

    /// Cluster mode, after a snapshot install: the replicated counts are
    /// replaced by `counts`, and this node's in-flight batches up to
    /// `own_applied` (already in those counts) leave `local`.
    pub fn reload_replicated(&self, counts: Vec<UsageDelta>, own_applied: u64) {
        let settled: Vec<UsageDelta> = match self.inflight.lock() {
            Ok(mut inflight) => {
                let kept = inflight.split_off(&own_applied.saturating_add(1));
                std::mem::replace(&mut *inflight, kept)
                    .into_values()
                    .flatten()
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        let ids: Vec<ChannelId> = self
            .channels
            .read()
            .map(|channels| channels.keys().copied().collect())
            .unwrap_or_default();
        for id in ids {
            self.with_channel(id, |days| days.used.clear());
        }
        for delta in settled {
            self.with_channel(delta.channel_id, |days| {
                if let Some(local) = days.local.get_mut(&delta.date) {
                    *local = local.saturating_sub(delta.tokens);
                }
            });
        }
        self.load(counts);
    }

    /// Cluster mode: this node's lease on a channel's day, as a committed
    /// `GrantLease` left it.
    pub fn set_lease(&self, granted: &NodeLease) {
        self.with_channel(granted.channel_id, |days| {
            days.lease.entry(granted.date).or_default().install(granted);
        });
    }

    /// Cluster mode, at start-up and after a snapshot install: this node's
    /// leases are replaced by `leases`.
    pub fn load_leases(&self, leases: Vec<NodeLease>) {
        let ids: Vec<ChannelId> = self
            .channels
            .read()
            .map(|channels| channels.keys().copied().collect())
            .unwrap_or_default();
        for id in ids {
            self.with_channel(id, |days| days.lease.clear());
        }
        for loaded in leases {
            self.with_channel(loaded.channel_id, |days| {
                days.lease
                    .insert(loaded.date, lease::Own::loaded(loaded.granted, loaded.used));
            });
        }
    }

    /// This node's lease on a channel's day.
    pub fn lease(&self, channel_id: ChannelId, date: NaiveDate) -> lease::Own {
        self.existing(channel_id)
            .and_then(|days| days.lock().ok()?.lease.get(&date).copied())
            .unwrap_or_default()
    }

    /// Cluster mode: whether a request should wait before routing to a
    /// capped channel because this node has never been granted a lease
    /// for the channel's current day and one may still be had (a cold
    /// start). A cold lease is wanted, so the lease task asks for it.
    pub fn is_cold(
        &self,
        channel_id: ChannelId,
        cap: Cap,
        estimate: u64,
        now: DateTime<Utc>,
    ) -> bool {
        if cap.limit == 0 || !self.is_cluster() {
            return false;
        }
        let date = day::date_in(cap.zone, now);
        let cold = match self.existing(channel_id) {
            None => true,
            Some(days) => match days.lock() {
                Ok(days) => {
                    let own = days.lease.get(&date).copied().unwrap_or_default();
                    let replicated = days.used.get(&date).copied().unwrap_or(0);
                    own.is_cold(replicated, cap.limit)
                }
                Err(_) => false,
            },
        };
        if cold {
            self.wants
                .add(lease::Want::before(channel_id, date, estimate, cap.limit));
        }
        cold
    }

    /// Cluster mode: the leases this node wants, for the lease task.
    pub fn lease_wants(&self) -> &Wants {
        &self.wants
    }

    /// Cluster mode: tokens counted here and not yet replicated (pending
    /// plus in-flight batches).
    pub fn unreplicated_tokens(&self) -> u64 {
        let inflight: u64 = self
            .inflight
            .lock()
            .map(|inflight| inflight.values().flatten().map(|delta| delta.tokens).sum())
            .unwrap_or(0);
        self.pending_tokens().saturating_add(inflight)
    }

    fn existing(&self, channel_id: ChannelId) -> Option<Arc<Mutex<ChannelDays>>> {
        self.channels.read().ok()?.get(&channel_id).cloned()
    }

    fn with_channel(&self, channel_id: ChannelId, change: impl FnOnce(&mut ChannelDays)) {
        let days = match self.existing(channel_id) {
            Some(days) => days,
            None => match self.channels.write() {
                Ok(mut channels) => Arc::clone(channels.entry(channel_id).or_default()),
                Err(_) => return,
            },
        };
        if let Ok(mut days) = days.lock() {
            change(&mut days);
        }
    }
}

/// Tokens held for an admitted request until it completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a reservation must be counted or released"]
pub struct Reservation {
    pub channel_id: ChannelId,
    pub date: NaiveDate,
    pub tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    const ONE: ChannelId = ChannelId(1);

    fn cap(limit: u64) -> Cap {
        Cap {
            limit,
            zone: Tz::UTC,
        }
    }

    /// A request is admitted only while used + reserved is below the limit.
    #[test]
    fn reservations_count_against_the_cap() {
        let counters = Counters::new();
        let first = counters.try_reserve(ONE, cap(1000), 600, noon()).unwrap();
        let second = counters.try_reserve(ONE, cap(1000), 600, noon()).unwrap();
        assert!(counters.try_reserve(ONE, cap(1000), 1, noon()).is_err());
        counters.release(second);
        counters.count(ONE, Tz::UTC, 500, Some(first), noon());
        let view = counters.view(ONE, Tz::UTC, noon());
        assert_eq!((view.used, view.reserved), (500, 0));
        assert!(!counters.is_capped(ONE, cap(1000), noon()));
        assert!(counters.is_capped(ONE, cap(500), noon()));
        assert!(!counters.is_capped(ONE, cap(0), noon()));
    }

    /// Counts land on the completion day, and the new day starts from zero.
    #[test]
    fn counts_land_on_the_completion_day() {
        let counters = Counters::new();
        let before = Utc.with_ymd_and_hms(2026, 11, 28, 23, 59, 59).unwrap();
        let after = before + chrono::Duration::seconds(2);
        let reservation = counters.try_reserve(ONE, cap(100), 50, before).unwrap();
        counters.count(ONE, Tz::UTC, 40, Some(reservation), after);
        assert_eq!(counters.view(ONE, Tz::UTC, before).used, 0);
        assert_eq!(counters.view(ONE, Tz::UTC, before).reserved, 0);
        assert_eq!(counters.view(ONE, Tz::UTC, after).used, 40);
    }

    /// Pending deltas aggregate, can be restored after a failed flush, and a
    /// reset discards the day's pending tokens.
    #[test]
    fn pending_deltas_are_kept_until_stored() {
        let counters = Counters::new();
        counters.count(ONE, Tz::UTC, 10, None, noon());
        counters.count(ONE, Tz::UTC, 5, None, noon());
        let taken = counters.take_pending();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].tokens, 15);
        assert_eq!(counters.pending_tokens(), 0);
        counters.restore_pending(taken);
        counters.count(ONE, Tz::UTC, 1, None, noon());
        assert_eq!(counters.pending_tokens(), 16);
        counters.reset(ONE, taken_date());
        assert_eq!(counters.pending_tokens(), 0);
        assert_eq!(counters.view(ONE, Tz::UTC, noon()).used, 0);
    }

    fn taken_date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    /// 64 threads reserving concurrently never admit past the cap.
    #[test]
    fn concurrent_reservations_respect_the_cap() {
        let counters = Arc::new(Counters::new());
        let admitted: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..64)
                .map(|_| {
                    let counters = Arc::clone(&counters);
                    scope.spawn(move || {
                        (0..100)
                            .filter(|_| counters.try_reserve(ONE, cap(20_000), 800, noon()).is_ok())
                            .count() as u64
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .sum()
        });
        // Admission stops once reservations reach the cap: 25 × 800 = 20,000.
        assert_eq!(admitted, 25);
    }
}

#[cfg(test)]
mod cluster_tests {
    use super::*;
    use chrono::TimeZone;

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    const ONE: ChannelId = ChannelId(1);

    fn cap(limit: u64) -> Cap {
        Cap {
            limit,
            zone: Tz::UTC,
        }
    }

    fn delta(tokens: u64) -> UsageDelta {
        UsageDelta {
            channel_id: ONE,
            date: NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
            tokens,
        }
    }

    /// Used = replicated + local; this node's batch moves from local to
    /// replicated when applied, another node's only adds to replicated.
    #[test]
    fn own_batches_are_not_counted_twice() {
        let counters = Counters::new();
        counters.set_cluster_voters(3);
        counters.count(ONE, Tz::UTC, 100, None, noon());
        assert_eq!(counters.view(ONE, Tz::UTC, noon()).used, 100);
        let deltas = counters.take_pending();
        counters.begin_batch(1, deltas.clone());
        assert_eq!(counters.unreplicated_tokens(), 100);
        counters.apply_replicated(&[delta(40)], None);
        assert_eq!(counters.view(ONE, Tz::UTC, noon()).used, 140);
        counters.apply_replicated(&deltas, Some(1));
        assert_eq!(counters.view(ONE, Tz::UTC, noon()).used, 140);
        assert_eq!(counters.unreplicated_tokens(), 0);
        // A snapshot reload replaces the replicated part.
        counters.reload_replicated(vec![delta(1000)], 1);
        assert_eq!(counters.view(ONE, Tz::UTC, noon()).used, 1000);
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    /// What a committed `GrantLease` for this node on channel one reports.
    fn granted(granted: u64, used: u64, added: u64, limit: u64) -> NodeLease {
        NodeLease {
            channel_id: ONE,
            date: date(),
            node_id: crate::model::NodeId(1),
            granted,
            used,
            added,
            limit,
        }
    }

    /// The replicated lease: without a grant nothing is admitted (and a
    /// lease is wanted); with one, a node admits while local + reserved
    /// stays below its unspent grant, which its own replicated batches
    /// spend and other nodes' batches do not.
    #[test]
    fn admission_stays_within_the_lease() {
        let counters = Counters::new();
        counters.set_cluster_voters(3);
        assert!(counters.try_reserve(ONE, cap(20_000), 800, noon()).is_err());
        let wants = counters.lease_wants().take();
        assert_eq!(wants.len(), 1);
        assert_eq!((wants[0].tokens, wants[0].limit), (1600, 20_000));
        counters.set_lease(&granted(1000, 0, 1000, 20_000));
        // 0 < 1000: one request; 800 < 1000: a second; 1600 ≥ 1000: no more.
        let first = counters.try_reserve(ONE, cap(20_000), 800, noon()).unwrap();
        let second = counters.try_reserve(ONE, cap(20_000), 800, noon()).unwrap();
        assert!(counters.try_reserve(ONE, cap(20_000), 800, noon()).is_err());
        counters.release(second);
        counters.count(ONE, Tz::UTC, 800, Some(first), noon());
        // Another node's usage does not spend this node's lease.
        counters.apply_replicated(&[delta(5_000)], None);
        let third = counters.try_reserve(ONE, cap(20_000), 800, noon()).unwrap();
        counters.release(third);
        // This node's own batch moves local to replicated and spends the lease.
        let deltas = counters.take_pending();
        counters.begin_batch(1, deltas.clone());
        counters.apply_replicated(&deltas, Some(1));
        let own = counters.lease(ONE, date());
        assert_eq!((own.granted, own.used), (1000, 800));
        let fourth = counters.try_reserve(ONE, cap(20_000), 800, noon()).unwrap();
        assert!(counters.try_reserve(ONE, cap(20_000), 800, noon()).is_err());
        counters.release(fourth);
        // Never once the replicated count reached the limit.
        counters.set_lease(&granted(10_000, 800, 9_000, 20_000));
        counters.apply_replicated(&[delta(14_200)], None);
        assert!(counters.try_reserve(ONE, cap(20_000), 800, noon()).is_err());
    }

    /// A grant that found no headroom stops further asking under that
    /// limit; a higher limit asks again. A reset drops the day's lease.
    #[test]
    fn a_dry_lease_is_not_asked_again() {
        let counters = Counters::new();
        counters.set_cluster_voters(3);
        counters.set_lease(&granted(0, 0, 0, 20_000));
        assert!(counters.try_reserve(ONE, cap(20_000), 800, noon()).is_err());
        assert!(counters.lease_wants().take().is_empty());
        assert!(counters.try_reserve(ONE, cap(30_000), 800, noon()).is_err());
        assert_eq!(counters.lease_wants().take().len(), 1);
        counters.set_lease(&granted(5_000, 0, 5_000, 30_000));
        counters.reset(ONE, date());
        assert_eq!(counters.lease(ONE, date()), lease::Own::default());
    }

    /// A single node never leases.
    #[test]
    fn single_node_needs_no_lease() {
        let counters = Counters::new();
        let only = counters.try_reserve(ONE, cap(1000), 800, noon()).unwrap();
        counters.release(only);
        assert!(counters.lease_wants().take().is_empty());
    }
}
