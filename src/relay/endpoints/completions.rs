//! `POST /v1/completions`, the legacy text completions: like chat, but the
//! prompt is `prompt` (a string, strings, or token arrays) and the reply
//! text is `choices[].text`, whole or streamed. Streams get
//! `stream_options.include_usage` as chat's do.

use serde_json::{Map, Value};

use crate::relay::endpoint::{self, Endpoint, Family};
use crate::relay::usage::TextMeasure;
use crate::upstream::target::Operation;

pub static COMPLETIONS: Endpoint = Endpoint {
    path: "/v1/completions",
    family: Family::OpenAi,
    operation: Operation::Completions,
    // The same top-level fields as a chat request: one parser for both.
    parse: super::chat::parse,
    count_prompt,
    reply_usage: endpoint::json_usage,
    measure_reply,
    observer: endpoint::openai_events,
};

/// The prompt's tokens: `prompt` as text, texts or token ids.
fn count_prompt(body: &Map<String, Value>, model: &str) -> u64 {
    input_tokens(body.get("prompt"), model)
}

/// An `input`/`prompt` value's tokens: its text measured for `model`,
/// token ids counted as themselves.
pub fn input_tokens(value: Option<&Value>, model: &str) -> u64 {
    let mut measure = TextMeasure::for_model(model);
    let token_ids = add_input(value, &mut measure);
    measure.tokens() + token_ids
}

/// Adds an `input`/`prompt` value's text to `measure`: a string, strings,
/// or token arrays; returns the number of token ids found (they count as
/// themselves).
pub fn add_input(value: Option<&Value>, measure: &mut TextMeasure) -> u64 {
    let mut token_ids = 0;
    match value {
        Some(Value::String(text)) => measure.add(text),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(text) => measure.add(text),
                    Value::Number(_) => token_ids += 1,
                    Value::Array(tokens) => token_ids += tokens.len() as u64,
                    _ => {}
                }
            }
        }
        _ => {}
    }
    token_ids
}

fn measure_reply(body: &[u8], measure: &mut TextMeasure) {
    let Ok(reply) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if let Some(Value::Array(choices)) = reply.get("choices") {
        for choice in choices {
            measure.add_strings(choice.get("text"));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Prompts may be text, texts, or token ids, which count as themselves.
    #[test]
    fn inputs_of_every_shape_are_measured() {
        let cases = [
            (json!("abcdefgh"), 2),
            (json!(["abcd", "abcd"]), 2),
            (json!([1, 2, 3]), 3),
            (json!([[1, 2], [3]]), 3),
            (json!(null), 0),
        ];
        for (input, tokens) in cases {
            let mut measure = TextMeasure::for_model("m");
            let ids = add_input(Some(&input), &mut measure);
            assert_eq!(measure.tokens() + ids, tokens, "{input}");
        }
    }
}
