//! Precedence (flag > env > file > default) and error naming, with the env
//! injected as a map so no test touches the process environment.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::config::LogFormat;

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<(Action, Config), ConfigError> {
    let cli = Cli::try_parse_from(std::iter::once("sluicegate").chain(args.iter().copied()))
        .map_err(|error| ConfigError::File {
            file: "<clap>".into(),
            message: error.to_string(),
        })?;
    let env: HashMap<String, String> = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let config = resolve(cli.settings, &|name| env.get(name).cloned())?;
    Ok((cli.action.unwrap_or(Action::Serve), config))
}

fn toml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

/// With nothing given, the resolved config is exactly `Config::default()`.
#[test]
fn nothing_given_means_defaults() {
    let (action, config) = run(&[], &[]).unwrap();
    assert_eq!(action, Action::Serve);
    assert_eq!(config, Config::default());
}

/// Each layer wins over the ones below it, setting by setting.
#[test]
fn flag_beats_env_beats_file_beats_default() {
    let file = toml_file(
        "max_retries = 7\nconnect_timeout = \"7s\"\nfirst_byte_timeout = \"7s\"\nlog_format = \"json\"\n",
    );
    let path = file.path().to_str().unwrap();
    let (_, config) = run(
        &["--config", path, "--max-retries", "5"],
        &[
            ("SLUICEGATE_MAX_RETRIES", "6"),
            ("SLUICEGATE_CONNECT_TIMEOUT", "6s"),
        ],
    )
    .unwrap();
    assert_eq!(config.max_retries, 5, "flag");
    assert_eq!(config.connect_timeout, Duration::from_secs(6), "env");
    assert_eq!(config.first_byte_timeout, Duration::from_secs(7), "file");
    assert_eq!(config.log_format, LogFormat::Json, "file");
    assert_eq!(
        config.stream_idle_timeout,
        Config::default().stream_idle_timeout,
        "default"
    );
}

/// The file can be named by env var as well as by flag.
#[test]
fn config_file_from_env() {
    let file = toml_file("max_body_size = \"1KiB\"\nlisten = \"127.0.0.1:4000\"\n");
    let (_, config) = run(&[], &[("SLUICEGATE_CONFIG", file.path().to_str().unwrap())]).unwrap();
    assert_eq!(config.max_body_bytes, 1024);
    assert_eq!(config.listen.port(), 4000);
}

/// Flags work before and after `serve`, and with `admin-token`.
#[test]
fn flags_work_with_and_without_a_subcommand() {
    for args in [
        &["--max-retries", "4"][..],
        &["serve", "--max-retries", "4"],
        &["--max-retries", "4", "serve"],
    ] {
        let (action, config) = run(args, &[]).unwrap();
        assert_eq!((action, config.max_retries), (Action::Serve, 4), "{args:?}");
    }
    let (action, config) = run(&["admin-token", "--rotate", "--data-dir", "/tmp/x"], &[]).unwrap();
    assert_eq!(action, Action::AdminToken { rotate: true });
    assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
}

/// A bad env value names both the variable and its flag.
#[test]
fn invalid_env_value_names_the_variable() {
    let error = run(&[], &[("SLUICEGATE_MAX_RETRIES", "abc")]).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("invalid value for SLUICEGATE_MAX_RETRIES (--max-retries): "),
        "{message}"
    );
}

/// An unknown key in the file is refused, naming the key.
#[test]
fn unknown_file_key_is_named() {
    let file = toml_file("max_retries = 1\nmax_retry = 3\n");
    let error = run(&["--config", file.path().to_str().unwrap()], &[]).unwrap_err();
    assert!(
        matches!(&error, ConfigError::UnknownKey { key, .. } if key == "max_retry"),
        "{error}"
    );
    assert!(error.to_string().contains("unknown key `max_retry`"));
}

/// A bad file value names the key; `config` itself is not a file key.
#[test]
fn invalid_file_values_are_named() {
    for (text, key) in [
        ("connect_timeout = \"soon\"", "connect_timeout"),
        ("max_retries = true", "max_retries"),
        ("max_retries = -1", "max_retries"),
        ("log_format = \"xml\"", "log_format"),
    ] {
        let file = toml_file(text);
        let error = run(&["--config", file.path().to_str().unwrap()], &[]).unwrap_err();
        assert!(
            matches!(&error, ConfigError::InvalidKey { key: named, .. } if named == key),
            "{error}"
        );
    }
    let file = toml_file("config = \"other.toml\"");
    let error = run(&["--config", file.path().to_str().unwrap()], &[]).unwrap_err();
    assert!(matches!(error, ConfigError::UnknownKey { .. }));
}

/// TOML syntax errors and missing files name the file and the line.
#[test]
fn broken_or_missing_file_is_reported() {
    let file = toml_file("listen = \"127.0.0.1:1\"\nmax_retries = = 2\n");
    let message = run(&["--config", file.path().to_str().unwrap()], &[])
        .unwrap_err()
        .to_string();
    assert!(message.contains("line 2"), "{message}");
    let message = run(&["--config", "/nonexistent/sluicegate.toml"], &[])
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("config file /nonexistent/sluicegate.toml: "),
        "{message}"
    );
}

/// Bad flag values are rejected by clap, which names the flag.
#[test]
fn invalid_flag_value_names_the_flag() {
    let error =
        Cli::try_parse_from(["sluicegate", "--stream-idle-timeout", "forever"]).unwrap_err();
    assert!(
        error.to_string().contains("--stream-idle-timeout"),
        "{error}"
    );
}

/// The admin token comes from its env var only; empty values are ignored.
#[test]
fn admin_token_from_env() {
    let (_, config) = run(&[], &[("SLUICEGATE_ADMIN_TOKEN", "sga-secret")]).unwrap();
    assert_eq!(config.admin_token.as_deref(), Some("sga-secret"));
    let (_, config) = run(
        &[],
        &[("SLUICEGATE_ADMIN_TOKEN", ""), ("SLUICEGATE_LISTEN", " ")],
    )
    .unwrap();
    assert_eq!(config, Config::default());
}

/// `RUST_LOG` is the log filter unless a layer sets `log_level`.
#[test]
fn rust_log_is_the_fallback_filter() {
    let (_, config) = run(&[], &[("RUST_LOG", "sluicegate=trace")]).unwrap();
    assert_eq!(config.log_level, "sluicegate=trace");
    let (_, config) = run(&["--log-level", "warn"], &[("RUST_LOG", "trace")]).unwrap();
    assert_eq!(config.log_level, "warn");
    assert!(run(&[], &[("RUST_LOG", "x=verbose")]).is_err());
}

/// Auto-disable rules: a TOML array (items may hold commas), a comma-separated
/// env var, or a repeated or comma-separated flag; the test interval is a
/// duration, off unless given.
#[test]
fn health_settings_come_from_every_layer() {
    assert_eq!(Config::default().channel_test_interval, None);
    assert!(!Config::default().auto_disable_rules.is_empty());
    let file = toml_file(
        "auto_disable_rules = [\"quota, exceeded\", \"no credit\"]\nchannel_test_interval = \"10m\"\n",
    );
    let path = file.path().to_str().unwrap();
    let (_, config) = run(&["--config", path], &[]).unwrap();
    assert_eq!(config.auto_disable_rules, ["quota, exceeded", "no credit"]);
    assert_eq!(config.channel_test_interval, Some(Duration::from_secs(600)));
    let (_, config) = run(&[], &[("SLUICEGATE_AUTO_DISABLE_RULES", "a, b")]).unwrap();
    assert_eq!(config.auto_disable_rules, ["a", "b"]);
    let args = ["--auto-disable-rules", "a,b", "--auto-disable-rules", "c"];
    let (_, config) = run(&args, &[]).unwrap();
    assert_eq!(config.auto_disable_rules, ["a", "b", "c"]);
    let empty = toml_file("auto_disable_rules = []");
    let (_, config) = run(&["--config", empty.path().to_str().unwrap()], &[]).unwrap();
    assert!(config.auto_disable_rules.is_empty());
    for text in ["auto_disable_rules = [1]", "channel_test_interval = \"0s\""] {
        let file = toml_file(text);
        let error = run(&["--config", file.path().to_str().unwrap()], &[]).unwrap_err();
        assert!(matches!(error, ConfigError::InvalidKey { .. }), "{text}");
    }
}

/// Cluster TLS takes all three files or none, and only in cluster mode; an
/// env var counts like the flag.
#[test]
fn cluster_tls_files_come_together() {
    let cluster = [
        "--node-id",
        "1",
        "--cluster-listen",
        "127.0.0.1:7001",
        "--cluster-peers",
        "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003",
        "--cluster-secret-file",
        "/tmp/secret",
    ];
    let tls = [
        "--cluster-tls-cert",
        "/tmp/node.pem",
        "--cluster-tls-key",
        "/tmp/node.key",
    ];
    let partial: Vec<&str> = cluster.iter().chain(tls.iter()).copied().collect();
    let error = run(&partial, &[]).unwrap_err();
    assert!(error.to_string().contains("--cluster-tls-ca"), "{error}");

    let (_, config) = run(&partial, &[("SLUICEGATE_CLUSTER_TLS_CA", "/tmp/ca.pem")]).unwrap();
    let tls_config = config.cluster.and_then(|cluster| cluster.tls).unwrap();
    assert_eq!(tls_config.ca, std::path::PathBuf::from("/tmp/ca.pem"));
    assert_eq!(tls_config.cert, std::path::PathBuf::from("/tmp/node.pem"));

    let (_, plain) = run(&cluster, &[]).unwrap();
    assert_eq!(plain.cluster.unwrap().tls, None);

    let alone: Vec<&str> = tls.to_vec();
    let error = run(&alone, &[("SLUICEGATE_CLUSTER_TLS_CA", "/tmp/ca.pem")]).unwrap_err();
    assert!(error.to_string().contains("cluster mode"), "{error}");
}
