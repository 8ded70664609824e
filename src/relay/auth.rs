//! Client authentication for `/v1/*`: the API key from `Authorization: Bearer`
//! or `x-api-key`, checked against the snapshot only (never SQLite).
//!
//! Unknown or missing key → 401 `invalid_api_key`; a known key that is
//! disabled or expired → 403 `forbidden`. A model outside the key's allow-list
//! is answered like an unknown model (404 `model_not_found`, see `chat`), so a
//! key cannot probe which models exist beyond what it may use.

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};

use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;
use crate::model::{KeyDigest, Token, TokenStatus};
use crate::snapshot::Snapshot;

const X_API_KEY: &str = "x-api-key";

/// The key's token, if it may make requests at `now` (the injected clock's).
pub fn authenticate(
    headers: &HeaderMap,
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Result<Arc<Token>, ApiError> {
    let key = presented_key(headers)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, Message::MissingApiKey))?;
    let token = snapshot
        .token_by_digest(&KeyDigest::of(key))
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, Message::IncorrectApiKey))?;
    if token.spec.status != TokenStatus::Enabled {
        return Err(ApiError::new(ErrorCode::Forbidden, Message::ApiKeyDisabled));
    }
    if token.is_expired(now) {
        return Err(ApiError::new(ErrorCode::Forbidden, Message::ApiKeyExpired));
    }
    Ok(Arc::clone(token))
}

/// The presented key: `Authorization: Bearer <key>` first, then `x-api-key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, key) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    bearer
        .or_else(|| {
            headers
                .get(X_API_KEY)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
        })
        .filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    /// Keys are read from a Bearer header or x-api-key, Bearer first.
    #[test]
    fn reads_the_presented_key() {
        type Pairs = &'static [(&'static str, &'static str)];
        let cases: [(Pairs, Option<&str>); 6] = [
            (&[], None),
            (&[("authorization", "Bearer sk-a")], Some("sk-a")),
            (&[("authorization", "bearer  sk-a ")], Some("sk-a")),
            (&[("x-api-key", "sk-b")], Some("sk-b")),
            (
                &[("authorization", "Bearer sk-a"), ("x-api-key", "sk-b")],
                Some("sk-a"),
            ),
            (&[("authorization", "Basic abc")], None),
        ];
        for (pairs, expected) in cases {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_static(value));
            }
            assert_eq!(presented_key(&headers), expected, "{pairs:?}");
        }
    }
}
