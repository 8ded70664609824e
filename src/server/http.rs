//! The HTTP side of the server: the accept loop, one task per connection
//! (HTTP/1.1, or HTTP/2 with prior knowledge; upgrades for the realtime
//! WebSocket), graceful shutdown, and the one dispatch in front of the
//! application: a relayed `POST /v1/...` goes straight to its handler
//! (`relay::serve_hot`), everything else through the axum router that
//! `crate::app` builds. Both reach the same handlers; the hot path only
//! skips the router's per-request routing, boxing and layers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use crate::AppState;

/// What every connection serves: the hot path and the router.
#[derive(Clone)]
pub struct Gateway {
    state: AppState,
    router: Router,
    /// Whether relayed requests may skip the router. Off when a layer must
    /// see every request (the OpenTelemetry span).
    hot_path: bool,
}

impl Gateway {
    pub fn new(state: AppState) -> Gateway {
        #[cfg(feature = "otel")]
        let hot_path = state.config.otlp_endpoint.is_none();
        #[cfg(not(feature = "otel"))]
        let hot_path = true;
        Gateway {
            router: crate::app(state.clone()),
            state,
            hot_path,
        }
    }

    async fn handle(mut self, request: Request<Incoming>, remote: SocketAddr) -> Response {
        let mut request = request.map(Body::new);
        if self.hot_path
            && let Some(endpoint) = crate::relay::hot(request.method(), request.uri().path())
        {
            return crate::relay::serve_hot(&self.state, endpoint, request).await;
        }
        request.extensions_mut().insert(ConnectInfo(remote));
        match self.router.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// Accepts connections on `listener` until `stop` is cancelled, then lets
/// every open connection finish its requests and close.
pub async fn serve(listener: TcpListener, gateway: Gateway, stop: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    // The extended CONNECT that WebSockets over HTTP/2 use.
    builder.http2().enable_connect_protocol();
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let task = connection(
            builder.clone(),
            stream,
            remote,
            gateway.clone(),
            closing.clone(),
        );
        connections.spawn(task);
    }
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
}

/// Serves one connection until it ends; on `closing`, finishes the
/// request in flight and closes.
async fn connection(
    builder: auto::Builder<TokioExecutor>,
    stream: TcpStream,
    remote: SocketAddr,
    gateway: Gateway,
    closing: CancellationToken,
) {
    // Small SSE chunks must leave at once, not wait for Nagle's algorithm.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set");
    }
    let service = hyper::service::service_fn(move |request| {
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(gateway.handle(request, remote).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closed = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::trace!(%error, "connection ended with an error");
                }
                return;
            }
            () = closing.cancelled(), if !closed => {
                closed = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// An accept error: a connection that died before it was accepted is
/// skipped; anything else (out of file descriptors) waits a moment, so the
/// loop does not spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(%error, "accept error");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
