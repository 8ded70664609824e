//! Who may use the admin API: [`RequireAdmin`] accepts either the admin
//! token as `Authorization: Bearer …` (scripts) or the web UI's session
//! cookie, and with the cookie a state-changing method must also carry the
//! session's CSRF token in `x-csrf-token`. Wrong tokens count against the
//! client's address (`session::limiter`), for Bearer and sign-in alike.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;
use crate::session::{self, Session, Sessions};

/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Proof that the request carried the admin token, or a valid session
/// cookie (plus its CSRF token when the method changes state).
pub struct RequireAdmin;

impl FromRequestParts<AppState> for RequireAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(token) = presented_bearer(&parts.headers) {
            check_token(state, client_ip(parts), token).map_err(challenge)?;
            return Ok(RequireAdmin);
        }
        if session::cookie_value(&parts.headers).is_some() {
            let session = current_session(state, &parts.headers)
                .ok_or_else(|| unauthorized(Message::SessionMissing))?;
            if changes_state(&parts.method) {
                check_csrf(state, &session, &parts.headers).map_err(IntoResponse::into_response)?;
            }
            return Ok(RequireAdmin);
        }
        Err(unauthorized(Message::AdminTokenMissing))
    }
}

/// The client's address, from the connection. Requests without one (tests
/// driving the router in-process) share the unspecified address.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Checks a presented admin token against the limiter and the token:
/// a locked-out address is refused even with the right token.
pub fn check_token(state: &AppState, ip: IpAddr, token: &str) -> Result<(), ApiError> {
    let now = Instant::now();
    state.limiter.check(ip, now).map_err(too_many_attempts)?;
    if state.admin.verify(token) {
        return Ok(());
    }
    state.limiter.fail(ip, now);
    tracing::warn!(%ip, "wrong admin token");
    Err(ApiError::new(
        ErrorCode::Unauthorized,
        Message::AdminTokenWrong,
    ))
}

/// The session the request's cookie proves, if any.
pub fn current_session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let value = session::cookie_value(headers)?;
    let digest = state.admin.token_digest();
    state.sessions.verify(&digest, value, state.clock.now())
}

/// Whether `x-csrf-token` is `session`'s CSRF token.
pub fn check_csrf(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let digest = state.admin.token_digest();
    let matches = headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|presented| Sessions::csrf_matches(&digest, session, presented));
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::CsrfFailed, Message::CsrfFailed))
    }
}

/// Methods that change state, and so need CSRF protection with a cookie.
fn changes_state(method: &Method) -> bool {
    ![Method::GET, Method::HEAD, Method::OPTIONS].contains(method)
}

pub(crate) fn too_many_attempts(wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        ErrorCode::TooManyAttempts,
        Message::TooManyAttempts { seconds },
    )
    .with_retry_after(seconds)
}

pub(crate) fn presented_bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer)
}

/// The credentials of a `Bearer` authorization value (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// A 401 with `WWW-Authenticate: Bearer`.
pub fn unauthorized(message: Message) -> Response {
    challenge(ApiError::new(ErrorCode::Unauthorized, message))
}

/// `error` rendered, with `WWW-Authenticate: Bearer` if it is a 401, so a
/// wrong token is answered like a missing one (a lockout's 429 is not).
fn challenge(error: ApiError) -> Response {
    let unauthorized = error.status() == StatusCode::UNAUTHORIZED;
    let mut response = error.into_response();
    if unauthorized {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials_are_extracted() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer   ", None),
            ("abc", None),
        ];
        for (value, expected) in cases {
            assert_eq!(bearer(value), expected, "{value:?}");
        }
    }

    #[test]
    fn only_safe_methods_skip_csrf() {
        assert!(!changes_state(&Method::GET));
        assert!(!changes_state(&Method::HEAD));
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(changes_state(&method), "{method}");
        }
    }

    /// Retry-After rounds up, so a client never retries a moment too early.
    #[test]
    fn retry_after_rounds_up() {
        let error = too_many_attempts(Duration::from_millis(1_500));
        assert_eq!(error.retry_after, Some(2));
        assert_eq!(error.status().as_u16(), 429);
    }
}
