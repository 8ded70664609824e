//! The counters tree in sled: its key layout, and the reads.
//!
//! - day counts: `channel_daily_tokens:{channel_id}:{yyyymmdd}` → big-endian u64;
//! - lease ledgers (cluster mode): `raft:lease:{channel_id}:{yyyymmdd}` →
//!   JSON `{node: [granted, used]}` ([`crate::lease::Ledger`]);
//! - the state machine's marks (`store::replicated`).
//!
//! Days are in the keys, so old days are removed by a `Prune` command
//! rather than expired. Every write goes through `store::usage`.

use chrono::NaiveDate;

use super::Error;
use crate::daily::UsageDelta;
use crate::lease::{Ledger, NodeLease};
use crate::model::ChannelId;

pub const PREFIX: &str = "channel_daily_tokens:";
pub const LEASE_PREFIX: &str = "raft:lease:";

pub fn key(channel_id: ChannelId, date: NaiveDate) -> String {
    format!("{PREFIX}{}:{}", channel_id.0, date.format("%Y%m%d"))
}

pub fn lease_key(channel_id: ChannelId, date: NaiveDate) -> String {
    format!("{LEASE_PREFIX}{}:{}", channel_id.0, date.format("%Y%m%d"))
}

/// The prefix of every day count of one channel.
pub fn channel_prefix(channel_id: ChannelId) -> String {
    format!("{PREFIX}{}:", channel_id.0)
}

/// The prefix of every lease ledger of one channel.
pub fn channel_lease_prefix(channel_id: ChannelId) -> String {
    format!("{LEASE_PREFIX}{}:", channel_id.0)
}

/// Parses a count key back into its channel and date.
pub fn parse_key(key: &[u8]) -> Option<(ChannelId, NaiveDate)> {
    parse_after(key, PREFIX)
}

/// Parses a lease key back into its channel and date.
pub fn parse_lease_key(key: &[u8]) -> Option<(ChannelId, NaiveDate)> {
    parse_after(key, LEASE_PREFIX)
}

fn parse_after(key: &[u8], prefix: &str) -> Option<(ChannelId, NaiveDate)> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    let (channel, date) = text.split_once(':')?;
    let channel = channel.parse().ok()?;
    let date = NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
    Some((ChannelId(channel), date))
}

pub fn decode_u64(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

pub fn decode_ledger(bytes: &[u8]) -> Result<Ledger, Error> {
    serde_json::from_slice(bytes).map_err(|error| Error::Corrupt(format!("lease record: {error}")))
}

pub fn open_tree(db: &sled::Db) -> Result<sled::Tree, Error> {
    Ok(db.open_tree("counters")?)
}

/// Every node's lease on every channel's day.
pub fn read_leases(tree: &sled::Tree) -> Result<Vec<NodeLease>, Error> {
    let mut leases = Vec::new();
    for item in tree.scan_prefix(LEASE_PREFIX) {
        let (key, value) = item?;
        let (channel_id, date) =
            parse_lease_key(&key).ok_or_else(|| Error::Corrupt("bad lease key".to_string()))?;
        leases.extend(decode_ledger(&value)?.leases(channel_id, date));
    }
    Ok(leases)
}

/// Every count on or after `since`.
pub fn since(tree: &sled::Tree, since: NaiveDate) -> Result<Vec<UsageDelta>, Error> {
    let mut counts = Vec::new();
    for entry in tree.scan_prefix(PREFIX) {
        let (key, value) = entry?;
        if let Some((channel_id, date)) = parse_key(&key)
            && date >= since
        {
            counts.push(UsageDelta {
                channel_id,
                date,
                tokens: decode_u64(&value),
            });
        }
    }
    Ok(counts)
}

/// One channel's counts from `from` on, most recent first.
pub fn history(
    tree: &sled::Tree,
    channel_id: ChannelId,
    from: NaiveDate,
) -> Result<Vec<(NaiveDate, u64)>, Error> {
    let prefix = format!("{PREFIX}{}:", channel_id.0);
    let mut days = Vec::new();
    for entry in tree.scan_prefix(prefix.as_bytes()) {
        let (key, value) = entry?;
        if let Some((_, date)) = parse_key(&key)
            && date >= from
        {
            days.push((date, decode_u64(&value)));
        }
    }
    days.sort_unstable_by_key(|(date, _)| std::cmp::Reverse(*date));
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    /// Keys follow the documented layout and parse back.
    #[test]
    fn keys_round_trip() {
        let text = key(ChannelId(12), date(3));
        assert_eq!(text, "channel_daily_tokens:12:20261103");
        assert_eq!(parse_key(text.as_bytes()), Some((ChannelId(12), date(3))));
        assert_eq!(parse_key(b"other:1:20261103"), None);
        let lease = lease_key(ChannelId(12), date(3));
        assert_eq!(lease, "raft:lease:12:20261103");
        assert_eq!(
            parse_lease_key(lease.as_bytes()),
            Some((ChannelId(12), date(3)))
        );
        assert!(text.starts_with(&channel_prefix(ChannelId(12))));
        assert!(!text.starts_with(&channel_prefix(ChannelId(1))));
    }

    /// History is per channel and newest first.
    #[test]
    fn history_is_per_channel_newest_first() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = open_tree(&db).unwrap();
        for (channel, day, tokens) in [(1, 1, 5u64), (1, 2, 10), (12, 2, 100)] {
            tree.insert(key(ChannelId(channel), date(day)), &tokens.to_be_bytes())
                .unwrap();
        }
        assert_eq!(
            history(&tree, ChannelId(1), date(1)).unwrap(),
            vec![(date(2), 10), (date(1), 5)]
        );
        assert_eq!(
            history(&tree, ChannelId(12), date(1)).unwrap(),
            vec![(date(2), 100)]
        );
        assert_eq!(since(&tree, date(2)).unwrap().len(), 2);
    }
}
