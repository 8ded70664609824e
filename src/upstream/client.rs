//! The upstream HTTP client: hyper-util's pooled client, over rustls (ring,
//! the platform's roots) for `https` upstreams, speaking HTTP/1.1 or HTTP/2
//! as ALPN decides. Every request to a channel goes through it: relayed
//! requests, channel tests and model lists.
//!
//! It replaced reqwest on this path because it does less per request: no
//! redirect or retry layers, no proxy matching, no URL-to-URI conversion
//! (`target` keeps ready `Uri`s), and bodies go out as the `Bytes` they
//! already are. Measured with `bench/run.sh`; the figures are in the
//! README's benchmark section. Like reqwest it retries a request whose
//! pooled connection turned out closed before anything was sent.
//!
//! Upstreams are called directly: no HTTP proxy from the environment is
//! used (only the CLI reads the environment).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, Request, Response};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The body of a request to an upstream: the bytes the relay prepared.
pub type OutBody = Full<Bytes>;

/// How long an idle pooled connection to an upstream is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream host.
const POOL_PER_HOST: usize = 256;

/// The `user-agent` sent upstream.
pub const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("sluicegate/", env!("CARGO_PKG_VERSION")));

/// The pooled client; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    inner: Client<HttpsConnector<HttpConnector>, OutBody>,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct SendError {
    /// The error and its causes, one after another.
    pub text: String,
    /// No connection could be made (refused, unresolvable, timed out).
    pub connect: bool,
}

impl UpstreamClient {
    /// A client whose connection attempts give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> UpstreamClient {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        // Small SSE chunks and request heads must leave at once.
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_PER_HOST)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        UpstreamClient { inner }
    }

    /// Sends `request` and waits for the response head.
    pub async fn send(&self, request: Request<OutBody>) -> Result<Response<Incoming>, SendError> {
        self.inner
            .request(request)
            .await
            .map_err(|error| SendError {
                connect: error.is_connect(),
                text: chain(&error),
            })
    }
}

/// An error and its sources as one line.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// rustls with the ring provider and the platform's verifier (the
/// connector adds the ALPN protocols). A platform without a usable verifier gets a config
/// that trusts nothing, so `https` upstreams fail with a clear TLS error
/// (logged once) instead of the gateway refusing to start.
fn tls_config() -> rustls::ClientConfig {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let built = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map(|builder| builder.with_no_client_auth());
    match built {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "the platform's certificate verifier is unavailable; https upstreams will fail");
            match rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
            {
                Ok(builder) => builder
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
                Err(_) => rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            }
        }
    }
}
