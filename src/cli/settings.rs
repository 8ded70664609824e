//! One layer of configuration as a partial [`Settings`], and the parsers that
//! every layer shares, so a value means the same whether it is given as a
//! flag, an env var or a TOML key.
//!
//! The flags parse straight into `Settings` (clap names the flag in its own
//! errors). Env vars and the TOML file go through the `KEYS` table, whose
//! errors name the variable or the key. Nothing here reads the process
//! environment: the env layer takes a lookup function, so it can be tested.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use clap::Args;

use super::ConfigError;
use crate::config::{ClusterConfig, ClusterTlsConfig, Config, LogFormat};

/// Every setting, each optional; `None` means "not given in this layer".
#[derive(Debug, Default, Clone, PartialEq, Args)]
pub struct Settings {
    /// Address to listen on [env: SLUICEGATE_LISTEN] [default: 127.0.0.1:3000]
    #[arg(long, global = true, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// Directory holding the SQLite file, the sled counters and the admin
    /// token [env: SLUICEGATE_DATA_DIR] [default: ./sluicegate-data]
    #[arg(long, global = true, value_name = "DIR", value_parser = parse_path)]
    pub data_dir: Option<PathBuf>,
    /// TOML file with further settings; its keys are the flag names in
    /// snake_case [env: SLUICEGATE_CONFIG]
    #[arg(long, global = true, value_name = "PATH", value_parser = parse_path)]
    pub config: Option<PathBuf>,
    /// `human` or `json` [env: SLUICEGATE_LOG_FORMAT] [default: human]
    #[arg(long, global = true, value_name = "FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<LogFormat>,
    /// A tracing filter such as `info` or `sluicegate=debug,warn`
    /// [env: SLUICEGATE_LOG_LEVEL] [default: RUST_LOG, else info]
    #[arg(long, global = true, value_name = "FILTER", value_parser = parse_log_level)]
    pub log_level: Option<String>,
    /// Extra attempts on other channels after a retryable upstream failure
    /// [env: SLUICEGATE_MAX_RETRIES] [default: 2]
    #[arg(long, global = true, value_name = "N", value_parser = parse_count)]
    pub max_retries: Option<u32>,
    /// Upstream TCP + TLS connect timeout [env: SLUICEGATE_CONNECT_TIMEOUT] [default: 10s]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Time allowed until the upstream's first byte
    /// [env: SLUICEGATE_FIRST_BYTE_TIMEOUT] [default: 5m]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub first_byte_timeout: Option<Duration>,
    /// Longest silence allowed between two chunks of a stream
    /// [env: SLUICEGATE_STREAM_IDLE_TIMEOUT] [default: 2m]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub stream_idle_timeout: Option<Duration>,
    /// Largest request body accepted, e.g. 32MiB or 1000000
    /// [env: SLUICEGATE_MAX_BODY_SIZE] [default: 32MiB]
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub max_body_size: Option<usize>,
    /// How long in-flight requests may run after SIGINT/SIGTERM
    /// [env: SLUICEGATE_SHUTDOWN_GRACE] [default: 30s]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// IANA zone whose midnight resets daily token counters, unless a channel
    /// sets `daily_reset_timezone` [env: SLUICEGATE_TIMEZONE]
    /// [default: the system zone, honouring TZ]
    #[arg(long, global = true, value_name = "ZONE", value_parser = parse_timezone)]
    pub timezone: Option<Tz>,
    /// Case-insensitive substrings of an upstream error body that disable the
    /// channel (an exhausted quota); comma-separated or repeated
    /// [env: SLUICEGATE_AUTO_DISABLE_RULES] [default: common quota messages]
    #[arg(long, global = true, value_name = "TEXT", value_delimiter = ',', num_args = 1, value_parser = parse_rule)]
    pub auto_disable_rules: Option<Vec<String>>,
    /// Test `auto_disabled` channels this often and enable those that work
    /// again [env: SLUICEGATE_CHANNEL_TEST_INTERVAL] [default: off]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_interval)]
    pub channel_test_interval: Option<Duration>,
    /// Cluster mode: this node's id in --cluster-peers [env: SLUICEGATE_NODE_ID]
    #[arg(long, global = true, value_name = "N", value_parser = parse_node_id)]
    pub node_id: Option<u64>,
    /// Cluster mode: address for internal raft RPC, a separate port
    /// [env: SLUICEGATE_CLUSTER_LISTEN]
    #[arg(long, global = true, value_name = "ADDR", value_parser = parse_listen)]
    pub cluster_listen: Option<SocketAddr>,
    /// Cluster mode: every node's --cluster-listen address, as
    /// 1=host:port,2=host:port,3=host:port [env: SLUICEGATE_CLUSTER_PEERS]
    #[arg(long, global = true, value_name = "LIST", value_parser = parse_peers)]
    pub cluster_peers: Option<String>,
    /// Cluster mode: file holding the shared secret that signs internal RPC
    /// [env: SLUICEGATE_CLUSTER_SECRET_FILE]
    #[arg(long, global = true, value_name = "PATH", value_parser = parse_path)]
    pub cluster_secret_file: Option<PathBuf>,
    /// Cluster mode: how often counter deltas are proposed
    /// [env: SLUICEGATE_CLUSTER_BATCH_INTERVAL] [default: 50ms]
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_interval)]
    pub cluster_batch_interval: Option<Duration>,
    /// Cluster mode: PEM certificate chain this node presents on
    /// --cluster-listen; with the key and CA files, internal RPC runs over
    /// TLS [env: SLUICEGATE_CLUSTER_TLS_CERT]
    #[arg(long, global = true, value_name = "PATH", value_parser = parse_path)]
    pub cluster_tls_cert: Option<PathBuf>,
    /// Cluster mode: PEM private key of --cluster-tls-cert
    /// [env: SLUICEGATE_CLUSTER_TLS_KEY]
    #[arg(long, global = true, value_name = "PATH", value_parser = parse_path)]
    pub cluster_tls_key: Option<PathBuf>,
    /// Cluster mode: PEM CA certificate(s) that peers' certificates must
    /// chain to [env: SLUICEGATE_CLUSTER_TLS_CA]
    #[arg(long, global = true, value_name = "PATH", value_parser = parse_path)]
    pub cluster_tls_ca: Option<PathBuf>,
    /// File holding a token that may read GET /metrics besides the admin
    /// token; re-read on each scrape [env: SLUICEGATE_METRICS_TOKEN_FILE]
    #[arg(long, global = true, value_name = "PATH", value_parser = parse_path)]
    pub metrics_token_file: Option<PathBuf>,
    /// Serve GET /metrics without any token [env: SLUICEGATE_METRICS_PUBLIC]
    /// [default: false]
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool)]
    pub metrics_public: Option<bool>,
    /// Export OpenTelemetry traces over OTLP/HTTP to this URL, e.g.
    /// http://127.0.0.1:4318/v1/traces; needs a build with the `otel`
    /// feature [env: SLUICEGATE_OTLP_ENDPOINT] [default: off]
    #[arg(long, global = true, value_name = "URL", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
}

/// One setting as the env and file layers see it.
struct Key {
    /// The field name, which is also the TOML key.
    name: &'static str,
    /// `config` names the file, so the file itself cannot set it.
    in_file: bool,
    set: fn(&mut Settings, &str) -> Result<(), String>,
    /// For list settings: a TOML array, item by item (so items may hold commas).
    set_list: Option<SetList>,
}

/// Sets a list setting from a TOML array's items.
type SetList = fn(&mut Settings, Vec<String>) -> Result<(), String>;

macro_rules! key {
    ($field:ident, $parse:path, $in_file:expr) => {
        Key {
            name: stringify!($field),
            in_file: $in_file,
            set: |settings, raw| {
                settings.$field = Some($parse(raw)?);
                Ok(())
            },
            set_list: None,
        }
    };
    ($field:ident, $parse:path, $parse_list:path, list) => {
        Key {
            set_list: Some(|settings, items| {
                settings.$field = Some($parse_list(items)?);
                Ok(())
            }),
            ..key!($field, $parse, true)
        }
    };
}

const KEYS: &[Key] = &[
    key!(listen, parse_listen, true),
    key!(data_dir, parse_path, true),
    key!(config, parse_path, false),
    key!(log_format, parse_log_format, true),
    key!(log_level, parse_log_level, true),
    key!(max_retries, parse_count, true),
    key!(connect_timeout, parse_duration, true),
    key!(first_byte_timeout, parse_duration, true),
    key!(stream_idle_timeout, parse_duration, true),
    key!(max_body_size, parse_size, true),
    key!(shutdown_grace, parse_duration, true),
    key!(timezone, parse_timezone, true),
    key!(auto_disable_rules, parse_rules, parse_rule_list, list),
    key!(channel_test_interval, parse_interval, true),
    key!(node_id, parse_node_id, true),
    key!(cluster_listen, parse_listen, true),
    key!(cluster_peers, parse_peers, true),
    key!(cluster_secret_file, parse_path, true),
    key!(cluster_batch_interval, parse_interval, true),
    key!(cluster_tls_cert, parse_path, true),
    key!(cluster_tls_key, parse_path, true),
    key!(cluster_tls_ca, parse_path, true),
    key!(metrics_token_file, parse_path, true),
    key!(metrics_public, parse_bool, true),
    key!(otlp_endpoint, parse_otlp_endpoint, true),
];

impl Key {
    fn env_var(&self) -> String {
        format!("SLUICEGATE_{}", self.name.to_ascii_uppercase())
    }

    fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
}

/// Whether `name` is one of the env vars Sluicegate reads.
pub fn is_known_env_var(name: &str) -> bool {
    name == super::ADMIN_TOKEN_ENV || KEYS.iter().any(|key| key.env_var() == name)
}

impl Settings {
    /// The env layer: every `SLUICEGATE_*` variable that `lookup` knows.
    /// Empty values count as unset.
    pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let mut settings = Settings::default();
        for key in KEYS {
            let var = key.env_var();
            let Some(raw) = lookup(&var).filter(|raw| !raw.trim().is_empty()) else {
                continue;
            };
            (key.set)(&mut settings, raw.trim()).map_err(|message| ConfigError::Env {
                var,
                flag: key.flag(),
                message,
            })?;
        }
        Ok(settings)
    }

    /// The file layer: a TOML table whose keys are the settings' names.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File {
            file: file.clone(),
            message: error.to_string(),
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|error| ConfigError::File {
            file: file.clone(),
            message: syntax_message(&text, &error),
        })?;
        let mut settings = Settings::default();
        for (name, value) in &table {
            let Some(key) = KEYS.iter().find(|key| key.in_file && key.name == name) else {
                return Err(ConfigError::UnknownKey {
                    file,
                    key: name.clone(),
                });
            };
            let invalid = |message: String| ConfigError::InvalidKey {
                file: file.clone(),
                key: name.clone(),
                message,
            };
            let raw = match value {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                toml::Value::Array(items) if let Some(set_list) = key.set_list => {
                    let items = string_items(items).map_err(invalid)?;
                    set_list(&mut settings, items).map_err(invalid)?;
                    continue;
                }
                other => {
                    let found = other.type_str();
                    return Err(invalid(format!(
                        "expected a string or an integer, found {found}"
                    )));
                }
            };
            (key.set)(&mut settings, raw.trim()).map_err(invalid)?;
        }
        Ok(settings)
    }

    /// This layer over `lower`: each setting from `self` when given here.
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            config: self.config.or(lower.config),
            log_format: self.log_format.or(lower.log_format),
            log_level: self.log_level.or(lower.log_level),
            max_retries: self.max_retries.or(lower.max_retries),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            first_byte_timeout: self.first_byte_timeout.or(lower.first_byte_timeout),
            stream_idle_timeout: self.stream_idle_timeout.or(lower.stream_idle_timeout),
            max_body_size: self.max_body_size.or(lower.max_body_size),
            shutdown_grace: self.shutdown_grace.or(lower.shutdown_grace),
            timezone: self.timezone.or(lower.timezone),
            auto_disable_rules: self.auto_disable_rules.or(lower.auto_disable_rules),
            channel_test_interval: self.channel_test_interval.or(lower.channel_test_interval),
            node_id: self.node_id.or(lower.node_id),
            cluster_listen: self.cluster_listen.or(lower.cluster_listen),
            cluster_peers: self.cluster_peers.or(lower.cluster_peers),
            cluster_secret_file: self.cluster_secret_file.or(lower.cluster_secret_file),
            cluster_batch_interval: self.cluster_batch_interval.or(lower.cluster_batch_interval),
            cluster_tls_cert: self.cluster_tls_cert.or(lower.cluster_tls_cert),
            cluster_tls_key: self.cluster_tls_key.or(lower.cluster_tls_key),
            cluster_tls_ca: self.cluster_tls_ca.or(lower.cluster_tls_ca),
            metrics_token_file: self.metrics_token_file.or(lower.metrics_token_file),
            metrics_public: self.metrics_public.or(lower.metrics_public),
            otlp_endpoint: self.otlp_endpoint.or(lower.otlp_endpoint),
        }
    }

    /// The cluster settings: all four of node id, listen, peers and secret
    /// file, or none of them (single node). The error names what is missing.
    pub fn cluster(&self) -> Result<Option<ClusterConfig>, String> {
        let given = [
            ("--node-id", self.node_id.is_some()),
            ("--cluster-listen", self.cluster_listen.is_some()),
            ("--cluster-peers", self.cluster_peers.is_some()),
            ("--cluster-secret-file", self.cluster_secret_file.is_some()),
        ];
        let missing: Vec<&str> = given
            .iter()
            .filter(|(_, present)| !present)
            .map(|(flag, _)| *flag)
            .collect();
        if missing.len() == given.len() {
            return match self.cluster_tls()? {
                None => Ok(None),
                Some(_) => Err(
                    "--cluster-tls-* only apply in cluster mode (--node-id and friends)"
                        .to_string(),
                ),
            };
        }
        let (Some(node_id), Some(listen), Some(peers), Some(secret_file)) = (
            self.node_id,
            self.cluster_listen,
            self.cluster_peers.clone(),
            self.cluster_secret_file.clone(),
        ) else {
            return Err(format!(
                "cluster mode needs --node-id, --cluster-listen, --cluster-peers and --cluster-secret-file together; missing {}",
                missing.join(", ")
            ));
        };
        let node_id = crate::model::NodeId(node_id);
        crate::cluster::peers::Peers::parse(node_id, &peers).map_err(|error| error.to_string())?;
        let tls = self.cluster_tls()?;
        Ok(Some(ClusterConfig {
            tls,
            node_id,
            listen,
            peers,
            secret_file,
            batch_interval: self
                .cluster_batch_interval
                .unwrap_or(crate::config::DEFAULT_CLUSTER_BATCH_INTERVAL),
        }))
    }

    /// The cluster TLS files: all three of cert, key and CA, or none.
    fn cluster_tls(&self) -> Result<Option<ClusterTlsConfig>, String> {
        match (
            self.cluster_tls_cert.clone(),
            self.cluster_tls_key.clone(),
            self.cluster_tls_ca.clone(),
        ) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(ClusterTlsConfig { cert, key, ca })),
            _ => Err(
                "cluster TLS needs --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca together"
                    .to_string(),
            ),
        }
    }

    /// `config` with every setting given here written over it.
    pub fn apply(self, config: Config) -> Config {
        let cluster = self.cluster().ok().flatten().or(config.cluster);
        Config {
            listen: self.listen.unwrap_or(config.listen),
            data_dir: self.data_dir.unwrap_or(config.data_dir),
            log_format: self.log_format.unwrap_or(config.log_format),
            log_level: self.log_level.unwrap_or(config.log_level),
            max_retries: self.max_retries.unwrap_or(config.max_retries),
            connect_timeout: self.connect_timeout.unwrap_or(config.connect_timeout),
            first_byte_timeout: self.first_byte_timeout.unwrap_or(config.first_byte_timeout),
            stream_idle_timeout: self
                .stream_idle_timeout
                .unwrap_or(config.stream_idle_timeout),
            max_body_bytes: self.max_body_size.unwrap_or(config.max_body_bytes),
            shutdown_grace: self.shutdown_grace.unwrap_or(config.shutdown_grace),
            admin_token: config.admin_token,
            timezone: self.timezone.unwrap_or(config.timezone),
            auto_disable_rules: self.auto_disable_rules.unwrap_or(config.auto_disable_rules),
            channel_test_interval: self.channel_test_interval.or(config.channel_test_interval),
            cluster,
            metrics_token_file: self.metrics_token_file.or(config.metrics_token_file),
            metrics_public: self.metrics_public.unwrap_or(config.metrics_public),
            otlp_endpoint: self.otlp_endpoint.or(config.otlp_endpoint),
        }
    }
}

/// toml's own message without its multi-line snippet, plus the line number.
fn syntax_message(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim();
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message.to_string(),
    }
}

fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|error| format!("{error} (expected an address such as 127.0.0.1:3000)"))
}

fn parse_path(raw: &str) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("the path is empty".to_string());
    }
    Ok(PathBuf::from(raw))
}

fn parse_log_format(raw: &str) -> Result<LogFormat, String> {
    match raw.to_ascii_lowercase().as_str() {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("`{raw}` is neither `human` nor `json`")),
    }
}

/// Checked here, so a bad filter stops the start instead of being ignored.
pub(super) fn parse_log_level(raw: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(raw)
        .map(|_| raw.to_string())
        .map_err(|error| {
            format!("{error} (expected a filter such as `info` or `sluicegate=debug`)")
        })
}

fn parse_timezone(raw: &str) -> Result<Tz, String> {
    crate::daily::day::parse_zone(raw).ok_or_else(|| {
        format!("`{raw}` is not an IANA time zone (expected a name such as Asia/Shanghai or UTC)")
    })
}

/// The items of a TOML array, which must all be strings.
fn string_items(items: &[toml::Value]) -> Result<Vec<String>, String> {
    items
        .iter()
        .map(|item| match item {
            toml::Value::String(text) => Ok(text.clone()),
            other => Err(format!(
                "expected an array of strings, found an item of type {}",
                other.type_str()
            )),
        })
        .collect()
}

/// One auto-disable rule: trimmed, and never empty (it would match every error).
fn parse_rule(raw: &str) -> Result<String, String> {
    let rule = raw.trim();
    if rule.is_empty() {
        return Err("a rule is empty; it would match every upstream error".to_string());
    }
    Ok(rule.to_string())
}

/// Rules as an env var or TOML string: comma-separated.
fn parse_rules(raw: &str) -> Result<Vec<String>, String> {
    raw.split(',').map(parse_rule).collect()
}

/// Rules as a TOML array, one rule per item; `[]` turns body matching off.
fn parse_rule_list(items: Vec<String>) -> Result<Vec<String>, String> {
    items.iter().map(|item| parse_rule(item)).collect()
}

/// A positive duration; periodic work every 0 s makes no sense.
fn parse_interval(raw: &str) -> Result<Duration, String> {
    match parse_duration(raw)? {
        interval if interval.is_zero() => {
            Err("the interval must be greater than zero (leave it unset to turn it off)".into())
        }
        interval => Ok(interval),
    }
}

fn parse_node_id(raw: &str) -> Result<u64, String> {
    match raw.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!(
            "`{raw}` is not a node id (a positive integer such as 1)"
        )),
        Ok(id) => Ok(id),
    }
}

/// Checked for shape here; that it names this node is checked with --node-id.
fn parse_peers(raw: &str) -> Result<String, String> {
    let first = raw
        .split(',')
        .map(str::trim)
        .find(|entry| !entry.is_empty())
        .and_then(|entry| entry.split_once('=')?.0.trim().parse().ok())
        .unwrap_or(crate::model::NodeId(1));
    match crate::cluster::peers::Peers::parse(first, raw) {
        Ok(_) => Ok(raw.trim().to_string()),
        Err(error) => Err(error.to_string()),
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), case-insensitive.
fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{raw}` is not a boolean (expected true or false)")),
    }
}

/// An http(s) URL; refused outright by a build without the `otel` feature,
/// so a trace export that cannot happen never passes silently.
fn parse_otlp_endpoint(raw: &str) -> Result<String, String> {
    if !cfg!(feature = "otel") {
        return Err(
            "this build has no OpenTelemetry export; rebuild with `cargo build --features otel`"
                .to_string(),
        );
    }
    let url = raw.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len()
    {
        return Err(format!(
            "`{raw}` is not an http(s) URL such as http://127.0.0.1:4318/v1/traces"
        ));
    }
    Ok(url.to_string())
}

fn parse_count(raw: &str) -> Result<u32, String> {
    raw.parse()
        .map_err(|error| format!("{error} (expected a whole number such as 2)"))
}

fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|error| format!("{error} (expected a duration such as 10s, 500ms or 2m)"))
}

/// Bytes, as a plain integer or with a unit: B, KB, MB, GB (powers of 1000)
/// or KiB, MiB, GiB (powers of 1024), case-insensitive.
fn parse_size(raw: &str) -> Result<usize, String> {
    let digits_end = raw
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(digits_end);
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "`{raw}` is not a size such as 32MiB, 500KB or 1048576"
            ));
        }
    };
    let count: usize = digits
        .parse()
        .map_err(|_| format!("`{raw}` is not a size such as 32MiB, 500KB or 1048576"))?;
    match count.checked_mul(multiplier) {
        Some(0) => Err("the size must be greater than zero".to_string()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("`{raw}` is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes take plain bytes or KB/MB/GB and KiB/MiB/GiB; anything else is refused.
    #[test]
    fn sizes_take_decimal_and_binary_units() {
        let cases = [
            ("1048576", Some(1_048_576)),
            ("32MiB", Some(32 << 20)),
            ("32 mib", Some(32 << 20)),
            ("500KB", Some(500_000)),
            ("2GiB", Some(2 << 30)),
            ("7b", Some(7)),
            ("1.5MiB", None),
            ("MiB", None),
            ("10 parsecs", None),
            ("0", None),
            ("-1", None),
            ("99999999999999999999GiB", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse_size(raw).ok(), expected, "{raw}");
        }
    }

    /// Each `KEYS` row derives its env var and flag from one name.
    #[test]
    fn every_key_maps_to_its_env_var_and_flag() {
        let names: Vec<(String, String)> =
            KEYS.iter().map(|key| (key.env_var(), key.flag())).collect();
        assert!(names.contains(&("SLUICEGATE_MAX_RETRIES".into(), "--max-retries".into())));
        assert!(names.contains(&("SLUICEGATE_DATA_DIR".into(), "--data-dir".into())));
        assert_eq!(
            KEYS.len(),
            25,
            "a new setting needs a row in KEYS and a field in or/apply"
        );
    }

    /// Booleans take the usual spellings; anything else is refused.
    #[test]
    fn booleans_take_the_usual_spellings() {
        for (raw, expected) in [
            ("true", Some(true)),
            ("ON", Some(true)),
            ("1", Some(true)),
            ("false", Some(false)),
            ("no", Some(false)),
            ("maybe", None),
        ] {
            assert_eq!(parse_bool(raw).ok(), expected, "{raw}");
        }
    }

    /// `--otlp-endpoint` needs the `otel` feature, and then an http(s) URL.
    #[test]
    fn the_otlp_endpoint_needs_the_feature() {
        let url = "http://127.0.0.1:4318/v1/traces";
        if cfg!(feature = "otel") {
            assert_eq!(parse_otlp_endpoint(url).as_deref(), Ok(url));
            assert!(parse_otlp_endpoint("127.0.0.1:4318").is_err());
        } else {
            let error = parse_otlp_endpoint(url).unwrap_err();
            assert!(error.contains("--features otel"), "{error}");
        }
    }

    /// Rules are comma-separated in env vars and TOML strings, item by item in
    /// TOML arrays; an empty rule (which would match everything) is refused.
    #[test]
    fn rules_are_lists_without_empty_items() {
        assert_eq!(
            parse_rules(" insufficient_quota , credit balance is too low"),
            Ok(vec![
                "insufficient_quota".to_string(),
                "credit balance is too low".to_string()
            ])
        );
        assert!(parse_rules("a,,b").is_err());
        assert_eq!(
            parse_rule_list(vec!["quota, exceeded".into()]),
            Ok(vec!["quota, exceeded".to_string()])
        );
        assert_eq!(parse_rule_list(vec![]), Ok(vec![]));
        assert!(parse_rule_list(vec![" ".into()]).is_err());
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_interval("10m"), Ok(Duration::from_secs(600)));
    }

    /// Log formats and filters are validated, so a typo stops the start.
    #[test]
    fn log_formats_and_levels_are_checked() {
        assert_eq!(parse_log_format("JSON"), Ok(LogFormat::Json));
        assert!(parse_log_format("xml").is_err());
        assert!(parse_log_level("sluicegate=debug,warn").is_ok());
        assert!(parse_log_level("sluicegate=loud").is_err());
    }
}
