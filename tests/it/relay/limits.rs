//! What the relay refuses, and how: auth, bad and oversize bodies, unknown
//! models, and the request id on every response.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Rig, ask, upstream};

/// Missing, unknown, disabled and expired keys are refused in the OpenAI envelope.
#[tokio::test]
async fn auth_failures_use_the_openai_envelope() {
    let rig = Rig::start().await;
    let fake = upstream("alpha").await;
    rig.channel(&fake, &["m"], json!({})).await;
    let (_, disabled) = rig
        .gateway
        .create_token(json!({"name": "off", "status": "disabled"}))
        .await;
    let (_, expired) = rig
        .gateway
        .create_token(json!({"name": "old", "expires_at": "2020-01-01T00:00:00Z"}))
        .await;
    let url = rig.gateway.url("/v1/chat/completions");
    let client = &rig.gateway.client;
    let cases = [
        (client.post(&url), 401, "invalid_api_key"),
        (
            client.post(&url).bearer_auth("sk-unknown"),
            401,
            "invalid_api_key",
        ),
        (
            client.post(&url).header("x-api-key", "sk-unknown"),
            401,
            "invalid_api_key",
        ),
        (client.post(&url).bearer_auth(&disabled), 403, "forbidden"),
        (
            client.post(&url).header("x-api-key", &expired),
            403,
            "forbidden",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.json(&ask("m")).send().await.unwrap();
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["type"], "authentication_error", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // x-api-key works as well as Bearer for a valid key.
    let response = client
        .post(&url)
        .header("x-api-key", &rig.key)
        .json(&ask("m"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fake.requests(), 1);
}

/// Malformed JSON, a missing model and a non-object body are 400 invalid_request_error.
#[tokio::test]
async fn bad_bodies_are_400() {
    let rig = Rig::start().await;
    let cases = [
        ("{not json", None),
        ("[1,2]", None),
        (r#"{"messages":[]}"#, Some("model")),
        (r#"{"model":7}"#, Some("model")),
    ];
    for (raw, param) in cases {
        let response = rig
            .gateway
            .relay(&rig.key, "/v1/chat/completions")
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{raw}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(body["error"]["param"].as_str(), param, "{body}");
    }
}

/// A body over the limit is 413 in the OpenAI envelope, with or without a Content-Length.
#[tokio::test]
async fn oversize_body_is_413() {
    let rig = Rig::start_with(|config| config.max_body_bytes = 4096).await;
    let mut body = ask("m");
    body["messages"][0]["content"] = json!("x".repeat(8192));
    let bytes = serde_json::to_vec(&body).unwrap();
    let chunks = futures_util::stream::iter(
        bytes
            .chunks(1000)
            .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
            .collect::<Vec<_>>(),
    );
    let requests = [
        rig.gateway
            .relay(&rig.key, "/v1/chat/completions")
            .body(bytes.clone()),
        rig.gateway
            .relay(&rig.key, "/v1/chat/completions")
            .body(reqwest::Body::wrap_stream(chunks)),
    ];
    for request in requests {
        let response = request
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
}

/// The default 32 MiB limit answers 413 for a larger body.
#[tokio::test]
async fn default_body_limit_is_32_mib() {
    let rig = Rig::start().await;
    let response = rig
        .gateway
        .relay(&rig.key, "/v1/chat/completions")
        .header("content-type", "application/json")
        .body(vec![b' '; 32 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A model no channel serves, or one outside the key's allow-list, is 404 model_not_found.
#[tokio::test]
async fn unknown_or_disallowed_model_is_404() {
    let rig = Rig::start().await;
    let fake = upstream("alpha").await;
    rig.channel(&fake, &["allowed", "other"], json!({})).await;
    let (_, limited) = rig
        .gateway
        .create_token(json!({"name": "limited", "models": ["allowed"]}))
        .await;
    let url = rig.gateway.url("/v1/chat/completions");
    let cases = [(&rig.key, "nope"), (&limited, "other")];
    for (key, model) in cases {
        let response = rig
            .gateway
            .client
            .post(&url)
            .bearer_auth(key)
            .json(&ask(model))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    }
    assert_eq!(fake.requests(), 0);
}

/// Every response carries x-request-id: a valid incoming one is echoed, otherwise one is generated.
#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let rig = Rig::start().await;
    let client = &rig.gateway.client;
    let url = rig.gateway.url("/v1/chat/completions");
    let echoed = client
        .post(&url)
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-abc.123");
    let too_long = "x".repeat(129);
    let replaced = client
        .post(&url)
        .header("x-request-id", &too_long)
        .send()
        .await
        .unwrap();
    let generated = client
        .get(rig.gateway.url("/api/channels"))
        .send()
        .await
        .unwrap();
    for response in [replaced, generated] {
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
    let fake = upstream("alpha").await;
    rig.channel(&fake, &["m"], json!({})).await;
    let response = client
        .post(&url)
        .bearer_auth(&rig.key)
        .json(&ask("m"))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(rig.log(&id).await["request_id"], id.as_str());
}
