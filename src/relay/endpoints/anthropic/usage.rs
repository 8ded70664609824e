//! Anthropic usage in the gateway's terms.
//!
//! Anthropic splits the prompt in three: `input_tokens` (the uncached part),
//! `cache_creation_input_tokens` and `cache_read_input_tokens`. All three are
//! tokens the upstream processed, so the raw total the daily counters charge
//! is `input + cache_creation + cache_read + output`, and the prompt reported
//! to OpenAI clients is the sum of the three input fields.
//!
//! A stream reports usage twice: `message_start` carries the input side (and
//! a provisional `output_tokens`), `message_delta` the final, cumulative
//! output (and, on newer API versions, the input side again). A field in a
//! later report replaces the earlier one; nothing is ever added up twice.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::relay::usage::RawUsage;

/// The `usage` object of an Anthropic message or stream event. Every field is
/// optional because `message_delta` sends only what changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AnthropicUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Input tokens of every kind: uncached, written to and read from the cache.
    /// Saturating, like every sum of upstream counts: a wrapped sum would
    /// charge the day almost nothing.
    pub fn prompt(&self) -> u64 {
        self.input_tokens
            .unwrap_or(0)
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0))
            .saturating_add(self.cache_read_input_tokens.unwrap_or(0))
    }

    pub fn completion(&self) -> u64 {
        self.output_tokens.unwrap_or(0)
    }

    /// The usage as the meter takes it: total = every input kind + output.
    pub fn raw(&self) -> RawUsage {
        let prompt = self.prompt();
        let completion = self.completion();
        RawUsage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(prompt.saturating_add(completion)),
        }
    }

    /// Takes every field `later` reports, keeping the rest.
    pub fn update(&mut self, later: &AnthropicUsage) {
        let fields = [
            (&mut self.input_tokens, later.input_tokens),
            (&mut self.output_tokens, later.output_tokens),
            (
                &mut self.cache_creation_input_tokens,
                later.cache_creation_input_tokens,
            ),
            (
                &mut self.cache_read_input_tokens,
                later.cache_read_input_tokens,
            ),
        ];
        for (field, value) in fields {
            if value.is_some() {
                *field = value;
            }
        }
    }

    /// The OpenAI `usage` object, with cache reads as `cached_tokens`.
    pub fn openai(&self) -> Value {
        let raw = self.raw();
        json!({
            "prompt_tokens": raw.prompt_tokens,
            "completion_tokens": raw.completion_tokens,
            "total_tokens": raw.total_tokens,
            "prompt_tokens_details": {
                "cached_tokens": self.cache_read_input_tokens.unwrap_or(0),
            },
        })
    }
}

/// The usage of a whole (non-stream) Anthropic reply body, if it has one.
pub fn usage_in(body: &[u8]) -> Option<RawUsage> {
    #[derive(Deserialize)]
    struct UsageOnly {
        usage: Option<AnthropicUsage>,
    }
    let usage = serde_json::from_slice::<UsageOnly>(body).ok()?.usage?;
    Some(usage.raw())
}

/// The usage of a stream, assembled from its events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamUsage {
    seen: Option<AnthropicUsage>,
}

impl StreamUsage {
    /// Takes the usage of `message_start` (its `message.usage`) or of
    /// `message_delta` (its `usage`).
    pub fn report(&mut self, usage: &AnthropicUsage) {
        self.seen
            .get_or_insert_with(AnthropicUsage::default)
            .update(usage);
    }

    /// Everything reported so far, or `None` if nothing was.
    pub fn current(&self) -> Option<AnthropicUsage> {
        self.seen
    }

    pub fn raw(&self) -> Option<RawUsage> {
        self.seen.as_ref().map(AnthropicUsage::raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, created: u64, read: u64) -> AnthropicUsage {
        AnthropicUsage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cache_creation_input_tokens: Some(created),
            cache_read_input_tokens: Some(read),
        }
    }

    /// The raw total is input + output + cache creation + cache read.
    #[test]
    fn totals_include_cache_tokens() {
        let cases = [
            (usage(10, 5, 0, 0), (10, 5, 15)),
            (usage(10, 5, 100, 0), (110, 5, 115)),
            (usage(10, 5, 100, 1000), (1110, 5, 1115)),
            (AnthropicUsage::default(), (0, 0, 0)),
            // Found by fuzzing (anthropic_translate_response): sums wrapped.
            (usage(u64::MAX, 5, 1, 1), (u64::MAX, 5, u64::MAX)),
        ];
        for (usage, (prompt, completion, total)) in cases {
            let raw = usage.raw();
            assert_eq!(
                (raw.prompt_tokens, raw.completion_tokens, raw.total_tokens),
                (Some(prompt), Some(completion), Some(total)),
                "{usage:?}"
            );
        }
    }

    /// Whole bodies are read for their usage; bodies without one give none.
    #[test]
    fn reads_usage_from_bodies() {
        let cases: [(&[u8], Option<u64>); 4] = [
            (
                br#"{"type":"message","usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":5}}"#,
                Some(12),
            ),
            (br#"{"type":"message"}"#, None),
            (br#"{"type":"error","error":{"type":"api_error"}}"#, None),
            (b"not json", None),
        ];
        for (body, total) in cases {
            let found = usage_in(body).and_then(|raw| raw.total_tokens);
            assert_eq!(found, total, "{}", String::from_utf8_lossy(body));
        }
    }

    /// A stream's usage is message_start's input side plus message_delta's
    /// cumulative output; later fields replace earlier ones.
    #[test]
    fn stream_reports_replace_field_by_field() {
        let start = usage(20, 1, 30, 40);
        let delta = AnthropicUsage {
            output_tokens: Some(9),
            ..AnthropicUsage::default()
        };
        let cases: [(&[AnthropicUsage], Option<u64>); 4] = [
            (&[], None),
            (&[start], Some(20 + 30 + 40 + 1)),
            (&[start, delta], Some(20 + 30 + 40 + 9)),
            (
                &[start, delta, usage(20, 12, 30, 40)],
                Some(20 + 30 + 40 + 12),
            ),
        ];
        for (reports, total) in cases {
            let mut stream = StreamUsage::default();
            for report in reports {
                stream.report(report);
            }
            assert_eq!(stream.raw().and_then(|raw| raw.total_tokens), total);
        }
    }

    /// The OpenAI rendering sums the prompt and reports cache reads as cached.
    #[test]
    fn renders_openai_usage() {
        assert_eq!(
            usage(1, 2, 3, 4).openai(),
            json!({"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10,
                   "prompt_tokens_details": {"cached_tokens": 4}})
        );
    }
}
