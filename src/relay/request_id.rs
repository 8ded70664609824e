//! The `x-request-id` of every response, admin ones included.
//!
//! A client-supplied id is kept when it is 1–128 visible ASCII characters;
//! anything else is replaced by a fresh random id. The id travels to handlers
//! as a [`RequestId`] request extension and ends up in the request log.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header that carries the id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

/// A validated request id: visible ASCII only, so it is always a valid header
/// value and safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The client's id if it is acceptable, otherwise a fresh one.
    pub fn from_header(value: Option<&HeaderValue>) -> RequestId {
        value
            .filter(|value| is_acceptable(value.as_bytes()))
            .map(|value| RequestId(value.clone()))
            .unwrap_or_else(RequestId::generate)
    }

    /// 128 random bits, hex encoded.
    pub fn generate() -> RequestId {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let bits = rand::random::<u128>();
        let mut text = [0u8; 32];
        for (index, digit) in text.iter_mut().enumerate() {
            let nibble = (bits >> (124 - 4 * index)) & 0xf;
            *digit = DIGITS[nibble as usize];
        }
        RequestId(HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("0")))
    }

    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored, so this never falls back.
        self.0.to_str().unwrap_or_default()
    }

    /// Stamps the id on `response`, unless its handler set one.
    pub fn stamp(&self, response: &mut Response) {
        response
            .headers_mut()
            .entry(&X_REQUEST_ID)
            .or_insert_with(|| self.0.clone());
    }
}

fn is_acceptable(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.len() <= MAX_LEN && bytes.iter().all(|byte| byte.is_ascii_graphic())
}

/// Middleware: resolves the id, hands it to the handler and stamps it on the
/// response (unless the handler already set one).
pub async fn request_id_layer(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_header(request.headers().get(&X_REQUEST_ID));
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).await;
    id.stamp(&mut response);
    response
}

/// Handlers take the id the middleware resolved; without the middleware (unit
/// tests over a bare router) they resolve it themselves.
impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<RequestId, Self::Rejection> {
        Ok(match parts.extensions.get::<RequestId>() {
            Some(id) => id.clone(),
            None => RequestId::from_header(parts.headers.get(&X_REQUEST_ID)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Acceptable ids are kept verbatim; others are replaced.
    #[test]
    fn incoming_ids_are_sanitised() {
        let long = "a".repeat(MAX_LEN + 1);
        let cases: [(&[u8], bool); 6] = [
            (b"abc-123", true),
            (b"", false),
            (b"has space", false),
            (long.as_bytes(), false),
            (&long.as_bytes()[1..], true),
            (b"tab\there", false),
        ];
        for (input, kept) in cases {
            let value = HeaderValue::from_bytes(input).ok();
            let id = RequestId::from_header(value.as_ref());
            assert_eq!(id.as_str().as_bytes() == input, kept, "{input:?}");
            assert!(is_acceptable(id.as_str().as_bytes()));
        }
    }
}
