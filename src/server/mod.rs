//! Start-up and shutdown: open the stores, assemble the state, serve, and on
//! SIGINT/SIGTERM stop accepting, let in-flight requests finish (bounded by
//! `shutdown_grace`), drain the request-log queue and flush the stores.
//! `http` is the accept loop and the connections.

mod http;
pub mod metrics_http;
pub mod scrape;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin_token::AdminAuth;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::logsink::LogSink;
use crate::state::AppState;
use crate::store::Store;

/// A server that is accepting connections.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    /// Cluster mode only: the raft node, stopped after the background tasks.
    cluster: Option<crate::cluster::node::Cluster>,
    /// Stops accepting new connections; in-flight requests continue.
    stop_accepting: CancellationToken,
    /// Stops background tasks (the log writer), after the HTTP side is done.
    stop_background: CancellationToken,
    background: TaskTracker,
    serving: JoinHandle<()>,
}

/// How often counted tokens are made durable. Counts older than twice this
/// survive a crash (the target is 100 ms).
pub const USAGE_FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// How often day counters older than the kept history are swept.
const USAGE_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Opens everything and starts serving on `config.listen`.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// [`start`] with an injected clock, so tests can cross midnight.
pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    crate::upstream::install_tls_provider();
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let admin = AdminAuth::load(&data_dir, config.admin_token.as_deref())
        .with_context(|| format!("loading the admin token in {}", data_dir.display()))?;
    if let Some(path) = &config.metrics_token_file {
        metrics_http::read_token(path)
            .with_context(|| format!("reading --metrics-token-file {}", path.display()))?;
    }
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await?
        .with_context(|| format!("opening the stores in {}", config.data_dir.display()))?;

    let background = TaskTracker::new();
    let stop_background = CancellationToken::new();
    let logs = LogSink::spawn(store.clone(), &background, stop_background.clone());
    let listen = config.listen;
    let state = AppState::new(config, store, logs, admin, clock)
        .await
        .context("loading channels, API keys and day counters")?;
    let cluster = match state.config.cluster.clone() {
        Some(cluster) => {
            Some(start_cluster(&state, &cluster, &background, stop_background.clone()).await?)
        }
        None => {
            background.spawn(flush_usage(state.clone(), stop_background.clone()));
            None
        }
    };
    background.spawn(prune_usage(state.clone(), stop_background.clone()));
    background.spawn(crate::admin_token::watch(
        state.admin.clone(),
        stop_background.clone(),
    ));
    if let Some(queue) = state.health.take_queue() {
        let metrics = state.clone();
        background.spawn(crate::health::run_disabler(
            state.health.clone(),
            queue,
            Arc::new(state.clone()),
            state.clock.clone(),
            move |channel| metrics.metrics.auto_disabled(channel),
            stop_background.clone(),
        ));
    }
    if let Some(interval) = state.config.channel_test_interval {
        let task = crate::health::periodic::run(state.clone(), interval, stop_background.clone());
        background.spawn(task);
    }

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "listening");

    let stop_accepting = CancellationToken::new();
    let gateway = http::Gateway::new(state.clone());
    let serving = tokio::spawn(http::serve(listener, gateway, stop_accepting.clone()));
    Ok(Running {
        addr,
        state,
        cluster,
        stop_accepting,
        stop_background,
        background,
        serving,
    })
}

impl Running {
    /// Graceful stop: no new connections, in-flight requests get up to
    /// `shutdown_grace`, then the log queue is drained and the stores flushed.
    pub async fn stop(self) {
        self.stop_accepting.cancel();
        let grace = self.state.config.shutdown_grace;
        let mut serving = self.serving;
        match tokio::time::timeout(grace, &mut serving).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "server task failed"),
            Err(_) => {
                tracing::warn!(grace = ?grace, "in-flight requests outlived the grace period; closing them");
                serving.abort();
            }
        }
        // Requests still being estimated are counted and logged before the
        // log queue drains.
        self.state.finishing.close();
        self.state.finishing.wait().await;
        self.stop_background.cancel();
        self.background.close();
        self.background.wait().await;
        if let Some(cluster) = &self.cluster {
            cluster.shutdown().await;
        }
        match self.state.store.flush().await {
            Ok(()) => tracing::info!("stores flushed; stopped"),
            Err(error) => tracing::error!(%error, "flushing the stores failed"),
        }
    }
}

/// Cluster mode: restores this node's unresolved counter batch, starts
/// raft with the state machine's hook feeding `state`, and spawns the batch
/// proposer and the task that rebuilds the snapshot after replicated
/// config changes.
async fn start_cluster(
    state: &AppState,
    config: &crate::config::ClusterConfig,
    background: &TaskTracker,
    stop: CancellationToken,
) -> anyhow::Result<crate::cluster::node::Cluster> {
    use crate::cluster::batcher::{BatchRecord, run_batcher, run_leaser};
    use crate::cluster::node::Cluster;
    use crate::cluster::peers::Peers;
    use crate::cluster::state_machine::HookSlot;
    let own_id = config.node_id;
    let peers = Peers::parse(own_id, &config.peers)?;
    state
        .counters
        .set_cluster_voters(peers.members().len() as u64);
    let data_dir = state.config.data_dir.clone();
    let mut record = BatchRecord::load(&data_dir);
    let own = own_id;
    let applied = state.store.applied_origin(own)?;
    match record.unresolved.take() {
        Some((sequence, deltas)) if sequence > applied => {
            state.counters.restore_batch(sequence, deltas.clone());
            record.unresolved = Some((sequence, deltas));
        }
        _ => {}
    }
    record.next_sequence = record.next_sequence.max(applied + 1);
    state.load_leases(own)?;
    state.load_admin_token().await?;

    let (refresh_tx, refresh_rx) = tokio::sync::mpsc::unbounded_channel();
    let weak = state.downgrade();
    let hook = HookSlot::default();
    hook.set(Arc::new(move |event| {
        if let Some(state) = AppState::upgrade(&weak)
            && let Some(refresh) = state.on_replicated(event, own)
        {
            let _ = refresh_tx.send(refresh);
        }
    }));
    let cluster = Cluster::start(config, &data_dir, state.store.clone(), hook).await?;
    state.attach_cluster(cluster.clone());
    background.spawn(refresh_from_cluster(
        state.clone(),
        refresh_rx,
        stop.clone(),
    ));
    let counters = state.counters.clone();
    background.spawn(run_leaser(counters.clone(), cluster.clone(), stop.clone()));
    background.spawn(crate::cluster::token_sync::run(
        state.admin.clone(),
        Arc::new(state.clone()),
        state.clock.clone(),
        own,
        stop.clone(),
    ));
    background.spawn(run_batcher(counters, cluster.clone(), record, stop));
    Ok(cluster)
}

/// Rebuilds what the state machine's hook asked for, coalescing bursts.
async fn refresh_from_cluster(
    state: AppState,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<crate::state::Refresh>,
    stop: CancellationToken,
) {
    use crate::state::Refresh;
    loop {
        let first = tokio::select! {
            received = requests.recv() => match received {
                Some(refresh) => refresh,
                None => return,
            },
            () = stop.cancelled() => return,
        };
        let mut refresh = first;
        while let Ok(next) = requests.try_recv() {
            if next == Refresh::Full {
                refresh = Refresh::Full;
            }
        }
        if let Err(error) = state.refresh(refresh).await {
            tracing::warn!(%error, "rebuilding from the replicated store failed");
        }
    }
}

/// Makes counted tokens durable every [`USAGE_FLUSH_INTERVAL`], and once more
/// when stopping, after the HTTP side has finished.
async fn flush_usage(state: AppState, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(USAGE_FLUSH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => state.flush_usage().await,
            () = stop.cancelled() => break,
        }
    }
    state.flush_usage().await;
    let left = state.counters.pending_tokens();
    if left > 0 {
        tracing::error!(
            pending_tokens = left,
            "stopping with counted tokens the counter store refused"
        );
    }
}

/// Sweeps counters past the kept history at start and then hourly.
async fn prune_usage(state: AppState, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(USAGE_PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = ticks.tick() => state.prune_usage().await,
            () = stop.cancelled() => return,
        }
    }
}

/// Serves until SIGINT or SIGTERM, then stops gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Listen for signals before announcing the address, so a signal sent
    // as soon as the server is up is a graceful stop, not a kill.
    let signals = ShutdownSignals::listen()?;
    let running = start(config).await?;
    signals.received().await;
    tracing::info!("shutdown signal received; draining");
    running.stop().await;
    #[cfg(feature = "otel")]
    if let Err(error) = tokio::task::spawn_blocking(crate::otel::shutdown).await {
        tracing::warn!(%error, "flushing OpenTelemetry spans failed");
    }
    Ok(())
}

/// SIGINT and SIGTERM handlers, registered at creation.
struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    #[cfg(unix)]
    fn listen() -> anyhow::Result<ShutdownSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    #[cfg(not(unix))]
    fn listen() -> anyhow::Result<ShutdownSignals> {
        Ok(ShutdownSignals {})
    }

    #[cfg(unix)]
    async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn received(self) {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}
