//! Compatibility: our responses decode with a real OpenAI client library's
//! types (`async-openai`), so SDK users see what they expect.

use async_openai::error::WrappedError;
use async_openai::types::chat::{CreateChatCompletionResponse, CreateChatCompletionStreamResponse};
use async_openai::types::models::ListModelResponse;
use serde_json::{Value, json};

use crate::relay::{Rig, ask, ask_stream, sse_payloads};
use crate::support::upstream::FakeUpstream;

async fn rig_with_channel() -> (Rig, FakeUpstream) {
    let rig = Rig::start().await;
    let fake = FakeUpstream::start("compat").await.unwrap();
    rig.channel(&fake, &["gpt-4o"], json!({})).await;
    (rig, fake)
}

/// A non-stream reply decodes as `CreateChatCompletionResponse`, usage included.
#[tokio::test]
async fn chat_completion_decodes() {
    let (rig, _fake) = rig_with_channel().await;
    let bytes = rig
        .chat("compat-plain", &ask("gpt-4o"))
        .await
        .bytes()
        .await
        .unwrap();
    let reply: CreateChatCompletionResponse = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        reply.choices[0].message.content.as_deref(),
        Some("Hello from compat")
    );
    assert_eq!(reply.usage.map(|usage| usage.total_tokens), Some(18));
}

/// Every stream chunk, the requested usage chunk included, decodes as `CreateChatCompletionStreamResponse`.
#[tokio::test]
async fn stream_chunks_decode() {
    let (rig, _fake) = rig_with_channel().await;
    let mut body = ask_stream("gpt-4o");
    body["stream_options"] = json!({"include_usage": true});
    let text = rig.chat("compat-stream", &body).await.text().await.unwrap();
    let payloads = sse_payloads(&text);
    assert_eq!(payloads.last(), Some(&json!("[DONE]")));
    let chunks: Vec<CreateChatCompletionStreamResponse> = payloads[..payloads.len() - 1]
        .iter()
        .map(|payload| serde_json::from_value(payload.clone()).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .flat_map(|chunk| chunk.choices.iter())
        .filter_map(|choice| choice.delta.content.clone())
        .collect();
    assert_eq!(content, "compat-0 compat-1 compat-2 ");
    assert_eq!(
        chunks
            .last()
            .and_then(|chunk| chunk.usage.as_ref())
            .map(|usage| usage.total_tokens),
        Some(18)
    );
}

/// `GET /v1/models` decodes as `ListModelResponse`.
#[tokio::test]
async fn model_list_decodes() {
    let (rig, _fake) = rig_with_channel().await;
    let response = rig
        .gateway
        .client
        .get(rig.gateway.url("/v1/models"))
        .bearer_auth(&rig.key)
        .send()
        .await
        .unwrap();
    let list: ListModelResponse = response.json().await.unwrap();
    assert_eq!(list.object, "list");
    assert_eq!(list.data.len(), 1);
    assert_eq!(
        (list.data[0].id.as_str(), list.data[0].object.as_str()),
        ("gpt-4o", "model")
    );
    assert_eq!(list.data[0].owned_by, "sluicegate");
    assert!(list.data[0].created > 0);
}

/// Gateway errors decode as the library's `WrappedError`, with the exact envelope for the key cases.
#[tokio::test]
async fn errors_decode_and_match_the_envelope() {
    let (rig, fake) = rig_with_channel().await;
    let url = rig.gateway.url("/v1/chat/completions");
    let client = &rig.gateway.client;
    let unauthorized = client
        .post(&url)
        .bearer_auth("sk-nope")
        .json(&ask("gpt-4o"))
        .send()
        .await
        .unwrap();
    let unknown_model = client
        .post(&url)
        .bearer_auth(&rig.key)
        .json(&ask("nope"))
        .send()
        .await
        .unwrap();
    let malformed = client
        .post(&url)
        .bearer_auth(&rig.key)
        .body("{")
        .send()
        .await
        .unwrap();
    fake.fail_always(503);
    let failed = client
        .post(&url)
        .bearer_auth(&rig.key)
        .json(&ask("gpt-4o"))
        .send()
        .await
        .unwrap();
    let cases = [
        (
            unauthorized,
            401,
            "authentication_error",
            "invalid_api_key",
            None,
        ),
        (
            unknown_model,
            404,
            "invalid_request_error",
            "model_not_found",
            Some("model"),
        ),
        (
            malformed,
            400,
            "invalid_request_error",
            "invalid_request",
            None,
        ),
        (failed, 502, "upstream_error", "upstream_error", None),
    ];
    for (response, status, kind, code, param) in cases {
        assert_eq!(response.status(), status);
        let raw: Value = response.json().await.unwrap();
        let keys: Vec<&str> = raw["error"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["code", "message", "param", "type"], "{raw}");
        let wrapped: WrappedError = serde_json::from_value(raw).unwrap();
        assert_eq!(wrapped.error.r#type.as_deref(), Some(kind));
        assert_eq!(wrapped.error.code.as_deref(), Some(code));
        assert_eq!(wrapped.error.param.as_deref(), param);
        assert!(!wrapped.error.message.is_empty());
    }
}
