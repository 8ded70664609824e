//! The command line: subcommands, and the merge of flags, env vars, the TOML
//! file and defaults into one [`Config`], in that order of precedence.
//!
//! This module owns start-up configuration only. It reads the process
//! environment in [`parse`] alone; [`resolve`] takes the env as a function,
//! so the precedence rules are tested without touching global state.

mod admin_token;
mod logging;
mod settings;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

pub use admin_token::admin_token;
pub use logging::init_logging;
pub use settings::{Settings, is_known_env_var};

/// The env var that sets the admin token. Never logged.
pub const ADMIN_TOKEN_ENV: &str = "SLUICEGATE_ADMIN_TOKEN";

/// `sluicegate [serve] [FLAGS]` or `sluicegate admin-token [--rotate] [FLAGS]`.
#[derive(Debug, Parser)]
#[command(
    name = "sluicegate",
    version,
    about = "A self-hosted LLM API gateway",
    after_help = "Every flag also reads SLUICEGATE_<FLAG_NAME> (e.g. SLUICEGATE_MAX_RETRIES) \
                  and the snake_case key in the --config file. A flag beats its env var, \
                  which beats the file. SLUICEGATE_ADMIN_TOKEN sets the admin token."
)]
pub struct Cli {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub settings: Settings,
}

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Action {
    /// Run the gateway (the default when no subcommand is given).
    Serve,
    /// Print the admin token from the data dir, or replace it with --rotate.
    AdminToken {
        /// Generate a new token; a running server accepts it (and stops
        /// accepting the old one) within a second.
        #[arg(long)]
        rotate: bool,
    },
    /// Import channels and API keys from another gateway into the data dir.
    /// Run it while no server uses the data dir.
    #[command(subcommand)]
    Import(crate::import::ImportSource),
}

/// A parsed command line with its configuration resolved.
#[derive(Debug)]
pub struct Invocation {
    pub action: Action,
    pub config: Config,
}

/// Why the configuration could not be resolved. Each message names the
/// variable or file key at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid value for {var} ({flag}): {message}")]
    Env {
        var: String,
        flag: String,
        message: String,
    },
    #[error("invalid value for RUST_LOG: {message}")]
    RustLog { message: String },
    #[error("config file {file}: {message}")]
    File { file: String, message: String },
    #[error("config file {file}: unknown key `{key}`")]
    UnknownKey { file: String, key: String },
    #[error("config file {file}: invalid value for `{key}`: {message}")]
    InvalidKey {
        file: String,
        key: String,
        message: String,
    },
    #[error("{message}")]
    Cluster { message: String },
}

/// Parses the process's arguments and environment. Clap reports bad flags
/// itself (naming the flag) and exits with status 2.
pub fn parse() -> Result<Invocation, ConfigError> {
    let cli = Cli::parse();
    let config = resolve(cli.settings, &|name| std::env::var(name).ok())?;
    Ok(Invocation {
        action: cli.action.unwrap_or(Action::Serve),
        config,
    })
}

/// Merges the layers: `flags`, then the env vars `env` knows, then the TOML
/// file named by `--config` / `SLUICEGATE_CONFIG`, then `Config::default()`.
/// The log filter falls back to `RUST_LOG` before its default.
pub fn resolve(
    flags: Settings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let from_env = Settings::from_env(env)?;
    let file: Option<PathBuf> = flags.config.clone().or_else(|| from_env.config.clone());
    let from_file = match file {
        Some(path) => Settings::from_file(&path)?,
        None => Settings::default(),
    };
    let mut merged = flags.or(from_env).or(from_file);
    if merged.log_level.is_none() {
        merged.log_level = rust_log(env)?;
    }
    merged
        .cluster()
        .map_err(|message| ConfigError::Cluster { message })?;
    let base = Config {
        timezone: crate::daily::day::system_zone(env("TZ").as_deref()),
        ..Config::default()
    };
    let mut config = merged.apply(base);
    config.admin_token = env(ADMIN_TOKEN_ENV).filter(|token| !token.trim().is_empty());
    Ok(config)
}

/// The `SLUICEGATE_*` variables in the environment that Sluicegate does
/// not know (a typo, or a setting from another version), to warn about.
pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .filter(|name| name.starts_with("SLUICEGATE_") && !is_known_env_var(name))
        .collect()
}

fn rust_log(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(raw) = env("RUST_LOG").filter(|raw| !raw.trim().is_empty()) else {
        return Ok(None);
    };
    settings::parse_log_level(raw.trim())
        .map(Some)
        .map_err(|message| ConfigError::RustLog { message })
}

#[cfg(test)]
mod tests;
