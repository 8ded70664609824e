//! Internal RPC over TLS (`--cluster-tls-cert/-key/-ca`): the cluster forms
//! and replicates over TLS, and the cluster port speaks nothing else.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::json;

use super::harness::Cluster;

/// A CA, and one certificate for 127.0.0.1 signed by it, in `dir`.
/// Returns the `--cluster-tls-*` flags. A second, unrelated CA goes to
/// `other-ca.pem` for the negative check.
fn write_pki(dir: &Path) -> Vec<String> {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let node_key = KeyPair::generate().unwrap();
    let node_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let node_cert = node_params.signed_by(&node_key, &issuer).unwrap();

    let other_key = KeyPair::generate().unwrap();
    let mut other_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other_ca = other_params.self_signed(&other_key).unwrap();

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other_ca.pem()).unwrap();
    std::fs::write(dir.join("node.pem"), node_cert.pem()).unwrap();
    std::fs::write(dir.join("node.key"), node_key.serialize_pem()).unwrap();
    [
        "--cluster-tls-cert",
        "node.pem",
        "--cluster-tls-key",
        "node.key",
        "--cluster-tls-ca",
        "ca.pem",
    ]
    .iter()
    .enumerate()
    .map(|(index, arg)| {
        if index % 2 == 1 {
            dir.join(arg).display().to_string()
        } else {
            arg.to_string()
        }
    })
    .collect()
}

/// Three nodes with TLS on internal RPC form a cluster and replicate a
/// channel written on node 2. The cluster port refuses plaintext HTTP and
/// a TLS client that does not trust the cluster CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_rpc_runs_over_tls() {
    let mut cluster = Cluster::new("cluster-tls").await;
    let flags = write_pki(cluster.temp_path());
    for node in &mut cluster.nodes {
        node.extra_args = flags.clone();
    }
    cluster.launch(&[1, 2, 3]);
    cluster.leader(&[1, 2, 3]).await;

    let channel = cluster.upstream_channel(2, "over-tls", json!({})).await;
    cluster
        .visible_on(&[1, 2, 3], &format!("/api/channels/{channel}"))
        .await;
    assert!(
        cluster.node(1).output().contains("\"tls\":true"),
        "node 1 did not report TLS on its cluster transport\n{}",
        cluster.dump()
    );

    let port = cluster.node(1).cluster;
    // Plaintext HTTP: the TLS handshake fails, so no HTTP answer at all.
    let plain = reqwest::Client::new()
        .post(format!("http://{port}/raft/vote"))
        .body("{}")
        .send()
        .await;
    assert!(plain.is_err(), "plaintext got an answer: {plain:?}");

    // TLS with the right CA but no secret: the handshake succeeds and the
    // shared-secret check still refuses the request.
    let ca = std::fs::read(cluster.temp_path().join("ca.pem")).unwrap();
    let trusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let unsigned = trusting
        .post(format!("https://{port}/raft/vote"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    // TLS trusting another CA: the node's certificate is refused.
    let other = std::fs::read(cluster.temp_path().join("other-ca.pem")).unwrap();
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&other).unwrap()])
        .build()
        .unwrap();
    let refused = untrusting
        .post(format!("https://{port}/raft/vote"))
        .body("{}")
        .send()
        .await;
    assert!(refused.is_err(), "an untrusted certificate was accepted");
}
