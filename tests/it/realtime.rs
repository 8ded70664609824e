//! `GET /v1/realtime` over real sockets: a tungstenite client, the gateway,
//! and the fake upstream's realtime WebSocket.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sluicegate::model::ChannelId;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::relay::{Rig, log_row, upstream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Handshake = Result<(Socket, tungstenite::handshake::client::Response), tungstenite::Error>;

/// Opens `/v1/realtime?model=MODEL` on the rig's gateway with extra headers.
async fn open(rig: &Rig, model: &str, headers: &[(&str, &str)]) -> Handshake {
    let url = format!("ws://{}/v1/realtime?model={model}", rig.gateway.addr);
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    tokio_tungstenite::connect_async(request).await
}

/// Opens a session with the rig's key as Bearer and a request id.
async fn open_as(rig: &Rig, key: &str, request_id: &str) -> Socket {
    let bearer = format!("Bearer {key}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-request-id", request_id),
        ("openai-beta", "realtime=v1"),
    ];
    let (socket, response) = open(rig, "m", &headers).await.unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// The next text frame, parsed.
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await.unwrap().unwrap() {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends `response.create` and reads up to its `response.done`.
async fn respond(socket: &mut Socket) -> Vec<Value> {
    let ask = json!({"type": "response.create"}).to_string();
    socket.send(Message::Text(ask.into())).await.unwrap();
    let mut events = Vec::new();
    loop {
        let event = next_event(socket).await;
        let done = event["type"] == "response.done";
        events.push(event);
        if done {
            return events;
        }
    }
}

/// Tokens counted today on `channel`, in memory.
fn used(rig: &Rig, channel: i64) -> u64 {
    let state = rig.gateway.state();
    let snapshot = state.snapshot();
    let entry = snapshot.channel(ChannelId(channel)).unwrap();
    state
        .counters
        .view(ChannelId(channel), entry.cap.zone, state.clock.now())
        .used
}

/// Counts `tokens` on `channel` today, as earlier traffic would have.
fn spend(rig: &Rig, channel: i64, tokens: u64) {
    let state = rig.gateway.state();
    let snapshot = state.snapshot();
    let zone = snapshot.channel(ChannelId(channel)).unwrap().cap.zone;
    state
        .counters
        .count(ChannelId(channel), zone, tokens, None, state.clock.now());
}

/// Frames pass both ways unchanged, each response.done is counted while the session is still open, and one log row totals the session.
#[tokio::test]
async fn frames_relay_and_usage_counts_while_open() {
    let rig = Rig::start().await;
    let fake = upstream("rt").await;
    let channel = rig
        .channel(
            &fake,
            &["m"],
            json!({"model_mapping": {"m": "gpt-realtime"}}),
        )
        .await;
    let mut socket = open_as(&rig, &rig.key, "rt-session-1").await;
    assert_eq!(next_event(&mut socket).await["type"], "session.created");

    let client_event = r#"{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"héllo"}]}}"#;
    socket
        .send(Message::Text(client_event.into()))
        .await
        .unwrap();
    match socket.next().await.unwrap().unwrap() {
        Message::Text(text) => assert_eq!(text.as_str(), client_event, "echoed unchanged"),
        other => panic!("{other:?}"),
    }
    socket
        .send(Message::Binary(vec![0u8, 1, 2, 255].into()))
        .await
        .unwrap();
    match socket.next().await.unwrap().unwrap() {
        Message::Binary(data) => assert_eq!(data.as_ref(), &[0u8, 1, 2, 255]),
        other => panic!("{other:?}"),
    }

    let events = respond(&mut socket).await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        types,
        [
            "response.create",
            "response.created",
            "response.output_text.delta",
            "response.done"
        ]
    );
    assert_eq!(events[2]["delta"], "Hello from rt");
    assert_eq!(used(&rig, channel), 18, "counted as response.done passed");
    respond(&mut socket).await;
    assert_eq!(used(&rig, channel), 36, "counted again, session still open");

    assert_eq!(fake.last_auth().as_deref(), Some("Bearer sk-upstream-rt"));
    let handshake = fake.last_body().unwrap();
    assert_eq!(handshake["model"], "gpt-realtime");
    assert_eq!(handshake["openai_beta"], "realtime=v1");

    socket.close(None).await.unwrap();
    let row = log_row(&rig.gateway, "rt-session-1").await;
    assert_eq!(row["endpoint"], "/v1/realtime");
    assert_eq!(row["status"], 101);
    assert_eq!(row["model"], "m");
    assert_eq!(row["upstream_model"], "gpt-realtime");
    assert_eq!(
        (
            &row["prompt_tokens"],
            &row["completion_tokens"],
            &row["total_tokens"]
        ),
        (&json!(22), &json!(14), &json!(36))
    );
    assert_eq!(row["estimated"], false);
    assert_eq!(used(&rig, channel), 36, "closing counts nothing twice");
}

/// A browser-style key in the subprotocol authenticates, `realtime` is echoed back, and the beta subprotocol becomes the upstream's OpenAI-Beta header.
#[tokio::test]
async fn subprotocol_key_authenticates() {
    let rig = Rig::start().await;
    let fake = upstream("sub").await;
    rig.channel(&fake, &["m"], json!({})).await;
    let protocols = format!(
        "realtime, openai-insecure-api-key.{}, openai-beta.realtime-v1",
        rig.key
    );
    let (mut socket, response) = open(&rig, "m", &[("sec-websocket-protocol", &protocols)])
        .await
        .unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "realtime",
        "the acceptable subprotocol is echoed"
    );
    assert_eq!(next_event(&mut socket).await["type"], "session.created");
    assert_eq!(fake.last_body().unwrap()["openai_beta"], "realtime=v1");
    assert_eq!(fake.last_auth().as_deref(), Some("Bearer sk-upstream-sub"));
}

/// The error of a refused handshake: its status and OpenAI-envelope body.
fn refused(handshake: Handshake) -> (u16, Value, Option<String>) {
    match handshake {
        Err(tungstenite::Error::Http(response)) => {
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().to_string());
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap(),
                retry_after,
            )
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, got an open session"),
    }
}

/// A WebSocket without a key, or with an unknown one, gets 401 in the OpenAI envelope before any upgrade.
#[tokio::test]
async fn missing_auth_is_401_before_upgrade() {
    let rig = Rig::start().await;
    let fake = upstream("noauth").await;
    rig.channel(&fake, &["m"], json!({})).await;
    let cases: [&[(&str, &str)]; 2] = [
        &[],
        &[(
            "sec-websocket-protocol",
            "realtime, openai-insecure-api-key.sk-nope",
        )],
    ];
    for headers in cases {
        let (status, body, _) = refused(open(&rig, "m", headers).await);
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let bearer = format!("Bearer {}", rig.key);
    let (status, body, _) = refused(open(&rig, "nope", &[("authorization", &bearer)]).await);
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("model_not_found"))
    );
    assert_eq!(fake.requests(), 0, "nothing reached the upstream");
}

/// A key bound to a capped channel gets 429 before the upgrade, with Retry-After, and the upstream is never dialled.
#[tokio::test]
async fn bound_capped_key_is_429() {
    let rig = Rig::start().await;
    let fake = upstream("bound").await;
    let channel = rig
        .channel(
            &fake,
            &["m"],
            json!({"settings": {"daily_token_limit": 100}}),
        )
        .await;
    let (_, key) = rig
        .gateway
        .create_token(json!({"name": "bound", "channel_id": channel}))
        .await;
    spend(&rig, channel, 100);
    let bearer = format!("Bearer {key}");
    let (status, body, retry_after) = refused(open(&rig, "m", &[("authorization", &bearer)]).await);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "channel_daily_token_limit_exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(retry_after.is_some());
    assert_eq!(fake.requests(), 0);
}

/// A session on a channel that reaches its cap mid-session finishes there; the next session goes to another channel.
#[tokio::test]
async fn capped_channel_finishes_session_and_new_ones_go_elsewhere() {
    let rig = Rig::start().await;
    let first = upstream("first").await;
    let second = upstream("second").await;
    let capped = rig
        .channel(
            &first,
            &["m"],
            json!({"priority": 10, "settings": {"daily_token_limit": 20}}),
        )
        .await;
    let other = rig.channel(&second, &["m"], json!({"priority": 0})).await;

    let mut session = open_as(&rig, &rig.key, "rt-cap-1").await;
    next_event(&mut session).await;
    respond(&mut session).await;
    respond(&mut session).await;
    assert_eq!(used(&rig, capped), 36, "past the cap of 20");
    let events = respond(&mut session).await;
    assert_eq!(
        events[2]["delta"], "Hello from first",
        "the open session goes on"
    );
    assert_eq!(used(&rig, capped), 54);

    let mut next = open_as(&rig, &rig.key, "rt-cap-2").await;
    next_event(&mut next).await;
    let events = respond(&mut next).await;
    assert_eq!(events[2]["delta"], "Hello from second");
    assert_eq!((first.requests(), second.requests()), (1, 1));
    assert_eq!(used(&rig, other), 18);
    session.close(None).await.unwrap();
    next.close(None).await.unwrap();
    let row = log_row(&rig.gateway, "rt-cap-1").await;
    assert_eq!(row["total_tokens"], 54);
}

/// A channel whose handshake fails is retried on the next one before the client is upgraded.
#[tokio::test]
async fn failed_handshake_retries_next_channel() {
    let rig = Rig::start().await;
    let broken = upstream("broken").await;
    let healthy = upstream("healthy").await;
    broken.fail_always(503);
    let broken_id = rig.channel(&broken, &["m"], json!({"priority": 10})).await;
    let healthy_id = rig.channel(&healthy, &["m"], json!({"priority": 0})).await;
    let mut socket = open_as(&rig, &rig.key, "rt-retry").await;
    next_event(&mut socket).await;
    respond(&mut socket).await;
    socket.close(None).await.unwrap();
    assert_eq!((broken.requests(), healthy.requests()), (1, 1));
    let row = log_row(&rig.gateway, "rt-retry").await;
    assert_eq!(row["channel_ids"], json!([broken_id, healthy_id]));
    assert_eq!(row["total_tokens"], 18);
}
