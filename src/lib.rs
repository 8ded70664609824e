//! Sluicegate: a self-hosted LLM API gateway with per-channel daily token limits.
//!
//! # Layout
//! - `cli` parses flags, env vars and the TOML file into a `config::Config`.
//! - `server` opens the stores, builds `state::AppState`, serves `app()` and
//!   shuts down gracefully.
//! - `model` holds the domain types; `command` the state changes; `snapshot`
//!   the in-memory view that serves requests.
//! - `store` is the only module that touches SQLite or sled.
//! - `routing` chooses channels; it is pure (no IO, no clock).
//! - `relay` serves `/v1/*`: auth, routing, upstream calls, streaming, usage.
//! - `admin` serves the JSON admin API under `/api`, and its OpenAPI document.
//! - `error` is the one boundary where failures become client errors.
//! - `logsink` writes request logs off the request path, in batches.
//! - `admin_token` loads, checks and rotates the admin token.
//! - `daily` owns the per-channel daily token limits: day math per zone, the
//!   live counters with reservations, and the channel settings behind them.
//! - `i18n` negotiates the client's locale and holds every client message.
//! - `health` auto-disables channels on a 401 or an exhausted quota, tests
//!   channels, and re-enables them when a test succeeds.
//! - `clock` injects time, so tests can cross midnight.
//! - `import` carries channels and API keys over from a new-api or one-api
//!   database (`sluicegate import new-api`), offline, through `Command`s.
//! - `runtime` holds the settings an admin may change at run time (zone,
//!   retries, timeouts, auto-disable rules); they win over the config file.
//! - `session` signs the web UI's session cookies and CSRF tokens, and
//!   rate-limits wrong admin tokens per client IP.
//! - `metrics` counts what `/metrics` exports (the server renders and
//!   serves it, with `/healthz` and `/readyz`); `otel` exports
//!   OpenTelemetry traces with the `otel` feature.
//! - `ui` serves the embedded web UI (`assets/ui`), with an SPA fallback.
//! - `cluster` replicates commands with openraft (`--node-id`, `--peers`);
//!   `lease` is how its nodes share a capped channel's day.
//! - `upstream` is the pooled HTTP client and the channel target (URL and
//!   auth per channel type); `affinity` remembers which channel served a
//!   conversation; `durable` writes small files atomically.
//!
//! ARCHITECTURE.md has the invariants; `tests/it/architecture.rs` checks
//! the structural ones (no module cycles, storage engines only in `store`,
//! the environment read only by `cli`).

pub mod admin;
pub mod admin_token;
pub mod affinity;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod command;
pub mod config;
pub mod daily;
pub mod durable;
pub mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod health;
pub mod i18n;
pub mod import;
pub mod lease;
pub mod logsink;
pub mod metrics;
pub mod model;
#[cfg(feature = "otel")]
pub mod otel;
pub mod relay;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod ui;
pub mod upstream;

use axum::Router;

pub use state::AppState;

/// The whole HTTP application over a state, so tests can drive it without a socket.
pub fn app(state: AppState) -> Router {
    #[cfg(feature = "otel")]
    let traced = state.config.otlp_endpoint.is_some();
    let router = Router::new()
        .merge(admin::router())
        .merge(relay::router(&state))
        .merge(server::metrics_http::router())
        // Any other GET is the web UI's (an SPA route or an asset).
        .fallback(ui::serve)
        .with_state(state)
        .layer(axum::middleware::from_fn(i18n::layer));
    // Inside the request id, so the span carries it.
    #[cfg(feature = "otel")]
    let router = if traced {
        router.layer(axum::middleware::from_fn(otel::span))
    } else {
        router
    };
    // Outermost, so every response (admin, relay, errors, 404s) carries an id.
    router.layer(axum::middleware::from_fn(relay::request_id_layer))
}
