//! The fake's `GET /v1/realtime`: a WebSocket that speaks just enough of the
//! OpenAI Realtime API for the gateway's proxy and the official SDK.
//!
//! It counts the handshake as a request, records its `Authorization` header
//! in `auths` and `{"model", "openai_beta"}` as the last body, and honours
//! `failing` (answering the handshake with the failure status instead). Once
//! open it sends `session.created`, echoes every client frame back
//! unchanged, and answers each `response.create` with `response.created`, a
//! `response.output_text.delta` saying "Hello from NAME", and
//! `response.done` carrying the configured usage (`input_tokens` = prompt,
//! `output_tokens` = completion, `total_tokens` = total), which is added to
//! `reported`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Behavior, Shared, failure, lock, take_failure};

pub(super) async fn realtime(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    };
    let auth = header_text(header::AUTHORIZATION.as_str());
    lock(&shared.auths).push(auth.unwrap_or_default());
    let model = query.get("model").cloned().unwrap_or_default();
    *lock(&shared.last_body) = Some(json!({
        "model": model,
        "openai_beta": header_text("openai-beta"),
    }));
    let (behavior, fail_status) = {
        let mut behavior = lock(&shared.behavior);
        let fail_status = take_failure(&mut behavior.failing);
        (behavior.clone(), fail_status)
    };
    if let Some(status) = fail_status {
        return failure(&shared.name, status);
    }
    upgrade.on_upgrade(move |socket| session(socket, shared, behavior, model))
}

async fn session(mut socket: WebSocket, shared: Arc<Shared>, behavior: Behavior, model: String) {
    let created = json!({
        "type": "session.created",
        "event_id": "event_fake_0",
        "session": {"id": "sess_fake", "object": "realtime.session", "type": "realtime", "model": model},
    });
    if send(&mut socket, &created).await.is_err() {
        return;
    }
    let mut responses = 0;
    while let Some(Ok(message)) = socket.recv().await {
        let event = match &message {
            Message::Text(text) => serde_json::from_str::<Value>(text.as_str()).ok(),
            Message::Binary(_) => None,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if socket.send(message).await.is_err() {
            return;
        }
        let asked = event
            .as_ref()
            .and_then(|event| event.get("type"))
            .and_then(Value::as_str)
            == Some("response.create");
        if asked {
            responses += 1;
            for reply in response_events(&shared, &behavior, responses) {
                if send(&mut socket, &reply).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn send(socket: &mut WebSocket, event: &Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(event.to_string().into())).await
}

/// The server events answering the `index`th `response.create`.
fn response_events(shared: &Shared, behavior: &Behavior, index: usize) -> Vec<Value> {
    let id = format!("resp_fake_{index}");
    let text = format!("Hello from {}", shared.name);
    let mut done = json!({
        "type": "response.done",
        "event_id": format!("event_fake_done_{index}"),
        "response": {
            "id": id,
            "object": "realtime.response",
            "status": "completed",
            "output": [{
                "id": "item_fake",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text}],
            }],
        },
    });
    if let Some(usage) = behavior.usage {
        done["response"]["usage"] = json!({
            "total_tokens": usage.total,
            "input_tokens": usage.prompt,
            "output_tokens": usage.completion,
        });
        shared.reported.fetch_add(usage.total, Ordering::SeqCst);
    }
    vec![
        json!({
            "type": "response.created",
            "event_id": format!("event_fake_created_{index}"),
            "response": {"id": id, "object": "realtime.response", "status": "in_progress", "output": []},
        }),
        json!({
            "type": "response.output_text.delta",
            "event_id": format!("event_fake_delta_{index}"),
            "response_id": id,
            "item_id": "item_fake",
            "output_index": 0,
            "content_index": 0,
            "delta": text,
        }),
        done,
    ]
}
