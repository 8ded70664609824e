//! Tests that run the real `sluicegate` binary: data dir creation and reuse,
//! the admin token's sources and rotation, config errors, flag placement,
//! SIGTERM, and secrets kept out of the logs.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::poll::{PATIENCE, Wait};
use crate::support::process::{Process, run_to_exit};

/// `--listen 127.0.0.1:0 --log-format json --data-dir DIR`.
fn serve_args(data_dir: &Path) -> Vec<String> {
    [
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--data-dir",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .chain([data_dir.display().to_string()])
    .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn channel_body(name: &str, key: &str) -> Value {
    json!({"name": name, "base_url": "http://127.0.0.1:9/v1", "key": key, "models": ["gpt-4o-mini"]})
}

fn read_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin-token"))
        .expect("admin-token file")
        .trim()
        .to_string()
}

/// A first start creates the data dir with both stores and a private token
/// file; a restart reuses that token and still has the channel created before.
#[test]
fn first_start_creates_the_data_dir_and_a_restart_reuses_it() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let args = serve_args(&data_dir);

    let mut first = Process::start(&strs(&args), &[]);
    let token_path = data_dir.join("admin-token");
    assert!(data_dir.join("sluicegate.db").is_file());
    assert!(data_dir.join("counters.sled").is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        first.output().contains(&token_path.display().to_string()),
        "{}",
        first.output()
    );
    let token = read_token(&data_dir);
    let (status, created) = first.request(
        "POST",
        "/api/channels",
        &token,
        Some(&channel_body("a", "sk-test")),
    );
    assert_eq!(status, 201, "{created}");
    assert!(first.terminate().success(), "{}", first.output());

    let mut second = Process::start(&strs(&args), &[]);
    assert_eq!(read_token(&data_dir), token);
    assert!(
        !second.output().contains("generated"),
        "{}",
        second.output()
    );
    let (status, list) = second.request("GET", "/api/channels", &token, None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["name"], "a");
    assert!(second.terminate().success());
}

/// `SLUICEGATE_ADMIN_TOKEN` beats the token file: only the env token works.
#[test]
fn env_admin_token_overrides_the_file() {
    let temp = tempfile::tempdir().unwrap();
    let (status, file_token, _) = run_to_exit(
        &[
            "admin-token",
            "--rotate",
            "--data-dir",
            temp.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(status.success());
    let file_token = file_token.trim();

    let env_token = "sga-from-the-environment-0123456789";
    let mut process = Process::start(
        &strs(&serve_args(temp.path())),
        &[("SLUICEGATE_ADMIN_TOKEN", env_token)],
    );
    assert_eq!(
        process.request("GET", "/api/channels", env_token, None).0,
        200
    );
    assert_eq!(
        process.request("GET", "/api/channels", file_token, None).0,
        401
    );
    assert!(process.terminate().success());
    assert!(!process.output().contains(env_token));
}

/// `admin-token --rotate` prints a new token that a running server accepts
/// within its watch interval, while the old one stops working.
#[test]
fn rotation_takes_effect_on_a_running_server() {
    let temp = tempfile::tempdir().unwrap();
    let mut process = Process::start(&strs(&serve_args(temp.path())), &[]);
    let old = read_token(temp.path());
    assert_eq!(process.request("GET", "/api/channels", &old, None).0, 200);

    let (status, stdout, stderr) = run_to_exit(
        &[
            "admin-token",
            "--rotate",
            "--data-dir",
            temp.path().to_str().unwrap(),
        ],
        &[],
    );
    assert!(status.success(), "{stderr}");
    let new = stdout.trim();
    assert!(new.starts_with("sga-") && new != old, "{stdout}");
    assert!(stderr.contains("running server"), "{stderr}");

    // Each wrong look counts toward the lockout: look every 300 ms.
    Wait::new("the rotated token to be in force", PATIENCE)
        .every(Duration::from_millis(300))
        .try_until_blocking(|| process.request("GET", "/api/channels", new, None).0 == 200)
        .unwrap_or_else(|timeout| panic!("{timeout}\n{}", process.output()));
    assert_eq!(process.request("GET", "/api/channels", &old, None).0, 401);
    let (status, shown, _) = run_to_exit(
        &["admin-token", "--data-dir", temp.path().to_str().unwrap()],
        &[],
    );
    assert!(status.success());
    assert_eq!(shown.trim(), new);
    assert!(process.terminate().success());
}

/// An unknown key in the --config file stops the start, naming the key.
#[test]
fn unknown_config_file_key_stops_the_start() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("sluicegate.toml");
    std::fs::write(&file, "max_retries = 1\nmax_retry = 3\n").unwrap();
    let data_dir = temp.path().join("data");
    let mut args = serve_args(&data_dir);
    args.extend(["--config".to_string(), file.display().to_string()]);
    let (status, _, stderr) = run_to_exit(&strs(&args), &[]);
    assert!(!status.success());
    assert!(stderr.contains("unknown key `max_retry`"), "{stderr}");
    assert!(
        !data_dir.exists(),
        "nothing is created before the config is valid"
    );
}

/// An invalid env value stops the start, naming the variable.
#[test]
fn invalid_env_value_stops_the_start() {
    let temp = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run_to_exit(
        &strs(&serve_args(temp.path())),
        &[("SLUICEGATE_MAX_RETRIES", "abc")],
    );
    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert!(stderr.contains("SLUICEGATE_MAX_RETRIES"), "{stderr}");
}

/// The same flags work without `serve`, after it, and on both sides of it.
#[test]
fn flags_work_with_and_without_serve() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().display().to_string();
    let placements: [&[&str]; 3] = [
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
            &dir,
        ],
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
            &dir,
        ],
        &[
            "--data-dir",
            &dir,
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
    ];
    for args in placements {
        let mut process = Process::start(args, &[]);
        assert!(temp.path().join("sluicegate.db").is_file(), "{args:?}");
        let status = process.terminate();
        assert!(status.success(), "{args:?}: {status:?}");
    }
}

/// SIGTERM stops an idle server promptly with exit code 0.
#[test]
fn sigterm_exits_gracefully() {
    let temp = tempfile::tempdir().unwrap();
    let mut process = Process::start(&strs(&serve_args(temp.path())), &[]);
    // `terminate` fails the test if the process outlives its deadline.
    let status = process.terminate();
    assert_eq!(status.code(), Some(0), "{}", process.output());
}

/// With debug logging, a run that stores a channel key, creates an API key
/// and relays with it (and with a wrong key) logs none of the secrets.
#[test]
fn secrets_never_reach_the_logs() {
    let temp = tempfile::tempdir().unwrap();
    let admin = "sga-admin-secret-4242424242424242";
    let channel_key = "sk-upstream-secret-channel-key-1111";
    let wrong_key = "sk-not-a-real-key-but-still-secret-2222";
    let mut args = serve_args(temp.path());
    args.extend([
        "--log-level".to_string(),
        "debug".to_string(),
        "--max-retries".to_string(),
        "0".to_string(),
    ]);
    let mut process = Process::start(&strs(&args), &[("SLUICEGATE_ADMIN_TOKEN", admin)]);

    let (status, _) = process.request(
        "POST",
        "/api/channels",
        admin,
        Some(&channel_body("c", channel_key)),
    );
    assert_eq!(status, 201);
    let (status, created) =
        process.request("POST", "/api/tokens", admin, Some(&json!({"name": "t"})));
    assert_eq!(status, 201, "{created}");
    let api_key = created["key"]
        .as_str()
        .expect("full key in the create response")
        .to_string();
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = process.request("POST", "/v1/chat/completions", &api_key, Some(&chat));
    assert!(status >= 500, "the upstream port is closed: {status}");
    let (status, _) = process.request("POST", "/v1/chat/completions", wrong_key, Some(&chat));
    assert_eq!(status, 401);
    assert_eq!(
        process
            .request("GET", "/api/channels", "sga-wrong-admin", None)
            .0,
        401
    );

    assert!(process.terminate().success());
    let output = process.output();
    assert!(output.contains("listening"), "logs were captured: {output}");
    for secret in [
        admin,
        channel_key,
        wrong_key,
        api_key.as_str(),
        "sga-wrong-admin",
    ] {
        assert!(!output.contains(secret), "{secret} leaked into:\n{output}");
    }
}
