//! TLS on internal RPC (`--cluster-tls-cert/-key/-ca`): the rustls server
//! config and accept loop for `--cluster-listen`, and the reqwest client
//! that trusts only the cluster's CA.
//!
//! TLS here is for confidentiality and for knowing the peer is a cluster
//! member: replicated commands carry channel keys. Authentication of each
//! request stays with the shared secret (`secret`), which is checked
//! whether or not TLS is on. Peers are dialled by the host in
//! `--cluster-peers`, so each node's certificate must name that host (a
//! DNS name or an IP SAN).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::ClusterTlsConfig;

/// The pieces a node needs: an acceptor for its listener and a client
/// for calling its peers.
pub struct ClusterTls {
    pub acceptor: TlsAcceptor,
    pub client: reqwest::Client,
}

impl ClusterTls {
    /// Reads and checks the three PEM files. Errors name the file at fault.
    pub fn load(
        config: &ClusterTlsConfig,
        connect_timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let chain = certificates(&config.cert, "--cluster-tls-cert")?;
        let key = PrivateKeyDer::from_pem_file(&config.key).with_context(|| {
            format!(
                "--cluster-tls-key {}: no PEM private key",
                config.key.display()
            )
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates(&config.ca, "--cluster-tls-ca")? {
            roots.add(ca).with_context(|| {
                format!(
                    "--cluster-tls-ca {}: not a CA certificate",
                    config.ca.display()
                )
            })?;
        }
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("--cluster-tls-cert and --cluster-tls-key do not form a usable pair")?;
        let client_tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(client_tls)
            .https_only(true)
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .build()
            .context("building the cluster TLS client")?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            client,
        })
    }
}

fn certificates(path: &Path, flag: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("{flag} {}: cannot read", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{flag} {}: malformed PEM", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{flag} {}: no certificate in the file",
        path.display()
    );
    Ok(certs)
}

/// Serves `app` over TLS on `listener` until `stop` fires. A handshake
/// that fails (a plaintext or untrusting client) is logged at debug and
/// costs only that connection. Returns once every connection has ended.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    stop: CancellationToken,
) {
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "cluster RPC accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let handshake = tokio::select! {
                () = stop.cancelled() => return,
                handshake = acceptor.accept(stream) => handshake,
            };
            let stream = match handshake {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%peer, %error, "cluster RPC TLS handshake refused");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = stop.cancelled() => {}
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "cluster RPC connection ended");
                    }
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}
