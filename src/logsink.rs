//! Request-log rows leave the request path through a bounded queue and are
//! written to the store in batches by one background task.
//!
//! A full queue drops the row with a warning rather than slowing clients; the
//! drop count is kept so operators can see it. On shutdown the queue is
//! drained before the store is flushed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::model::{RequestLog, TokenId};
use crate::store::Store;

const QUEUE_DEPTH: usize = 65_536;
/// Rows per transaction. Small batches keep each write short: on a busy
/// two-core box a 1,000-row batch held a core for milliseconds and showed
/// up as the relay's p99 (1.8 ms at concurrency 1, against 0.9 ms with 64
/// rows; `bench/run.sh`), for no gain in throughput.
const BATCH_ROWS: usize = 64;
/// How long a batch that is not full waits for more rows.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    sender: mpsc::Sender<RequestLog>,
    dropped: Arc<AtomicU64>,
}

impl LogSink {
    /// Starts the writer task on `tracker`. It stops, after draining, when
    /// `shutdown` is cancelled.
    pub fn spawn(store: Store, tracker: &TaskTracker, shutdown: CancellationToken) -> LogSink {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tracker.spawn(write_batches(store, receiver, shutdown));
        LogSink {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues a row without waiting.
    pub fn record(&self, row: RequestLog) {
        if let Err(error) = self.sender.try_send(row) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped, reason = %error, "request log row dropped");
        }
    }

    /// Rows dropped because the queue was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_batches(
    store: Store,
    mut receiver: mpsc::Receiver<RequestLog>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    loop {
        let received = tokio::select! {
            received = receiver.recv_many(&mut batch, BATCH_ROWS) => received,
            () = shutdown.cancelled() => {
                receiver.close();
                while receiver.recv_many(&mut batch, BATCH_ROWS).await > 0 {
                    write(&store, &mut batch).await;
                }
                return;
            }
        };
        if received == 0 {
            return;
        }
        // Let a burst accumulate into one transaction.
        if batch.len() < BATCH_ROWS {
            tokio::time::sleep(BATCH_INTERVAL).await;
            while batch.len() < BATCH_ROWS {
                match receiver.try_recv() {
                    Ok(row) => batch.push(row),
                    Err(_) => break,
                }
            }
        }
        write(&store, &mut batch).await;
    }
}

async fn write(store: &Store, batch: &mut Vec<RequestLog>) {
    if batch.is_empty() {
        return;
    }
    let rows = std::mem::take(batch);
    let mut last_used: HashMap<TokenId, DateTime<Utc>> = HashMap::new();
    for row in &rows {
        if let Some(token_id) = row.token_id {
            let seen = last_used.entry(token_id).or_insert(row.time);
            *seen = (*seen).max(row.time);
        }
    }
    let count = rows.len();
    if let Err(error) = store.insert_logs(rows).await {
        tracing::error!(%error, rows = count, "writing request logs failed");
    }
    if let Err(error) = store.touch_tokens(last_used.into_iter().collect()).await {
        tracing::error!(%error, "updating API key last-used times failed");
    }
}
