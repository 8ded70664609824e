//! Day counters in sled, one key per channel and day:
//! `channel_daily_tokens:{channel_id}:{yyyymmdd}` → big-endian u64.
//!
//! Increments use sled's merge operator, which is atomic. Days are in the key,
//! so old days are swept by `prune` rather than expired.

use chrono::NaiveDate;

use super::Error;
use crate::daily::UsageDelta;
use crate::model::ChannelId;

const PREFIX: &str = "channel_daily_tokens:";

pub fn key(channel_id: ChannelId, date: NaiveDate) -> String {
    format!("{PREFIX}{}:{}", channel_id.0, date.format("%Y%m%d"))
}

/// Parses a key back into its channel and date.
pub fn parse_key(key: &[u8]) -> Option<(ChannelId, NaiveDate)> {
    let text = std::str::from_utf8(key).ok()?.strip_prefix(PREFIX)?;
    let (channel, date) = text.split_once(':')?;
    let channel = channel.parse().ok()?;
    let date = NaiveDate::parse_from_str(date, "%Y%m%d").ok()?;
    Some((ChannelId(channel), date))
}

fn decode(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// sled merge operator: saturating u64 addition.
pub fn add_operator(_key: &[u8], old: Option<&[u8]>, delta: &[u8]) -> Option<Vec<u8>> {
    let total = old.map(decode).unwrap_or(0).saturating_add(decode(delta));
    Some(total.to_be_bytes().to_vec())
}

pub fn open_tree(db: &sled::Db) -> Result<sled::Tree, Error> {
    let tree = db.open_tree("counters")?;
    tree.set_merge_operator(add_operator);
    Ok(tree)
}

/// Adds every delta, then makes them durable with one fsync.
pub fn add(tree: &sled::Tree, deltas: &[UsageDelta]) -> Result<(), Error> {
    for delta in deltas {
        tree.merge(
            key(delta.channel_id, delta.date),
            delta.tokens.to_be_bytes(),
        )?;
    }
    tree.flush()?;
    Ok(())
}

/// Sets one day's count (a reset writes 0).
pub fn set(
    tree: &sled::Tree,
    channel_id: ChannelId,
    date: NaiveDate,
    tokens: u64,
) -> Result<(), Error> {
    tree.insert(key(channel_id, date), tokens.to_be_bytes().to_vec())?;
    tree.flush()?;
    Ok(())
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
                tokens: decode(&value),
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
            days.push((date, decode(&value)));
        }
    }
    days.sort_unstable_by_key(|(date, _)| std::cmp::Reverse(*date));
    Ok(days)
}

/// Removes every day before `before`, and every day of channels not in `keep`.
pub fn prune(
    tree: &sled::Tree,
    before: NaiveDate,
    keep: &dyn Fn(ChannelId) -> bool,
) -> Result<usize, Error> {
    let mut removed = 0;
    for entry in tree.scan_prefix(PREFIX) {
        let (key, _) = entry?;
        let stale = match parse_key(&key) {
            Some((channel_id, date)) => date < before || !keep(channel_id),
            None => false,
        };
        if stale {
            tree.remove(&key)?;
            removed += 1;
        }
    }
    if removed > 0 {
        tree.flush()?;
    }
    Ok(removed)
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
    }

    /// Merges add up, history is per channel and newest first, prune sweeps old days.
    #[test]
    fn add_history_and_prune() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = open_tree(&db).unwrap();
        let delta = |channel, day, tokens| UsageDelta {
            channel_id: ChannelId(channel),
            date: date(day),
            tokens,
        };
        add(&tree, &[delta(1, 1, 5), delta(1, 2, 7), delta(12, 2, 100)]).unwrap();
        add(&tree, &[delta(1, 2, 3)]).unwrap();
        assert_eq!(
            history(&tree, ChannelId(1), date(1)).unwrap(),
            vec![(date(2), 10), (date(1), 5)]
        );
        assert_eq!(
            history(&tree, ChannelId(12), date(1)).unwrap(),
            vec![(date(2), 100)]
        );
        assert_eq!(prune(&tree, date(2), &|id| id != ChannelId(12)).unwrap(), 2);
        assert_eq!(since(&tree, date(1)).unwrap(), vec![delta(1, 2, 10)]);
        set(&tree, ChannelId(1), date(2), 0).unwrap();
        assert_eq!(
            history(&tree, ChannelId(1), date(1)).unwrap(),
            vec![(date(2), 0)]
        );
    }
}
