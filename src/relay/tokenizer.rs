//! Real BPE token counts for OpenAI-family models, for the usage estimate.
//!
//! The vocabularies ship inside `tiktoken-rs`, so this works offline. Each
//! one is loaded on first use (a `OnceLock`), not at startup, and only an
//! estimate uses them: one for a reply whose upstream reported no usage,
//! run after the reply on the blocking pool (`meter`). Requests are sized
//! for reservations without a tokenizer (`estimate`). So a gateway whose
//! upstreams always report usage never loads a vocabulary nor pays its
//! memory (+46 MiB of RSS for o200k_base, +24 MiB for cl100k_base); `tests/it/relay/vocabulary.rs`
//! checks that on the real binary. Loading logs "tokenizer vocabulary
//! loaded". A vocabulary that fails to load is remembered as missing, and
//! the caller falls back to the character heuristic in `usage`.
//!
//! Which encoding a model uses follows OpenAI's own table: `o200k_base` for
//! the GPT-4o generation and later (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, the
//! o-series, gpt-image, omni-moderation), `cl100k_base` for gpt-4,
//! gpt-3.5, the text-embedding models and the legacy completion and TTS
//! models. Anything else is not OpenAI's, and is not tokenized here.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// An OpenAI BPE encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    O200k,
    Cl100k,
}

/// Model-name prefixes on `o200k_base`, checked before the cl100k ones
/// (`gpt-4o` before `gpt-4`).
const O200K_PREFIXES: &[&str] = &[
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "gpt-oss",
    "gpt-image",
    "gpt-realtime",
    "gpt-audio",
    "o1",
    "o3",
    "o4",
    "omni-moderation",
    "codex-",
    "computer-use",
];
const CL100K_PREFIXES: &[&str] = &[
    "gpt-4",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-",
    "text-moderation",
    "davinci-002",
    "babbage-002",
    "tts-1",
];

impl Encoding {
    /// The encoding of an OpenAI-family model, by name (a `provider/`
    /// prefix is ignored); `None` for other models.
    pub fn for_model(model: &str) -> Option<Encoding> {
        let name = model.rsplit('/').next().unwrap_or(model);
        let name = name.to_ascii_lowercase();
        if O200K_PREFIXES.iter().any(|prefix| name.starts_with(prefix)) {
            Some(Encoding::O200k)
        } else if CL100K_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            Some(Encoding::Cl100k)
        } else {
            None
        }
    }

    /// The loaded vocabulary, or `None` if it failed to load.
    fn bpe(self) -> Option<&'static CoreBPE> {
        static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();
        static CL100K: OnceLock<Option<CoreBPE>> = OnceLock::new();
        let (cell, load): (_, fn() -> anyhow::Result<CoreBPE>) = match self {
            Encoding::O200k => (&O200K, tiktoken_rs::o200k_base),
            Encoding::Cl100k => (&CL100K, tiktoken_rs::cl100k_base),
        };
        if let Some(loaded) = cell.get() {
            return loaded.as_ref();
        }
        let initialise = || {
            cell.get_or_init(|| match load() {
                Ok(bpe) => {
                    tracing::info!(encoding = ?self, "tokenizer vocabulary loaded");
                    Some(bpe)
                }
                Err(error) => {
                    tracing::warn!(%error, encoding = ?self, "tokenizer vocabulary failed to load");
                    None
                }
            })
        };
        // The first load takes a few hundred milliseconds of CPU. On a
        // multi-threaded runtime, hand this worker's other tasks to another
        // thread meanwhile, so no request waits behind the load.
        let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        let loaded = if multi_thread {
            tokio::task::block_in_place(initialise)
        } else {
            initialise()
        };
        loaded.as_ref()
    }

    /// The number of tokens in `text`, or `None` if the vocabulary is missing.
    pub fn count(self, text: &str) -> Option<u64> {
        let bpe = self.bpe()?;
        Some(bpe.encode_ordinary(text).len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Model names map to OpenAI's encodings; other models to none.
    #[test]
    fn models_map_to_encodings() {
        let cases = [
            ("gpt-4o-mini", Some(Encoding::O200k)),
            ("openai/gpt-4.1", Some(Encoding::O200k)),
            ("o3-mini", Some(Encoding::O200k)),
            ("gpt-5", Some(Encoding::O200k)),
            ("gpt-4-turbo", Some(Encoding::Cl100k)),
            ("gpt-3.5-turbo", Some(Encoding::Cl100k)),
            ("text-embedding-3-small", Some(Encoding::Cl100k)),
            ("claude-sonnet-4", None),
            ("deepseek-chat", None),
            ("m", None),
        ];
        for (model, encoding) in cases {
            assert_eq!(Encoding::for_model(model), encoding, "{model}");
        }
    }

    /// Both vocabularies load and count real tokens.
    #[test]
    fn vocabularies_count_tokens() {
        assert_eq!(Encoding::O200k.count("hello world"), Some(2));
        assert_eq!(Encoding::Cl100k.count("hello world"), Some(2));
        assert_eq!(Encoding::O200k.count(""), Some(0));
    }
}
