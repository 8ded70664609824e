//! Upstream keys at rest, with the real binary: sealed in every database
//! file, usable after a restart, and a key file that is missing or loose
//! stops the start without touching the database.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::process::{Process, run_to_exit};
use crate::support::upstream::FakeUpstream;

const ADMIN: &str = "secrets-admin-token";
/// The key of the channel that serves; the fake upstream must see it.
const SERVING_KEY: &str = "sk-at-rest-serving-8d41c2a9f7e3";
/// A second channel's keys, never used for a request.
const IDLE_KEYS: [&str; 2] = [
    "sk-at-rest-idle-one-5b7e0c13",
    "sk-at-rest-idle-two-92fa64d8",
];
const KEY_FILE: &str = sluicegate::store::secrets::KEY_FILE;

fn args(data_dir: &Path) -> Vec<String> {
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

fn start(data_dir: &Path) -> Process {
    let args = args(data_dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Process::start(&args, &[("SLUICEGATE_ADMIN_TOKEN", ADMIN)])
}

/// Runs a start that must fail; returns its exit code and stderr.
fn failed_start(data_dir: &Path) -> (Option<i32>, String) {
    let args = args(data_dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, _, stderr) = run_to_exit(&args, &[("SLUICEGATE_ADMIN_TOKEN", ADMIN)]);
    assert!(!status.success(), "the start should fail:\n{stderr}");
    (status.code(), stderr)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let response = client
        .post(url)
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// A serving channel on `upstream`, an idle one with two keys, and an API
/// key; returns the API key.
async fn provision(client: &reqwest::Client, base: &str, upstream: &FakeUpstream) -> String {
    post(
        client,
        format!("{base}/api/channels"),
        json!({"name": "serving", "base_url": upstream.base_url(), "key": SERVING_KEY,
               "models": ["gpt-4o-mini"]}),
    )
    .await;
    post(
        client,
        format!("{base}/api/channels"),
        json!({"name": "idle", "base_url": "http://127.0.0.1:9/v1", "key": IDLE_KEYS.join("\n"),
               "models": ["other-model"]}),
    )
    .await;
    let token = post(client, format!("{base}/api/tokens"), json!({"name": "c"})).await;
    token["key"].as_str().unwrap().to_string()
}

async fn chat(client: &reqwest::Client, base: &str, api_key: &str) -> reqwest::StatusCode {
    client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(api_key)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
}

/// The `sluicegate.db*` files (database, WAL, shared memory) in `dir`.
fn database_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("sluicegate.db"))
        })
        .collect()
}

fn contains(bytes: &[u8], needle: &str) -> bool {
    bytes
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// A channel created through the admin API is on disk only sealed: no
/// database file holds its key, while running or after a stop. The key
/// file is private; after a restart the relay sends the right key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_sealed_on_disk_and_serve_after_a_restart() {
    let upstream = FakeUpstream::start("sealed").await.unwrap();
    sluicegate::upstream::install_tls_provider();
    let client = reqwest::Client::new();
    let temp = tempfile::tempdir().unwrap();
    let mut first = start(temp.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(temp.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let base = format!("http://{}", first.addr);
    let api_key = provision(&client, &base, &upstream).await;
    assert_eq!(chat(&client, &base, &api_key).await, 200);
    let scan = |when: &str| {
        let mut seen_base_url = false;
        for file in database_files(temp.path()) {
            let bytes = std::fs::read(&file).unwrap();
            // Control: the scan sees the channel rows (unsealed columns).
            seen_base_url |= contains(&bytes, &upstream.base_url());
            for key in [SERVING_KEY, IDLE_KEYS[0], IDLE_KEYS[1]] {
                assert!(!contains(&bytes, key), "{key} in {} {when}", file.display());
            }
        }
        assert!(seen_base_url, "the scan must see the channel rows {when}");
    };
    scan("while running");
    assert!(first.terminate().success(), "{}", first.output());
    scan("after a stop");

    let second = start(temp.path());
    let base = format!("http://{}", second.addr);
    assert_eq!(chat(&client, &base, &api_key).await, 200);
    assert_eq!(
        upstream.auths(),
        [
            format!("Bearer {SERVING_KEY}"),
            format!("Bearer {SERVING_KEY}")
        ]
    );
    for output in [first.output(), second.output()] {
        assert!(!output.contains(SERVING_KEY), "a key was logged:\n{output}");
    }
}

/// With its key file gone, a database holding sealed keys does not start,
/// says why, and is left as it was: the restored key file starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_file_stops_the_start() {
    let upstream = FakeUpstream::start("missing").await.unwrap();
    sluicegate::upstream::install_tls_provider();
    let client = reqwest::Client::new();
    let temp = tempfile::tempdir().unwrap();
    let mut first = start(temp.path());
    let api_key = provision(&client, &format!("http://{}", first.addr), &upstream).await;
    assert!(first.terminate().success(), "{}", first.output());

    let key_file = temp.path().join(KEY_FILE);
    let saved = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let (code, stderr) = failed_start(temp.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("secret.key is missing"), "{stderr}");
    assert!(stderr.contains("restore it from your backup"), "{stderr}");
    assert!(!key_file.exists(), "no new key may replace the lost one");

    write_private(&key_file, &saved);
    let second = start(temp.path());
    assert_eq!(
        chat(&client, &format!("http://{}", second.addr), &api_key).await,
        200
    );
    assert_eq!(upstream.last_auth(), Some(format!("Bearer {SERVING_KEY}")));
}

/// A key file readable by others, or not 64 hex digits, stops the start.
#[cfg(unix)]
#[test]
fn a_loose_or_malformed_key_file_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap();
    let key_file = temp.path().join(KEY_FILE);
    write_private(&key_file, format!("{}\n", "ab".repeat(32)).as_bytes());
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stderr) = failed_start(temp.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("mode 0644, wider than 0600"), "{stderr}");

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&key_file, "not a key\n").unwrap();
    let (_, stderr) = failed_start(temp.path());
    assert!(
        stderr.contains("must hold exactly 64 hex digits"),
        "{stderr}"
    );
    assert!(!stderr.contains("not a key"), "{stderr}");
}

fn write_private(path: &Path, contents: &[u8]) {
    std::fs::write(path, contents).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}
