//! Applying a [`UsageCommand`] to the counters tree: the one function both
//! a single node (`Store::apply`) and the raft state machine
//! (`Store::apply_replicated`) use, so a usage command means the same
//! thing in both modes.
//!
//! Writes go through an [`Overlay`]: reads see the earlier writes of the
//! same batch, and the whole batch (with the caller's marks) lands in sled
//! as one atomic `sled::Batch`, then one flush. The store's writer lock is
//! held meanwhile, so nothing else writes the tree in between.

use std::collections::BTreeMap;

use super::Error;
use super::counters::{self, decode_u64};
use crate::command::{Applied, UsageCommand};
use crate::lease::{Ledger, NodeId};
use crate::model::ChannelId;

/// Pending writes over the counters tree.
pub struct Overlay<'t> {
    tree: &'t sled::Tree,
    /// `None` removes the key.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'t> Overlay<'t> {
    pub fn new(tree: &'t sled::Tree) -> Overlay<'t> {
        Overlay {
            tree,
            writes: BTreeMap::new(),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(self.tree.get(key)?.map(|value| value.to_vec())),
        }
    }

    pub fn get_u64(&self, key: &[u8]) -> Result<u64, Error> {
        Ok(self.get(key)?.map_or(0, |bytes| decode_u64(&bytes)))
    }

    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), Some(value.into()));
    }

    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), None);
    }

    /// Every key under `prefix`, as this batch leaves them.
    fn keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let mut keys = std::collections::BTreeSet::new();
        for item in self.tree.scan_prefix(prefix) {
            keys.insert(item?.0.to_vec());
        }
        for (key, value) in self.writes.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            match value {
                Some(_) => keys.insert(key.clone()),
                None => keys.remove(key),
            };
        }
        Ok(keys.into_iter().collect())
    }

    /// Whether anything was written.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Lands every write atomically and makes it durable.
    pub fn commit(self) -> Result<(), Error> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, value) in self.writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        Ok(())
    }

    fn ledger(&self, key: &str) -> Result<Ledger, Error> {
        match self.get(key.as_bytes())? {
            Some(bytes) => counters::decode_ledger(&bytes),
            None => Ok(Ledger::default()),
        }
    }

    fn set_ledger(&mut self, key: String, ledger: &Ledger) -> Result<(), Error> {
        let bytes = serde_json::to_vec(ledger)
            .map_err(|error| Error::Corrupt(format!("lease record: {error}")))?;
        self.insert(key, bytes);
        Ok(())
    }
}

/// Applies one usage command. `origin` is the node whose counter batch
/// carried it (cluster mode): its usage spends that node's lease.
pub fn apply(
    overlay: &mut Overlay<'_>,
    command: &UsageCommand,
    origin: Option<NodeId>,
) -> Result<Applied, Error> {
    match command {
        UsageCommand::AddUsage { deltas } => {
            for delta in deltas {
                let key = counters::key(delta.channel_id, delta.date);
                let total = overlay
                    .get_u64(key.as_bytes())?
                    .saturating_add(delta.tokens);
                overlay.insert(key, total.to_be_bytes());
                if let Some(node) = origin
                    && delta.tokens > 0
                {
                    let key = counters::lease_key(delta.channel_id, delta.date);
                    let mut ledger = overlay.ledger(&key)?;
                    ledger.record_use(node, delta.tokens);
                    overlay.set_ledger(key, &ledger)?;
                }
            }
            Ok(Applied::Counted)
        }
        UsageCommand::ResetUsage {
            channel_id, date, ..
        } => {
            overlay.insert(counters::key(*channel_id, *date), 0u64.to_be_bytes());
            overlay.remove(counters::lease_key(*channel_id, *date));
            Ok(Applied::Counted)
        }
        UsageCommand::GrantLease(request) => {
            let counted = counters::key(request.channel_id, request.date);
            let replicated = overlay.get_u64(counted.as_bytes())?;
            let key = counters::lease_key(request.channel_id, request.date);
            let mut ledger = overlay.ledger(&key)?;
            let lease = ledger.grant(request, replicated);
            overlay.set_ledger(key, &ledger)?;
            Ok(Applied::Leased(lease))
        }
        UsageCommand::Prune {
            counts_before,
            leases_before,
        } => {
            let mut removed = 0;
            for key in overlay.keys(counters::PREFIX.as_bytes())? {
                if counters::parse_key(&key).is_some_and(|(_, date)| date < *counts_before) {
                    overlay.remove(key);
                    removed += 1;
                }
            }
            for key in overlay.keys(counters::LEASE_PREFIX.as_bytes())? {
                if counters::parse_lease_key(&key).is_some_and(|(_, date)| date < *leases_before) {
                    overlay.remove(key);
                    removed += 1;
                }
            }
            Ok(Applied::Pruned(removed))
        }
    }
}

/// The counters half of deleting a channel: its day counts and leases go.
pub fn forget_channel(overlay: &mut Overlay<'_>, channel_id: ChannelId) -> Result<(), Error> {
    for prefix in [
        counters::channel_prefix(channel_id),
        counters::channel_lease_prefix(channel_id),
    ] {
        for key in overlay.keys(prefix.as_bytes())? {
            overlay.remove(key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::daily::UsageDelta;
    use crate::lease::LeaseRequest;

    fn date(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    fn add(channel: i64, day: u32, tokens: u64) -> UsageCommand {
        UsageCommand::AddUsage {
            deltas: vec![UsageDelta {
                channel_id: ChannelId(channel),
                date: date(day),
                tokens,
            }],
        }
    }

    fn grant(channel: i64, day: u32, node: u64) -> UsageCommand {
        UsageCommand::GrantLease(LeaseRequest {
            channel_id: ChannelId(channel),
            date: date(day),
            node_id: NodeId(node),
            tokens: 100,
            limit: 10_000,
            voters: 1,
        })
    }

    /// Reads within one batch see its earlier writes; a batch lands whole;
    /// prune and forget remove exactly their days and channels, including
    /// keys written earlier in the same batch.
    #[test]
    fn a_batch_reads_its_own_writes_and_prunes_by_day() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = counters::open_tree(&db).unwrap();
        let mut overlay = Overlay::new(&tree);
        apply(&mut overlay, &add(1, 20, 5), None).unwrap();
        apply(&mut overlay, &add(1, 20, 7), Some(NodeId(2))).unwrap();
        for (channel, day) in [(1, 20), (1, 27), (2, 28), (3, 28)] {
            apply(&mut overlay, &grant(channel, day, 2), None).unwrap();
        }
        apply(&mut overlay, &add(2, 28, 1), None).unwrap();
        apply(&mut overlay, &add(3, 28, 4), None).unwrap();
        // Nothing is in sled until the commit.
        assert!(tree.is_empty());
        overlay.commit().unwrap();
        assert_eq!(counters::since(&tree, date(1)).unwrap().len(), 3);
        let leases = counters::read_leases(&tree).unwrap();
        // Node 2's batch of 7 spent its lease on channel 1, day 20.
        assert!(leases.iter().any(|lease| lease.channel_id == ChannelId(1)
            && lease.date == date(20)
            && lease.used == 7));

        let mut overlay = Overlay::new(&tree);
        apply(&mut overlay, &add(1, 21, 3), None).unwrap();
        forget_channel(&mut overlay, ChannelId(3)).unwrap();
        let prune = UsageCommand::Prune {
            counts_before: date(22),
            leases_before: date(27),
        };
        assert_eq!(
            apply(&mut overlay, &prune, None).unwrap(),
            Applied::Pruned(3)
        );
        overlay.commit().unwrap();
        let counts: Vec<(ChannelId, NaiveDate)> = counters::since(&tree, date(1))
            .unwrap()
            .into_iter()
            .map(|delta| (delta.channel_id, delta.date))
            .collect();
        assert_eq!(counts, vec![(ChannelId(2), date(28))]);
        let left: Vec<(ChannelId, NaiveDate)> = counters::read_leases(&tree)
            .unwrap()
            .into_iter()
            .map(|lease| (lease.channel_id, lease.date))
            .collect();
        assert_eq!(
            left,
            vec![(ChannelId(1), date(27)), (ChannelId(2), date(28))]
        );
    }
}
