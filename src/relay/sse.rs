//! Server-sent events: the one framer every stream goes through, and the
//! relay that passes an upstream's events through as they complete.
//!
//! [`Framing`] cuts a byte stream into complete events (each ends just
//! past its blank line, `\n\n` or `\n\r\n`). It never rescans bytes it has
//! looked at: an event arriving a few bytes at a time costs time in
//! proportion to its length, not to its length squared. [`payload`] gives
//! an event's `event:` name and its data: its `data:` lines joined with
//! `\n`, as the SSE specification says.
//!
//! [`SseRelay`] shows each complete event to the request's [`Observer`],
//! which captures usage and completion text on the way and may hide an
//! event (the usage-only chunk the client did not ask for). It never
//! buffers more than one incomplete event, and never re-encodes one: kept
//! bytes go out exactly as the upstream sent them.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::observe::{Observer, Seen};

/// Cuts a stream into complete events.
#[derive(Debug, Default)]
pub struct Framing {
    /// The start of an event whose blank line has not arrived yet.
    partial: BytesMut,
}

impl Framing {
    /// Takes the next bytes; returns every event they complete, back to
    /// back, and keeps the rest.
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        if self.partial.is_empty() {
            let complete = last_event_end(&chunk, 0);
            if complete < chunk.len() {
                self.partial.extend_from_slice(&chunk[complete..]);
            }
            return chunk.slice(..complete);
        }
        // Only the new bytes (and the two before them, where a blank line
        // may start) can end an event: the kept ones held none.
        let from = self.partial.len().saturating_sub(2);
        self.partial.extend_from_slice(&chunk);
        let complete = last_event_end(&self.partial, from);
        self.partial.split_to(complete).freeze()
    }

    /// The stream ended: whatever unterminated tail remains.
    pub fn finish(&mut self) -> Bytes {
        self.partial.split().freeze()
    }

    /// Bytes held for an event that has not ended yet.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// The events in `bytes` (complete ones from [`Framing::push`], or an
/// unterminated tail), as ranges.
pub fn events(bytes: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let end = next_event_end(bytes, start).unwrap_or(bytes.len());
        let event = start..end;
        start = end;
        Some(event)
    })
}

/// An event's `event:` name, if it has one, and its data.
pub type Payload<'a> = (Option<&'a [u8]>, Cow<'a, [u8]>);

/// An event's `event:` name and its data (its `data:` lines joined with
/// `\n`); `None` for an event without data (a comment, a keep-alive).
pub fn payload(event: &[u8]) -> Option<Payload<'_>> {
    let mut name = None;
    let mut data: Option<Cow<'_, [u8]>> = None;
    for line in lines(event) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = field(line, b"event:") {
            name = Some(value);
        } else if let Some(value) = field(line, b"data:") {
            data = Some(match data {
                None => Cow::Borrowed(value),
                Some(joined) => {
                    let mut joined = joined.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(value);
                    Cow::Owned(joined)
                }
            });
        }
    }
    data.map(|data| (name, data))
}

/// The lines of an event, found with `memchr`.
fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut newlines = memchr::memchr_iter(b'\n', event);
    std::iter::from_fn(move || {
        let end = match newlines.next() {
            Some(newline) => newline,
            None if start < event.len() => event.len(),
            None => return None,
        };
        let line = event.get(start..end);
        start = end + 1;
        line
    })
}

/// The value of a `name:` line, one leading space dropped.
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let value = line.strip_prefix(name)?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// The end (exclusive) of the first event at or after `start`: just past
/// its blank line.
fn next_event_end(data: &[u8], start: usize) -> Option<usize> {
    next_blank_line(data, start, start)
}

/// The end of the first blank line whose newline is at or after `from`,
/// in an event that starts at `start`.
fn next_blank_line(data: &[u8], start: usize, from: usize) -> Option<usize> {
    let tail = data.get(from.max(start)..)?;
    let base = from.max(start);
    for offset in memchr::memchr_iter(b'\n', tail) {
        let newline = base + offset;
        match data.get(newline + 1..) {
            Some([b'\n', ..]) => return Some(newline + 2),
            Some([b'\r', b'\n', ..]) => return Some(newline + 3),
            _ => {}
        }
    }
    None
}

/// The end of the last complete event in `data` (0 if there is none),
/// looking for blank lines only from `from`.
fn last_event_end(data: &[u8], from: usize) -> usize {
    let mut end = 0;
    let mut search = from;
    while let Some(next) = next_blank_line(data, end, search) {
        end = next;
        search = next;
    }
    end
}

/// The per-stream state of a relayed event stream.
pub struct SseRelay {
    framing: Framing,
    observer: Box<dyn Observer>,
    /// What the stream has said so far.
    pub seen: Seen,
}

impl SseRelay {
    /// A relay reading events with `observer`, from what `seen` holds.
    pub fn new(observer: Box<dyn Observer>, seen: Seen) -> SseRelay {
        SseRelay {
            framing: Framing::default(),
            observer,
            seen,
        }
    }

    /// Takes the next upstream bytes and returns what may go to the client
    /// now: every event completed so far, minus a hidden usage chunk.
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        let ready = self.framing.push(chunk);
        self.inspect(ready)
    }

    /// The upstream ended: whatever unterminated tail remains goes out as is.
    pub fn finish(&mut self) -> Bytes {
        let tail = self.framing.finish();
        self.inspect(tail)
    }

    /// Bytes held for an event that has not ended yet.
    pub fn pending(&self) -> usize {
        self.framing.pending()
    }

    /// Shows each event to the observer and drops the hidden ones.
    fn inspect(&mut self, ready: Bytes) -> Bytes {
        let mut hidden: Vec<Range<usize>> = Vec::new();
        for event in events(&ready) {
            let Some(bytes) = ready.get(event.clone()) else {
                continue;
            };
            if let Some((name, data)) = payload(bytes)
                && self.observer.observe(name, &data, &mut self.seen)
            {
                hidden.push(event);
            }
        }
        if hidden.is_empty() {
            return ready;
        }
        let mut kept = BytesMut::with_capacity(ready.len());
        let mut position = 0;
        for range in hidden {
            kept.extend_from_slice(ready.get(position..range.start).unwrap_or_default());
            position = range.end;
        }
        kept.extend_from_slice(ready.get(position..).unwrap_or_default());
        kept.freeze()
    }
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
            let (out, mut relay) = run(false, &[head, tail]);
            assert_eq!(out, whole.as_bytes(), "cut at {cut}");
            assert_eq!(
                relay.seen.usage.and_then(|usage| usage.total_tokens),
                Some(7)
            );
            assert_eq!(relay.seen.take_completion().measure().tokens(), 1);
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
        let (out, mut relay) = run(true, &[crlf.as_bytes()]);
        assert_eq!(out, crlf.as_bytes());
        assert_eq!(relay.seen.take_completion().measure().tokens(), 2);
        assert!(!relay.seen.saw_done);
        assert_eq!(next_event_end(b"a\nb", 0), None);
        assert_eq!(next_event_end(b"a\n\nb", 0), Some(3));
    }

    /// A blank line split across pushes still ends the event, and an event
    /// arriving a byte at a time is found once, when it ends.
    #[test]
    fn framing_finds_events_split_anywhere() {
        let stream = b"event: a\ndata: 1\n\ndata: 2\r\n\r\n: keep-alive\n\ndata: 3";
        for cut in 0..stream.len() {
            let mut framing = Framing::default();
            let mut out = framing
                .push(Bytes::copy_from_slice(&stream[..cut]))
                .to_vec();
            out.extend_from_slice(&framing.push(Bytes::copy_from_slice(&stream[cut..])));
            assert_eq!(&out[..], &stream[..stream.len() - 7], "cut {cut}");
            assert_eq!(&framing.finish()[..], b"data: 3");
        }
        let mut framing = Framing::default();
        let mut complete = Vec::new();
        for byte in stream {
            complete.extend_from_slice(&framing.push(Bytes::copy_from_slice(&[*byte])));
        }
        let events: Vec<_> = events(&complete).map(|range| &complete[range]).collect();
        assert_eq!(events.len(), 3);
        let payloads: Vec<_> = events.iter().map(|event| payload(event)).collect();
        assert_eq!(
            payloads[0],
            Some((Some(&b"a"[..]), Cow::Borrowed(&b"1"[..])))
        );
        assert_eq!(payloads[2], None, "a comment has no data");
    }

    /// Several `data:` lines are one payload, joined by newlines.
    #[test]
    fn data_lines_join() {
        let event = b"data: {\"a\":\ndata: 1}\n\n";
        let (name, data) = payload(event).unwrap();
        assert_eq!(name, None);
        assert_eq!(&data[..], b"{\"a\":\n1}");
    }
}
