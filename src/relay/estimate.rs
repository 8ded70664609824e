//! The prompt bound a reservation takes: a fast, conservative estimate of a
//! request's prompt tokens from its bytes alone, for channels with a limit.
//!
//! A reservation must be taken before the request leaves, on every request
//! to a limited channel, so it may cost nothing that grows faster than
//! reading the bytes. It needs no tokenizer and no parse: one pass counts
//! the body's bytes and how many of them belong to multi-byte characters,
//! and the bound is
//!
//! ```text
//! ceil(single_byte / 3) + ceil(multi_byte / 2)
//! ```
//!
//! that is a token per three ASCII bytes and three tokens per two CJK
//! characters (three bytes each). Real tokenizers average about four
//! characters a token in English prose and three in source code, and about
//! one token a CJK character, so the bound is above the real count: it
//! also counts the body's JSON keys, quotes and escapes, which carry few
//! tokens. The unit tests measure it against tiktoken's o200k and cl100k on
//! English, code, Chinese and Japanese, and require it never to be below.
//!
//! Its bias is upward, which costs little: a reservation only holds back
//! concurrent requests while it is in flight, and every request is counted
//! exactly afterwards (the upstream's usage, or tiktoken after the reply
//! when there is none; see `usage`). Text that tokenizes worse than a token
//! per three bytes (long random identifiers, base64) can be under-counted
//! here; the overshoot bound still holds, since it rests on the admission
//! check, not on the estimate's size.

/// The prompt bound of a request body.
pub fn prompt_bound(bytes: &[u8]) -> u64 {
    let multi_byte = multi_byte_count(bytes) as u64;
    let single_byte = bytes.len() as u64 - multi_byte;
    single_byte.div_ceil(3) + multi_byte.div_ceil(2)
}

/// How many bytes have their high bit set (those of multi-byte UTF-8
/// characters), eight at a time.
fn multi_byte_count(bytes: &[u8]) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut count = 0;
    for word in words.by_ref() {
        let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        count += (word & HIGH).count_ones() as usize;
    }
    count
        + words
            .remainder()
            .iter()
            .filter(|byte| **byte >= 0x80)
            .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::tokenizer::Encoding;

    /// Texts a prompt is made of, wrapped as a chat request the way SDKs send them.
    fn samples() -> Vec<(&'static str, String)> {
        let texts = [
            (
                "english",
                include_str!("../../tests/fixtures/estimate/english.txt"),
            ),
            (
                "chinese",
                include_str!("../../tests/fixtures/estimate/chinese.txt"),
            ),
            (
                "japanese",
                include_str!("../../tests/fixtures/estimate/japanese.txt"),
            ),
            ("rust", include_str!("../routing/route.rs")),
            ("rust, dense", include_str!("body/scan.rs")),
            ("shell", include_str!("../../bench/run.sh")),
            ("python", include_str!("../../bench/prompt.py")),
        ];
        texts
            .into_iter()
            .map(|(name, text)| {
                let body = serde_json::json!({
                    "model": "m",
                    "messages": [{"role": "user", "content": text}],
                });
                (name, body.to_string())
            })
            .collect()
    }

    /// Never below tiktoken's count of the text alone, in either vocabulary.
    #[test]
    fn the_bound_is_above_real_tokenizers() {
        for (name, body) in samples() {
            let bound = prompt_bound(body.as_bytes());
            let text: serde_json::Value = serde_json::from_str(&body).unwrap();
            let content = text["messages"][0]["content"].as_str().unwrap();
            for encoding in [Encoding::O200k, Encoding::Cl100k] {
                let real = encoding.count(content).unwrap();
                println!(
                    "{name} {encoding:?}: bound {bound}, real {real}, ratio {:.2}",
                    bound as f64 / real as f64
                );
                assert!(bound >= real, "{name} {encoding:?}: {bound} < {real}");
            }
        }
    }

    /// Byte classes are counted exactly, at any alignment.
    #[test]
    fn counts_bytes_by_class() {
        let cases: [(&str, u64); 5] = [
            ("", 0),
            ("abc", 1),
            ("abcd", 2),
            ("你", 2),
            ("ab你好cdefghijkl", 4 + 3),
        ];
        for (text, bound) in cases {
            assert_eq!(prompt_bound(text.as_bytes()), bound, "{text}");
        }
        let long = "é".repeat(37);
        assert_eq!(multi_byte_count(long.as_bytes()), 74);
    }
}
