//! Token usage: what the upstream reports, and the gateway's estimate when it
//! reports nothing.
//!
//! # Counting
//! The count that matters is the raw total: the upstream's `total_tokens`
//! when present, otherwise `prompt_tokens + completion_tokens`. The
//! Responses, image and transcription shapes (`input_tokens`,
//! `output_tokens`) are read as the same two fields.
//!
//! # Estimating
//! When the upstream sends no usage at all, the gateway estimates it and marks
//! the log row `estimated`:
//! - for OpenAI-family models (see `tokenizer`), text is counted with the
//!   model's real BPE vocabulary (`o200k_base` or `cl100k_base`);
//! - for other models, text is measured as `ceil(ascii_chars / 4) +
//!   non_ascii_chars` tokens: English BPE tokenizers average about four
//!   characters per token, while CJK and other non-Latin scripts run close
//!   to one token per character;
//! - a chat prompt is the sum over `messages` of the text of `content` (a
//!   string or the `text` of content parts), `name`, and tool-call
//!   arguments, plus 4 tokens of framing per message and 3 for the reply
//!   primer (the overheads OpenAI documents for its chat format); other
//!   endpoints say what their prompt is in their own module;
//! - the completion is the text of the returned `content` (or streamed
//!   `delta.content`) and tool-call arguments.
//!
//! The heuristic is usually within ±25% for English prose; it exists so that
//! counting never silently reads zero, not to bill precisely.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::tokenizer::Encoding;

/// Token counts for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    /// The raw total: the upstream's `total_tokens`, else prompt + completion.
    pub total: u64,
    /// Whether the gateway estimated these counts.
    pub estimated: bool,
}

/// The `usage` object as OpenAI-compatible upstreams send it, in either
/// naming (`prompt_tokens` or `input_tokens`, `completion_tokens` or
/// `output_tokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RawUsage {
    #[serde(alias = "input_tokens")]
    pub prompt_tokens: Option<u64>,
    #[serde(alias = "output_tokens")]
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
}

impl Usage {
    /// Reported usage; missing fields count as zero.
    pub fn reported(raw: RawUsage) -> Usage {
        let prompt = raw.prompt_tokens.unwrap_or(0);
        let completion = raw.completion_tokens.unwrap_or(0);
        Usage {
            prompt,
            completion,
            // Saturating: an upstream may report any count, and a wrapped
            // sum would charge the day almost nothing.
            total: raw
                .total_tokens
                .unwrap_or(prompt.saturating_add(completion)),
            estimated: false,
        }
    }

    /// Estimated usage from the two text measures.
    pub fn estimated(prompt: u64, completion: &TextMeasure) -> Usage {
        let completion = completion.tokens();
        Usage {
            prompt,
            completion,
            total: prompt + completion,
            estimated: true,
        }
    }
}

/// The most completion text a measure keeps for the tokenizer; text past
/// it is measured by the heuristic, so a reply that never ends cannot grow
/// the gateway's memory without bound.
const KEPT_TEXT: usize = 1024 * 1024;

/// A running measure of text, in the shape the estimate needs: a real token
/// count for OpenAI-family models, character counts for the heuristic.
///
/// Adding text never tokenizes: the text of OpenAI-family models is kept
/// (piece by piece, as it came) and tokenized only when [`TextMeasure::tokens`]
/// is asked, which the relay does only when an upstream reported no usage,
/// after the reply, off the async workers. So a gateway whose upstreams
/// report usage never loads a vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextMeasure {
    ascii: u64,
    other: u64,
    /// The model's vocabulary; `None` for the heuristic.
    encoding: Option<Encoding>,
    /// The kept text, and where each added piece ends in it: pieces are
    /// tokenized one by one, as they came.
    text: String,
    ends: Vec<usize>,
    /// Characters past [`KEPT_TEXT`], measured by the heuristic only.
    dropped_ascii: u64,
    dropped_other: u64,
}

impl TextMeasure {
    /// An empty measure for `model`'s text.
    pub fn for_model(model: &str) -> TextMeasure {
        TextMeasure {
            encoding: Encoding::for_model(model),
            ..TextMeasure::default()
        }
    }

    pub fn add(&mut self, text: &str) {
        let (ascii, other) = classify(text);
        self.ascii += ascii;
        self.other += other;
        if self.encoding.is_none() {
            return;
        }
        if self.text.len() + text.len() <= KEPT_TEXT {
            self.text.push_str(text);
            self.ends.push(self.text.len());
        } else {
            self.dropped_ascii += ascii;
            self.dropped_other += other;
        }
    }

    /// The BPE count, or `ceil(ascii / 4) + non_ascii`. For OpenAI-family
    /// models this runs the tokenizer (loading its vocabulary the first
    /// time): call it off the async workers.
    pub fn tokens(&self) -> u64 {
        let Some(encoding) = self.encoding else {
            return heuristic(self.ascii, self.other);
        };
        let mut tokens = heuristic(self.dropped_ascii, self.dropped_other);
        let mut start = 0;
        for end in &self.ends {
            match encoding.count(self.text.get(start..*end).unwrap_or_default()) {
                Some(count) => tokens += count,
                // The vocabulary is missing: the heuristic for everything.
                None => return heuristic(self.ascii, self.other),
            }
            start = *end;
        }
        tokens
    }

    /// Adds every string in a JSON value: a string, or an array of strings.
    pub fn add_strings(&mut self, value: Option<&Value>) {
        match value {
            Some(Value::String(text)) => self.add(text),
            Some(Value::Array(items)) => {
                for item in items {
                    if let Value::String(text) = item {
                        self.add(text);
                    }
                }
            }
            _ => {}
        }
    }
}

/// ASCII and other characters in `text`.
fn classify(text: &str) -> (u64, u64) {
    let ascii = text.bytes().filter(u8::is_ascii).count() as u64;
    // Each non-ASCII character has one leading byte (0b11xx_xxxx) and its
    // continuation bytes (0b10xx_xxxx).
    let leading = text.bytes().filter(|byte| *byte >= 0b1100_0000).count() as u64;
    (ascii, leading)
}

/// `ceil(ascii / 4) + non_ascii`.
fn heuristic(ascii: u64, other: u64) -> u64 {
    ascii.div_ceil(4) + other
}

/// The fields that set a chat or completions budget, in order of precedence.
pub const COMPLETION_BUDGET: &[&str] = &["max_completion_tokens", "max_tokens"];

/// Estimated prompt tokens of a chat request body for `model`.
pub fn estimate_prompt(request: &Map<String, Value>, model: &str) -> u64 {
    let Some(Value::Array(messages)) = request.get("messages") else {
        return 0;
    };
    let mut tokens = 3;
    for message in messages {
        let mut measure = TextMeasure::for_model(model);
        measure_message(message, &mut measure);
        tokens += 4 + measure.tokens();
    }
    tokens
}

/// Adds a message's (or a reply's) text: content, name and tool-call arguments.
pub fn measure_message(message: &Value, measure: &mut TextMeasure) {
    match message.get("content") {
        Some(Value::String(text)) => measure.add(text),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(Value::String(text)) = part.get("text") {
                    measure.add(text);
                }
            }
        }
        _ => {}
    }
    if let Some(Value::String(name)) = message.get("name") {
        measure.add(name);
    }
    if let Some(Value::Array(calls)) = message.get("tool_calls") {
        for call in calls {
            if let Some(Value::String(arguments)) = call.pointer("/function/arguments") {
                measure.add(arguments);
            }
        }
    }
}

/// Adds the completion text of a non-stream chat reply body.
pub fn measure_reply(reply: &Value, measure: &mut TextMeasure) {
    if let Some(Value::Array(choices)) = reply.get("choices") {
        for choice in choices {
            if let Some(message) = choice.get("message") {
                measure_message(message, measure);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The raw total prefers the upstream's total and falls back to the sum.
    #[test]
    fn reported_total_is_raw() {
        let cases = [
            ((Some(3), Some(4), Some(10)), (3, 4, 10)),
            ((Some(3), Some(4), None), (3, 4, 7)),
            ((None, None, Some(5)), (0, 0, 5)),
            ((None, None, None), (0, 0, 0)),
            // Found by fuzzing (reply_usage): the sum wrapped to 1.
            ((Some(u64::MAX), Some(2), None), (u64::MAX, 2, u64::MAX)),
        ];
        for ((prompt, completion, total), expected) in cases {
            let usage = Usage::reported(RawUsage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                total_tokens: total,
            });
            assert_eq!((usage.prompt, usage.completion, usage.total), expected);
            assert!(!usage.estimated);
        }
    }

    /// Text tokens are ceil(ascii/4) plus one per non-ASCII character.
    #[test]
    fn text_measure_counts_scripts_differently() {
        let cases = [
            ("", 0),
            ("abcd", 1),
            ("abcde", 2),
            ("你好", 2),
            ("hi 你好", 3),
        ];
        for (text, tokens) in cases {
            let mut measure = TextMeasure::default();
            measure.add(text);
            assert_eq!(measure.tokens(), tokens, "{text:?}");
        }
    }

    /// Both naming schemes are read, and OpenAI models are tokenized for real.
    #[test]
    fn reads_both_namings_and_tokenizes_openai_models() {
        let raw: RawUsage = serde_json::from_value(
            json!({"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}),
        )
        .unwrap_or_default();
        assert_eq!(
            (raw.prompt_tokens, raw.completion_tokens),
            (Some(3), Some(4))
        );
        let mut measure = TextMeasure::for_model("gpt-4o");
        measure.add("hello world, hello world");
        assert_eq!(measure.tokens(), 5, "hello / world / , / hello / world");
        let mut heuristic = TextMeasure::for_model("llama-3");
        heuristic.add("hello world, hello world");
        assert_eq!(heuristic.tokens(), 6);
    }

    /// The prompt estimate covers string content, content parts and framing.
    #[test]
    fn prompt_estimate_walks_messages() {
        let cases = [
            (json!({}), 0),
            (json!({"messages": []}), 3),
            (
                json!({"messages": [{"role": "user", "content": "abcdefgh"}]}),
                3 + 4 + 2,
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"}]}]}),
                3 + 4 + 1,
            ),
        ];
        for (body, tokens) in cases {
            let Value::Object(map) = body else { continue };
            assert_eq!(estimate_prompt(&map, "m"), tokens, "{map:?}");
        }
    }

    /// The completion budget prefers max_completion_tokens over max_tokens.
    #[test]
    fn completion_budget() {
        use crate::relay::body::JsonBody;
        use crate::relay::endpoint::completion_budget;
        let cases = [
            (json!({}), None),
            (json!({"max_tokens": 500}), Some(500)),
            (
                json!({"max_tokens": 500, "max_completion_tokens": 700}),
                Some(700),
            ),
            (json!({"max_tokens": "500"}), None),
            (json!({"max_tokens": -1}), None),
        ];
        for (body, expected) in cases {
            let body = JsonBody::parse(body.to_string().into()).unwrap();
            assert_eq!(
                completion_budget(&body, COMPLETION_BUDGET),
                expected,
                "{body:?}"
            );
        }
    }

    /// A reply's completion text is measured from every choice.
    #[test]
    fn reply_measure_reads_choices() {
        let reply = json!({"choices": [{"message": {"content": "abcdefgh"}}, {"message": {"content": null}}]});
        let mut measure = TextMeasure::for_model("m");
        measure_reply(&reply, &mut measure);
        assert_eq!(measure.tokens(), 2);
    }
}
