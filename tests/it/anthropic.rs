//! Anthropic over real sockets: the native `/v1/messages` relayed intact and
//! counted as input + output + cache creation + cache read, and the OpenAI
//! chat API served by `anthropic` channels through the translation.

use async_openai::types::chat::{
    CreateChatCompletionResponse, CreateChatCompletionStreamResponse, FinishReason,
};
use serde_json::{Value, json};
use sluicegate::model::ChannelId;

use crate::relay::{Rig, ids, log_row, sse_payloads};
use crate::support::gateway::TestGateway;
use crate::support::upstream::FakeUpstream;

/// 11 input + 7 output + 5 cache creation + 20 cache read.
const TOTAL: u64 = 43;

async fn anthropic_rig(names: &[&str]) -> (Rig, Vec<(FakeUpstream, i64)>) {
    let rig = Rig::start().await;
    let mut fakes = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let fake = FakeUpstream::start(name).await.unwrap();
        let priority = 10 - index as i64;
        let extra = json!({"type": "anthropic", "base_url": fake.anthropic_base_url(),
                           "priority": priority, "model_mapping": {"claude": "claude-up"}});
        let id = rig.channel(&fake, &["claude"], extra).await;
        fakes.push((fake, id));
    }
    (rig, fakes)
}

/// Tokens counted today for channel `id`.
fn counted(gateway: &TestGateway, id: i64) -> u64 {
    let state = gateway.state();
    let zone = state.config.timezone;
    state
        .counters
        .view(ChannelId(id), zone, state.clock.now())
        .used
}

fn message_request(stream: bool) -> Value {
    json!({"model": "claude", "max_tokens": 64, "stream": stream, "system": "Be brief.",
           "messages": [{"role": "user", "content": "Say hello"}]})
}

async fn post_messages(rig: &Rig, request_id: &str, body: &Value) -> reqwest::Response {
    rig.gateway
        .client
        .post(rig.gateway.url("/v1/messages"))
        .header("x-api-key", &rig.key)
        .header("x-request-id", request_id)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A native message is relayed unchanged, with the client's Anthropic
/// headers and the channel's key, and counted with its cache tokens.
#[tokio::test]
async fn native_message_is_relayed_and_counted() {
    let (rig, fakes) = anthropic_rig(&["claude-a"]).await;
    let (fake, id) = &fakes[0];
    let response = post_messages(&rig, "native-plain", &message_request(false)).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["content"][0]["text"], "Hello from claude-a");
    assert_eq!(
        reply["usage"],
        json!({"input_tokens": 11, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 20, "output_tokens": 7})
    );
    let seen = fake.anthropic_seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/messages");
    assert_eq!(seen[0].api_key.as_deref(), Some("sk-upstream-claude-a"));
    assert_eq!(seen[0].authorization, None);
    assert_eq!(seen[0].version.as_deref(), Some("2023-06-01"));
    assert_eq!(seen[0].beta.as_deref(), Some("prompt-caching-2024-07-31"));
    assert_eq!(seen[0].body["model"], "claude-up");
    assert_eq!(seen[0].body["system"], "Be brief.");
    let row = log_row(&rig.gateway, "native-plain").await;
    assert_eq!(row["endpoint"], "/v1/messages");
    assert_eq!(row["total_tokens"], TOTAL);
    assert_eq!(row["prompt_tokens"], 36);
    assert_eq!(row["completion_tokens"], 7);
    assert_eq!(row["estimated"], false);
    assert_eq!(counted(&rig.gateway, *id), TOTAL);
    assert_eq!(fake.reported_tokens(), TOTAL);
}

/// A native stream reaches the client byte for byte as the upstream sent
/// it, and is counted from message_start + message_delta.
#[tokio::test]
async fn native_stream_is_relayed_intact_and_counted() {
    let (rig, fakes) = anthropic_rig(&["claude-s"]).await;
    let (fake, id) = &fakes[0];
    let response = post_messages(&rig, "native-stream", &message_request(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let relayed = response.text().await.unwrap();
    let mut direct_body = message_request(true);
    direct_body["model"] = json!("claude-up");
    let direct = reqwest::Client::new()
        .post(format!("{}/v1/messages", fake.anthropic_base_url()))
        .json(&direct_body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(relayed, direct);
    assert!(relayed.contains("event: message_delta"));
    let row = log_row(&rig.gateway, "native-stream").await;
    assert_eq!(row["stream"], true);
    assert_eq!(row["total_tokens"], TOTAL);
    assert_eq!(counted(&rig.gateway, *id), TOTAL);
}

/// Bearer auth works too, and the default anthropic-version is sent when
/// the client names none; count_tokens is relayed but never counted.
#[tokio::test]
async fn bearer_default_version_and_count_tokens() {
    let (rig, fakes) = anthropic_rig(&["claude-c"]).await;
    let (fake, id) = &fakes[0];
    let response = rig
        .gateway
        .relay(&rig.key, "/v1/messages/count_tokens")
        .header("x-request-id", "count")
        .json(&json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"input_tokens": 11})
    );
    let seen = fake.anthropic_seen();
    assert_eq!(seen[0].path, "/v1/messages/count_tokens");
    assert_eq!(seen[0].version.as_deref(), Some("2023-06-01"));
    assert_eq!(seen[0].beta, None);
    let row = log_row(&rig.gateway, "count").await;
    assert_eq!(row["endpoint"], "/v1/messages/count_tokens");
    assert_eq!(row["total_tokens"], 0);
    assert_eq!(counted(&rig.gateway, *id), 0);
}

/// Errors use Anthropic's envelope: a bad key, an unknown model, a model
/// only OpenAI channels serve, and a capped channel's 429 with Retry-After.
#[tokio::test]
async fn errors_use_the_anthropic_envelope() {
    let rig = Rig::start().await;
    let claude = FakeUpstream::start("capped").await.unwrap();
    let openai = FakeUpstream::start("openai").await.unwrap();
    let extra = json!({"type": "anthropic", "base_url": claude.anthropic_base_url(),
                       "settings": {"daily_token_limit": 40}});
    rig.channel(&claude, &["claude"], extra).await;
    rig.channel(&openai, &["gpt-4o"], json!({})).await;
    assert_eq!(
        post_messages(&rig, "fill", &message_request(false))
            .await
            .status(),
        200
    );
    let url = rig.gateway.url("/v1/messages");
    let client = &rig.gateway.client;
    let bad_key = client
        .post(&url)
        .header("x-api-key", "sk-nope")
        .json(&message_request(false))
        .send()
        .await
        .unwrap();
    let mut unknown = message_request(false);
    unknown["model"] = json!("nope");
    let mut openai_only = message_request(false);
    openai_only["model"] = json!("gpt-4o");
    let cases = [
        (bad_key, 401, "authentication_error"),
        (
            post_messages(&rig, "unknown", &unknown).await,
            404,
            "not_found_error",
        ),
        (
            post_messages(&rig, "openai-only", &openai_only).await,
            404,
            "not_found_error",
        ),
        (
            post_messages(&rig, "capped", &message_request(false)).await,
            429,
            "rate_limit_error",
        ),
    ];
    for (response, status, kind) in cases {
        assert_eq!(response.status(), status, "{kind}");
        let retry_after = response.headers().get("retry-after").is_some();
        assert_eq!(retry_after, status == 429, "{kind}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|text| !text.is_empty())
        );
    }
    assert_eq!(
        claude.requests(),
        1,
        "capped requests never reach the upstream"
    );
    assert_eq!(openai.requests(), 0);
}

/// A failing anthropic channel is retried on the next one; only the one
/// that served is counted.
#[tokio::test]
async fn retry_moves_to_the_next_anthropic_channel() {
    let (rig, fakes) = anthropic_rig(&["claude-broken", "claude-spare"]).await;
    let ((broken, broken_id), (spare, spare_id)) = (&fakes[0], &fakes[1]);
    broken.fail_always(529);
    let response = post_messages(&rig, "retry", &message_request(false)).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["content"][0]["text"], "Hello from claude-spare");
    let row = log_row(&rig.gateway, "retry").await;
    assert_eq!(ids(&row), vec![*broken_id, *spare_id]);
    assert_eq!((broken.requests(), spare.requests()), (1, 1));
    assert_eq!(counted(&rig.gateway, *broken_id), 0);
    assert_eq!(counted(&rig.gateway, *spare_id), TOTAL);
}

fn chat_with_tool(stream: bool) -> Value {
    json!({"model": "claude", "stream": stream,
           "messages": [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Paris?"}],
           "tools": [{"type": "function", "function": {"name": "weather",
                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]})
}

/// An OpenAI client gets a chat completion with the tool call from an
/// anthropic channel, decoded by async-openai, counted like any request.
#[tokio::test]
async fn openai_chat_is_translated_with_a_tool_call() {
    let (rig, fakes) = anthropic_rig(&["claude-t"]).await;
    let (fake, id) = &fakes[0];
    let response = rig.chat("translated", &chat_with_tool(false)).await;
    assert_eq!(response.status(), 200);
    let reply: CreateChatCompletionResponse = response.json().await.unwrap();
    let choice = &reply.choices[0];
    assert_eq!(
        choice.message.content.as_deref(),
        Some("Hello from claude-t")
    );
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let calls = serde_json::to_value(&choice.message.tool_calls).unwrap();
    assert_eq!(calls[0]["id"], "toolu_fake");
    assert_eq!(calls[0]["function"]["name"], "weather");
    assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    let usage = reply.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (36, 7, 43)
    );
    let seen = &fake.anthropic_seen()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.api_key.as_deref(), Some("sk-upstream-claude-t"));
    assert_eq!(seen.body["system"], "Use tools.");
    assert_eq!(seen.body["max_tokens"], 4096);
    assert_eq!(
        seen.body["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    let row = log_row(&rig.gateway, "translated").await;
    assert_eq!(row["endpoint"], "/v1/chat/completions");
    assert_eq!(row["total_tokens"], TOTAL);
    assert_eq!(counted(&rig.gateway, *id), TOTAL);
}

/// A translated stream decodes chunk by chunk with async-openai: text,
/// the tool call's fragments, the finish reason, and usage only if asked
/// for; both streams are counted.
#[tokio::test]
async fn openai_stream_is_translated_with_a_tool_call() {
    let (rig, fakes) = anthropic_rig(&["claude-st"]).await;
    let (_fake, id) = &fakes[0];
    for (request_id, include_usage) in [("stream-usage", true), ("stream-plain", false)] {
        let mut body = chat_with_tool(true);
        body["stream_options"] = json!({"include_usage": include_usage});
        let text = rig.chat(request_id, &body).await.text().await.unwrap();
        let payloads = sse_payloads(&text);
        assert_eq!(payloads.last(), Some(&json!("[DONE]")), "{text}");
        let chunks: Vec<CreateChatCompletionStreamResponse> = payloads[..payloads.len() - 1]
            .iter()
            .map(|payload| serde_json::from_value(payload.clone()).unwrap())
            .collect();
        let deltas = chunks.iter().flat_map(|chunk| chunk.choices.iter());
        let content: String = deltas
            .clone()
            .filter_map(|choice| choice.delta.content.clone())
            .collect();
        assert_eq!(content, "claude-st-0 claude-st-1 claude-st-2 ");
        let calls = deltas
            .clone()
            .filter_map(|choice| choice.delta.tool_calls.clone())
            .flatten();
        let calls: Vec<Value> = calls
            .map(|call| serde_json::to_value(call).unwrap())
            .collect();
        assert_eq!(calls[0]["id"], "toolu_fake");
        assert_eq!(calls[0]["function"]["name"], "weather");
        let arguments: String = calls
            .iter()
            .filter_map(|call| call["function"]["arguments"].as_str())
            .collect();
        assert_eq!(arguments, "{\"city\": \"Paris\"}");
        let finish = deltas
            .filter_map(|choice| choice.finish_reason)
            .collect::<Vec<_>>();
        assert_eq!(finish, vec![FinishReason::ToolCalls]);
        let usage = chunks
            .iter()
            .filter_map(|chunk| chunk.usage.as_ref())
            .map(|usage| usage.total_tokens);
        let expected: Vec<u32> = if include_usage { vec![43] } else { vec![] };
        assert_eq!(usage.collect::<Vec<_>>(), expected);
        let row = log_row(&rig.gateway, request_id).await;
        assert_eq!(row["total_tokens"], TOTAL);
    }
    assert_eq!(counted(&rig.gateway, *id), 2 * TOTAL);
}

/// An Anthropic 400 reaches an OpenAI client in the OpenAI envelope, and a
/// request the translation cannot carry is refused before any upstream call.
#[tokio::test]
async fn openai_clients_get_openai_errors_from_anthropic_channels() {
    let (rig, fakes) = anthropic_rig(&["claude-e"]).await;
    let (fake, _) = &fakes[0];
    let mut audio = chat_with_tool(false);
    audio["messages"] =
        json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]);
    let refused = rig.chat("untranslatable", &audio).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["param"], "messages[0].content[0]", "{body}");
    assert_eq!(fake.requests(), 0);
    fake.fail_next(400, 1);
    let rejected = rig.chat("rejected", &chat_with_tool(false)).await;
    assert_eq!(rejected.status(), 400);
    let body: Value = rejected.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["message"], "fake claude-e says 400");
}
