//! A fake OpenAI-compatible upstream on 127.0.0.1:0, for integration tests and
//! benchmarks (`examples/fake_upstream.rs` includes this file by path, so it
//! must depend on nothing else under `tests/`).
//!
//! Each instance counts the requests it received, remembers the last request
//! body and every `Authorization` header, and follows a [`Behavior`] that a
//! test can change at any time: fixed or missing usage, N stream chunks,
//! failures with a status for the next N requests or always, a delayed first
//! byte, a slow or broken stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub mod anthropic;
pub mod models;
pub mod openai;
mod realtime;

/// Token counts the fake reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeUsage {
    pub prompt: u64,
    pub completion: u64,
    pub total: u64,
}

/// How the next requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing {
    pub status: u16,
    /// How many more requests fail; `None` means every one.
    pub remaining: Option<usize>,
}

/// What the fake does with the next request.
#[derive(Debug, Clone)]
pub struct Behavior {
    /// Usage to report; `None` omits it everywhere.
    pub usage: Option<FakeUsage>,
    /// Content chunks in a stream (plus a role chunk, a finish chunk, and the
    /// usage chunk when the request asked for it).
    pub chunks: usize,
    pub failing: Option<Failing>,
    /// Sleep before answering at all.
    pub first_byte_delay: Duration,
    /// Sleep between stream events.
    pub chunk_delay: Duration,
    /// Break the connection after this many stream events. Set a
    /// `chunk_delay` too, so the events before the break are flushed first.
    pub stop_after: Option<usize>,
    /// When set, every request waits for a permit of this semaphore before
    /// answering (after counting itself), so a test can hold requests in
    /// flight and release them one by one with `add_permits`.
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl Default for Behavior {
    fn default() -> Behavior {
        Behavior {
            usage: Some(FakeUsage {
                prompt: 11,
                completion: 7,
                total: 18,
            }),
            chunks: 3,
            failing: None,
            first_byte_delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            stop_after: None,
            gate: None,
        }
    }
}

struct Shared {
    name: String,
    behavior: Mutex<Behavior>,
    requests: AtomicUsize,
    /// The sum of `total_tokens` in every usage object sent.
    reported: AtomicU64,
    /// Streams the client dropped before they finished.
    aborted: AtomicUsize,
    last_body: Mutex<Option<Value>>,
    /// The last chat request's bytes, exactly as received.
    last_raw: Mutex<Option<Bytes>>,
    auths: Mutex<Vec<String>>,
    /// Requests to the endpoints in `openai`.
    recorded: Mutex<Vec<openai::Recorded>>,
    /// Requests to the endpoints in `anthropic`.
    anthropic: Mutex<Vec<anthropic::AnthropicSeen>>,
}

/// A running fake upstream; it stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeUpstream {
    /// Starts on 127.0.0.1:0. `name` appears in every reply's content.
    pub async fn start(name: &str) -> std::io::Result<FakeUpstream> {
        FakeUpstream::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(name: &str, addr: SocketAddr) -> std::io::Result<FakeUpstream> {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            behavior: Mutex::new(Behavior::default()),
            requests: AtomicUsize::new(0),
            reported: AtomicU64::new(0),
            aborted: AtomicUsize::new(0),
            last_body: Mutex::new(None),
            last_raw: Mutex::new(None),
            auths: Mutex::new(Vec::new()),
            recorded: Mutex::new(Vec::new()),
            anthropic: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .merge(openai::routes())
            .merge(anthropic::routes())
            .route("/v1/models", axum::routing::get(models::models))
            .route("/v1/realtime", axum::routing::get(realtime::realtime))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeUpstream { addr, shared, task })
    }

    /// The API root to configure as a channel's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Requests received, failed ones included.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The sum of `total_tokens` over every usage object this fake sent.
    pub fn reported_tokens(&self) -> u64 {
        self.shared.reported.load(Ordering::SeqCst)
    }

    /// Streams that were dropped before their end (the client went away).
    pub fn aborted(&self) -> usize {
        self.shared.aborted.load(Ordering::SeqCst)
    }

    pub fn last_body(&self) -> Option<Value> {
        lock(&self.shared.last_body).clone()
    }

    /// The last chat request's body, byte for byte.
    pub fn last_raw_body(&self) -> Option<Bytes> {
        lock(&self.shared.last_raw).clone()
    }

    /// Every `Authorization` header received, in order.
    pub fn auths(&self) -> Vec<String> {
        lock(&self.shared.auths).clone()
    }

    pub fn last_auth(&self) -> Option<String> {
        lock(&self.shared.auths).last().cloned()
    }

    /// Changes the behaviour for the following requests.
    pub fn configure(&self, change: impl FnOnce(&mut Behavior)) {
        change(&mut lock(&self.shared.behavior));
    }

    /// The next `count` requests fail with `status`.
    pub fn fail_next(&self, status: u16, count: usize) {
        self.configure(|behavior| {
            behavior.failing = Some(Failing {
                status,
                remaining: Some(count),
            })
        });
    }

    /// Every request fails with `status`.
    pub fn fail_always(&self, status: u16) {
        self.configure(|behavior| {
            behavior.failing = Some(Failing {
                status,
                remaining: None,
            })
        });
    }

    pub fn omit_usage(&self) {
        self.configure(|behavior| behavior.usage = None);
    }
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    lock(&shared.auths).push(auth.unwrap_or_default().to_string());
    *lock(&shared.last_body) = Some(request.clone());
    *lock(&shared.last_raw) = Some(body.clone());
    let (behavior, fail_status) = {
        let mut behavior = lock(&shared.behavior);
        let fail_status = take_failure(&mut behavior.failing);
        (behavior.clone(), fail_status)
    };
    if let Some(gate) = &behavior.gate
        && let Ok(permit) = gate.acquire().await
    {
        permit.forget();
    }
    if !behavior.first_byte_delay.is_zero() {
        tokio::time::sleep(behavior.first_byte_delay).await;
    }
    if let Some(status) = fail_status {
        return failure(&shared.name, status);
    }
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    if request.get("stream") == Some(&Value::Bool(true)) {
        let with_usage =
            request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
        stream(shared, behavior, model, with_usage)
    } else {
        let mut reply = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": format!("Hello from {}", shared.name), "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
        });
        if let Some(usage) = behavior.usage {
            reply["usage"] = usage_json(usage);
            shared.reported.fetch_add(usage.total, Ordering::SeqCst);
        }
        (
            [(header::CONTENT_TYPE, "application/json")],
            reply.to_string(),
        )
            .into_response()
    }
}

fn take_failure(failing: &mut Option<Failing>) -> Option<u16> {
    let current = (*failing)?;
    match current.remaining {
        None => Some(current.status),
        Some(0) => {
            *failing = None;
            None
        }
        Some(count) => {
            *failing = (count > 1).then_some(Failing {
                remaining: Some(count - 1),
                ..current
            });
            Some(current.status)
        }
    }
}

fn failure(name: &str, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {
        "message": format!("fake {name} says {}", status.as_u16()),
        "type": "fake_error",
        "param": null,
        "code": "fake",
    }});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn usage_json(usage: FakeUsage) -> Value {
    json!({"prompt_tokens": usage.prompt, "completion_tokens": usage.completion, "total_tokens": usage.total})
}

/// The SSE events of one streamed reply, in order.
fn events(name: &str, behavior: &Behavior, model: &str, with_usage: bool) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for index in 0..behavior.chunks {
        events.push(chunk(
            json!({"content": format!("{name}-{index} ")}),
            Value::Null,
        ));
    }
    events.push(chunk(json!({}), json!("stop")));
    if let (true, Some(usage)) = (with_usage, behavior.usage) {
        events.push(json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": model,
            "choices": [],
            "usage": usage_json(usage),
        }));
    }
    let mut lines: Vec<String> = events
        .iter()
        .map(|event| format!("data: {event}\n\n"))
        .collect();
    lines.push("data: [DONE]\n\n".to_string());
    lines
}

/// Counts a stream as aborted if it is dropped before its end.
struct StreamGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl StreamGuard {
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.aborted.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn stream(shared: Arc<Shared>, behavior: Behavior, model: String, with_usage: bool) -> Response {
    let events = events(&shared.name, &behavior, &model, with_usage);
    if let (true, Some(usage), None) = (with_usage, behavior.usage, behavior.stop_after) {
        shared.reported.fetch_add(usage.total, Ordering::SeqCst);
    }
    let guard = StreamGuard {
        shared,
        finished: false,
    };
    let state = (events.into_iter().enumerate(), guard, behavior);
    let body =
        futures_util::stream::unfold(state, |(mut events, mut guard, behavior)| async move {
            let Some((index, event)) = events.next() else {
                guard.finish();
                return None;
            };
            if index > 0 && !behavior.chunk_delay.is_zero() {
                tokio::time::sleep(behavior.chunk_delay).await;
            }
            if behavior.stop_after == Some(index) {
                // Count a deliberate break as finished: the client did not go away.
                guard.finish();
                let error = std::io::Error::other("fake upstream broke the stream");
                return Some((Err(error), (events, guard, behavior)));
            }
            Some((Ok(Bytes::from(event)), (events, guard, behavior)))
        });
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    response
}
