//! The admin API over a real socket: CRUD, masking, filters, validation
//! errors with exact field paths, authentication and the OpenAPI document.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluicegate::model::{ChannelId, RequestLog, TokenId};

use crate::support::gateway::TestGateway;

const UPSTREAM_KEY_A: &str = "sk-upstream-secret-alpha-1111";
const UPSTREAM_KEY_B: &str = "sk-upstream-secret-bravo-2222";

/// A fresh gateway. The rustls provider is installed first (as `main` does),
/// since reqwest is built without a default provider; installing twice is a no-op.
async fn start() -> TestGateway {
    let _ = rustls::crypto::ring::default_provider().install_default();
    TestGateway::start().await
}

fn channel_body(name: &str) -> Value {
    json!({
        "name": name,
        "base_url": "https://api.example.com/v1",
        "key": format!("{UPSTREAM_KEY_A}\n\n  {UPSTREAM_KEY_B}  \n"),
        "models": ["gpt-4o", "gpt-4o-mini"],
    })
}

/// Sends an authenticated request with an optional JSON body; returns status and JSON (Null if empty).
async fn call(
    gateway: &TestGateway,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = gateway.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, value)
}

/// Sends an authenticated request with a raw body.
async fn call_raw(
    gateway: &TestGateway,
    method: Method,
    path: &str,
    body: &str,
) -> (StatusCode, Value) {
    let response = gateway
        .admin(method, path)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Asserts a 400 in the admin shape naming `field`.
fn assert_invalid(status: StatusCode, body: &Value, field: Option<&str>) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
}

fn assert_no_full_upstream_key(body: &Value) {
    let text = body.to_string();
    assert!(
        !text.contains(UPSTREAM_KEY_A) && !text.contains(UPSTREAM_KEY_B),
        "key leaked: {text}"
    );
}

/// A channel can be created, read, listed, patched and deleted, with defaults filled in.
#[tokio::test]
async fn channel_crud_round_trip() {
    let gateway = start().await;
    let created = gateway.create_channel(channel_body("alpha")).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "alpha");
    assert_eq!(created["type"], "openai");
    assert_eq!(created["groups"], json!(["default"]));
    assert_eq!(created["priority"], 0);
    assert_eq!(created["weight"], 1);
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["settings"], json!({}));
    assert_eq!(created["model_mapping"], json!({}));
    assert_eq!(created["key_count"], 2);
    for field in ["created_at", "updated_at"] {
        DateTime::parse_from_rfc3339(created[field].as_str().unwrap()).unwrap();
    }

    let path = format!("/api/channels/{id}");
    let (status, fetched) = call(&gateway, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);

    let patch = json!({"name": "alpha-2", "priority": 5, "status": "disabled", "model_mapping": {"gpt-4o": "gpt-4o-2024"}});
    let (status, patched) = call(&gateway, Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "alpha-2");
    assert_eq!(patched["priority"], 5);
    assert_eq!(patched["status"], "disabled");
    assert_eq!(patched["model_mapping"], json!({"gpt-4o": "gpt-4o-2024"}));
    assert_eq!(patched["models"], created["models"]);
    assert_eq!(patched["created_at"], created["created_at"]);

    let (status, list) = call(&gateway, Method::GET, "/api/channels", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0], patched);

    let (status, body) = call(&gateway, Method::DELETE, &path, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, body) = call(&gateway, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = call(&gateway, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Upstream keys are masked in the create response, GET, list and PATCH response, and never appear whole.
#[tokio::test]
async fn channel_keys_are_masked_in_every_read() {
    let gateway = start().await;
    let created = gateway.create_channel(channel_body("masked")).await;
    let masked = "sk-…1111\nsk-…2222";
    assert_eq!(created["key"], masked);
    assert_no_full_upstream_key(&created);
    let path = format!("/api/channels/{}", created["id"]);

    let (_, fetched) = call(&gateway, Method::GET, &path, None).await;
    assert_eq!(fetched["key"], masked);
    assert_no_full_upstream_key(&fetched);

    let (_, list) = call(&gateway, Method::GET, "/api/channels", None).await;
    assert_eq!(list["items"][0]["key"], masked);
    assert_no_full_upstream_key(&list);

    let (_, patched) = call(&gateway, Method::PATCH, &path, Some(json!({"weight": 3}))).await;
    assert_eq!(
        patched["key"], masked,
        "an omitted key keeps the stored keys"
    );
    assert_eq!(patched["key_count"], 2);
    assert_no_full_upstream_key(&patched);

    let replacement = "sk-replacement-key-9999";
    let (_, rekeyed) = call(
        &gateway,
        Method::PATCH,
        &path,
        Some(json!({"key": replacement})),
    )
    .await;
    assert_eq!(rekeyed["key"], "sk-…9999");
    assert_eq!(rekeyed["key_count"], 1);
    assert!(!rekeyed.to_string().contains(replacement));
}

/// The list filters q, group, model and status combine with pagination, and bad parameters are 400s naming them.
#[tokio::test]
async fn channel_list_filters_and_pagination() {
    let gateway = start().await;
    gateway
        .create_channel(json!({"name": "OpenAI main", "base_url": "https://api.openai.com/v1", "key": "sk-aaaaaaaaaaaa",
            "models": ["gpt-4o"], "groups": ["default", "vip"]}))
        .await;
    gateway
        .create_channel(json!({"name": "local", "base_url": "http://localhost:11434/v1", "key": "sk-bbbbbbbbbbbb",
            "models": ["llama3"], "status": "disabled"}))
        .await;
    gateway
        .create_channel(json!({"name": "gemini", "base_url": "https://generativelanguage.googleapis.com/v1beta/openai",
            "key": "sk-cccccccccccc", "models": ["gemini-2.0", "gpt-4o"], "groups": ["vip"]}))
        .await;

    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let cases = [
        ("", vec!["OpenAI main", "local", "gemini"]),
        ("?q=openai", vec!["OpenAI main", "gemini"]),
        ("?q=LOCALHOST", vec!["local"]),
        ("?group=vip", vec!["OpenAI main", "gemini"]),
        ("?model=gpt-4o", vec!["OpenAI main", "gemini"]),
        ("?status=disabled", vec!["local"]),
        ("?group=vip&model=gemini-2.0", vec!["gemini"]),
        ("?group=nobody", vec![]),
    ];
    for (query, expected) in cases {
        let (status, list) = call(
            &gateway,
            Method::GET,
            &format!("/api/channels{query}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert_eq!(names(&list), expected, "{query}");
        assert_eq!(list["total"], expected.len(), "{query}");
    }

    let (_, page) = call(
        &gateway,
        Method::GET,
        "/api/channels?per_page=2&page=2",
        None,
    )
    .await;
    assert_eq!(names(&page), ["gemini"]);
    assert_eq!(page["total"], 3);
    let (_, beyond) = call(
        &gateway,
        Method::GET,
        "/api/channels?per_page=2&page=9",
        None,
    )
    .await;
    assert_eq!(
        (
            beyond["items"].as_array().unwrap().len(),
            beyond["total"].as_u64()
        ),
        (0, Some(3))
    );

    let bad = [
        ("?per_page=0", "per_page"),
        ("?per_page=501", "per_page"),
        ("?per_page=-1", "per_page"),
        ("?page=0", "page"),
        ("?page=abc", "page"),
        ("?status=bogus", "status"),
        ("?colour=red", "colour"),
    ];
    for (query, field) in bad {
        let (status, body) = call(
            &gateway,
            Method::GET,
            &format!("/api/channels{query}"),
            None,
        )
        .await;
        assert_invalid(status, &body, Some(field));
    }
    let (status, _) = call(&gateway, Method::GET, "/api/channels?per_page=500", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Invalid channel bodies are 400s whose `field` is the exact path at fault, and nothing is stored.
#[tokio::test]
async fn channel_validation_names_the_field() {
    let gateway = start().await;
    let with = |field: &str, value: Value| {
        let mut body = channel_body("v");
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = channel_body("v");
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases = [
        (with("models", json!([])), "models"),
        (with("models", json!(["gpt-4o", ""])), "models.1"),
        (with("models", json!(["gpt-4o", 7])), "models.1"),
        (with("base_url", json!("not a url")), "base_url"),
        (with("base_url", json!("ftp://example.com/v1")), "base_url"),
        (
            with("base_url", json!("https://example.com/v1?x=1")),
            "base_url",
        ),
        (with("weight", json!(-1)), "weight"),
        (with("weight", json!(1_000_001)), "weight"),
        (with("priority", json!("high")), "priority"),
        (with("priority", json!(3_000_000_000_i64)), "priority"),
        (with("name", json!("")), "name"),
        (with("key", json!("\n \n")), "key"),
        (with("status", json!("sleeping")), "status"),
        (with("type", json!("gemini")), "type"),
        (with("settings", json!([1])), "settings"),
        (
            with("model_mapping", json!({"gpt-4o": 3})),
            "model_mapping.gpt-4o",
        ),
        (with("foo", json!(1)), "foo"),
        (without("models"), "models"),
        (without("key"), "key"),
    ];
    for (body, field) in cases {
        let (status, error) =
            call(&gateway, Method::POST, "/api/channels", Some(body.clone())).await;
        assert_invalid(status, &error, Some(field));
        assert!(!error.to_string().contains(UPSTREAM_KEY_A), "{error}");
    }
    for raw in ["{", "not json", "[1,2]", ""] {
        let (status, error) = call_raw(&gateway, Method::POST, "/api/channels", raw).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw:?}: {error}");
        assert_eq!(error["error"]["code"], "invalid_request", "{raw:?}");
    }
    let (_, list) = call(&gateway, Method::GET, "/api/channels", None).await;
    assert_eq!(list["total"], 0);
}

/// A rejected PATCH changes nothing stored, whatever part of it was wrong.
#[tokio::test]
async fn rejected_channel_patch_leaves_the_channel_unchanged() {
    let gateway = start().await;
    let created = gateway.create_channel(channel_body("steady")).await;
    let path = format!("/api/channels/{}", created["id"]);
    let cases = [
        (
            json!({"name": "renamed", "base_url": "mailto:x@example.com"}),
            "base_url",
        ),
        (json!({"name": "renamed", "models": []}), "models"),
        (json!({"name": "renamed", "weight": -5}), "weight"),
        (json!({"name": "renamed", "foo": true}), "foo"),
        (json!({"name": "renamed", "priority": "1"}), "priority"),
        (json!({"name": "renamed", "key": ""}), "key"),
    ];
    for (patch, field) in cases {
        let (status, error) = call(&gateway, Method::PATCH, &path, Some(patch)).await;
        assert_invalid(status, &error, Some(field));
        let (_, now) = call(&gateway, Method::GET, &path, None).await;
        assert_eq!(now, created, "after a rejected patch of {field}");
    }
    let (status, error) = call_raw(&gateway, Method::PATCH, &path, "{\"name\":").await;
    assert_invalid(status, &error, None);
}

/// Unknown settings keys are kept, and PATCH merges settings key by key, with null removing a key.
#[tokio::test]
async fn settings_keep_unknown_keys_and_merge_on_patch() {
    let gateway = start().await;
    let mut body = channel_body("settings");
    body["settings"] = json!({"future_option": {"nested": [1, 2]}, "drop_me": "x", "keep": 1});
    let created = gateway.create_channel(body).await;
    assert_eq!(
        created["settings"],
        json!({"future_option": {"nested": [1, 2]}, "drop_me": "x", "keep": 1})
    );

    let path = format!("/api/channels/{}", created["id"]);
    let patch = json!({"settings": {"drop_me": null, "added": true, "keep": 2}});
    let (status, patched) = call(&gateway, Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let expected = json!({"future_option": {"nested": [1, 2]}, "added": true, "keep": 2});
    assert_eq!(patched["settings"], expected);
    let (_, fetched) = call(&gateway, Method::GET, &path, None).await;
    assert_eq!(fetched["settings"], expected);
}

/// A token's full key appears only in the create response; later reads show the prefix only.
#[tokio::test]
async fn token_crud_round_trip_shows_the_full_key_once() {
    let gateway = start().await;
    let (created, key) = gateway.create_token(json!({"name": "ci"})).await;
    assert!(key.starts_with("sk-") && key.len() == 51, "{key}");
    assert!(key[3..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(created["key_prefix"], &key[..7]);
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["group"], "default");
    assert_eq!(created["models"], Value::Null);
    assert_eq!(created["channel_id"], Value::Null);
    assert_eq!(created["expires_at"], Value::Null);
    assert_eq!(created["last_used_at"], Value::Null);
    let id = created["id"].as_i64().unwrap();
    let path = format!("/api/tokens/{id}");

    let (status, fetched) = call(&gateway, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        fetched.get("key").is_none() && !fetched.to_string().contains(&key),
        "{fetched}"
    );
    assert_eq!(fetched["key_prefix"], created["key_prefix"]);

    let channel = gateway.create_channel(channel_body("bound")).await;
    let patch = json!({"name": "ci-2", "expires_at": "2030-01-01T08:00:00+08:00", "models": ["gpt-4o", "gpt-4o"],
        "channel_id": channel["id"], "status": "disabled", "group": "vip"});
    let (status, patched) = call(&gateway, Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "ci-2");
    let expires = DateTime::parse_from_rfc3339(patched["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires,
        "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(patched["models"], json!(["gpt-4o"]));
    assert_eq!(patched["channel_id"], channel["id"]);
    assert_eq!(
        (patched["status"].as_str(), patched["group"].as_str()),
        (Some("disabled"), Some("vip"))
    );
    assert!(!patched.to_string().contains(&key));

    let clear = json!({"expires_at": null, "models": null, "channel_id": null});
    let (_, cleared) = call(&gateway, Method::PATCH, &path, Some(clear)).await;
    assert_eq!(
        (
            &cleared["expires_at"],
            &cleared["models"],
            &cleared["channel_id"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(cleared["name"], "ci-2", "absent fields are kept");

    let (_, list) = call(&gateway, Method::GET, "/api/tokens?q=CI", None).await;
    assert_eq!(list["total"], 1);
    assert!(!list.to_string().contains(&key));
    let (_, none) = call(&gateway, Method::GET, "/api/tokens?q=nomatch", None).await;
    assert_eq!(none, json!({"items": [], "total": 0}));

    let (status, _) = call(&gateway, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&gateway, Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Invalid token bodies name the field; a rejected PATCH leaves the token unchanged.
#[tokio::test]
async fn token_validation_names_the_field() {
    let gateway = start().await;
    let cases = [
        (
            json!({"name": "t", "expires_at": "next tuesday"}),
            "expires_at",
        ),
        (
            json!({"name": "t", "expires_at": "2030-01-01"}),
            "expires_at",
        ),
        (json!({"name": "t", "channel_id": 999}), "channel_id"),
        (json!({"name": "t", "channel_id": "one"}), "channel_id"),
        (json!({"name": ""}), "name"),
        (json!({}), "name"),
        (json!({"name": "t", "models": []}), "models"),
        (json!({"name": "t", "status": "auto_disabled"}), "status"),
        (json!({"name": "t", "key": "sk-mine"}), "key"),
    ];
    for (body, field) in cases {
        let (status, error) = call(&gateway, Method::POST, "/api/tokens", Some(body)).await;
        assert_invalid(status, &error, Some(field));
    }
    let (created, _) = gateway.create_token(json!({"name": "steady"})).await;
    let path = format!("/api/tokens/{}", created["id"]);
    let (before_status, before) = call(&gateway, Method::GET, &path, None).await;
    assert_eq!(before_status, StatusCode::OK);
    for (patch, field) in [
        (json!({"name": "x", "channel_id": 424242}), "channel_id"),
        (json!({"name": "x", "expires_at": "soon"}), "expires_at"),
        (json!({"name": "x", "bogus": 1}), "bogus"),
    ] {
        let (status, error) = call(&gateway, Method::PATCH, &path, Some(patch)).await;
        assert_invalid(status, &error, Some(field));
        let (_, after) = call(&gateway, Method::GET, &path, None).await;
        assert_eq!(after, before);
    }
}

/// A channel that an API key is bound to cannot be deleted until the key is unbound.
#[tokio::test]
async fn bound_channel_delete_is_a_conflict() {
    let gateway = start().await;
    let channel = gateway.create_channel(channel_body("bound")).await;
    let (token, _) = gateway
        .create_token(json!({"name": "b", "channel_id": channel["id"]}))
        .await;
    let channel_path = format!("/api/channels/{}", channel["id"]);
    let (status, error) = call(&gateway, Method::DELETE, &channel_path, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "conflict");
    let token_path = format!("/api/tokens/{}", token["id"]);
    call(
        &gateway,
        Method::PATCH,
        &token_path,
        Some(json!({"channel_id": null})),
    )
    .await;
    let (status, _) = call(&gateway, Method::DELETE, &channel_path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// Every admin route answers 401 in the admin error shape without the token, with a wrong one, or with another scheme.
#[tokio::test]
async fn every_admin_route_requires_the_admin_token() {
    let gateway = start().await;
    let mut routes = sluicegate::admin::route_table();
    routes.push((Method::GET, "/api/no-such-route"));
    // Signing in is how credentials are obtained; `session.rs` covers it.
    routes.retain(|(_, path)| *path != "/api/session");
    for (method, path) in routes {
        let url = gateway.url(&path.replace("{id}", "1"));
        let attempts = [
            gateway.client.request(method.clone(), &url),
            gateway
                .client
                .request(method.clone(), &url)
                .bearer_auth("wrong-token"),
            gateway
                .client
                .request(method.clone(), &url)
                .basic_auth("admin", Some(&gateway.admin_token)),
        ];
        for attempt in attempts {
            let response = attempt.json(&json!({})).send().await.unwrap();
            // After 10 wrong tokens the address is locked out: 429, still no access.
            let status = response.status();
            let expected = if status == StatusCode::TOO_MANY_REQUESTS {
                "too_many_attempts"
            } else {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                "invalid_api_key"
            };
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], expected, "{method} {path}");
            assert_eq!(body["error"]["field"], Value::Null);
        }
    }
}

/// Unknown ids are 404 and non-integer ids are 400, both in the admin error shape.
#[tokio::test]
async fn unknown_ids_are_404_and_bad_ids_400() {
    let gateway = start().await;
    for resource in ["channels", "tokens"] {
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let body = (method == Method::PATCH).then(|| json!({}));
            let (status, error) = call(
                &gateway,
                method.clone(),
                &format!("/api/{resource}/987654"),
                body.clone(),
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {resource}");
            assert_eq!(error["error"]["code"], "not_found");
            let (status, error) = call(
                &gateway,
                method.clone(),
                &format!("/api/{resource}/abc"),
                body,
            )
            .await;
            assert_invalid(status, &error, Some("id"));
        }
    }
    let (status, error) = call(&gateway, Method::GET, "/api/nothing-here", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["error"]["code"], "not_found");
}

fn log_row(request_id: &str, minute: u32, channel: i64, token: i64, model: &str) -> RequestLog {
    RequestLog {
        id: 0,
        time: format!("2025-03-01T10:{minute:02}:00Z").parse().unwrap(),
        request_id: request_id.to_string(),
        token_id: Some(TokenId(token)),
        channel_ids: vec![ChannelId(channel)],
        model: model.to_string(),
        upstream_model: Some(model.to_string()),
        endpoint: "/v1/chat/completions".to_string(),
        stream: false,
        status: 200,
        error_code: None,
        prompt_tokens: 1,
        completion_tokens: 2,
        total_tokens: 3,
        estimated: false,
        latency_ms: 10,
        ttft_ms: None,
    }
}

/// The logs list filters by channel, key, model and time range, pages, and rejects bad parameters by name.
#[tokio::test]
async fn logs_filter_and_validate() {
    let gateway = start().await;
    let state = &gateway.running.as_ref().unwrap().state;
    state
        .store
        .insert_logs(vec![
            log_row("r1", 1, 1, 10, "gpt-4o"),
            log_row("r2", 2, 2, 10, "gpt-4o"),
            log_row("r3", 3, 1, 20, "o3"),
            log_row("r4", 4, 1, 10, "o3"),
        ])
        .await
        .unwrap();
    let ids = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["request_id"].as_str().unwrap().to_string())
            .collect()
    };
    let cases = [
        ("", vec!["r4", "r3", "r2", "r1"]),
        ("?channel_id=1", vec!["r4", "r3", "r1"]),
        ("?token_id=20", vec!["r3"]),
        ("?model=gpt-4o", vec!["r2", "r1"]),
        (
            "?since=2025-03-01T10:02:00Z&until=2025-03-01T10:03:30Z",
            vec!["r3", "r2"],
        ),
        ("?channel_id=1&model=o3&token_id=10", vec!["r4"]),
    ];
    for (query, expected) in cases {
        let (status, list) = call(&gateway, Method::GET, &format!("/api/logs{query}"), None).await;
        assert_eq!(status, StatusCode::OK, "{query}: {list}");
        assert_eq!(ids(&list), expected, "{query}");
        assert_eq!(list["total"], expected.len(), "{query}");
    }
    let (_, page) = call(&gateway, Method::GET, "/api/logs?per_page=3&page=2", None).await;
    assert_eq!(
        (ids(&page), page["total"].as_u64()),
        (vec!["r1".to_string()], Some(4))
    );

    for (query, field) in [
        ("?since=yesterday", "since"),
        ("?until=2025-03-01", "until"),
        ("?page=abc", "page"),
        ("?per_page=1000", "per_page"),
        ("?channel_id=x", "channel_id"),
        ("?level=debug", "level"),
    ] {
        let (status, error) = call(&gateway, Method::GET, &format!("/api/logs{query}"), None).await;
        assert_invalid(status, &error, Some(field));
    }
}

/// /api/openapi.json documents every admin route (and the /v1 routes), and every documented admin route is served.
#[tokio::test]
async fn openapi_document_lists_every_route() {
    let gateway = start().await;
    let (status, document) = call(&gateway, Method::GET, "/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        document["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    let paths = document["paths"].as_object().unwrap();
    for (method, path) in sluicegate::admin::route_table() {
        let operation = &paths[path][method.as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {path} missing from the document"
        );
    }
    assert!(paths["/v1/chat/completions"]["post"].is_object());
    assert!(paths["/v1/models"]["get"].is_object());

    for (path, item) in paths.iter().filter(|(path, _)| path.starts_with("/api/")) {
        let methods = item.as_object().unwrap().keys();
        for method in
            methods.filter(|key| ["get", "post", "put", "patch", "delete"].contains(&key.as_str()))
        {
            let method: Method = method.to_uppercase().parse().unwrap();
            let (status, body) = call(
                &gateway,
                method.clone(),
                &path.replace("{id}", "1"),
                Some(json!({})),
            )
            .await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(
                body["error"]["message"], "no such admin API route",
                "{method} {path}"
            );
        }
    }
}
