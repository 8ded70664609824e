//! Channel health over real sockets: auto-disable on a 401 or a quota
//! message, `settings.auto_disable: false`, the channel test and the
//! periodic re-test, and the upstream model list.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{Value, json};

use crate::relay::Rig;
use crate::support::gateway::TestGateway;
use crate::support::poll::{self, PATIENCE};
use crate::support::upstream::FakeUpstream;
use crate::support::upstream::models::MODELS;

const QUOTA_BODY: &str = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;

async fn upstream(name: &str) -> FakeUpstream {
    FakeUpstream::start(name).await.unwrap()
}

/// An upstream that answers every request with `status` and `body`.
async fn fixed_upstream(
    status: StatusCode,
    body: &'static str,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .fallback(move || async move { (status, [("content-type", "application/json")], body) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

async fn channel_json(gateway: &TestGateway, id: i64) -> Value {
    let response = gateway
        .admin(Method::GET, &format!("/api/channels/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Polls channel `id` until its status is `status`.
async fn wait_for_status(gateway: &TestGateway, id: i64, status: &str) -> Value {
    let what = format!("channel {id} to become {status}");
    poll::until(&what, PATIENCE, async || {
        let channel = channel_json(gateway, id).await;
        if channel["status"] == status {
            Ok(channel)
        } else {
            Err(channel)
        }
    })
    .await
}

async fn test_channel(gateway: &TestGateway, id: i64, body: Option<Value>) -> (u16, Value) {
    let mut request = gateway.admin(Method::POST, &format!("/api/channels/{id}/test"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn ask(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// An upstream 401 disables the channel with its reason and time, traffic
/// moves to the other channel, and a manual enable clears the record.
#[tokio::test]
async fn upstream_401_auto_disables_and_traffic_moves_on() {
    let rig = Rig::start().await;
    let (revoked, healthy) = (upstream("revoked").await, upstream("healthy").await);
    let revoked_id = rig.channel(&revoked, &["m"], json!({"priority": 10})).await;
    rig.channel(&healthy, &["m"], json!({})).await;
    revoked.fail_always(401);
    assert_eq!(rig.chat("h401-1", &ask("m")).await.status(), 200);
    let channel = wait_for_status(&rig.gateway, revoked_id, "auto_disabled").await;
    let reason = channel["auto_disabled_reason"].as_str().unwrap();
    assert!(reason.contains("401"), "{reason}");
    assert!(channel["auto_disabled_at"].is_string(), "{channel}");
    for index in 0..5 {
        let reply = rig.chat(&format!("h401-after-{index}"), &ask("m")).await;
        assert_eq!(reply.status(), 200);
    }
    assert_eq!(
        revoked.requests(),
        1,
        "the disabled channel gets no more traffic"
    );
    let patched: Value = rig
        .gateway
        .admin(Method::PATCH, &format!("/api/channels/{revoked_id}"))
        .json(&json!({"status": "enabled"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["status"], "enabled");
    assert_eq!(patched["auto_disabled_reason"], Value::Null);
    assert_eq!(patched["auto_disabled_at"], Value::Null);
}

/// A quota-exhausted body (here OpenAI's 429) disables the channel.
#[tokio::test]
async fn quota_message_auto_disables() {
    let rig = Rig::start().await;
    let (addr, _task) = fixed_upstream(StatusCode::TOO_MANY_REQUESTS, QUOTA_BODY).await;
    let body = json!({"name": "broke", "base_url": format!("http://{addr}/v1"), "key": "sk-broke", "models": ["m"]});
    let id = rig.gateway.create_channel(body).await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(rig.chat("quota-1", &ask("m")).await.status(), 502);
    let channel = wait_for_status(&rig.gateway, id, "auto_disabled").await;
    let reason = channel["auto_disabled_reason"].as_str().unwrap();
    assert!(
        reason.contains("you exceeded your current quota"),
        "{reason}"
    );
}

/// `settings.auto_disable: false` keeps a channel enabled through 401s, and
/// the setting must be a boolean.
#[tokio::test]
async fn auto_disable_false_is_never_disabled() {
    let rig = Rig::start().await;
    let (stubborn, control) = (upstream("stubborn").await, upstream("control").await);
    let id = rig
        .channel(
            &stubborn,
            &["m"],
            json!({"settings": {"auto_disable": false}}),
        )
        .await;
    let control_id = rig.channel(&control, &["c"], json!({})).await;
    stubborn.fail_always(401);
    control.fail_always(401);
    for index in 0..3 {
        assert_eq!(
            rig.chat(&format!("keep-{index}"), &ask("m")).await.status(),
            502
        );
    }
    // A disable is applied by the disabler task, so "still enabled" proves
    // nothing until a disable reported later has landed: the control
    // channel's. The disabler applies decisions one at a time in the order
    // they were reported (one queue), so a disable of the stubborn channel
    // would have landed first.
    assert_eq!(rig.chat("control", &ask("c")).await.status(), 502);
    wait_for_status(&rig.gateway, control_id, "auto_disabled").await;
    let channel = channel_json(&rig.gateway, id).await;
    assert_eq!(channel["status"], "enabled", "{channel}");
    assert_eq!(channel["auto_disabled_reason"], Value::Null);
    assert_eq!(stubborn.requests(), 3);
    let response = rig
        .gateway
        .admin(Method::PATCH, &format!("/api/channels/{id}"))
        .json(&json!({"settings": {"auto_disable": "no"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["field"], "settings.auto_disable");
}

/// A test sends one minimal request and reports its latency; a failing
/// upstream's error comes back summarised, without the key.
#[tokio::test]
async fn channel_test_reports_latency_and_errors() {
    let gateway = TestGateway::start().await;
    let fake = upstream("probe").await;
    let id = gateway
        .create_channel(json!({"name": "probe", "base_url": fake.base_url(), "key": "sk-probe-secret", "models": ["first", "second"]}))
        .await["id"]
        .as_i64()
        .unwrap();
    let (status, result) = test_channel(&gateway, id, None).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["status"], 200);
    assert!(result["latency_ms"].is_u64());
    assert_eq!(result["error"], Value::Null);
    assert_eq!(result["model"], "first");
    let sent = fake.last_body().unwrap();
    assert_eq!(
        (sent["model"].clone(), sent["max_tokens"].clone()),
        (json!("first"), json!(1))
    );
    assert_eq!(fake.last_auth().as_deref(), Some("Bearer sk-probe-secret"));

    fake.fail_always(500);
    let (_, result) = test_channel(&gateway, id, Some(json!({"model": "second"}))).await;
    assert_eq!(
        (result["ok"].clone(), result["status"].clone()),
        (json!(false), json!(500))
    );
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains("500") && !error.contains("sk-probe-secret"),
        "{error}"
    );
    assert_eq!(channel_json(&gateway, id).await["status"], "enabled");

    let (status, error) =
        test_channel(&gateway, id, Some(json!({"endpoint": "/v1/messages"}))).await;
    assert_eq!(
        (status, error["error"]["field"].clone()),
        (400, json!("endpoint"))
    );
    let (status, _) = test_channel(&gateway, 999, None).await;
    assert_eq!(status, 404);
}

/// A successful test brings an auto-disabled channel back.
#[tokio::test]
async fn successful_test_reenables() {
    let rig = Rig::start().await;
    let flaky = upstream("flaky").await;
    let id = rig.channel(&flaky, &["m"], json!({})).await;
    flaky.fail_next(401, 1);
    assert_eq!(rig.chat("reenable-1", &ask("m")).await.status(), 502);
    wait_for_status(&rig.gateway, id, "auto_disabled").await;
    let (status, result) = test_channel(&rig.gateway, id, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (result["ok"].clone(), result["reenabled"].clone()),
        (json!(true), json!(true))
    );
    let channel = channel_json(&rig.gateway, id).await;
    assert_eq!(channel["status"], "enabled");
    assert_eq!(channel["auto_disabled_reason"], Value::Null);
    assert_eq!(rig.chat("reenable-2", &ask("m")).await.status(), 200);
}

/// With a test interval, an auto-disabled channel comes back on its own.
#[tokio::test]
async fn periodic_test_reenables() {
    let rig = Rig::start_with(|config| {
        config.channel_test_interval = Some(Duration::from_millis(200));
    })
    .await;
    let flaky = upstream("periodic").await;
    let id = rig.channel(&flaky, &["m"], json!({})).await;
    // The relay request and the first periodic test fail; the second test succeeds.
    flaky.fail_next(401, 2);
    assert_eq!(rig.chat("periodic-1", &ask("m")).await.status(), 502);
    wait_for_status(&rig.gateway, id, "auto_disabled").await;
    let channel = wait_for_status(&rig.gateway, id, "enabled").await;
    assert_eq!(channel["auto_disabled_reason"], Value::Null);
    assert!(flaky.requests() >= 3, "the periodic task tested twice");
}

/// The upstream's model list comes back as `{models}`; a failing upstream
/// is a 502 in the admin error shape, without the key.
#[tokio::test]
async fn upstream_models_lists_the_upstream() {
    let gateway = TestGateway::start().await;
    let fake = upstream("lister").await;
    let id = gateway
        .openai_channel("lister", &fake.base_url(), &["m"])
        .await["id"]
        .as_i64()
        .unwrap();
    let response = gateway
        .admin(Method::GET, &format!("/api/channels/{id}/upstream-models"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list, json!({"models": MODELS}));
    assert_eq!(
        fake.last_auth().as_deref(),
        Some("Bearer sk-upstream-lister")
    );

    let (addr, _task) = fixed_upstream(
        StatusCode::UNAUTHORIZED,
        r#"{"error":{"message":"bad key sk-upstream-gone"}}"#,
    )
    .await;
    let id = gateway
        .openai_channel("gone", &format!("http://{addr}/v1"), &["m"])
        .await["id"]
        .as_i64()
        .unwrap();
    let response = gateway
        .admin(Method::GET, &format!("/api/channels/{id}/upstream-models"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upstream_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("401") && !message.contains("sk-upstream-gone"),
        "{message}"
    );
}

/// Both health routes refuse requests without the admin token.
#[tokio::test]
async fn health_routes_require_the_admin_token() {
    let gateway = TestGateway::start().await;
    for (method, path) in [
        (Method::POST, "/api/channels/1/test"),
        (Method::GET, "/api/channels/1/upstream-models"),
    ] {
        let response = gateway
            .client
            .request(method, gateway.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_api_key");
    }
}
