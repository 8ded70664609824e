//! The `sluicegate` binary: parse the command line, start logging, dispatch.
//! Everything else lives in the library, so tests can drive it in-process.

use std::process::ExitCode;

use sluicegate::cli::{self, Action};
use sluicegate::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let invocation = match cli::parse() {
        Ok(invocation) => invocation,
        Err(error) => {
            eprintln!("sluicegate: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = match invocation.action {
        Action::Serve => serve(invocation.config).await,
        Action::AdminToken { rotate } => cli::admin_token(&invocation.config, rotate),
        Action::Import(source) => sluicegate::import::run(&invocation.config, source).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sluicegate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    cli::init_logging(
        config.log_format,
        &config.log_level,
        config.otlp_endpoint.as_deref(),
    )?;
    for name in cli::unknown_env_vars() {
        tracing::warn!(var = %name, "ignoring an unknown SLUICEGATE_ variable");
    }
    // reqwest and rustls are built without a default TLS provider; ring is ours.
    sluicegate::upstream::install_tls_provider();
    sluicegate::server::run(config).await
}
