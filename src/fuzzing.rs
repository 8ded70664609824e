//! Entry points for the `cargo fuzz` targets in `fuzz/`, compiled only under
//! `--cfg fuzzing` (which `cargo fuzz` sets), so they widen no public API.
//!
//! Each function takes arbitrary bytes, runs one parser or validator of the
//! crate on them, and asserts what must hold for every input, not only that
//! nothing panics:
//! - `relay`: the SSE relay and every endpoint's stream, whole-reply and
//!   request parsers, and the realtime `response.done` frames. Framing is
//!   checked against an independent splitter, results must not depend on
//!   how the bytes were chunked, and usage totals never wrap.
//! - `anthropic`: the OpenAI ↔ Anthropic translation, request, whole reply
//!   and stream, each output checked for shape and valid JSON, and the
//!   translated stream read back through the OpenAI relay.
//! - `admin`: the admin JSON bodies (channels, API keys, runtime settings)
//!   through the real extractor and validators, and the channel settings
//!   keys: an accepted value validates again to itself and survives a JSON
//!   round trip; a rejected one is a 400 naming its field.
//!
//! A failed assertion is what libFuzzer reports as a crash.
#![expect(
    clippy::panic,
    reason = "a broken invariant must crash the fuzz target, as libFuzzer expects"
)]

mod admin;
mod anthropic;
mod relay;

pub use admin::{admin_channel_body, admin_settings_body, admin_token_body, channel_settings};
pub use anthropic::{anthropic_stream, anthropic_translate_request, anthropic_translate_response};
pub use relay::{
    audio_form, realtime_frames, reply_usage, request_parse, sse_usage_anthropic, sse_usage_openai,
};

use serde_json::Value;

use crate::error::{ApiError, ErrorCode, Text};
use crate::i18n::Locale;
use crate::relay::usage::{RawUsage, Usage};

/// `Usage::reported`, checked: the counts are the raw fields, and a total
/// the upstream left out is the sum, saturated rather than wrapped.
fn checked_usage(raw: RawUsage) -> Usage {
    let usage = Usage::reported(raw);
    let prompt = raw.prompt_tokens.unwrap_or(0);
    let completion = raw.completion_tokens.unwrap_or(0);
    assert_eq!((usage.prompt, usage.completion), (prompt, completion));
    let expected = match raw.total_tokens {
        Some(total) => total,
        None => saturated(u128::from(prompt) + u128::from(completion)),
    };
    assert_eq!(usage.total, expected, "{raw:?}");
    assert!(!usage.estimated);
    usage
}

/// A wide sum clamped to `u64`, as a count that must not wrap.
fn saturated(sum: u128) -> u64 {
    u64::try_from(sum).unwrap_or(u64::MAX)
}

/// A client error: a 400 of our stable code whose message renders in
/// every locale.
fn assert_client_error(error: &ApiError) {
    assert_eq!(error.code, ErrorCode::InvalidRequest, "{error:?}");
    assert_eq!(error.status().as_u16(), 400);
    let Text::Catalog(message) = &error.message else {
        panic!("a client error outside the catalog: {error:?}");
    };
    for locale in [Locale::En, Locale::ZhCn, Locale::ZhTw] {
        assert!(!message.render(locale).is_empty(), "{error:?}");
    }
}

/// A validation failure: a client error naming the field at fault.
fn assert_field_error(error: &ApiError) -> &str {
    assert_client_error(error);
    match error.field.as_deref() {
        Some(field) if !field.is_empty() => field,
        _ => panic!("a rejection without a field: {error:?}"),
    }
}

/// JSON equality up to serde_json's float parsing: without its
/// `float_roundtrip` feature it may read a printed float back an ulp or
/// two off (`2.1000001844674446e26`), so stored floats are compared with
/// that tolerance; everything else must be equal.
fn same_json(one: &Value, other: &Value) -> bool {
    match (one, other) {
        (Value::Number(left), Value::Number(right)) if left.is_f64() || right.is_f64() => {
            let (left, right) = (left.as_f64().unwrap_or(0.0), right.as_f64().unwrap_or(0.0));
            (left - right).abs() <= left.abs().max(right.abs()) * 4.0 * f64::EPSILON
        }
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len() && left.iter().zip(right).all(|(l, r)| same_json(l, r))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .all(|(key, l)| right.get(key).is_some_and(|r| same_json(l, r)))
        }
        _ => one == other,
    }
}
