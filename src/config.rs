//! The resolved runtime configuration, after flags, env vars, the TOML file
//! and defaults have been merged (see `cli`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Everything the server needs to run. `Default` gives the embedded defaults.
/// `Debug` is written by hand so the admin token can never be printed.
#[derive(Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// A `tracing` filter directive such as `info` or `sluicegate=debug`.
    pub log_level: String,
    /// Extra attempts on other channels after a retryable failure.
    pub max_retries: u32,
    pub connect_timeout: Duration,
    /// From sending the request until the upstream's response headers (and,
    /// for streams, its first chunk) arrive.
    pub first_byte_timeout: Duration,
    /// The longest silence tolerated between two chunks of a response.
    pub stream_idle_timeout: Duration,
    pub max_body_bytes: usize,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace: Duration,
    /// The admin token given by `SLUICEGATE_ADMIN_TOKEN`; otherwise the token
    /// file in the data dir is used.
    pub admin_token: Option<String>,
    /// The zone whose midnight resets daily counters, unless a channel sets
    /// its own `settings.daily_reset_timezone`.
    pub timezone: Tz,
    /// Case-insensitive substrings of an upstream error body that mean "this
    /// channel's quota or credit is exhausted": a match disables the channel
    /// (`health`). An upstream 401 disables it regardless.
    pub auto_disable_rules: Vec<String>,
    /// How often `auto_disabled` channels are tested, so they come back on
    /// their own once the upstream works again. `None`: never.
    pub channel_test_interval: Option<Duration>,
    /// Cluster mode (`--node-id` and friends); `None` runs a single node
    /// and nothing of the cluster starts.
    pub cluster: Option<ClusterConfig>,
    /// A file holding a token that may read `GET /metrics` (besides the
    /// admin token); read on each scrape, so replacing it rotates it.
    pub metrics_token_file: Option<PathBuf>,
    /// `GET /metrics` needs no token at all.
    pub metrics_public: bool,
    /// Where to export OpenTelemetry traces (OTLP over HTTP), with the
    /// `otel` cargo feature only; `None`: no export.
    pub otlp_endpoint: Option<String>,
}

/// The cluster flags, validated together: all four of node id, listen
/// address, peers and secret file are given, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub node_id: crate::model::NodeId,
    /// Where this node serves internal raft RPC (a separate listener).
    pub listen: SocketAddr,
    /// The raw `--cluster-peers` list (`1=host:port,...`), validated.
    pub peers: String,
    pub secret_file: PathBuf,
    /// How often this node proposes its counter deltas.
    pub batch_interval: Duration,
    /// TLS for internal RPC, when the three files are given.
    pub tls: Option<ClusterTlsConfig>,
}

/// `--cluster-tls-cert`, `--cluster-tls-key` and `--cluster-tls-ca`: the
/// PEM files for TLS on internal RPC. Every node serves its certificate
/// and checks its peers' against the CA; the shared secret still signs
/// every request, so TLS adds confidentiality (channel keys travel in
/// replicated commands) on top of authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// The default `--cluster-batch-interval`.
pub const DEFAULT_CLUSTER_BATCH_INTERVAL: Duration = Duration::from_millis(50);

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: PathBuf::from("sluicegate-data"),
            log_format: LogFormat::Human,
            log_level: "info".to_string(),
            max_retries: 2,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(300),
            stream_idle_timeout: Duration::from_secs(120),
            max_body_bytes: 32 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            admin_token: None,
            timezone: crate::daily::day::system_zone(None),
            auto_disable_rules: default_auto_disable_rules(),
            channel_test_interval: None,
            cluster: None,
            metrics_token_file: None,
            metrics_public: false,
            otlp_endpoint: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("max_retries", &self.max_retries)
            .field("connect_timeout", &self.connect_timeout)
            .field("first_byte_timeout", &self.first_byte_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("shutdown_grace", &self.shutdown_grace)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("timezone", &self.timezone)
            .field("auto_disable_rules", &self.auto_disable_rules)
            .field("channel_test_interval", &self.channel_test_interval)
            .field("cluster", &self.cluster)
            .field("metrics_token_file", &self.metrics_token_file)
            .field("metrics_public", &self.metrics_public)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .finish()
    }
}

/// The rules a fresh install starts with: messages and codes that OpenAI,
/// Anthropic and DeepSeek put in the error body when an account's quota or
/// credit is exhausted, which no retry will fix.
pub const DEFAULT_AUTO_DISABLE_RULES: [&str; 5] = [
    // OpenAI 429: "You exceeded your current quota, please check your plan…"
    "You exceeded your current quota",
    // OpenAI's error code for the same, and for a hard billing limit.
    "insufficient_quota",
    "billing_hard_limit_reached",
    // Anthropic 400: "Your credit balance is too low to access the Anthropic API."
    "credit balance is too low",
    // DeepSeek 402.
    "Insufficient Balance",
];

/// [`DEFAULT_AUTO_DISABLE_RULES`] as the configuration's default.
pub fn default_auto_disable_rules() -> Vec<String> {
    DEFAULT_AUTO_DISABLE_RULES
        .iter()
        .map(|rule| rule.to_string())
        .collect()
}
