//! Every endpoint routes like chat: retries on failure, capped channels
//! skipped, and Azure channels addressed their own way.

use serde_json::json;

use super::audio::{form, upload, wav};
use super::{DEFAULT_TOTAL, logged, post, used};
use crate::relay::{Rig, ids, upstream};

/// A 500 from the first channel moves each endpoint on to the second, which is the one counted.
#[tokio::test]
async fn failures_retry_on_the_next_channel() {
    let rig = Rig::start().await;
    let broken = upstream("broken").await;
    let healthy = upstream("healthy").await;
    broken.fail_always(500);
    let broken_id = rig.channel(&broken, &["m"], json!({"priority": 10})).await;
    let healthy_id = rig.channel(&healthy, &["m"], json!({"priority": 0})).await;
    let cases = [
        ("/v1/completions", json!({"model": "m", "prompt": "hi"})),
        ("/v1/embeddings", json!({"model": "m", "input": "hi"})),
        ("/v1/responses", json!({"model": "m", "input": "hi"})),
        (
            "/v1/images/generations",
            json!({"model": "m", "prompt": "hi"}),
        ),
    ];
    for (index, (path, body)) in cases.iter().enumerate() {
        let request_id = format!("retry-{index}");
        let response = post(&rig, path, &request_id, body).await;
        assert_eq!(response.status(), 200, "{path}");
        let row = logged(&rig, &request_id, path).await;
        assert_eq!(ids(&row), vec![broken_id, healthy_id], "{path}");
    }
    let response = upload(
        &rig,
        "/v1/audio/transcriptions",
        "retry-audio",
        form("m", wav(1), false),
    )
    .await;
    assert_eq!(response.status(), 200);
    let row = logged(&rig, "retry-audio", "/v1/audio/transcriptions").await;
    assert_eq!(ids(&row), vec![broken_id, healthy_id]);
    // The retried form is the client's, byte for byte, on both channels.
    assert_eq!(broken.recorded()[4].body, healthy.recorded()[4].body);
    assert_eq!(used(&rig, broken_id), 0);
    assert_eq!(used(&rig, healthy_id), 5 * DEFAULT_TOTAL);
}

/// A channel at its daily limit is skipped without a request.
#[tokio::test]
async fn capped_channels_are_skipped() {
    let rig = Rig::start().await;
    let small = upstream("small").await;
    let big = upstream("big").await;
    let settings = json!({"priority": 10, "settings": {"daily_token_limit": DEFAULT_TOTAL}});
    let small_id = rig.channel(&small, &["m"], settings).await;
    let big_id = rig.channel(&big, &["m"], json!({"priority": 0})).await;
    let body = json!({"model": "m", "input": "hi"});
    assert_eq!(
        post(&rig, "/v1/embeddings", "cap-1", &body).await.status(),
        200
    );
    assert_eq!(used(&rig, small_id), DEFAULT_TOTAL);
    assert_eq!(
        post(&rig, "/v1/embeddings", "cap-2", &body).await.status(),
        200
    );
    let row = logged(&rig, "cap-2", "/v1/embeddings").await;
    assert_eq!(ids(&row), vec![big_id]);
    assert_eq!(small.requests(), 1);
    assert_eq!(used(&rig, big_id), DEFAULT_TOTAL);
}

/// Azure channels get the deployment in the path, the API version in the query and the key in `api-key`.
#[tokio::test]
async fn azure_channels_use_deployments_and_api_key() {
    let rig = Rig::start().await;
    let fake = upstream("azure").await;
    let channel = json!({
        "name": "azure", "type": "azure", "base_url": format!("http://{}", fake.addr),
        "key": "azure-secret", "models": ["gpt-4o", "whisper"],
        "model_mapping": {"gpt-4o": "prod-4o"},
        "settings": {"api_version": "2025-04-01-preview"},
    });
    rig.gateway.create_channel(channel).await;
    let chat = json!({"model": "gpt-4o", "input": "hi"});
    assert_eq!(
        post(&rig, "/v1/responses", "az-1", &chat).await.status(),
        200
    );
    let response = upload(
        &rig,
        "/v1/audio/transcriptions",
        "az-2",
        form("whisper", wav(1), false),
    )
    .await;
    assert_eq!(response.status(), 200);
    let recorded = fake.recorded();
    let paths: Vec<(&str, Option<&str>)> = recorded
        .iter()
        .map(|seen| (seen.path.as_str(), seen.query.as_deref()))
        .collect();
    assert_eq!(
        paths,
        vec![
            (
                "/openai/deployments/prod-4o/responses",
                Some("api-version=2025-04-01-preview")
            ),
            (
                "/openai/deployments/whisper/audio/transcriptions",
                Some("api-version=2025-04-01-preview")
            ),
        ]
    );
    for seen in &recorded {
        assert_eq!(seen.api_key.as_deref(), Some("azure-secret"));
        assert_eq!(seen.authorization, None);
    }
    assert_eq!(fake.last_body().unwrap()["model"], "prod-4o");
}
