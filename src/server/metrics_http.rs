//! The observability routes, outside `/api` and the admin OpenAPI table
//! (they are for scrapers and orchestrators, not admin clients):
//! - `GET /metrics`: the Prometheus exposition. It needs
//!   `Authorization: Bearer` with the admin token or the metrics token
//!   (`--metrics-token-file`), unless `--metrics-public` opens it. Wrong
//!   tokens count against the client's address like wrong admin tokens, so
//!   this route is no faster way to guess the admin token.
//! - `GET /healthz`: the process is alive and serving HTTP; nothing else.
//! - `GET /readyz`: the stores answer and, in a cluster, the node knows a
//!   leader or is knowingly degraded (it has applied state to serve from);
//!   503 with a JSON reason otherwise.

use std::path::Path;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::admin::auth::{
    ClientIp, check_token, presented_bearer, too_many_attempts, unauthorized,
};
use crate::i18n::Message;

use crate::metrics::exposition::CONTENT_TYPE;

/// The three routes; merged into `app()` at the top level.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn metrics(State(state): State<AppState>, ip: ClientIp, headers: HeaderMap) -> Response {
    if !state.config.metrics_public {
        let Some(token) = presented_bearer(&headers) else {
            return unauthorized(Message::AdminTokenMissing);
        };
        // A locked-out address may not guess the metrics token either.
        if let Err(wait) = state.limiter.check(ip.0, tokio::time::Instant::now()) {
            return too_many_attempts(wait).into_response();
        }
        if !matches_metrics_token(&state, token).await
            && let Err(error) = check_token(&state, ip.0, token)
        {
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let body = super::scrape::render(&state);
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}

/// Whether `presented` is the metrics token. The file is read on each
/// check, off the async workers (scrapes are seconds apart), so replacing
/// it rotates the token.
async fn matches_metrics_token(state: &AppState, presented: &str) -> bool {
    let Some(path) = state.config.metrics_token_file.clone() else {
        return false;
    };
    let read = tokio::task::spawn_blocking({
        let path = path.clone();
        move || read_token(&path)
    })
    .await
    .unwrap_or_else(|error| Err(std::io::Error::other(error)));
    match read {
        Ok(token) => digest(&token).ct_eq(&digest(presented)).into(),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read the metrics token file");
            false
        }
    }
}

/// The token in `path`: its first line, trimmed; an empty file is an error.
pub fn read_token(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the metrics token file is empty",
        ));
    }
    Ok(token)
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(degraded) => {
            let mut body = json!({"status": "ready"});
            if let Some(reason) = degraded {
                body["degraded"] = json!(true);
                body["reason"] = json!(reason);
            }
            axum::Json(body).into_response()
        }
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "reason": reason})),
        )
            .into_response(),
    }
}

/// `Ok(None)` ready, `Ok(Some(reason))` ready but knowingly degraded,
/// `Err(reason)` not ready.
async fn readiness(state: &AppState) -> Result<Option<String>, String> {
    // A real read on the reader connection, through the blocking pool.
    if let Err(error) = state.store.settings().await {
        return Err(format!("the store does not answer: {error}"));
    }
    let Some(cluster) = state.cluster() else {
        return Ok(None);
    };
    let metrics = cluster.metrics();
    if let Err(error) = &metrics.running_state {
        return Err(format!("raft stopped: {error}"));
    }
    let degraded = cluster.degraded_reason();
    if metrics.current_leader.is_none() && metrics.last_applied.is_none() {
        // Never applied anything: there is no last view to serve from yet.
        return Err("no leader yet and no replicated state applied".to_string());
    }
    Ok(degraded)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token is the file's first line, trimmed; an empty file is refused.
    #[test]
    fn the_token_file_is_read_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let cases = [("  abc \nignored\n", Some("abc")), ("\n", None), ("", None)];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            assert_eq!(read_token(&path).ok().as_deref(), expected, "{text:?}");
        }
    }
}
