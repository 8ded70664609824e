//! A JSON request body as the relay reads it: checked in one pass, its
//! top-level members located, and never built into a tree. The gateway
//! reads only the few top-level fields it needs (`model`, `stream`, the
//! completion budget, the affinity source), each parsed on its own from its
//! bytes; it forwards the client's bytes unchanged, or with its two edits
//! (the channel's model name, `stream_options.include_usage`) spliced in.
//!
//! What needs the whole tree (the OpenAI ↔ Anthropic translation, the exact
//! prompt count when an upstream reports no usage) asks for it with
//! [`JsonBody::to_map`], off the request's fast path.

mod scan;

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use scan::{MAX_DEPTH, ScanError};
use scan::{Member, Scanner};

/// A checked JSON object body and where its top-level members are.
#[derive(Debug, Clone)]
pub struct JsonBody {
    bytes: Bytes,
    members: Vec<Member>,
}

/// A member set by [`JsonBody::with`]: its key, and its new value as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub key: &'static str,
    pub value: Bytes,
}

impl JsonBody {
    /// Checks that `bytes` is one JSON object and indexes its top level.
    pub fn parse(bytes: Bytes) -> Result<JsonBody, ScanError> {
        let members = Scanner::new(&bytes).object()?;
        Ok(JsonBody { bytes, members })
    }

    /// The body as the client sent it.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The JSON text of the member named `key` (the last one, if the client
    /// sent it twice, as a JSON parser keeps the last).
    pub fn raw(&self, key: &str) -> Option<&[u8]> {
        let member = self.member(key)?;
        self.bytes.get(member.value.clone())
    }

    /// The member named `key` read as `T`; `None` when absent or not a `T`.
    pub fn get<'a, T: Deserialize<'a>>(&'a self, key: &str) -> Option<T> {
        serde_json::from_slice(self.raw(key)?).ok()
    }

    /// The string member named `key`; `None` when absent or not a string.
    pub fn str(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get::<Cow<'_, str>>(key)
    }

    /// Whether the member named `key` is the literal `true`.
    pub fn is_true(&self, key: &str) -> bool {
        self.raw(key) == Some(b"true")
    }

    /// The whole body as a tree: for what must read every field.
    pub fn to_map(&self) -> Result<Map<String, Value>, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// The body with `edits` applied: each replaces the value of the member
    /// it names, or is added as a new first member when there is none. The
    /// rest of the bytes are the client's, unchanged. Without edits this is
    /// the body itself, not a copy.
    pub fn with(&self, edits: &[Edit]) -> Bytes {
        if edits.is_empty() {
            return self.bytes.clone();
        }
        let mut splices: Vec<(Range<usize>, Cow<'_, [u8]>)> = Vec::with_capacity(edits.len());
        let mut added: Vec<u8> = Vec::new();
        for edit in edits {
            match self.member(edit.key) {
                Some(member) => splices.push((member.value.clone(), Cow::Borrowed(&edit.value))),
                None => {
                    added.push(b'"');
                    added.extend_from_slice(edit.key.as_bytes());
                    added.extend_from_slice(b"\":");
                    added.extend_from_slice(&edit.value);
                    added.push(b',');
                }
            }
        }
        if !added.is_empty() {
            if self.members.is_empty() {
                added.pop();
            }
            let open = self
                .bytes
                .iter()
                .position(|byte| *byte == b'{')
                .unwrap_or(0)
                + 1;
            splices.push((open..open, Cow::Owned(added)));
        }
        splices.sort_by_key(|(range, _)| range.start);
        let length = splices
            .iter()
            .fold(self.bytes.len(), |length, (range, text)| {
                length - range.len() + text.len()
            });
        let mut out = BytesMut::with_capacity(length);
        let mut position = 0;
        for (range, text) in &splices {
            out.extend_from_slice(self.bytes.get(position..range.start).unwrap_or_default());
            out.extend_from_slice(text);
            position = range.end;
        }
        out.extend_from_slice(self.bytes.get(position..).unwrap_or_default());
        out.freeze()
    }

    /// The last member named `key`.
    fn member(&self, key: &str) -> Option<&Member> {
        self.members
            .iter()
            .rev()
            .find(|member| self.key_is(member, key))
    }

    fn key_is(&self, member: &Member, key: &str) -> bool {
        key_matches(&self.bytes, member, key)
    }
}

/// Whether `member` of `json` is named `key`.
fn key_matches(json: &[u8], member: &Member, key: &str) -> bool {
    let raw = json.get(member.key.clone()).unwrap_or_default();
    if !member.escaped {
        return raw == key.as_bytes();
    }
    // A key with escapes (`"mod\u0065l"`) is compared by its text.
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice::<Cow<'_, str>>(&quoted).is_ok_and(|text| text == key)
}

/// A JSON string literal for `text`.
pub fn json_string(text: &str) -> Bytes {
    serde_json::to_vec(text)
        .map(Bytes::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
