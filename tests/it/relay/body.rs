//! What leaves for the upstream is the client's own bytes: a large
//! coding-agent prompt goes through untouched, and the gateway's only
//! edits (the channel's model name, `stream_options.include_usage`) are
//! spliced in without re-encoding anything else.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Rig, upstream};
use crate::support::prompt;

/// Sends `body` as is (not re-serialized by the test's client).
async fn send(rig: &Rig, body: &Bytes) -> reqwest::Response {
    rig.gateway
        .relay(&rig.key, "/v1/chat/completions")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap()
}

fn tree(bytes: &[u8]) -> Map<String, Value> {
    serde_json::from_slice(bytes).unwrap()
}

/// A 300 KB prompt reaches the upstream byte for byte; with a model mapping
/// or a stream, only the edited member differs.
#[tokio::test]
async fn the_clients_bytes_go_upstream() {
    let rig = Rig::start().await;
    let fake = upstream("bytes").await;
    rig.channel(
        &fake,
        &["gpt-4o-mini", "mapped"],
        json!({"model_mapping": {"mapped": "vendor-7b"}}),
    )
    .await;
    // Odd but valid JSON: spacing, escapes, key order, duplicate-free.
    let sent = Bytes::from(prompt::coding_agent());
    assert!(sent.len() > 300_000);
    assert_eq!(send(&rig, &sent).await.status(), 200);
    assert_eq!(
        fake.last_raw_body(),
        Some(sent.clone()),
        "forwarded unchanged"
    );

    let mapped = String::from_utf8(sent.to_vec()).unwrap().replacen(
        "\"model\":\"gpt-4o-mini\"",
        "\"model\" : \"mapped\"",
        1,
    );
    let mapped = Bytes::from(mapped);
    assert_eq!(send(&rig, &mapped).await.status(), 200);
    let received = fake.last_raw_body().unwrap();
    let mut expected = tree(&mapped);
    expected.insert("model".into(), json!("vendor-7b"));
    assert_eq!(tree(&received), expected);
    assert_eq!(
        received.len(),
        mapped.len() - "mapped".len() + "vendor-7b".len()
    );

    let streamed = Bytes::from(format!(
        "{{\"stream\": true, {}",
        std::str::from_utf8(&sent[1..]).unwrap()
    ));
    let response = send(&rig, &streamed).await;
    assert!(response.text().await.unwrap().contains("[DONE]"));
    let received = fake.last_raw_body().unwrap();
    let mut expected = tree(&streamed);
    expected.insert("stream_options".into(), json!({"include_usage": true}));
    assert_eq!(tree(&received), expected);
    assert!(
        received.ends_with(&sent[1..]),
        "everything after the edit is the client's bytes"
    );
}
