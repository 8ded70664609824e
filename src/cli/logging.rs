//! Logging set-up: human or JSON lines on stderr, filtered by the resolved
//! `log_level`. Stdout stays free for command output (`admin-token`). With
//! the `otel` feature and `--otlp-endpoint`, spans are also exported
//! (`otel`).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Installs the global subscriber. `level` was validated during resolve.
/// `otlp_endpoint` is always `None` without the `otel` feature (resolving
/// refuses it).
pub fn init_logging(
    format: LogFormat,
    level: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)?;
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Human => lines.boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    };
    let subscriber = tracing_subscriber::registry().with(filter).with(lines);
    #[cfg(feature = "otel")]
    let subscriber = subscriber.with(match otlp_endpoint {
        Some(endpoint) => Some(crate::otel::install(endpoint)?),
        None => None,
    });
    #[cfg(not(feature = "otel"))]
    let _ = otlp_endpoint;
    subscriber
        .try_init()
        .map_err(|error| anyhow::anyhow!("installing the log subscriber: {error}"))
}
