//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! attributes and the request/response types, served at `/api/openapi.json`.
//!
//! The `/v1` relay routes are described here too, by two documentation-only
//! functions: the relay passes OpenAI bodies through, so their schema is
//! OpenAI's, not ours. A test compares the document with the admin router's
//! route table, so neither can drift from the other.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{channels, cluster, health, logs, session, settings, stats, tokens, usage};

/// The admin error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code such as `invalid_request`, `invalid_api_key` or `not_found`.
    pub code: String,
    pub message: String,
    /// The dotted path of the request field at fault, such as `settings.daily_token_limit`.
    pub field: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluicegate",
        description = "A self-hosted LLM API gateway. `/api/*` is the admin API (admin token); \
                       `/v1/*` is the OpenAI-compatible relay (API keys)."
    ),
    paths(
        channels::create,
        channels::list,
        channels::get,
        channels::update,
        channels::delete,
        health::test,
        health::upstream_models,
        usage::channel,
        usage::reset,
        usage::list,
        tokens::create,
        tokens::list,
        tokens::get,
        tokens::update,
        tokens::delete,
        logs::list,
        session::create,
        session::get,
        session::delete,
        settings::get,
        settings::update,
        stats::get,
        cluster::get,
        cluster::members,
        cluster::add,
        cluster::remove,
        document,
        chat_completions,
        models,
    ),
    // `logs::Scope` is a query parameter's type, which `paths` does not collect.
    components(schemas(ErrorBody, ErrorDetail, logs::Scope)),
    modifiers(&SecuritySchemes),
    security(("admin_token" = []), ("session_cookie" = [])),
    tags(
        (name = "channels", description = "Upstream channels"),
        (name = "usage", description = "Daily token usage per channel, against its daily limit"),
        (name = "tokens", description = "API keys that clients present to the relay"),
        (name = "logs", description = "Request logs and the overview's hourly stats"),
        (name = "session", description = "The web UI's sign-in: a session cookie instead of the Bearer token. \
            With the cookie, POST/PUT/PATCH/DELETE must send `x-csrf-token`"),
        (name = "settings", description = "Runtime settings; stored values win over the config file and flags"),
        (name = "cluster", description = "Cluster mode: this node's view, and online membership changes"),
        (name = "meta", description = "This document"),
        (name = "relay", description = "The OpenAI-compatible relay"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (`SLUICEGATE_ADMIN_TOKEN` or `<data-dir>/admin-token`)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "sg_session",
                "The session cookie from `POST /api/session`; state-changing \
                 requests also need its CSRF token in `x-csrf-token`",
            ))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`sk-…`) created with `POST /api/tokens`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
    }
}

/// This OpenAPI document.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Relay an OpenAI chat completion to a channel.
///
/// Served by the relay; this function only documents it.
#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "relay",
    request_body(content = Object, description = "An OpenAI chat completion request", content_type = "application/json"),
    responses(
        (status = 200, description = "An OpenAI chat completion, or an SSE stream of chunks when `stream` is true"),
        (status = 400, description = "Malformed request (OpenAI error envelope)"),
        (status = 401, description = "Unknown, disabled or expired API key"),
        (status = 403, description = "The key may not use this model"),
        (status = 404, description = "No channel serves the model (`model_not_found`)"),
        (status = 413, description = "The request body is too large"),
        (status = 502, description = "Every candidate channel failed"),
        (status = 503, description = "Every candidate channel was unreachable"),
    ),
    security(("api_key" = []), ("api_key_header" = []))
)]
pub fn chat_completions() {}

/// List the models the presented API key may use.
///
/// Served by the relay; this function only documents it.
#[utoipa::path(
    get, path = "/v1/models", tag = "relay",
    responses(
        (status = 200, description = "An OpenAI model list"),
        (status = 401, description = "Unknown, disabled or expired API key"),
    ),
    security(("api_key" = []), ("api_key_header" = []))
)]
pub fn models() {}

/// Every (method, path) the document describes, upper-case methods.
pub fn operations(document: &utoipa::openapi::OpenApi) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in &document.paths.paths {
        let methods = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in methods {
            if operation.is_some() {
                found.push((method.to_string(), path.clone()));
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document lists exactly the admin router's routes plus the two relay routes.
    #[test]
    fn document_matches_the_route_table() {
        let mut expected: Vec<(String, String)> = super::super::route_table()
            .into_iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        expected.push(("POST".to_string(), "/v1/chat/completions".to_string()));
        expected.push(("GET".to_string(), "/v1/models".to_string()));
        expected.sort();
        assert_eq!(operations(&ApiDoc::openapi()), expected);
    }

    /// The usage views are documented, and channel reads show `daily_usage`.
    #[test]
    fn document_describes_daily_usage() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &document["components"]["schemas"];
        for name in [
            "ChannelUsage",
            "DayUsage",
            "DailyUsage",
            "UsageList",
            "UsageRow",
        ] {
            assert!(schemas[name].is_object(), "{name} is missing");
        }
        let channel = &schemas["ChannelView"]["properties"];
        assert!(channel["daily_usage"].is_object(), "{channel}");
        assert_eq!(
            schemas["ChannelUsage"]["properties"]["date"]["format"],
            "date"
        );
        assert_eq!(
            schemas["ChannelUsage"]["properties"]["resets_at"]["format"],
            "date-time"
        );
    }

    /// Both auth schemes are declared and admin routes require the admin token.
    #[test]
    fn document_declares_bearer_security() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemes = &document["components"]["securitySchemes"];
        assert_eq!(schemes["admin_token"]["scheme"], "bearer");
        assert_eq!(schemes["api_key"]["scheme"], "bearer");
        assert_eq!(
            document["security"][0]["admin_token"],
            serde_json::json!([])
        );
    }
}
