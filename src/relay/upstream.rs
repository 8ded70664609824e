//! One attempt against one channel: send the prepared upstream request and
//! classify what came back. Where it goes and how it is authenticated is
//! `target`'s business; retrying across channels is `pipeline`'s.
//!
//! An attempt ends before anything reaches the client: with the whole body of
//! a non-stream reply, or with the first chunk of a stream. That is the point
//! up to which a retry is still allowed.

use std::pin::Pin;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::body::Incoming;

use super::usage::RawUsage;
use crate::AppState;
use crate::model::ChannelId;
use crate::upstream::client::SendError;
use crate::upstream::summarise;

/// The upstream's body after the first chunk.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, hyper::Error>> + Send>>;

/// The most of an upstream error body we read.
const ERROR_BODY_LIMIT: usize = 1024 * 1024;

/// A successful attempt.
pub enum Success {
    /// A non-stream reply, read whole.
    Complete {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    /// A stream (SSE or a binary body) whose first chunk has arrived.
    Streaming {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        first: Bytes,
        rest: ByteStream,
    },
}

/// A failed attempt.
#[derive(Debug)]
pub enum Failure {
    /// Connect error or timeout: the channel could not be reached in time.
    Unreachable(String),
    /// A retryable failure of the channel (401, 403, 408, 429, 5xx, broken
    /// body), with the usage its error body reported, if any.
    Failed {
        summary: String,
        usage: Option<RawUsage>,
    },
    /// An upstream 4xx about the request itself: passed to the client verbatim.
    Rejected {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
}

impl Failure {
    /// A failure that reported no usage.
    fn failed(summary: impl Into<String>) -> Failure {
        Failure::Failed {
            summary: summary.into(),
            usage: None,
        }
    }

    /// What the upstream reported this attempt consumed: only ever from its
    /// error body (a few providers bill failed requests and say so).
    pub fn reported_usage(&self) -> Option<RawUsage> {
        match self {
            Failure::Unreachable(_) => None,
            Failure::Failed { usage, .. } => *usage,
            Failure::Rejected { body, .. } => usage_in(body),
        }
    }
}

/// The `usage` object of a JSON body, if it has one. The rest of the body
/// is skipped, not built into a tree; and, since it is the upstream's, it is
/// read leniently (as serde skips it: invalid UTF-8 in a string the gateway
/// does not read does not hide the usage).
pub fn usage_in(body: &[u8]) -> Option<RawUsage> {
    #[derive(serde::Deserialize)]
    struct UsageOnly {
        usage: Option<RawUsage>,
    }
    serde_json::from_slice::<UsageOnly>(body).ok()?.usage
}

/// Whether an upstream status means "try another channel".
pub fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403 | 408 | 429) || status.is_server_error()
}

/// One upstream request, ready to send.
#[derive(Debug)]
pub struct Outbound {
    pub uri: Uri,
    /// Auth (from `target`), the content type and the forwarded client headers.
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The channel it goes to, for the health hook in [`failure`].
    pub channel: ChannelId,
}

impl Outbound {
    /// The `POST` this describes.
    fn into_request(self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        request
    }
}

/// Sends `outbound` and waits for its first byte (headers and, for streams,
/// the first chunk) within the configured timeout. `key` is only used to
/// scrub error summaries.
pub async fn attempt(
    state: &AppState,
    outbound: Outbound,
    key: &str,
    stream: bool,
) -> Result<Success, Failure> {
    let channel = outbound.channel;
    let client = state.upstream();
    let timeout = state.settings().first_byte_timeout;
    let head = tokio::time::timeout(timeout, async {
        let response = client
            .send(outbound.into_request())
            .await
            .map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            return Err(failure(state, channel, response, key).await);
        }
        if !stream {
            return Ok(Head::Whole(response));
        }
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let mut rest: ByteStream = Box::pin(BodyDataStream::new(response.into_body()));
        let first = first_chunk(&mut rest).await?;
        Ok(Head::Streaming(Success::Streaming {
            status,
            content_type,
            first,
            rest,
        }))
    })
    .await
    .map_err(|_| Failure::Unreachable(format!("no first byte within {timeout:?}")))??;
    match head {
        Head::Streaming(success) => Ok(success),
        Head::Whole(response) => {
            let status = response.status();
            let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
            let idle = state.settings().stream_idle_timeout;
            let body = read_body(response.into_body(), idle, usize::MAX).await?;
            Ok(Success::Complete {
                status,
                content_type,
                body,
            })
        }
    }
}

/// What arrived within the first-byte timeout.
enum Head {
    Streaming(Success),
    /// A non-stream success whose body is still to be read.
    Whole(axum::http::Response<Incoming>),
}

/// The first non-empty chunk of a stream.
async fn first_chunk(rest: &mut ByteStream) -> Result<Bytes, Failure> {
    loop {
        match rest.next().await {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(chunk)) => return Ok(chunk),
            Some(Err(error)) => return Err(broken(&error)),
            None => {
                return Err(Failure::failed("the upstream stream ended before any data"));
            }
        }
    }
}

/// Reads a body frame by frame, allowing at most `idle` between frames, up
/// to `limit` bytes.
async fn read_body(mut body: Incoming, idle: Duration, limit: usize) -> Result<Bytes, Failure> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    loop {
        let next = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| Failure::Unreachable(format!("the upstream body stalled for {idle:?}")))?;
        let chunk = match next {
            Some(frame) => match frame.map_err(|error| broken(&error))?.into_data() {
                Ok(data) => data,
                // Trailers carry nothing the relay reads.
                Err(_) => continue,
            },
            None => break,
        };
        // The common case is a single chunk: keep it without copying.
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            held => {
                if let Some(held) = held {
                    joined.extend_from_slice(&held);
                }
                joined.extend_from_slice(&chunk);
            }
        }
        if first.as_ref().map_or(joined.len(), Bytes::len) >= limit {
            break;
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

/// Classifies a non-2xx reply: retryable, or a rejection to pass through.
/// Every failing status and its body also go to the channel-health hook.
async fn failure(
    state: &AppState,
    channel: ChannelId,
    response: axum::http::Response<Incoming>,
    key: &str,
) -> Failure {
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = read_body(
        response.into_body(),
        Duration::from_secs(30),
        ERROR_BODY_LIMIT,
    )
    .await
    .unwrap_or_default();
    state
        .health
        .report(&state.snapshot(), channel, status, &body);
    if is_retryable(status) || !status.is_client_error() {
        Failure::Failed {
            summary: summarise(status, &body, key),
            usage: usage_in(&body),
        }
    } else {
        Failure::Rejected {
            status,
            content_type,
            body,
        }
    }
}

/// A request that got no response: connect errors mean "unreachable".
fn classify(error: SendError) -> Failure {
    // The error never names the key (a header); the URL's query is not shown.
    if error.connect {
        Failure::Unreachable(error.text)
    } else {
        Failure::failed(error.text)
    }
}

/// A body that broke after the response head.
fn broken(error: &hyper::Error) -> Failure {
    Failure::failed(crate::upstream::client::chain(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 401/403/408/429/5xx retry; other statuses do not.
    #[test]
    fn retryable_statuses() {
        let cases = [
            (400, false),
            (401, true),
            (403, true),
            (404, false),
            (408, true),
            (422, false),
            (429, true),
            (500, true),
            (503, true),
        ];
        for (code, retry) in cases {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            assert_eq!(is_retryable(status), retry, "{code}");
        }
    }

    /// A failed attempt reports only the usage its error body states.
    #[test]
    fn failures_report_only_stated_usage() {
        let billed = br#"{"error":{"message":"x"},"usage":{"prompt_tokens":5,"total_tokens":5}}"#;
        let cases: [(Failure, Option<u64>); 4] = [
            (Failure::Unreachable("down".into()), None),
            (Failure::failed("500"), None),
            (
                Failure::Failed {
                    summary: "500".into(),
                    usage: usage_in(billed),
                },
                Some(5),
            ),
            (
                Failure::Rejected {
                    status: StatusCode::BAD_REQUEST,
                    content_type: None,
                    body: Bytes::from_static(billed),
                },
                Some(5),
            ),
        ];
        for (failure, total) in cases {
            let reported = failure
                .reported_usage()
                .and_then(|usage| usage.total_tokens);
            assert_eq!(reported, total, "{failure:?}");
        }
        assert!(usage_in(b"not json").is_none());
    }
}
