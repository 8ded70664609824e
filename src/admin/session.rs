//! `/api/session`: the web UI's sign-in. `POST` exchanges the admin token for
//! an HttpOnly, SameSite=Strict cookie and returns the CSRF token; `GET`
//! tells the UI whether its cookie is still good (and hands the CSRF token
//! to a reloaded page); `DELETE` signs out. See `session` for the cookie.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{self, ClientIp};
use super::json::Json;
use super::openapi::ErrorBody;
use crate::AppState;
use crate::error::ApiError;
use crate::i18n::Message;
use crate::session::{self, Session, Sessions};

/// The sign-in request.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The admin token.
    pub token: String,
}

/// A live session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    /// When the cookie stops working (12 hours after sign-in).
    pub expires_at: DateTime<Utc>,
    /// Send this as `x-csrf-token` on every POST, PUT, PATCH and DELETE
    /// made with the cookie.
    pub csrf_token: String,
}

/// Sign in: exchange the admin token for a session cookie.
#[utoipa::path(
    post, path = "/api/session", tag = "session",
    request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie: sg_session=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200`", body = SessionInfo),
        (status = 401, description = "Wrong admin token", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address (`too_many_attempts`, with `Retry-After`)", body = ErrorBody),
    ),
    security(())
)]
pub async fn create(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(sign_in): Json<SignIn>,
) -> Result<Response, ApiError> {
    auth::check_token(&state, ip, &sign_in.token)?;
    let digest = state.admin.token_digest();
    let (cookie, session) = state.sessions.issue(&digest, state.clock.now());
    let mut response = info(&state, &session).into_response();
    set_cookie(&mut response, &session::set_cookie(&cookie));
    Ok(response)
}

/// The current session, when the cookie is valid.
#[utoipa::path(
    get, path = "/api/session", tag = "session",
    responses(
        (status = 200, description = "The cookie is valid", body = SessionInfo),
        (status = 401, description = "No cookie, or an expired, signed-out or foreign one", body = ErrorBody),
    ),
    security(())
)]
pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match auth::current_session(&state, &headers) {
        Some(session) => info(&state, &session).into_response(),
        None => auth::unauthorized(Message::SessionMissing),
    }
}

/// Sign out: the cookie is cleared and refused from now on, even if replayed.
#[utoipa::path(
    delete, path = "/api/session", tag = "session",
    responses(
        (status = 204, description = "Signed out (also when there was no valid session)"),
        (status = 403, description = "A valid cookie without its `x-csrf-token` (`csrf_failed`)", body = ErrorBody),
    ),
    security(())
)]
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(session) = auth::current_session(&state, &headers) {
        auth::check_csrf(&state, &session, &headers)?;
        state.sessions.revoke(&session, state.clock.now());
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut response, &session::clear_cookie());
    Ok(response)
}

fn info(state: &AppState, session: &Session) -> (HeaderMap, axum::Json<SessionInfo>) {
    let digest = state.admin.token_digest();
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let body = SessionInfo {
        expires_at: session.expires_at,
        csrf_token: Sessions::csrf_token(&digest, session),
    };
    (headers, axum::Json(body))
}

fn set_cookie(response: &mut Response, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}
