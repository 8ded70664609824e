//! Bad input on the new endpoints: clear 4xx in the OpenAI envelope.

use serde_json::{Value, json};

use super::audio::{Form, upload, wav};
use super::post;
use crate::relay::{Rig, upstream};

async fn assert_envelope(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|text| !text.is_empty()),
        "{body}"
    );
    body
}

/// Unknown models are 404 and missing models 400 on every endpoint.
#[tokio::test]
async fn unknown_and_missing_models_use_the_envelope() {
    let rig = Rig::start().await;
    let fake = upstream("any").await;
    rig.channel(&fake, &["m"], json!({})).await;
    for path in [
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/audio/speech",
        "/v1/images/generations",
        "/v1/moderations",
    ] {
        let response = post(
            &rig,
            path,
            "unknown",
            &json!({"model": "nope", "input": "x"}),
        )
        .await;
        let body = assert_envelope(response, 404, "model_not_found").await;
        assert_eq!(body["error"]["param"], "model", "{path}");
        let response = post(&rig, path, "missing", &json!({"input": "x"})).await;
        assert_envelope(response, 400, "invalid_request").await;
    }
    let response = upload(
        &rig,
        "/v1/audio/transcriptions",
        "unknown-audio",
        super::audio::form("nope", wav(1), false),
    )
    .await;
    assert_envelope(response, 404, "model_not_found").await;
    assert_eq!(fake.requests(), 0);
}

/// A malformed multipart body, or one without its file, is a 400 that names the problem.
#[tokio::test]
async fn malformed_multipart_is_400() {
    let rig = Rig::start().await;
    let fake = upstream("any").await;
    rig.channel(&fake, &["whisper-1"], json!({})).await;
    let truncated = "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF";
    let no_file =
        "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n";
    let cases = [
        ("multipart/form-data; boundary=b", truncated, "multipart"),
        ("multipart/form-data", no_file, "multipart"),
        ("application/json", "{}", "multipart"),
        ("multipart/form-data; boundary=b", no_file, "file"),
    ];
    for (content_type, body, phrase) in cases {
        let form = Form {
            content_type: content_type.to_string(),
            body: body.as_bytes().to_vec(),
        };
        let response = upload(&rig, "/v1/audio/transcriptions", "bad-form", form).await;
        let body = assert_envelope(response, 400, "invalid_request").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(phrase), "{content_type}: {message}");
    }
    assert_eq!(fake.requests(), 0);
}

/// An audio file over the body limit is a 413 in the envelope, and never reaches the upstream.
#[tokio::test]
async fn oversize_audio_is_413() {
    let rig = Rig::start_with(|config| config.max_body_bytes = 64 * 1024).await;
    let fake = upstream("any").await;
    rig.channel(&fake, &["whisper-1"], json!({})).await;
    let form = super::audio::form("whisper-1", wav(3), false);
    let response = upload(&rig, "/v1/audio/transcriptions", "big", form).await;
    assert_envelope(response, 413, "payload_too_large").await;
    assert_eq!(fake.requests(), 0);
}
