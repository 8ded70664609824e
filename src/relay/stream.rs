//! The client side of a streamed reply: upstream chunks go out as their SSE
//! events complete (or, for binary bodies such as speech audio, as they
//! arrive, unbuffered), with an idle timeout between chunks.
//!
//! The response body owns the [`Meter`]. When the body is dropped — the
//! stream ended, broke, or the client went away — the upstream response is
//! dropped with it (which cancels the upstream request) and the meter records
//! what was seen.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;

use super::meter::{CLIENT_CLOSED, Meter};
use super::observe::Completion;
use super::sse::SseRelay;
use super::upstream::ByteStream;
use crate::error::ErrorCode;

/// Everything the response body carries between polls.
struct Relay {
    upstream: ByteStream,
    /// `None` for a binary body, passed through chunk by chunk.
    sse: Option<SseRelay>,
    meter: Meter,
    idle: Duration,
    /// Upstream bytes not yet fed through `sse`.
    pending: Option<Bytes>,
    /// The upstream has ended, cleanly or not.
    ended: bool,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if !self.ended {
            self.meter.interrupted(CLIENT_CLOSED);
        }
        match &mut self.sse {
            Some(sse) => {
                let completion = sse.seen.take_completion();
                self.meter.served(sse.seen.usage, completion);
            }
            None => self.meter.served(None, Completion::default()),
        }
    }
}

/// The streaming response to the client; `first` is the upstream's first
/// chunk. With `sse`, events are relayed as they complete and observed on
/// the way; without, the body is binary and goes out with `content_type`.
pub fn relay_stream(
    meter: Meter,
    status: StatusCode,
    first: Bytes,
    upstream: ByteStream,
    sse: Option<SseRelay>,
    content_type: Option<HeaderValue>,
    idle: Duration,
) -> Response {
    let content_type = match (&sse, content_type) {
        (None, Some(content_type)) => content_type,
        (None, None) => HeaderValue::from_static("application/octet-stream"),
        (Some(_), _) => HeaderValue::from_static("text/event-stream"),
    };
    let relay = Relay {
        upstream,
        sse,
        meter,
        idle,
        pending: Some(first),
        ended: false,
    };
    let body = futures_util::stream::unfold(relay, |mut relay| async move {
        let item = relay.next_out().await?;
        Some((item, relay))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

impl Relay {
    /// The next bytes for the client; `None` ends the body, an error aborts it
    /// so the client can tell a broken stream from a finished one.
    async fn next_out(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        loop {
            if let Some(chunk) = self.pending.take() {
                let out = match self.sse.as_mut() {
                    Some(sse) => sse.feed(chunk),
                    None => chunk,
                };
                if !out.is_empty() {
                    return Some(Ok(out));
                }
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout(self.idle, self.upstream.next()).await {
                Ok(Some(Ok(chunk))) => self.pending = Some(chunk),
                Ok(None) => {
                    self.ended = true;
                    let tail = self.sse.as_mut().map(SseRelay::finish).unwrap_or_default();
                    if !tail.is_empty() {
                        return Some(Ok(tail));
                    }
                }
                Ok(Some(Err(error))) => {
                    return Some(Err(self.broken(
                        ErrorCode::UpstreamFailed,
                        &crate::upstream::client::chain(&error),
                    )));
                }
                Err(_) => {
                    let text = format!("no chunk for {:?}", self.idle);
                    return Some(Err(self.broken(ErrorCode::UpstreamUnavailable, &text)));
                }
            }
        }
    }

    fn broken(&mut self, code: ErrorCode, text: &str) -> std::io::Error {
        self.ended = true;
        self.meter.interrupted(code.as_str());
        tracing::warn!(
            request_id = self.meter.request_id(),
            error = text,
            "upstream stream broke"
        );
        std::io::Error::other(format!("upstream stream broke: {text}"))
    }
}
