//! The state every handler shares: configuration, the store, the live
//! snapshot, the daily counters, the request-log sink, the clock and the
//! upstream HTTP client.
//!
//! `AppState::apply` is the single seam through which state changes flow.

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Days;

use crate::admin_token::AdminAuth;
use crate::clock::Clock;
use crate::command::{Applied, Command};
use crate::config::Config;
use crate::daily::{Counters, day};
use crate::error::ApiError;
use crate::health::Monitor;
use crate::logsink::LogSink;
use crate::relay::affinity::AffinityCache;
use crate::snapshot::Snapshot;
use crate::store::{self, Store};

/// Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub logs: LogSink,
    pub http: reqwest::Client,
    pub admin: AdminAuth,
    pub clock: Arc<dyn Clock>,
    /// Today's usage and reservations per channel: what the cap check reads.
    pub counters: Counters,
    /// Which channel served related requests before (channel affinity), so
    /// they can go back to it for upstream prompt-cache hits.
    pub affinity: AffinityCache,
    /// The auto-disable rules, and which channels have a disable on its way.
    pub health: Monitor,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises apply + snapshot rebuild, so snapshots are swapped in the
    /// same order the store applied the commands.
    write_lock: tokio::sync::Mutex<()>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Assembles the state over an opened store, loading the first snapshot.
    pub async fn new(
        config: Config,
        store: Store,
        logs: LogSink,
        admin: AdminAuth,
        clock: Arc<dyn Clock>,
    ) -> Result<AppState, store::Error> {
        let (channels, tokens) = store.load().await?;
        let snapshot = Snapshot::build(channels, tokens, None, config.timezone);
        let counters = Counters::new();
        // Days are at most a day apart across zones; a few days back covers
        // "today" in every zone and the recent history the counters keep.
        let today = clock.now().date_naive();
        let since = today.checked_sub_days(Days::new(3)).unwrap_or(today);
        counters.load(store.usage_since(since).await?);
        let http = upstream_client(&config);
        let health = Monitor::new(&config.auto_disable_rules);
        Ok(AppState(Arc::new(Inner {
            config,
            store,
            logs,
            http,
            admin,
            clock,
            counters,
            affinity: AffinityCache::default(),
            health,
            snapshot: ArcSwap::from_pointee(snapshot),
            write_lock: tokio::sync::Mutex::new(()),
        })))
    }

    /// The current view of channels and keys. Lock-free.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Applies one state change and swaps in a rebuilt snapshot before
    /// returning, so the caller's next read sees its own write.
    pub async fn apply(&self, command: Command) -> Result<Applied, ApiError> {
        let _guard = self.write_lock.lock().await;
        self.apply_locked(command).await.map_err(ApiError::from)
    }

    async fn apply_locked(&self, command: Command) -> Result<Applied, store::Error> {
        let changes_config = command.changes_config();
        let effect = match &command {
            Command::ResetUsage {
                channel_id, date, ..
            } => Some((*channel_id, *date)),
            _ => None,
        };
        let deleted = match &command {
            Command::DeleteChannel { id } => Some(*id),
            _ => None,
        };
        let applied = self.store.apply(command).await?;
        if let Some((channel_id, date)) = effect {
            self.counters.reset(channel_id, date);
        }
        if let Some(channel_id) = deleted {
            self.counters.forget(channel_id);
        }
        if changes_config {
            let (channels, tokens) = self.store.load().await?;
            let previous = self.snapshot.load();
            let next = Snapshot::build(channels, tokens, Some(&previous), self.config.timezone);
            self.snapshot.store(Arc::new(next));
        }
        Ok(applied)
    }

    /// Makes counted tokens durable: takes the pending deltas and applies
    /// them as one `Command::AddUsage`. If the store fails they are put back,
    /// still counted and enforced, and retried on the next flush.
    pub async fn flush_usage(&self) {
        let _guard = self.write_lock.lock().await;
        let deltas = self.counters.take_pending();
        if deltas.is_empty() {
            return;
        }
        let tokens: u64 = deltas.iter().map(|delta| delta.tokens).sum();
        let command = Command::AddUsage {
            deltas: deltas.clone(),
        };
        if let Err(error) = self.apply_locked(command).await {
            tracing::warn!(%error, pending_tokens = tokens, "counter store write failed; keeping the counts in memory and retrying");
            self.counters.restore_pending(deltas);
        }
    }

    /// Deletes day counts older than the 90 days of kept history, and those
    /// of channels that no longer exist.
    pub async fn prune_usage(&self) {
        let today = self.clock.now().date_naive();
        let Some(before) = today.checked_sub_days(Days::new(day::HISTORY_DAYS)) else {
            return;
        };
        let snapshot = self.snapshot();
        let keep = move |id| snapshot.channel(id).is_some();
        match self.store.prune_usage(before, keep).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned old day counters"),
            Err(error) => tracing::warn!(%error, "pruning day counters failed"),
        }
    }
}

/// The pooled upstream client: rustls (ring), HTTP/1.1 and HTTP/2. The
/// first-byte and idle timeouts are enforced per request by the relay.
fn upstream_client(config: &Config) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .user_agent(concat!("sluicegate/", env!("CARGO_PKG_VERSION")));
    match builder.build() {
        Ok(client) => client,
        Err(error) => {
            // Only a broken TLS provider makes the builder fail; fall back to
            // the defaults rather than refusing to start.
            tracing::error!(%error, "building the upstream client failed; using defaults");
            reqwest::Client::new()
        }
    }
}
