//! Fuzz entry points for the `/v1` relay's parsers: SSE framing with each
//! stream observer, whole-reply usage and measures, request bodies, audio
//! forms and realtime frames.

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use serde_json::{Map, Value};

use super::{assert_client_error, checked_usage, saturated};
use crate::relay::endpoint::{Endpoint, Parsed, Payload, Prompt, Reply};
use crate::relay::endpoints::anthropic::messages::{COUNT_TOKENS, MESSAGES};
use crate::relay::endpoints::audio::speech::SPEECH;
use crate::relay::endpoints::audio::{TRANSCRIPTIONS, TRANSLATIONS};
use crate::relay::endpoints::chat::CHAT;
use crate::relay::endpoints::completions::COMPLETIONS;
use crate::relay::endpoints::embeddings::EMBEDDINGS;
use crate::relay::endpoints::images::IMAGES;
use crate::relay::endpoints::moderations::MODERATIONS;
use crate::relay::endpoints::responses::RESPONSES;
use crate::relay::observe::Seen;
use crate::relay::sse::SseRelay;
use crate::relay::usage::TextMeasure;

/// Every `/v1` endpoint the pipeline serves, whose parsers are fuzzed.
pub(super) const ENDPOINTS: [&Endpoint; 11] = [
    &CHAT,
    &COMPLETIONS,
    &EMBEDDINGS,
    &RESPONSES,
    &IMAGES,
    &MODERATIONS,
    &TRANSCRIPTIONS,
    &TRANSLATIONS,
    &SPEECH,
    &MESSAGES,
    &COUNT_TOKENS,
];

/// A model name outside the OpenAI families: text is measured by the
/// heuristic, at most one token per character.
const HEURISTIC_MODEL: &str = "fuzz-model";

/// The OpenAI stream observer that chat, completions, responses, images
/// and the audio streams share, behind the SSE relay: with the usage chunk
/// kept and hidden, whole and chunked.
pub fn sse_usage_openai(data: &[u8]) {
    let kept = relay_every_way(&CHAT, false, data);
    assert_eq!(kept.0, data, "a kept stream goes out byte for byte");
    let hidden = relay_every_way(&CHAT, true, data);
    assert_same_seen(&kept.1, &hidden.1);
    // Hiding removes whole events, and only ones that carried usage.
    let events = oracle_events(data);
    let mut remaining = oracle_events(&hidden.0).into_iter().peekable();
    for event in events {
        if remaining.peek() == Some(&event) {
            remaining.next();
        } else {
            assert!(contains(event, b"usage"), "hid {event:?}");
        }
    }
    assert_eq!(
        remaining.next(),
        None,
        "the output is not the input's events"
    );
}

/// The native Messages stream observer (`/v1/messages`) behind the SSE
/// relay: it never hides an event, and its usage never wraps.
pub fn sse_usage_anthropic(data: &[u8]) {
    let (out, seen) = relay_every_way(&MESSAGES, false, data);
    assert_eq!(out, data, "a native stream goes out byte for byte");
    if let Some(raw) = seen.usage {
        let usage = checked_usage(raw);
        let (prompt, completion) = (usage.prompt, usage.completion);
        assert_eq!(
            usage.total,
            saturated(u128::from(prompt) + u128::from(completion))
        );
    }
}

/// Every endpoint's whole-reply usage and reply measure.
pub fn reply_usage(data: &[u8]) {
    let openai = (CHAT.reply_usage)(data);
    for endpoint in ENDPOINTS {
        let usage = (endpoint.reply_usage)(data);
        if let Some(raw) = usage {
            checked_usage(raw);
        }
        let mut measure = TextMeasure::for_model(HEURISTIC_MODEL);
        (endpoint.measure_reply)(data, &mut measure);
        assert!(
            measure.tokens() <= data.len() as u64,
            "{}: {} tokens from {} bytes",
            endpoint.path,
            measure.tokens(),
            data.len()
        );
    }
    // The audio endpoints take the OpenAI usage only when it counts tokens,
    // and token counting is never metered.
    let audio = (TRANSCRIPTIONS.reply_usage)(data);
    assert!(audio.is_none() || audio == openai);
    assert_eq!((COUNT_TOKENS.reply_usage)(data), None);
}

/// Every JSON endpoint's request parser: it accepts exactly the JSON
/// objects serde_json reads (the one-pass scan against a tree parser), and
/// what it forwards is the client's body with only its edits.
pub fn request_parse(data: &[u8]) {
    let object = serde_json::from_slice::<Map<String, Value>>(data).ok();
    for endpoint in ENDPOINTS {
        if std::ptr::eq(endpoint, &TRANSCRIPTIONS) || std::ptr::eq(endpoint, &TRANSLATIONS) {
            continue;
        }
        match (endpoint.parse)(Bytes::copy_from_slice(data), &HeaderMap::new()) {
            Ok(parsed) => check_parsed(endpoint, data, &parsed, object.as_ref()),
            Err(error) => {
                assert_client_error(&error);
                // A JSON object can only lack a usable `model` or have a
                // `stream` that is not a boolean.
                if object.is_some() {
                    let field = error.field.as_deref();
                    assert!(
                        matches!(field, Some("model" | "stream")),
                        "{}: {field:?}",
                        endpoint.path
                    );
                }
            }
        }
    }
}

/// The tree of an outgoing body, which must be a JSON object.
fn sent(bytes: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(bytes) {
        Ok(map) => map,
        Err(error) => panic!("an edited body is not a JSON object: {error}"),
    }
}

fn check_parsed(
    endpoint: &Endpoint,
    data: &[u8],
    parsed: &Parsed,
    body: Option<&Map<String, Value>>,
) {
    let Some(body) = body else {
        panic!(
            "{} accepted a body that is not a JSON object",
            endpoint.path
        );
    };
    assert!(!parsed.model.is_empty());
    assert_eq!(
        body.get("model"),
        Some(&Value::String(parsed.model.clone()))
    );
    let Payload::Json { .. } = &parsed.payload else {
        panic!("{} made a JSON body raw", endpoint.path);
    };
    assert!(parsed.prompt_bound() <= data.len() as u64);
    // Another model name changes `model` and nothing else.
    let mapped = sent(&parsed.body_for("fuzz-upstream"));
    let same_model = parsed.body_for(&parsed.model);
    let payload = sent(&same_model);
    let mut expected = payload.clone();
    expected.insert("model".into(), Value::String("fuzz-upstream".into()));
    assert_eq!(
        mapped, expected,
        "{}: mapping changed more than the model",
        endpoint.path
    );
    assert_eq!(payload.get("model"), body.get("model"));
    let streams = body.get("stream") == Some(&Value::Bool(true));
    if std::ptr::eq(endpoint, &CHAT) || std::ptr::eq(endpoint, &COMPLETIONS) {
        // Streams ask for usage, and hide it unless the client asked too.
        let asked = body
            .get("stream_options")
            .and_then(|options| options.get("include_usage"))
            == Some(&Value::Bool(true));
        let included = payload
            .get("stream_options")
            .and_then(|options| options.get("include_usage"));
        if streams {
            assert_eq!(included, Some(&Value::Bool(true)));
            let mut unchanged = payload.clone();
            unchanged.remove("stream_options");
            let mut original = body.clone();
            original.remove("stream_options");
            assert_eq!(
                unchanged, original,
                "{} rewrote more than stream_options",
                endpoint.path
            );
        } else {
            assert_eq!(
                &same_model[..],
                data,
                "{} rewrote a whole request",
                endpoint.path
            );
        }
        assert_eq!(parsed.hide_usage_chunk, streams && !asked);
        assert_eq!(parsed.reply == Reply::Events, streams);
    } else {
        assert_eq!(&same_model[..], data, "{} rewrote the body", endpoint.path);
        assert!(!parsed.hide_usage_chunk);
    }
}

/// The transcription form (`/v1/audio/transcriptions` and translations
/// share it). The input's first line is the boundary, the rest the body.
pub fn audio_form(data: &[u8]) {
    let (boundary, body) = match data.iter().position(|byte| *byte == b'\n') {
        Some(newline) => (&data[..newline], &data[newline + 1..]),
        None => (&b"b"[..], data),
    };
    let mut content_type = b"multipart/form-data; boundary=".to_vec();
    content_type.extend_from_slice(boundary);
    let Ok(content_type) = HeaderValue::from_bytes(&content_type) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, content_type.clone());
    for endpoint in [&TRANSCRIPTIONS, &TRANSLATIONS] {
        match (endpoint.parse)(Bytes::copy_from_slice(body), &headers) {
            Ok(parsed) => {
                assert!(!parsed.model.is_empty());
                let Payload::Raw {
                    bytes,
                    content_type: sent,
                } = &parsed.payload
                else {
                    panic!("a form became JSON");
                };
                assert_eq!(&bytes[..], body, "a form goes upstream byte for byte");
                assert_eq!(sent, &content_type);
                // The duration estimate is at most 10 tokens a byte (a WAV
                // claiming one byte a second).
                let prompt = parsed.prompt_bound();
                assert!(prompt <= (body.len() as u64).saturating_mul(10), "{prompt}");
            }
            Err(error) => assert_client_error(&error),
        }
    }
}

/// Realtime server frames: only `response.done` yields usage, and it
/// never wraps.
pub fn realtime_frames(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(raw) = crate::relay::endpoints::realtime::response_usage(text) {
        assert!(text.contains("response.done"));
        checked_usage(raw);
    }
}

/// Relays `data` with `endpoint`'s observer whole, split in two, and in
/// small chunks; every way must say the same. Returns the output and what
/// was seen.
fn relay_every_way(endpoint: &Endpoint, hide: bool, data: &[u8]) -> (Vec<u8>, Seen) {
    let middle = data.iter().map(|byte| usize::from(*byte)).sum::<usize>() % (data.len() + 1);
    let whole = relay(endpoint, hide, &[data]);
    let halves = relay(endpoint, hide, &[&data[..middle], &data[middle..]]);
    let chunks: Vec<&[u8]> = data.chunks(3).collect();
    let small = relay(endpoint, hide, &chunks);
    for other in [&halves, &small] {
        assert_eq!(whole.0, other.0, "the output depends on chunking");
        assert_same_seen(&whole.1, &other.1);
    }
    whole
}

fn relay(endpoint: &Endpoint, hide: bool, pieces: &[&[u8]]) -> (Vec<u8>, Seen) {
    let parsed = events_request(HEURISTIC_MODEL, hide);
    let seen = Seen::for_model(HEURISTIC_MODEL);
    let mut relay = SseRelay::new((endpoint.observer)(&parsed), seen);
    let mut out = Vec::new();
    for piece in pieces {
        out.extend_from_slice(&relay.feed(Bytes::copy_from_slice(piece)));
    }
    out.extend_from_slice(&relay.finish());
    (out, relay.seen)
}

/// A streamed request, as an observer sees it.
pub(super) fn events_request(model: &str, hide_usage_chunk: bool) -> Parsed {
    Parsed {
        model: model.to_string(),
        payload: Payload::Raw {
            bytes: Bytes::new(),
            content_type: HeaderValue::from_static("application/json"),
        },
        reply: Reply::Events,
        prompt: Prompt::Known(0),
        completion: None,
        estimate: true,
        hide_usage_chunk,
        affinity: None,
    }
}

fn assert_same_seen(one: &Seen, other: &Seen) {
    assert_eq!(one.usage, other.usage);
    assert_eq!(one.text(), other.text());
    assert_eq!(one.saw_done, other.saw_done);
}

/// SSE events, split independently of `relay::sse`: each ends just past a
/// blank line (`\n\n` or `\n\r\n`); an unterminated tail is the last one.
fn oracle_events(data: &[u8]) -> Vec<&[u8]> {
    let mut events = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < data.len() {
        let end = match &data[index..] {
            [b'\n', b'\n', ..] => Some(index + 2),
            [b'\n', b'\r', b'\n', ..] => Some(index + 3),
            _ => None,
        };
        match end {
            Some(end) => {
                events.push(&data[start..end]);
                start = end;
                index = end;
            }
            None => index += 1,
        }
    }
    if start < data.len() {
        events.push(&data[start..]);
    }
    events
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
