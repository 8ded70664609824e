//! The JSON endpoints: completions, embeddings, responses, images and
//! moderations, with the usage each reports (or the estimate).

use serde_json::{Value, json};

use super::{DEFAULT_TOTAL, assert_counts, logged, post, usage, used};
use crate::relay::{Rig, sse_payloads, upstream};

/// Completions are relayed whole and streamed, and each counts the reported total.
#[tokio::test]
async fn completions_whole_and_streamed_count_reported_usage() {
    let rig = Rig::start().await;
    let fake = upstream("cmpl").await;
    let id = rig.channel(&fake, &["m"], json!({})).await;
    let body = json!({"model": "m", "prompt": "Say hello", "max_tokens": 5});
    let response = post(&rig, "/v1/completions", "cmpl-whole", &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["choices"][0]["text"], "Completed by cmpl");
    assert_counts(
        &logged(&rig, "cmpl-whole", "/v1/completions").await,
        11,
        7,
        18,
        false,
    );

    let streamed = json!({"model": "m", "prompt": "Say hello", "stream": true});
    let response = post(&rig, "/v1/completions", "cmpl-stream", &streamed).await;
    assert_eq!(response.status(), 200);
    let events = sse_payloads(&response.text().await.unwrap());
    assert_eq!(
        events.len(),
        4,
        "three text chunks and [DONE], usage hidden: {events:?}"
    );
    assert_eq!(events[0]["choices"][0]["text"], "cmpl-0 ");
    assert_eq!(
        fake.last_body().unwrap()["stream_options"]["include_usage"],
        true
    );
    let row = logged(&rig, "cmpl-stream", "/v1/completions").await;
    assert_eq!(row["stream"], true);
    assert_counts(&row, 11, 7, 18, false);
    assert_eq!(used(&rig, id), 2 * DEFAULT_TOTAL);
}

/// Embeddings count `total_tokens` (prompt only, no completion).
#[tokio::test]
async fn embeddings_count_prompt_and_total() {
    let rig = Rig::start().await;
    let fake = upstream("emb").await;
    fake.configure(|behavior| behavior.usage = Some(usage(9, 0)));
    let id = rig
        .channel(&fake, &["text-embedding-3-small"], json!({}))
        .await;
    let body = json!({"model": "text-embedding-3-small", "input": ["a", "b"]});
    let response = post(&rig, "/v1/embeddings", "emb-1", &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["data"][0]["embedding"][0], 0.25);
    assert_counts(
        &logged(&rig, "emb-1", "/v1/embeddings").await,
        9,
        0,
        9,
        false,
    );
    assert_eq!(used(&rig, id), 9);
}

/// Responses count `input_tokens + output_tokens`, streamed from `response.completed`.
#[tokio::test]
async fn responses_whole_and_streamed_count_reported_usage() {
    let rig = Rig::start().await;
    let fake = upstream("resp").await;
    fake.configure(|behavior| behavior.usage = Some(usage(20, 5)));
    let id = rig.channel(&fake, &["m"], json!({})).await;
    let response = post(
        &rig,
        "/v1/responses",
        "resp-whole",
        &json!({"model": "m", "input": "hi"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(
        reply["output"][0]["content"][0]["text"],
        "Responded by resp"
    );
    assert_counts(
        &logged(&rig, "resp-whole", "/v1/responses").await,
        20,
        5,
        25,
        false,
    );

    let streamed = json!({"model": "m", "input": "hi", "stream": true});
    let response = post(&rig, "/v1/responses", "resp-stream", &streamed).await;
    let text = response.text().await.unwrap();
    assert!(text.contains("event: response.completed"), "{text}");
    let events = sse_payloads(&text);
    assert_eq!(
        events.last().unwrap()["response"]["usage"]["total_tokens"],
        25
    );
    assert!(fake.last_body().unwrap().get("stream_options").is_none());
    assert_counts(
        &logged(&rig, "resp-stream", "/v1/responses").await,
        20,
        5,
        25,
        false,
    );
    assert_eq!(used(&rig, id), 50);
}

/// Without usage, an OpenAI model's stream is estimated with its real tokenizer.
#[tokio::test]
async fn responses_without_usage_are_estimated_with_tiktoken() {
    let rig = Rig::start().await;
    let fake = upstream("quiet").await;
    fake.omit_usage();
    let id = rig.channel(&fake, &["gpt-4o"], json!({})).await;
    let streamed = json!({"model": "gpt-4o", "input": "hello world", "stream": true});
    let response = post(&rig, "/v1/responses", "resp-est", &streamed).await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await.unwrap();
    // Prompt: "hello world" is 2 o200k tokens + 4 framing; reply: "quiet-0 quiet-1 quiet-2 ".
    let completion = tiktoken_rs::o200k_base()
        .unwrap()
        .encode_ordinary("quiet-0 ")
        .len() as u64
        * 3;
    let row = logged(&rig, "resp-est", "/v1/responses").await;
    assert_counts(&row, 6, completion, 6 + completion, true);
    assert_eq!(used(&rig, id), 6 + completion);
}

/// Images count reported usage; without it, zero and not estimated. Moderations report none.
#[tokio::test]
async fn images_and_moderations_count_only_reported_usage() {
    let rig = Rig::start().await;
    let fake = upstream("img").await;
    fake.configure(|behavior| behavior.usage = Some(usage(50, 4160)));
    let id = rig
        .channel(&fake, &["gpt-image-1", "omni-moderation-latest"], json!({}))
        .await;
    let body = json!({"model": "gpt-image-1", "prompt": "a cat"});
    let response = post(&rig, "/v1/images/generations", "img-1", &body).await;
    assert_eq!(response.status(), 200);
    assert_counts(
        &logged(&rig, "img-1", "/v1/images/generations").await,
        50,
        4160,
        4210,
        false,
    );

    fake.omit_usage();
    let response = post(&rig, "/v1/images/generations", "img-2", &body).await;
    assert_eq!(response.status(), 200);
    assert_counts(
        &logged(&rig, "img-2", "/v1/images/generations").await,
        0,
        0,
        0,
        false,
    );

    let body = json!({"model": "omni-moderation-latest", "input": "hello"});
    let response = post(&rig, "/v1/moderations", "mod-1", &body).await;
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["results"][0]["flagged"], false);
    assert_counts(
        &logged(&rig, "mod-1", "/v1/moderations").await,
        0,
        0,
        0,
        false,
    );
    assert_eq!(used(&rig, id), 4210);
}
