//! The state every handler shares: configuration, the store, the live
//! snapshot, the runtime settings, the daily counters, the request-log sink,
//! the clock, the upstream HTTP client, the admin sessions and the metrics.
//!
//! `AppState::apply` is the single seam through which state changes flow.
//! `config` is the start-up input only: what may change at run time (the
//! zone, retries, timeouts, auto-disable rules) is read from
//! [`AppState::settings`], and the upstream client from [`AppState::upstream`].

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Days;

use crate::admin_token::AdminAuth;
use crate::affinity::AffinityCache;
use crate::clock::Clock;
use crate::command::{Applied, Command, ConfigCommand, UsageCommand};
use crate::config::Config;
use crate::daily::{Counters, day};
use crate::error::ApiError;
use crate::health::Monitor;
use crate::logsink::LogSink;
use crate::metrics::Metrics;
use crate::model::NodeId;
use crate::runtime::{RuntimeSettings, SettingsPatch};
use crate::session::{FailureLimiter, Sessions};
use crate::snapshot::Snapshot;
use crate::store::{self, Store};
use crate::upstream::client::UpstreamClient;

/// Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    /// The start-up configuration. Settings an admin may change at run time
    /// are read from [`AppState::settings`] instead.
    pub config: Config,
    pub store: Store,
    pub logs: LogSink,
    pub admin: Arc<AdminAuth>,
    /// Signs and checks the web UI's session cookies; remembers sign-outs.
    pub sessions: Sessions,
    /// Wrong admin tokens per client IP, so guessing is slow.
    pub limiter: FailureLimiter,
    pub clock: Arc<dyn Clock>,
    /// Today's usage and reservations per channel: what the cap check reads.
    pub counters: Arc<Counters>,
    /// Which channel served related requests before (channel affinity), so
    /// they can go back to it for upstream prompt-cache hits.
    pub affinity: AffinityCache,
    /// The auto-disable rules, and which channels have a disable on its way.
    pub health: Arc<Monitor>,
    /// What `GET /metrics` exports: request, token, latency and health counts.
    pub metrics: Metrics,
    /// Requests whose usage is being estimated off the async workers
    /// (`relay::meter`); a graceful stop waits for them before the log
    /// queue is drained.
    pub finishing: tokio_util::task::TaskTracker,
    snapshot: ArcSwap<Snapshot>,
    /// The live runtime settings: the config's values with the stored ones over them.
    settings: ArcSwap<RuntimeSettings>,
    /// The pooled upstream client. Its connect timeout is a runtime
    /// setting, so a change swaps in a rebuilt client; requests in flight
    /// keep the client they started with.
    upstream: ArcSwap<UpstreamClient>,
    /// Serialises apply + snapshot rebuild, so snapshots are swapped in the
    /// same order the store applied the commands.
    write_lock: tokio::sync::Mutex<()>,
    /// Cluster mode only: the running raft node. Unset on a single node.
    cluster: std::sync::OnceLock<crate::cluster::node::Cluster>,
    /// Serialises snapshot rebuilds from the store in cluster mode (the
    /// write path and the state machine's hook both rebuild).
    rebuild_lock: tokio::sync::Mutex<()>,
}

/// Where an applied command came from, for what memory mirrors.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `AppState::apply` on a single node.
    Local,
    /// The raft state machine. `own_batch` is the sequence when the entry
    /// is one of this node's own counter batches.
    Replicated { own: NodeId, own_batch: Option<u64> },
}

/// What the state machine's hook asks the server to reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Channels or keys changed: rebuild the snapshot from the store.
    Config,
    /// A snapshot was installed: reload settings, snapshot and counters.
    Full,
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
        let settings = RuntimeSettings::from_config(&config).patched(&store.settings().await?);
        let snapshot = Snapshot::build(channels, tokens, None, settings.timezone);
        let counters = Arc::new(Counters::new());
        // Days are at most a day apart across zones; a few days back covers
        // "today" in every zone and the recent history the counters keep.
        let today = clock.now().date_naive();
        let since = today.checked_sub_days(Days::new(3)).unwrap_or(today);
        counters.load(store.usage_since(since).await?);
        let upstream = UpstreamClient::new(settings.connect_timeout);
        let health = Arc::new(Monitor::new(&settings.auto_disable_rules));
        Ok(AppState(Arc::new(Inner {
            config,
            store,
            logs,
            admin: Arc::new(admin),
            sessions: Sessions::default(),
            limiter: FailureLimiter::default(),
            clock,
            counters,
            affinity: AffinityCache::default(),
            health,
            metrics: Metrics::default(),
            finishing: tokio_util::task::TaskTracker::new(),
            snapshot: ArcSwap::from_pointee(snapshot),
            settings: ArcSwap::from_pointee(settings),
            upstream: ArcSwap::from_pointee(upstream),
            write_lock: tokio::sync::Mutex::new(()),
            cluster: std::sync::OnceLock::new(),
            rebuild_lock: tokio::sync::Mutex::new(()),
        })))
    }

    /// A weak handle, for callbacks that must not keep the state alive.
    pub fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    /// The state behind a weak handle, while it is alive.
    pub fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<AppState> {
        weak.upgrade().map(AppState)
    }

    /// Cluster mode: attaches the running node; from then on `apply` goes
    /// through raft.
    pub fn attach_cluster(&self, cluster: crate::cluster::node::Cluster) {
        let _ = self.cluster.set(cluster);
    }

    /// The running cluster node, if this node runs in cluster mode.
    pub fn cluster(&self) -> Option<&crate::cluster::node::Cluster> {
        self.cluster.get()
    }

    /// Cluster mode: what the state machine just applied (or installed),
    /// mirrored into memory. Runs inside the state machine's apply, so it
    /// only touches memory; what needs the store is returned as a
    /// [`Refresh`] for a task to do.
    pub fn on_replicated(
        &self,
        event: crate::cluster::state_machine::Event<'_>,
        own: NodeId,
    ) -> Option<Refresh> {
        use crate::cluster::state_machine::Event;
        let entries = match event {
            Event::SnapshotInstalled => return Some(Refresh::Full),
            Event::Applied(entries) => entries,
        };
        let mut rebuild = false;
        for entry in entries.iter().filter(|entry| !entry.duplicate) {
            let source = Source::Replicated {
                own,
                own_batch: entry
                    .origin
                    .filter(|origin| origin.node_id == own)
                    .map(|origin| origin.sequence),
            };
            for (command, applied) in entry.commands.iter().zip(&entry.results) {
                rebuild |= self.mirror(command, applied.as_ref(), source);
            }
        }
        rebuild.then_some(Refresh::Config)
    }

    /// What a command the store has applied changes in memory: the one
    /// place that says so, for the local apply and the replicated hook
    /// alike. Returns whether the snapshot must be rebuilt from the store.
    fn mirror(&self, command: &Command, applied: Option<&Applied>, source: Source) -> bool {
        match command {
            Command::Config(command) => match command {
                ConfigCommand::CreateChannel { .. }
                | ConfigCommand::UpdateChannel { .. }
                | ConfigCommand::AutoDisableChannel { .. }
                | ConfigCommand::ReenableChannel { .. }
                | ConfigCommand::CreateToken { .. }
                | ConfigCommand::UpdateToken { .. }
                | ConfigCommand::DeleteToken { .. } => true,
                ConfigCommand::DeleteChannel { id } => {
                    self.counters.forget(*id);
                    true
                }
                // A new zone moves every channel's day: rebuild.
                ConfigCommand::UpdateSettings { patch, .. } => self.install_settings(patch),
                // Mirrors `store::settings::set_admin_token`.
                ConfigCommand::SetAdminToken {
                    sha256, if_unset, ..
                } => {
                    if !if_unset || self.admin.replicated().is_none() {
                        self.admin.set_replicated_hex(sha256);
                    }
                    false
                }
            },
            Command::Usage(command) => {
                match (command, source) {
                    // Counted in memory before it was made durable.
                    (UsageCommand::AddUsage { .. }, Source::Local) => {}
                    (UsageCommand::AddUsage { deltas }, Source::Replicated { own_batch, .. }) => {
                        self.counters.apply_replicated(deltas, own_batch);
                    }
                    (
                        UsageCommand::ResetUsage {
                            channel_id, date, ..
                        },
                        _,
                    ) => self.counters.reset(*channel_id, *date),
                    (UsageCommand::GrantLease(_), Source::Local) => {}
                    (UsageCommand::GrantLease(_), Source::Replicated { own, .. }) => {
                        if let Some(Applied::Leased(lease)) = applied
                            && lease.node_id == own
                        {
                            self.counters.set_lease(lease);
                        }
                    }
                    // Memory holds only the last few days; nothing to drop.
                    (UsageCommand::Prune { .. }, _) => {}
                }
                false
            }
        }
    }

    /// Cluster mode: carries out a [`Refresh`] from the store.
    pub async fn refresh(&self, refresh: Refresh) -> Result<(), store::Error> {
        if refresh == Refresh::Full {
            let stored = self.store.settings().await?;
            self.install(RuntimeSettings::from_config(&self.config).patched(&stored));
            self.load_admin_token().await?;
            let today = self.clock.now().date_naive();
            let since = today.checked_sub_days(Days::new(3)).unwrap_or(today);
            let counts = self.store.usage_since(since).await?;
            let own = self.cluster().map_or(NodeId(0), |cluster| cluster.own_id());
            let applied = self.store.applied_origin(own)?;
            self.counters.reload_replicated(counts, applied);
            self.load_leases(own)?;
        }
        self.rebuild_snapshot().await
    }

    /// Cluster mode: installs the replicated admin token hash, if any.
    pub async fn load_admin_token(&self) -> Result<(), store::Error> {
        let Some(row) = self.store.admin_token().await? else {
            return Ok(());
        };
        if !self.admin.set_replicated_hex(&row.sha256) {
            tracing::warn!("stored admin token hash unreadable");
        }
        Ok(())
    }

    /// Cluster mode: loads this node's replicated leases into the counters.
    pub fn load_leases(&self, own: NodeId) -> Result<(), store::Error> {
        self.counters.load_leases(self.store.leases_of(own)?);
        Ok(())
    }

    /// Rebuilds the snapshot from the store (cluster mode).
    async fn rebuild_snapshot(&self) -> Result<(), store::Error> {
        let _guard = self.rebuild_lock.lock().await;
        let (channels, tokens) = self.store.load().await?;
        let previous = self.snapshot.load();
        let zone = self.settings().timezone;
        let next = Snapshot::build(channels, tokens, Some(&previous), zone);
        self.snapshot.store(Arc::new(next));
        Ok(())
    }

    /// Cluster mode: commits `command` through raft (forwarded to the
    /// leader if need be), then rebuilds the snapshot from the store, which
    /// this node's state machine has applied the command to by then.
    async fn apply_replicated(
        &self,
        cluster: &crate::cluster::node::Cluster,
        command: Command,
    ) -> Result<Applied, ApiError> {
        use crate::cluster::types::{AppliedResult, ClusterRequest};
        use crate::error::ErrorCode;
        use crate::i18n::Message;
        let _guard = self.write_lock.lock().await;
        let response = cluster
            .write(ClusterRequest::command(command))
            .await
            .map_err(|error| {
                tracing::warn!(%error, "config write refused: cluster unavailable");
                ApiError::new(
                    ErrorCode::ClusterUnavailable,
                    Message::ClusterUnavailable { detail: error.0 },
                )
            })?;
        self.rebuild_snapshot().await?;
        match response.results.into_iter().next() {
            Some(AppliedResult::Ok(data)) => Ok(data.into()),
            Some(AppliedResult::Err(error)) if error.kind == "not_found" => {
                let what = error
                    .message
                    .strip_suffix(" not found")
                    .unwrap_or("resource");
                Err(ApiError::not_found(what))
            }
            Some(AppliedResult::Err(error)) => {
                Err(ApiError::internal("replicated apply", error.message))
            }
            None => Err(ApiError::internal(
                "replicated apply",
                "the state machine returned no result",
            )),
        }
    }

    /// The current view of channels and keys. Lock-free.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The live runtime settings. Lock-free.
    pub fn settings(&self) -> Arc<RuntimeSettings> {
        self.settings.load_full()
    }

    /// The upstream client built for the current connect timeout. Cheap: a
    /// `reqwest::Client` is a handle to a shared pool.
    /// The pooled upstream client (a request keeps the one it started with).
    pub fn upstream(&self) -> Arc<UpstreamClient> {
        self.upstream.load_full()
    }

    /// Applies one state change and swaps in a rebuilt snapshot before
    /// returning, so the caller's next read sees its own write.
    pub async fn apply(&self, command: impl Into<Command>) -> Result<Applied, ApiError> {
        let command = command.into();
        if let Some(cluster) = self.cluster.get() {
            return self.apply_replicated(cluster, command).await;
        }
        let _guard = self.write_lock.lock().await;
        self.apply_locked(command).await.map_err(ApiError::from)
    }

    async fn apply_locked(&self, command: Command) -> Result<Applied, store::Error> {
        let applied = self.store.apply(command.clone()).await?;
        if self.mirror(&command, Some(&applied), Source::Local) {
            let (channels, tokens) = self.store.load().await?;
            let previous = self.snapshot.load();
            let zone = self.settings().timezone;
            let next = Snapshot::build(channels, tokens, Some(&previous), zone);
            self.snapshot.store(Arc::new(next));
        }
        Ok(applied)
    }

    /// Swaps in the settings with `patch` applied, rebuilding what depends
    /// on them. Returns whether the zone changed (the snapshot's channel
    /// caps are computed in it, so the caller rebuilds the snapshot).
    fn install_settings(&self, patch: &SettingsPatch) -> bool {
        self.install(self.settings().patched(patch))
    }

    /// Swaps in `next`, rebuilding what depends on the settings; returns
    /// whether the zone changed.
    fn install(&self, next: RuntimeSettings) -> bool {
        let previous = self.settings();
        if next.connect_timeout != previous.connect_timeout {
            self.upstream
                .store(Arc::new(UpstreamClient::new(next.connect_timeout)));
        }
        if next.auto_disable_rules != previous.auto_disable_rules {
            self.health.set_rules(&next.auto_disable_rules);
        }
        let zone_changed = next.timezone != previous.timezone;
        self.settings.store(Arc::new(next));
        zone_changed
    }

    /// Makes counted tokens durable: takes the pending deltas and applies
    /// them as one `UsageCommand::AddUsage`. If the store fails they are put back,
    /// still counted and enforced, and retried on the next flush.
    pub async fn flush_usage(&self) {
        if self.cluster.get().is_some() {
            // Cluster mode: `cluster::node::run_batcher` proposes the deltas.
            return;
        }
        let _guard = self.write_lock.lock().await;
        let deltas = self.counters.take_pending();
        if deltas.is_empty() {
            return;
        }
        let tokens: u64 = deltas.iter().map(|delta| delta.tokens).sum();
        let command = UsageCommand::AddUsage {
            deltas: deltas.clone(),
        }
        .into();
        match self.apply_locked(command).await {
            Ok(_) => self.metrics.made_durable(tokens),
            Err(error) => {
                tracing::warn!(%error, pending_tokens = tokens, "counter store write failed; keeping the counts in memory and retrying");
                self.counters.restore_pending(deltas);
            }
        }
    }

    /// Proposes a `Prune`: day counts older than the 90 days of kept
    /// history, and leases older than two days (they only matter on a
    /// channel's current day, and zones differ by at most a day). In a
    /// cluster only the leader proposes it, so it is decided once.
    pub async fn prune_usage(&self) {
        if self.cluster().is_some_and(|cluster| !cluster.is_leader()) {
            return;
        }
        let today = self.clock.now().date_naive();
        let (Some(counts_before), Some(leases_before)) = (
            today.checked_sub_days(Days::new(day::HISTORY_DAYS)),
            today.checked_sub_days(Days::new(2)),
        ) else {
            return;
        };
        let command = UsageCommand::Prune {
            counts_before,
            leases_before,
        };
        match self.apply(command).await {
            Ok(Applied::Pruned(removed)) if removed > 0 => {
                tracing::info!(removed, "pruned old day counters and leases");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "pruning day counters failed"),
        }
    }
}

impl crate::command::Proposer for AppState {
    fn propose(
        &self,
        command: Command,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Applied, crate::command::Refused>> + Send + '_>,
    > {
        Box::pin(async move {
            self.apply(command)
                .await
                .map_err(|error| crate::command::Refused(error.to_string()))
        })
    }
}

impl crate::health::Host for AppState {
    fn snapshot(&self) -> Arc<Snapshot> {
        AppState::snapshot(self)
    }

    fn upstream(&self) -> Arc<UpstreamClient> {
        AppState::upstream(self)
    }

    fn monitor(&self) -> &Monitor {
        &self.health
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}
