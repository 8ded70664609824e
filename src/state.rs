//! The state every handler shares: configuration, the store, the live
//! snapshot, the request-log sink and the upstream HTTP client.
//!
//! `AppState::apply` is the single seam through which state changes flow.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::admin_token::AdminAuth;
use crate::command::{Applied, Command};
use crate::config::Config;
use crate::error::ApiError;
use crate::logsink::LogSink;
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
    ) -> Result<AppState, store::Error> {
        let (channels, tokens) = store.load().await?;
        let snapshot = Snapshot::build(channels, tokens, None);
        let http = upstream_client(&config);
        Ok(AppState(Arc::new(Inner {
            config,
            store,
            logs,
            http,
            admin,
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
        let applied = self.store.apply(command).await.map_err(ApiError::from)?;
        let (channels, tokens) = self.store.load().await.map_err(ApiError::from)?;
        let previous = self.snapshot.load();
        let next = Snapshot::build(channels, tokens, Some(&previous));
        self.snapshot.store(Arc::new(next));
        Ok(applied)
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
