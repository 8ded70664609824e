//! `sluicegate import new-api` against the real binary: a fixture database
//! built with new-api's schema (`model/channel.go`, `model/token.go`), a dry
//! run, a real run and a re-run, then the gateway on that data dir serving
//! an imported `sk-` key end-to-end and enforcing the carried daily limit.

use std::path::Path;

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use crate::support::process::{Process, run_to_exit};
use crate::support::upstream::FakeUpstream;

const ADMIN: &str = "import-admin-token";
/// Stored keys: 48 characters, without the `sk-` clients send.
const KEY_VIP: &str = "VipVipVipVipVipVipVipVipVipVipVipVipVipVipVipVip";
const KEY_LIMITED: &str = "LimLimLimLimLimLimLimLimLimLimLimLimLimLimLimLim";
const KEY_OFF: &str = "OffOffOffOffOffOffOffOffOffOffOffOffOffOffOffOff";
const KEY_GONE: &str = "GoneGoneGoneGoneGoneGoneGoneGoneGoneGoneGoneGone";

/// new-api's tables as gorm creates them on SQLite (the columns the import
/// reads and a few it ignores).
const SCHEMA: &str = "
CREATE TABLE channels (
  id integer PRIMARY KEY AUTOINCREMENT, type integer DEFAULT 0, key text NOT NULL,
  open_ai_organization text, test_model text, status integer DEFAULT 1, name text,
  weight integer DEFAULT 0, created_time integer, test_time integer, response_time integer,
  base_url text DEFAULT '', other text, balance real, balance_updated_time integer,
  models text, `group` varchar(64) DEFAULT 'default', used_quota integer DEFAULT 0,
  model_mapping text, status_code_mapping varchar(1024) DEFAULT '', priority integer DEFAULT 0,
  auto_ban integer DEFAULT 1, other_info text, tag text, setting text, param_override text,
  header_override text, remark varchar(255), channel_info json, settings text);
CREATE TABLE tokens (
  id integer PRIMARY KEY AUTOINCREMENT, user_id integer, key varchar(128), status integer DEFAULT 1,
  name text, created_time integer, accessed_time integer, expired_time integer DEFAULT -1,
  remain_quota integer DEFAULT 0, unlimited_quota numeric, model_limits_enabled numeric,
  model_limits text, allow_ips text DEFAULT '', used_quota integer DEFAULT 0,
  `group` text DEFAULT '', cross_group_retry numeric, billing_type integer DEFAULT 0,
  deleted_at datetime);
CREATE UNIQUE INDEX idx_tokens_key ON tokens(key);
CREATE TABLE users (
  id integer PRIMARY KEY AUTOINCREMENT, username text, password text, display_name text,
  role integer DEFAULT 1, status integer DEFAULT 1, quota integer DEFAULT 0,
  `group` varchar(64) DEFAULT 'default', deleted_at datetime);
";

/// A `channels` row of the fixture (the columns that vary).
struct ChannelFixture {
    id: i64,
    kind: i64,
    key: &'static str,
    status: i64,
    name: &'static str,
    base_url: String,
    other: &'static str,
    models: &'static str,
    mapping: &'static str,
    setting: &'static str,
}

impl ChannelFixture {
    fn new(id: i64, kind: i64, key: &'static str, name: &'static str) -> ChannelFixture {
        ChannelFixture {
            id,
            kind,
            key,
            status: 1,
            name,
            base_url: String::new(),
            other: "",
            models: "m",
            mapping: "",
            setting: "",
        }
    }
}

/// A `tokens` row of the fixture, owned by user 1.
struct TokenFixture {
    key: &'static str,
    status: i64,
    name: &'static str,
    expired_time: i64,
    limits: Option<&'static str>,
    group: &'static str,
    deleted_at: Option<&'static str>,
}

impl TokenFixture {
    fn new(key: &'static str, name: &'static str) -> TokenFixture {
        TokenFixture {
            key,
            status: 1,
            name,
            expired_time: -1,
            limits: None,
            group: "",
            deleted_at: None,
        }
    }
}

/// Six channels (three importable, three not) and four keys (one deleted).
fn build_fixture(path: &Path, upstream_host: &str) {
    let main = ChannelFixture {
        base_url: upstream_host.to_string(),
        models: "gpt-4o-mini,alias",
        mapping: r#"{"alias":"gpt-4o-mini"}"#,
        setting: r#"{"daily_token_limit":40,"force_format":false}"#,
        ..ChannelFixture::new(1, 1, "sk-up-a\nsk-up-b\nsk-up-dead", "openai main")
    };
    let azure = ChannelFixture {
        status: 2,
        base_url: "https://res.openai.azure.com".into(),
        other: "2024-06-01",
        models: "gpt-3.5-turbo",
        ..ChannelFixture::new(2, 3, "azure-key", "azure old")
    };
    let claude = ChannelFixture {
        status: 3,
        models: "claude-3-5-sonnet",
        setting: "{}",
        ..ChannelFixture::new(3, 14, "sk-ant", "claude")
    };
    let gemini = ChannelFixture::new(4, 24, "g-key", "gemini");
    let deepseek = ChannelFixture {
        mapping: "{oops",
        ..ChannelFixture::new(5, 43, "ds-key", "deepseek broken")
    };
    let custom = ChannelFixture {
        base_url: "https://proxy.example/{model}/chat/completions".into(),
        ..ChannelFixture::new(6, 8, "c-key", "custom per model")
    };
    let db = Connection::open(path).unwrap();
    db.execute_batch(SCHEMA).unwrap();
    for row in [main, azure, claude, gemini, deepseek, custom] {
        let main = row.id == 1;
        let info = if main {
            r#"{"is_multi_key":true,"multi_key_size":3,"multi_key_status_list":{"2":3},"multi_key_mode":"polling"}"#
        } else {
            r#"{"is_multi_key":false}"#
        };
        db.execute(
            "INSERT INTO channels (id, type, key, status, name, weight, created_time, base_url, \
             other, models, `group`, model_mapping, priority, auto_ban, setting, channel_info) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1700000000, ?7, ?8, ?9, ?10, ?11, ?12, 1, ?13, ?14)",
            params![
                row.id,
                row.kind,
                row.key,
                row.status,
                row.name,
                if main { 5 } else { 0 },
                row.base_url,
                row.other,
                row.models,
                if main { "default,vip" } else { "default" },
                row.mapping,
                if main { 10 } else { 0 },
                row.setting,
                info,
            ],
        )
        .unwrap();
    }
    db.execute(
        "INSERT INTO users (id, username, status, `group`) VALUES (1, 'alice', 1, 'vip')",
        [],
    )
    .unwrap();
    let tokens = [
        TokenFixture::new(KEY_VIP, "vip app"),
        TokenFixture {
            expired_time: 4_102_444_800,
            limits: Some("alias"),
            group: "default",
            ..TokenFixture::new(KEY_LIMITED, "alias only")
        },
        TokenFixture {
            status: 2,
            ..TokenFixture::new(KEY_OFF, "switched off")
        },
        TokenFixture {
            deleted_at: Some("2025-01-01 00:00:00"),
            ..TokenFixture::new(KEY_GONE, "deleted")
        },
    ];
    for row in tokens {
        // A key with an allow-list has a finite quota, the others are unlimited.
        let limited = row.limits.is_some();
        db.execute(
            "INSERT INTO tokens (user_id, key, status, name, expired_time, unlimited_quota, \
             remain_quota, model_limits_enabled, model_limits, `group`, deleted_at) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5, 500, ?6, ?7, ?8, ?9)",
            params![
                row.key,
                row.status,
                row.name,
                row.expired_time,
                !limited,
                limited,
                row.limits.unwrap_or(""),
                row.group,
                row.deleted_at,
            ],
        )
        .unwrap();
    }
}

fn import(data_dir: &Path, fixture: &Path, extra: &[&str]) -> (bool, String, String) {
    let data = data_dir.display().to_string();
    let sqlite = fixture.display().to_string();
    let mut args = vec![
        "import",
        "new-api",
        "--sqlite",
        &sqlite,
        "--data-dir",
        &data,
    ];
    args.extend_from_slice(extra);
    let (status, stdout, stderr) = run_to_exit(&args, &[]);
    (status.success(), stdout, stderr)
}

fn serve(data_dir: &Path) -> Process {
    let dir = data_dir.display().to_string();
    Process::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
            &dir,
        ],
        &[("SLUICEGATE_ADMIN_TOKEN", ADMIN)],
    )
}

async fn chat(client: &reqwest::Client, base: &str, key: &str, model: &str) -> reqwest::Response {
    client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(format!("sk-{key}"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

/// Dry run writes nothing; the real run creates the importable channels and
/// keys and lists the rest with reasons; a re-run changes nothing; the
/// gateway then serves the imported keys, with their group, allow-list and
/// status, and enforces the carried daily limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_channels_and_keys_that_keep_working() {
    let upstream = FakeUpstream::start("imported").await.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let fixture = temp.path().join("one-api.db");
    // new-api's OpenAI base URL has no `/v1`; the import adds it.
    let host = upstream.base_url().trim_end_matches("/v1").to_string();
    build_fixture(&fixture, &host);
    let data_dir = temp.path().join("data");

    let (ok, dry, stderr) = import(&data_dir, &fixture, &["--dry-run"]);
    assert!(ok, "{stderr}");
    assert!(
        !data_dir.join("sluicegate.db").exists(),
        "a dry run writes nothing"
    );
    assert!(
        dry.contains("channels: 3 to create, 0 to update, 0 unchanged, 3 skipped"),
        "{dry}"
    );
    assert!(
        dry.contains("keys: 3 to create, 0 to update, 0 unchanged, 1 skipped"),
        "{dry}"
    );
    assert!(
        dry.contains("dry run: nothing written (6 change(s) would be)"),
        "{dry}"
    );
    for reason in [
        "new-api type 24 is not an OpenAI-compatible, Azure or Anthropic channel",
        "model_mapping is not valid JSON",
        "its custom URL depends on the model",
        "it was deleted in the source",
        "1 of 3 keys were disabled in the source and left out",
    ] {
        assert!(dry.contains(reason), "missing {reason:?} in\n{dry}");
    }
    for secret in ["sk-up-a", "sk-ant", "azure-key", KEY_VIP] {
        assert!(!dry.contains(secret), "the report shows a key: {dry}");
    }

    let (ok, real, stderr) = import(&data_dir, &fixture, &[]);
    assert!(ok, "{stderr}");
    // The same report, in the past tense.
    assert_eq!(
        real,
        dry.replace("to create", "created")
            .replace("to update", "updated")
            .replace(
                "dry run: nothing written (6 change(s) would be)",
                "applied: 6 change(s) written"
            )
    );
    assert!(real.contains("applied: 6 change(s) written"), "{real}");

    let (ok, again, stderr) = import(&data_dir, &fixture, &[]);
    assert!(ok, "{stderr}");
    assert!(
        again.contains("channels: 0 created, 0 updated, 3 unchanged, 3 skipped"),
        "{again}"
    );
    assert!(
        again.contains("keys: 0 created, 0 updated, 3 unchanged, 1 skipped"),
        "{again}"
    );
    assert!(again.contains("applied: 0 change(s) written"), "{again}");

    let server = serve(&data_dir);
    let base = format!("http://{}", server.addr);
    // reqwest is built without a default TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();

    // The import refuses a data dir a server holds.
    let (ok, _, stderr) = import(&data_dir, &fixture, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("Is a Sluicegate server running"),
        "{stderr}"
    );

    let channels: Value = client
        .get(format!("{base}/api/channels"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = channels["items"].as_array().unwrap();
    let by_name = |name: &str| {
        items
            .iter()
            .find(|item| item["name"] == name)
            .unwrap_or_else(|| panic!("no channel {name} in {channels}"))
            .clone()
    };
    assert_eq!(items.len(), 3, "{channels}");
    let main = by_name("openai main");
    assert_eq!(main["type"], "openai");
    assert_eq!(main["base_url"], upstream.base_url());
    assert_eq!(main["key_count"], 2);
    assert_eq!(main["groups"], json!(["default", "vip"]));
    assert_eq!(
        (main["priority"].as_i64(), main["weight"].as_i64()),
        (Some(10), Some(5))
    );
    assert_eq!(main["model_mapping"], json!({"alias": "gpt-4o-mini"}));
    assert_eq!(main["settings"]["daily_token_limit"], 40);
    assert_eq!(main["settings"]["imported_from"], "new-api:1");
    assert_eq!(main["daily_usage"]["limit"], 40);
    let azure = by_name("azure old");
    assert_eq!(
        (&azure["type"], &azure["status"]),
        (&json!("azure"), &json!("disabled"))
    );
    assert_eq!(azure["settings"]["api_version"], "2024-06-01");
    assert_eq!(
        azure["model_mapping"],
        json!({"gpt-3.5-turbo": "gpt-35-turbo"})
    );
    let claude = by_name("claude");
    assert_eq!(claude["base_url"], "https://api.anthropic.com");
    assert_eq!(claude["status"], "auto_disabled");

    // The same `sk-` string works; its group (`vip`, the owner's) reaches the channel.
    let response = chat(&client, &base, KEY_VIP, "gpt-4o-mini").await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert!(
        reply["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("imported"),
        "{reply}"
    );
    assert!(
        upstream
            .last_auth()
            .is_some_and(|auth| auth == "Bearer sk-up-a" || auth == "Bearer sk-up-b"),
        "{:?}",
        upstream.last_auth()
    );
    // The allow-list holds, and the model mapping applies.
    let refused = chat(&client, &base, KEY_LIMITED, "gpt-4o-mini").await;
    assert_eq!(refused.status(), 404);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    let allowed = chat(&client, &base, KEY_LIMITED, "alias").await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(upstream.last_body().unwrap()["model"], "gpt-4o-mini");
    // A disabled key stays disabled, a deleted one does not exist.
    assert_eq!(
        chat(&client, &base, KEY_OFF, "gpt-4o-mini").await.status(),
        403
    );
    assert_eq!(
        chat(&client, &base, KEY_GONE, "gpt-4o-mini").await.status(),
        401
    );

    // The carried limit: 18 tokens a reply, so the third reply crosses 40
    // and the next request is refused.
    let mut refused = None;
    for _ in 0..10 {
        let response = chat(&client, &base, KEY_VIP, "gpt-4o-mini").await;
        if response.status() != 200 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("the daily limit never refused a request");
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "daily_token_limit_exhausted",
        "{body}"
    );
    assert_eq!(upstream.reported_tokens(), 3 * 18);
}

/// Bad sources and a cluster node's data dir are clear errors, and nothing
/// is written.
#[test]
fn bad_sources_are_clear_errors() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let (ok, _, stderr) = import(&data_dir, &temp.path().join("missing.db"), &[]);
    assert!(!ok);
    assert!(stderr.contains("missing.db: no such file"), "{stderr}");
    let text = temp.path().join("notes.txt");
    std::fs::write(&text, "not a database at all, just words and more words").unwrap();
    let (ok, _, stderr) = import(&data_dir, &text, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("not a readable SQLite database"),
        "{stderr}"
    );
    let other = temp.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE channels (id integer, name text)")
        .unwrap();
    let (ok, _, stderr) = import(&data_dir, &other, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("not a new-api or one-api database"),
        "{stderr}"
    );
    assert!(!data_dir.join("sluicegate.db").exists());
    // A cluster node's data dir is refused before the source is even read.
    std::fs::create_dir_all(data_dir.join("raft.sled")).unwrap();
    let (ok, _, stderr) = import(&data_dir, &other, &[]);
    assert!(!ok);
    assert!(stderr.contains("belongs to a cluster node"), "{stderr}");
    assert!(!data_dir.join("sluicegate.db").exists());
}
