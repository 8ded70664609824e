//! The server side of internal RPC: the router served on
//! `--cluster-listen`, separate from the public port.
//!
//! Every route is `POST` with a JSON body, answered with JSON
//! `Result<Response, RaftError<…>>` so the calling node can tell a remote
//! raft error (returned as data, status 200) from a transport failure.
//! The authenticator middleware ([`require_authenticator`]) runs in front
//! of every route; nothing here is reachable without the shared secret.
//! The handlers are thin: they call into `openraft::Raft` and nothing else.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Router, middleware};
use openraft::BasicNode;
use openraft::error::{ClientWriteError, InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::secret::{self, Verifier};
use super::types::{ClusterRequest, ClusterResponse, NodeId, TypeConfig};

/// Route for `append_entries` (also the heartbeat).
pub const APPEND_PATH: &str = "/raft/append";
/// Route for `vote`.
pub const VOTE_PATH: &str = "/raft/vote";
/// Route for one `install_snapshot` chunk.
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";
/// Route a follower uses to hand a client write to the leader.
pub const WRITE_PATH: &str = "/raft/write";
/// The largest RPC body accepted; raft batches and snapshot chunks must
/// fit (openraft's default snapshot chunk is 3 MiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// What a forwarded write answers: the applied result, or the raft error
/// (e.g. `ForwardToLeader` when leadership moved in the meantime).
pub type WriteResult =
    Result<ClusterResponse, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>;

/// The router for `--cluster-listen`, authenticated by `verifier`.
pub fn router(raft: openraft::Raft<TypeConfig>, verifier: Arc<Verifier>) -> Router {
    let routes = Router::new()
        .route(APPEND_PATH, post(append_entries))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(install_snapshot))
        .route(WRITE_PATH, post(forward_write))
        .with_state(raft);
    authenticated(routes, verifier)
}

/// Puts the authenticator check in front of every route of `routes`.
pub fn authenticated(routes: Router, verifier: Arc<Verifier>) -> Router {
    routes
        .layer(middleware::from_fn_with_state(
            verifier,
            require_authenticator,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Refuses (401, logged at warn) any request whose authenticator does not
/// verify; passes the rest on with the body restored.
pub async fn require_authenticator(
    State(verifier): State<Arc<Verifier>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        tracing::warn!(path = %parts.uri.path(), "cluster RPC body unreadable or too large");
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let header = parts
        .headers
        .get(secret::HEADER)
        .and_then(|value| value.to_str().ok());
    let checked = verifier.check(
        header,
        secret::unix_ms_now(),
        parts.method.as_str(),
        parts.uri.path(),
        &body,
    );
    match checked {
        Ok(authenticated) => {
            let mut request = Request::from_parts(parts, Body::from(body));
            request.extensions_mut().insert(authenticated);
            next.run(request).await
        }
        Err(error) => {
            // The header is safe to log in part: the claimed sender only.
            let claimed = header
                .and_then(|value| value.split('.').nth(1))
                .unwrap_or("-");
            tracing::warn!(
                path = %parts.uri.path(),
                claimed_node = claimed,
                %error,
                "cluster RPC refused"
            );
            let body =
                serde_json::json!({ "error": "unauthenticated", "message": error.to_string() });
            (StatusCode::UNAUTHORIZED, Json(body)).into_response()
        }
    }
}

type Raft = openraft::Raft<TypeConfig>;

async fn append_entries(
    State(raft): State<Raft>,
    Json(request): Json<AppendEntriesRequest<TypeConfig>>,
) -> Json<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>> {
    Json(raft.append_entries(request).await)
}

async fn vote(
    State(raft): State<Raft>,
    Json(request): Json<VoteRequest<NodeId>>,
) -> Json<Result<VoteResponse<NodeId>, RaftError<NodeId>>> {
    Json(raft.vote(request).await)
}

async fn install_snapshot(
    State(raft): State<Raft>,
    Json(request): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Json<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>> {
    Json(raft.install_snapshot(request).await)
}

async fn forward_write(
    State(raft): State<Raft>,
    Json(request): Json<ClusterRequest>,
) -> Json<WriteResult> {
    Json(raft.client_write(request).await.map(|written| {
        let mut data = written.data;
        data.log_index = Some(written.log_id.index);
        data
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::secret::ClusterSecret;

    const SECRET: &[u8] = b"3f9c1a7be2d4406f8a51c0de9b7e2a4410f3c6d8e9a7b5c3d1e0f2a4b6c8d0e2";

    async fn echo(body: String) -> String {
        format!("handled {body}")
    }

    /// Over a real socket: no header or a bad one → 401; signed → the handler runs.
    #[tokio::test]
    async fn rpc_requires_the_authenticator() {
        crate::upstream::install_tls_provider();
        let secret = ClusterSecret::from_bytes(SECRET).unwrap();
        let verifier = Arc::new(Verifier::new(secret.clone()));
        let app = authenticated(Router::new().route(VOTE_PATH, post(echo)), verifier);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{addr}{VOTE_PATH}");
        let client = reqwest::Client::new();

        let bare = client.post(&url).body("{}").send().await.unwrap();
        assert_eq!(bare.status(), 401);

        let wrong = secret.sign(1, secret::unix_ms_now(), "POST", VOTE_PATH, b"other");
        let forged = client
            .post(&url)
            .header(secret::HEADER, wrong)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 401);

        let header = secret.sign(1, secret::unix_ms_now(), "POST", VOTE_PATH, b"{}");
        let signed = client
            .post(&url)
            .header(secret::HEADER, &header)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 200);
        assert_eq!(signed.text().await.unwrap(), "handled {}");

        let replayed = client
            .post(&url)
            .header(secret::HEADER, header)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(replayed.status(), 401);
    }
}
