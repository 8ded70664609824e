//! The metrics registry behind `GET /metrics`: what is counted, and the
//! Prometheus text format. The scrape itself (with the gauges read at
//! scrape time) and the HTTP routes are the server's (`server::scrape`,
//! `server::metrics_http`); trace export is `otel`.
//!
//! - This file: [`Metrics`], the registry the relay records into. Every
//!   hook is one call, atomics only, no lock (see `series`).
//! - `series`: counters, fixed-bucket histograms, label-keyed families.
//! - `exposition`: the text format.
//!
//! **Bounded labels.** Channels are labelled by id (their names are on
//! `sluicegate_channel_info`), models only when some channel lists them
//! (anything else, which a client may make up, is `other`), endpoints by
//! their fixed path, statuses by code; and each family has a hard series
//! limit past which new label sets fold into `other`.

pub mod exposition;
pub mod series;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use foldhash::HashSet;

use crate::model::ChannelId;
use crate::snapshot::Snapshot;
use series::{Counter, Family, Histogram};

/// A finished relay request, as the metrics count it.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// The channel of the last attempt, if any channel was tried.
    pub channel: Option<ChannelId>,
    pub model: &'a str,
    pub endpoint: &'static str,
    pub status: u16,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The total the gateway estimated, for a served request whose
    /// upstream reported no usage.
    pub estimated_tokens: Option<u64>,
    pub ttft: Option<Duration>,
}

/// The most request series kept (channel × model × endpoint × status).
const MAX_REQUEST_SERIES: usize = 20_000;
/// The most channel series kept (channels are created by admins only).
const MAX_CHANNEL_SERIES: usize = 10_000;
/// The label value of everything folded: unknown models, overflow.
pub const OTHER: &str = "other";

/// A channel label: its id, `none` for requests no channel was tried for,
/// or `other` past the series limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelLabel {
    Id(ChannelId),
    None,
    Other,
}

impl ChannelLabel {
    pub fn render(self) -> String {
        match self {
            ChannelLabel::Id(id) => id.0.to_string(),
            ChannelLabel::None => "none".to_string(),
            ChannelLabel::Other => OTHER.to_string(),
        }
    }
}

/// The labels of `sluicegate_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    pub channel: ChannelLabel,
    pub model: String,
    pub endpoint: &'static str,
    /// The HTTP status; 0 renders as `other` (the overflow series).
    pub status: u16,
}

impl RequestKey {
    fn overflow() -> RequestKey {
        RequestKey {
            channel: ChannelLabel::Other,
            model: OTHER.to_string(),
            endpoint: OTHER,
            status: 0,
        }
    }
}

/// Everything recorded per channel, so one lookup serves a whole event.
#[derive(Debug, Default)]
pub struct ChannelSeries {
    /// Tokens counted toward the channel's day (reported or estimated).
    pub tokens: Counter,
    pub estimated_tokens: Counter,
    pub prompt_tokens: Counter,
    pub completion_tokens: Counter,
    /// Attempts on this channel that failed and were retried elsewhere.
    pub retries: Counter,
    pub auto_disables: Counter,
    /// Each attempt: until the whole body (non-stream) or the first chunk.
    pub upstream_latency: Histogram,
    /// Streams: from the request's arrival until the first upstream chunk.
    pub time_to_first_token: Histogram,
}

/// The models some channel lists, as of one snapshot.
struct KnownModels {
    snapshot: Arc<Snapshot>,
    models: HashSet<String>,
}

/// The registry. One per process, in `AppState`.
pub struct Metrics {
    requests: Family<RequestKey, Counter>,
    channels: Family<ChannelLabel, ChannelSeries>,
    /// Single node: counted tokens the counter store took and fsynced, so
    /// an operator (or a crash test) can see what a crash would not lose.
    durable_tokens: Counter,
    /// Rebuilt on the first request after the snapshot changes.
    known_models: ArcSwapOption<KnownModels>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Family::new(MAX_REQUEST_SERIES),
            channels: Family::new(MAX_CHANNEL_SERIES),
            durable_tokens: Counter::default(),
            known_models: ArcSwapOption::empty(),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A finished relay request (from `relay::meter::finish`): its request
    /// count, its prompt and completion tokens and, for streams, its time
    /// to first token. `snapshot` is read only for requests no channel took.
    pub fn finished(&self, outcome: &Finished<'_>, snapshot: impl FnOnce() -> Arc<Snapshot>) {
        let channel = outcome.channel.map_or(ChannelLabel::None, ChannelLabel::Id);
        // A channel was tried only for a model its route lists.
        let known = channel != ChannelLabel::None || self.is_known(outcome.model, snapshot);
        let key = RequestKey {
            channel,
            model: if known {
                outcome.model.to_string()
            } else {
                OTHER.to_string()
            },
            endpoint: outcome.endpoint,
            status: outcome.status,
        };
        self.requests
            .with(key, RequestKey::overflow, |counter| counter.add(1));
        if channel == ChannelLabel::None {
            return;
        }
        self.channel(channel, |series| {
            series.prompt_tokens.add(outcome.prompt_tokens);
            series.completion_tokens.add(outcome.completion_tokens);
            if let Some(estimated) = outcome.estimated_tokens {
                series.estimated_tokens.add(estimated);
            }
            if let Some(ttft) = outcome.ttft {
                series.time_to_first_token.observe(ttft);
            }
        });
    }

    /// Single node: a flush made `tokens` counted tokens durable.
    pub fn made_durable(&self, tokens: u64) {
        self.durable_tokens.add(tokens);
    }

    /// Counted tokens made durable since start (single node).
    pub fn durable_tokens(&self) -> u64 {
        self.durable_tokens.get()
    }

    /// Tokens counted into a channel's day (every `Hold::count`).
    pub fn counted(&self, channel_id: ChannelId, tokens: u64) {
        self.channel(ChannelLabel::Id(channel_id), |series| {
            series.tokens.add(tokens)
        });
    }

    /// An attempt on `channel_id` failed and the request moved on to another.
    pub fn retried(&self, channel_id: ChannelId) {
        self.channel(ChannelLabel::Id(channel_id), |series| series.retries.add(1));
    }

    /// One upstream attempt's latency.
    pub fn upstream_latency(&self, channel_id: ChannelId, latency: Duration) {
        self.channel(ChannelLabel::Id(channel_id), |series| {
            series.upstream_latency.observe(latency)
        });
    }

    /// The health monitor disabled a channel.
    pub fn auto_disabled(&self, channel_id: ChannelId) {
        self.channel(ChannelLabel::Id(channel_id), |series| {
            series.auto_disables.add(1)
        });
    }

    fn channel(&self, channel: ChannelLabel, record: impl FnOnce(&ChannelSeries)) {
        self.channels.with(channel, || ChannelLabel::Other, record);
    }

    /// Whether some channel of the current snapshot lists `model`.
    fn is_known(&self, model: &str, snapshot: impl FnOnce() -> Arc<Snapshot>) -> bool {
        let snapshot = snapshot();
        let cached = self.known_models.load();
        if let Some(known) = cached.as_ref()
            && Arc::ptr_eq(&known.snapshot, &snapshot)
        {
            return known.models.contains(model);
        }
        let models: HashSet<String> = snapshot
            .channels()
            .flat_map(|entry| entry.channel.spec.models.iter().cloned())
            .collect();
        let known = models.contains(model);
        self.known_models
            .store(Some(Arc::new(KnownModels { snapshot, models })));
        known
    }

    /// Every request series, for a scrape.
    pub fn request_series(&self) -> Vec<(RequestKey, u64)> {
        self.requests
            .snapshot()
            .into_iter()
            .map(|(key, counter)| (key, counter.get()))
            .collect()
    }

    /// Every channel series, for a scrape.
    pub fn channel_series(&self) -> Vec<(ChannelLabel, Arc<ChannelSeries>)> {
        self.channels.snapshot()
    }
}
