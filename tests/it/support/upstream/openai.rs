//! The fake's OpenAI endpoints beyond chat: completions, embeddings,
//! responses, audio (transcriptions, translations, speech), images and
//! moderations, each with its exact usage shape, whole and streamed; and
//! the same under Azure's `/openai/deployments/{deployment}/…` paths.
//!
//! Every request is recorded ([`Recorded`]: path, query, auth headers,
//! content type), so tests can check the URL and header shape per channel
//! type. The shared [`Behavior`] applies: failures, usage or none.
//!
//! Usage shapes: completions `prompt/completion/total_tokens`; embeddings
//! `prompt_tokens/total_tokens`; responses, images and token transcriptions
//! `input/output/total_tokens` (responses streams on `response.completed`);
//! without usage, transcriptions report `{"type":"duration"}`, speech is
//! plain audio bytes, and moderations never report any.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Behavior, FakeUpstream, FakeUsage, Shared, failure, lock, take_failure};

/// What one request to these endpoints looked like.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    pub api_key: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// The routes, merged into the fake's router.
pub(super) fn routes() -> Router<Arc<Shared>> {
    let mut router = Router::new();
    for path in [
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/audio/speech",
        "/v1/images/generations",
        "/v1/moderations",
        "/openai/deployments/{deployment}/{*operation}",
    ] {
        router = router.route(path, post(serve));
    }
    router
}

impl FakeUpstream {
    /// Every request these endpoints received, in order.
    pub fn recorded(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

async fn serve(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    lock(&shared.recorded).push(Recorded {
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        authorization: header_text(&headers, header::AUTHORIZATION),
        api_key: header_text(&headers, "api-key"),
        content_type: header_text(&headers, header::CONTENT_TYPE),
        body: body.clone(),
    });
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if request.is_object() {
        *lock(&shared.last_body) = Some(request.clone());
    }
    let (behavior, fail_status) = {
        let mut behavior = lock(&shared.behavior);
        let fail_status = take_failure(&mut behavior.failing);
        (behavior.clone(), fail_status)
    };
    if let Some(status) = fail_status {
        return failure(&shared.name, status);
    }
    let stream = request.get("stream") == Some(&Value::Bool(true));
    let with_usage = request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
    let usage = behavior.usage;
    if let Some(usage) = usage {
        shared.reported.fetch_add(usage.total, Ordering::SeqCst);
    }
    let name = shared.name.clone();
    let operation = uri.path().rsplit("/v1/").next().unwrap_or_default();
    let operation = operation.split("/deployments/").last().unwrap_or_default();
    let operation = match operation.split_once('/') {
        Some((_, rest)) if uri.path().starts_with("/openai/") => rest,
        _ => operation,
    };
    match operation {
        "completions" if stream => sse(completion_events(&name, &behavior, with_usage)),
        "completions" => json_reply(completion(&name, usage)),
        "embeddings" => json_reply(embedding(usage)),
        "responses" if stream => sse(response_events(&name, &behavior)),
        "responses" => json_reply(response(&name, usage)),
        "audio/transcriptions" if multipart_streams(&body) => sse(transcript_events(&name, usage)),
        "audio/transcriptions" => json_reply(transcription(&name, usage)),
        "audio/translations" => json_reply(json!({"text": format!("Translated by {name}")})),
        "audio/speech" if request.get("stream_format") == Some(&json!("sse")) => {
            sse(speech_events(usage))
        }
        "audio/speech" => audio(&behavior),
        "images/generations" => json_reply(image(usage)),
        "moderations" => json_reply(json!({
            "id": "modr-fake", "model": request["model"],
            "results": [{"flagged": false, "categories": {}, "category_scores": {}}],
        })),
        _ => failure(&name, 404),
    }
}

fn multipart_streams(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("name=\"stream\"\r\n\r\ntrue")
}

fn json_reply(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn openai_usage(usage: FakeUsage) -> Value {
    json!({"prompt_tokens": usage.prompt, "completion_tokens": usage.completion, "total_tokens": usage.total})
}

fn io_usage(usage: FakeUsage) -> Value {
    json!({"input_tokens": usage.prompt, "output_tokens": usage.completion, "total_tokens": usage.total})
}

fn with_usage(mut reply: Value, usage: Option<Value>) -> Value {
    if let Some(usage) = usage {
        reply["usage"] = usage;
    }
    reply
}

fn completion(name: &str, usage: Option<FakeUsage>) -> Value {
    let reply = json!({
        "id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": "fake",
        "choices": [{"text": format!("Completed by {name}"), "index": 0, "logprobs": null, "finish_reason": "stop"}],
    });
    with_usage(reply, usage.map(openai_usage))
}

fn completion_events(name: &str, behavior: &Behavior, with_usage: bool) -> Vec<String> {
    let chunk = |text: String, usage: Option<Value>| {
        let choices = if usage.is_some() {
            json!([])
        } else {
            json!([{"text": text, "index": 0, "logprobs": null, "finish_reason": null}])
        };
        let mut event = json!({"id": "cmpl-fake", "object": "text_completion", "created": 1_700_000_000, "model": "fake", "choices": choices});
        if let Some(usage) = usage {
            event["usage"] = usage;
        }
        format!("data: {event}\n\n")
    };
    let mut events: Vec<String> = (0..behavior.chunks)
        .map(|index| chunk(format!("{name}-{index} "), None))
        .collect();
    if let (true, Some(usage)) = (with_usage, behavior.usage) {
        events.push(chunk(String::new(), Some(openai_usage(usage))));
    }
    events.push("data: [DONE]\n\n".to_string());
    events
}

fn embedding(usage: Option<FakeUsage>) -> Value {
    let reply = json!({
        "object": "list", "model": "fake",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
    });
    with_usage(
        reply,
        usage.map(|usage| json!({"prompt_tokens": usage.prompt, "total_tokens": usage.total})),
    )
}

fn response_object(name: &str, status: &str, usage: Option<Value>) -> Value {
    json!({
        "id": "resp_fake", "object": "response", "created_at": 1_700_000_000, "status": status, "model": "fake",
        "output": [{"type": "message", "id": "msg_fake", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": format!("Responded by {name}"), "annotations": []}]}],
        "usage": usage,
    })
}

fn response(name: &str, usage: Option<FakeUsage>) -> Value {
    response_object(name, "completed", usage.map(io_usage))
}

fn response_events(name: &str, behavior: &Behavior) -> Vec<String> {
    let event = |kind: &str, mut data: Value, sequence: usize| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(sequence);
        format!("event: {kind}\ndata: {data}\n\n")
    };
    let mut events = vec![event(
        "response.created",
        json!({"response": response_object(name, "in_progress", None)}),
        0,
    )];
    for index in 0..behavior.chunks {
        let delta = json!({"item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": format!("{name}-{index} ")});
        events.push(event("response.output_text.delta", delta, index + 1));
    }
    let done =
        json!({"response": response_object(name, "completed", behavior.usage.map(io_usage))});
    events.push(event("response.completed", done, behavior.chunks + 1));
    events
}

fn transcription(name: &str, usage: Option<FakeUsage>) -> Value {
    let usage = match usage {
        Some(usage) => {
            let mut usage = io_usage(usage);
            usage["type"] = json!("tokens");
            usage
        }
        None => json!({"type": "duration", "seconds": 3}),
    };
    json!({"text": format!("Transcribed by {name}"), "usage": usage})
}

fn transcript_events(name: &str, usage: Option<FakeUsage>) -> Vec<String> {
    let mut done =
        json!({"type": "transcript.text.done", "text": format!("Transcribed by {name}")});
    if let Some(usage) = usage {
        done["usage"] = io_usage(usage);
    }
    vec![
        format!(
            "data: {}\n\n",
            json!({"type": "transcript.text.delta", "delta": format!("Transcribed by {name}")})
        ),
        format!("data: {done}\n\n"),
    ]
}

fn speech_events(usage: Option<FakeUsage>) -> Vec<String> {
    let mut done = json!({"type": "speech.audio.done"});
    if let Some(usage) = usage {
        done["usage"] = io_usage(usage);
    }
    vec![
        format!(
            "data: {}\n\n",
            json!({"type": "speech.audio.delta", "audio": "RkFLRQ=="})
        ),
        format!("data: {done}\n\n"),
    ]
}

/// The bytes `audio/speech` answers with: `FAKEAUDIO` repeated per chunk.
pub const AUDIO_CHUNK: &[u8] = b"FAKEAUDIO";

fn audio(behavior: &Behavior) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..behavior.chunks)
        .map(|_| Ok(Bytes::from_static(AUDIO_CHUNK)))
        .collect();
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("audio/mpeg"),
    );
    response
}

fn image(usage: Option<FakeUsage>) -> Value {
    let usage = usage.map(|usage| {
        let mut usage = io_usage(usage);
        usage["input_tokens_details"] =
            json!({"text_tokens": usage["input_tokens"], "image_tokens": 0});
        usage
    });
    with_usage(
        json!({"created": 1_700_000_000, "data": [{"b64_json": "RkFLRQ=="}]}),
        usage,
    )
}

fn sse(events: Vec<String>) -> Response {
    let body = futures_util::stream::iter(
        events
            .into_iter()
            .map(|event| Ok::<_, std::io::Error>(Bytes::from(event))),
    );
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    response
}
