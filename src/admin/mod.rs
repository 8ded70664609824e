//! The JSON admin API under `/api`: channels (and their health checks), API
//! keys, daily token usage, request logs and the OpenAPI document. It is the only way the UI changes state.
//!
//! Every route is registered through [`Routes`], which wraps each handler in
//! the admin-token check and records the route in a table. So no route can
//! forget authentication, and the OpenAPI test compares the document against
//! the same table the router was built from.
//!
//! Handlers are thin: they extract (`json`), validate (`validate`), then read
//! the snapshot or store, or build a `Command` for `AppState::apply`. They
//! never write to the store directly.

pub mod channels;
pub mod health;
mod json;
pub mod logs;
pub mod openapi;
pub mod tokens;
pub mod usage;
mod validate;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;

/// The admin router. Every route, including `/api/openapi.json`, requires the
/// admin token: the document is harmless, but "every admin endpoint is
/// authenticated" is a rule with no exceptions to remember.
pub fn router() -> Router<AppState> {
    let Routes { router, .. } = routes();
    // Unknown `/api/*` paths answer in our error shape, after the token check.
    router.route(
        "/api/{*rest}",
        guarded(
            MethodFilter::GET
                .or(MethodFilter::POST)
                .or(MethodFilter::PUT)
                .or(MethodFilter::PATCH)
                .or(MethodFilter::DELETE),
            unknown_route,
        ),
    )
}

/// Every admin route as (method, path), in registration order.
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes().table
}

fn routes() -> Routes {
    Routes::default()
        .post("/api/channels", channels::create)
        .get("/api/channels", channels::list)
        .get("/api/channels/{id}", channels::get)
        .patch("/api/channels/{id}", channels::update)
        .delete("/api/channels/{id}", channels::delete)
        .post("/api/channels/{id}/test", health::test)
        .get(
            "/api/channels/{id}/upstream-models",
            health::upstream_models,
        )
        .get("/api/channels/{id}/usage", usage::channel)
        .post("/api/channels/{id}/usage/reset", usage::reset)
        .get("/api/usage", usage::list)
        .post("/api/tokens", tokens::create)
        .get("/api/tokens", tokens::list)
        .get("/api/tokens/{id}", tokens::get)
        .patch("/api/tokens/{id}", tokens::update)
        .delete("/api/tokens/{id}", tokens::delete)
        .get("/api/logs", logs::list)
        .get("/api/openapi.json", openapi::document)
}

/// A router under construction plus the table of what it serves.
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    fn get<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, MethodFilter::GET, path, handler)
    }

    fn post<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, MethodFilter::POST, path, handler)
    }

    fn patch<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::PATCH, MethodFilter::PATCH, path, handler)
    }

    fn delete<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::DELETE, MethodFilter::DELETE, path, handler)
    }

    fn add<H, T>(
        mut self,
        method: Method,
        filter: MethodFilter,
        path: &'static str,
        handler: H,
    ) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, guarded(filter, handler));
        self.table.push((method, path));
        self
    }
}

/// `handler` behind the admin-token check: [`RequireAdmin`] rejects first,
/// so the handler never runs for an unauthenticated request.
fn guarded<H, T>(filter: MethodFilter, handler: H) -> axum::routing::MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    on(
        filter,
        move |_admin: RequireAdmin, State(state): State<AppState>, request: Request| {
            handler.call(request, state)
        },
    )
}

/// Proof that the request carried the admin token as `Authorization: Bearer …`.
pub struct RequireAdmin;

impl FromRequestParts<AppState> for RequireAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer);
        match presented {
            Some(token) if state.admin.verify(token) => Ok(RequireAdmin),
            Some(_) => Err(unauthorized(Message::AdminTokenWrong)),
            None => Err(unauthorized(Message::AdminTokenMissing)),
        }
    }
}

/// The credentials of a `Bearer` authorization value (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

fn unauthorized(message: Message) -> Response {
    let mut response = ApiError::new(ErrorCode::Unauthorized, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn unknown_route() -> ApiError {
    ApiError::new(ErrorCode::NotFound, Message::NoSuchRoute)
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
    fn route_table_has_no_duplicates() {
        let table = route_table();
        let mut unique = table.clone();
        unique.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        unique.dedup();
        assert_eq!(unique.len(), table.len());
    }
}
