//! The JSON admin API under `/api`: channels (and their health checks), API
//! keys, daily token usage, request logs, runtime settings, overview stats,
//! the web UI's session and the OpenAPI document. It is the only way the UI
//! changes state.
//!
//! Every route is registered through [`Routes`], which wraps each handler in
//! the admin check ([`RequireAdmin`]: the admin token, or the session cookie
//! plus CSRF token) and records the route in a table. So no route can forget
//! authentication, and the OpenAPI test compares the document against the
//! same table the router was built from. The one exception is
//! `/api/session`, registered with [`Routes::public`]: signing in is how a
//! browser gets credentials, so its handlers check the token or the cookie
//! themselves.
//!
//! Handlers are thin: they extract (`json`), validate (`validate`), then read
//! the snapshot or store, or build a `Command` for `AppState::apply`. They
//! never write to the store directly.

pub mod auth;
pub mod channels;
pub mod cluster;
pub mod health;
pub(crate) mod json;
pub mod logs;
pub mod openapi;
pub mod session;
pub mod settings;
pub mod stats;
pub mod tokens;
pub mod usage;
pub(crate) mod validate;

use axum::Router;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};

pub use auth::RequireAdmin;

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;

/// The admin router. Every route but `/api/session`, including
/// `/api/openapi.json`, requires the admin token or a session: the document
/// is harmless, but "every admin endpoint is authenticated" is a rule with
/// one exception to remember, not many.
pub fn router() -> Router<AppState> {
    let Routes { router, .. } = routes();
    // Unknown `/api/*` paths answer in our error shape, after the token check.
    router
        .route(
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
        // So do other methods on known paths, instead of axum's empty 405.
        .method_not_allowed_fallback(unknown_method)
}

/// Every admin route as (method, path), in registration order.
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes().table
}

fn routes() -> Routes {
    Routes::default()
        .public(
            Method::POST,
            MethodFilter::POST,
            "/api/session",
            session::create,
        )
        .public(Method::GET, MethodFilter::GET, "/api/session", session::get)
        .public(
            Method::DELETE,
            MethodFilter::DELETE,
            "/api/session",
            session::delete,
        )
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
        .get("/api/settings", settings::get)
        .patch("/api/settings", settings::update)
        .get("/api/stats", stats::get)
        .get("/api/cluster", cluster::get)
        .get("/api/cluster/members", cluster::members)
        .post("/api/cluster/members", cluster::add)
        .delete("/api/cluster/members/{id}", cluster::remove)
        .get("/api/openapi.json", openapi::document)
}

/// A router under construction plus the table of what it serves.
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    /// A route without the admin check: its handler authenticates itself.
    fn public<H, T>(
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
        self.router = self.router.route(path, on(filter, handler));
        self.table.push((method, path));
        self
    }

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

async fn unknown_route() -> ApiError {
    ApiError::new(ErrorCode::NotFound, Message::NoSuchRoute)
}

/// A method a known path does not serve: a missing route, after the check.
async fn unknown_method(_admin: RequireAdmin) -> ApiError {
    unknown_route().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table_has_no_duplicates() {
        let table = route_table();
        let mut unique = table.clone();
        unique.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        unique.dedup();
        assert_eq!(unique.len(), table.len());
    }
}
