//! An incremental splitter for the upstream's SSE stream: it passes events
//! through as they complete and shows each one to the request's
//! [`Observer`], which captures usage and completion text on the way and
//! may hide an event (the usage-only chunk the client did not ask for).
//!
//! It never buffers more than one incomplete event, and it never re-encodes
//! an event: kept bytes go out exactly as the upstream sent them.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::observe::{Observer, Seen};

/// The per-stream state.
pub struct SseRelay {
    /// The start of an event whose terminating blank line has not arrived yet.
    partial: BytesMut,
    observer: Box<dyn Observer>,
    /// What the stream has said so far.
    pub seen: Seen,
}

impl SseRelay {
    /// A relay reading events with `observer`; `seen` starts empty, with
    /// the completion measured for the request's model.
    pub fn new(observer: Box<dyn Observer>, seen: Seen) -> SseRelay {
        SseRelay {
            partial: BytesMut::new(),
            observer,
            seen,
        }
    }

    /// Takes the next upstream bytes and returns what may go to the client
    /// now: every event completed so far, minus a hidden usage chunk.
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        let data = if self.partial.is_empty() {
            chunk
        } else {
            self.partial.extend_from_slice(&chunk);
            self.partial.split().freeze()
        };
        let complete = last_event_end(&data);
        if complete < data.len() {
            self.partial.extend_from_slice(&data[complete..]);
        }
        self.inspect(data.slice(..complete))
    }

    /// The upstream ended: whatever unterminated tail remains goes out as is.
    pub fn finish(&mut self) -> Bytes {
        let tail = self.partial.split().freeze();
        self.inspect(tail)
    }

    /// Inspects complete events and drops the hidden ones.
    fn inspect(&mut self, ready: Bytes) -> Bytes {
        let mut hidden: Vec<Range<usize>> = Vec::new();
        let mut start = 0;
        while start < ready.len() {
            let end = next_event_end(&ready[start..]).map_or(ready.len(), |end| start + end);
            if self.observe(&ready[start..end]) {
                hidden.push(start..end);
            }
            start = end;
        }
        if hidden.is_empty() {
            return ready;
        }
        let mut kept = BytesMut::with_capacity(ready.len());
        let mut position = 0;
        for range in hidden {
            kept.extend_from_slice(&ready[position..range.start]);
            position = range.end;
        }
        kept.extend_from_slice(&ready[position..]);
        kept.freeze()
    }

    /// Shows one event's `data:` lines to the observer; returns whether to hide it.
    fn observe(&mut self, event: &[u8]) -> bool {
        let mut hide = false;
        let mut name: Option<&[u8]> = None;
        for line in event.split(|byte| *byte == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(event_name) = line.strip_prefix(b"event:") {
                name = Some(event_name.strip_prefix(b" ").unwrap_or(event_name));
                continue;
            }
            let Some(payload) = line.strip_prefix(b"data:") else {
                continue;
            };
            let payload = payload.strip_prefix(b" ").unwrap_or(payload);
            hide |= self.observer.observe(name, payload, &mut self.seen);
        }
        hide
    }
}

/// The end (exclusive) of the first event in `data`, i.e. just past its
/// terminating blank line (`\n\n` or `\n\r\n`).
fn next_event_end(data: &[u8]) -> Option<usize> {
    let mut index = 0;
    while let Some(offset) = data[index..].iter().position(|byte| *byte == b'\n') {
        let newline = index + offset;
        match data.get(newline + 1..) {
            Some([b'\n', ..]) => return Some(newline + 2),
            Some([b'\r', b'\n', ..]) => return Some(newline + 3),
            _ => index = newline + 1,
        }
    }
    None
}

/// The end of the last complete event in `data` (0 if there is none).
fn last_event_end(data: &[u8]) -> usize {
    let mut end = 0;
    while let Some(next) = next_event_end(&data[end..]) {
        end += next;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::observe::OpenAiEvents;

    const CONTENT: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"abcd\"}}]}\n\n";
    const USAGE: &str = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn run(hide: bool, pieces: &[&[u8]]) -> (Vec<u8>, SseRelay) {
        let observer = OpenAiEvents {
            hide_usage_chunk: hide,
        };
        let mut relay = SseRelay::new(Box::new(observer), Seen::default());
        let mut out = Vec::new();
        for piece in pieces {
            out.extend_from_slice(&relay.feed(Bytes::copy_from_slice(piece)));
        }
        out.extend_from_slice(&relay.finish());
        (out, relay)
    }

    /// Events pass through intact however the bytes are split, and usage is captured.
    #[test]
    fn passes_events_across_any_split() {
        let whole = format!("{CONTENT}{USAGE}{DONE}");
        for cut in 0..whole.len() {
            let (head, tail) = whole.as_bytes().split_at(cut);
            let (out, relay) = run(false, &[head, tail]);
            assert_eq!(out, whole.as_bytes(), "cut at {cut}");
            assert_eq!(
                relay.seen.usage.and_then(|usage| usage.total_tokens),
                Some(7)
            );
            assert_eq!(relay.seen.completion.tokens(), 1);
            assert!(relay.seen.saw_done);
        }
    }

    /// The usage-only chunk is hidden on request, and only that chunk.
    #[test]
    fn hides_only_the_usage_chunk() {
        let cases = [
            (false, format!("{CONTENT}{USAGE}{DONE}")),
            (true, format!("{CONTENT}{DONE}")),
        ];
        for (hide, expected) in cases {
            let whole = format!("{CONTENT}{USAGE}{DONE}");
            let (out, relay) = run(hide, &[whole.as_bytes()]);
            assert_eq!(String::from_utf8_lossy(&out), expected);
            assert!(
                relay.seen.usage.is_some(),
                "usage captured even when hidden"
            );
        }
    }

    /// CRLF framing and an unterminated tail are handled.
    #[test]
    fn handles_crlf_and_tails() {
        let crlf = "data: {\"choices\":[{\"delta\":{\"content\":\"abcdefgh\"}}]}\r\n\r\ndata: [DO";
        let (out, relay) = run(true, &[crlf.as_bytes()]);
        assert_eq!(out, crlf.as_bytes());
        assert_eq!(relay.seen.completion.tokens(), 2);
        assert!(!relay.seen.saw_done);
        assert_eq!(next_event_end(b"a\nb"), None);
        assert_eq!(next_event_end(b"a\n\nb"), Some(3));
    }
}
