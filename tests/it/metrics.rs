//! Observability over real sockets: `GET /metrics` after real traffic
//! through the fake upstream (exact request counts by label, tokens equal
//! to what the upstream reported, daily gauges equal to `/api/usage`,
//! well-formed histograms), its token check and `--metrics-public`, the
//! `/healthz` and `/readyz` probes, the cluster gauges of three real
//! nodes, and (with `--features otel`) spans exported to a fake collector.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::relay::{Rig, ask, ask_stream, upstream};
use crate::support::gateway::TestGateway;
use crate::support::poll::{self, PATIENCE};

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: every sample, and the `# TYPE` of every metric.
struct Scrape {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the text format strictly enough to catch malformed output:
    /// every sample belongs to a metric declared by a `# TYPE` line above it.
    fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "{name} declared twice"
                );
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let sample = parse_sample(line);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = sample.name.strip_suffix(suffix)?;
                    (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                })
                .unwrap_or(&sample.name);
            assert!(types.contains_key(family), "no TYPE before {line}");
            samples.push(sample);
        }
        Scrape { samples, types }
    }

    /// The value of the sample with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|sample| sample.name == name && sample.labels == wanted)
            .map(|sample| sample.value)
    }

    /// A counter or gauge that must be there, as an integer.
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let value = self
            .value(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?}"));
        value as u64
    }

    /// Checks every histogram series: cumulative buckets never decrease,
    /// the last is `+Inf`, and it equals `_count`.
    fn assert_histograms_well_formed(&self) {
        for (name, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            let bucket = format!("{name}_bucket");
            let mut series: BTreeMap<BTreeMap<String, String>, Vec<(String, f64)>> =
                BTreeMap::new();
            for sample in self.samples.iter().filter(|sample| sample.name == bucket) {
                let mut labels = sample.labels.clone();
                let le = labels.remove("le").expect("bucket without le");
                series.entry(labels).or_default().push((le, sample.value));
            }
            for (labels, buckets) in series {
                let counts: Vec<f64> = buckets.iter().map(|(_, count)| *count).collect();
                assert!(
                    counts.windows(2).all(|pair| pair[0] <= pair[1]),
                    "{name} {labels:?}: {buckets:?}"
                );
                let bounds: Vec<f64> = buckets
                    .iter()
                    .map(|(le, _)| le.replace("+Inf", "inf").parse::<f64>().unwrap())
                    .collect();
                assert!(
                    bounds.windows(2).all(|pair| pair[0] < pair[1]),
                    "{bounds:?}"
                );
                let (last_le, last) = buckets.last().unwrap();
                assert_eq!(last_le, "+Inf", "{name} {labels:?}");
                let as_pairs: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_str()))
                    .collect();
                let count = self.value(&format!("{name}_count"), &as_pairs).unwrap();
                assert_eq!(*last, count, "{name} {labels:?}: +Inf is the count");
                assert!(self.value(&format!("{name}_sum"), &as_pairs).is_some());
            }
        }
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap();
    let value = match value {
        "+Inf" => f64::INFINITY,
        other => other.parse().unwrap_or_else(|_| panic!("value in {line}")),
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Sample {
            name: series.to_string(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let body = rest.strip_suffix('}').unwrap();
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("{line}"),
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.insert(key, value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// Scrapes `/metrics` with the admin token.
async fn scrape(gateway: &TestGateway) -> Scrape {
    let response = gateway
        .admin(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    Scrape::parse(&response.text().await.unwrap())
}

/// Scrapes until `ready` holds: a request is recorded when its meter is
/// dropped, which for a stream may come just after the client read its end.
async fn scrape_until(gateway: &TestGateway, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    poll::until(
        "the scrape to reach the expected state",
        PATIENCE,
        async || {
            let scraped = scrape(gateway).await;
            ready(&scraped).then_some(scraped)
        },
    )
    .await
}

const CHAT: &str = "/v1/chat/completions";

/// After real traffic the exposition counts every request under its
/// channel, model, endpoint and status (unknown models as `other`), the
/// tokens each upstream reported, one retry, latency and TTFT
/// observations, and daily gauges equal to `/api/usage`.
#[tokio::test]
async fn a_scrape_counts_real_traffic_exactly() {
    let rig = Rig::start().await;
    let (alpha, beta) = (upstream("alpha").await, upstream("beta").await);
    let limited = json!({"priority": 10, "settings": {"daily_token_limit": 100_000}});
    let a = rig.channel(&alpha, &["m"], limited).await.to_string();
    let b = rig
        .channel(&beta, &["m"], json!({"priority": 0}))
        .await
        .to_string();
    for index in 0..3 {
        let response = rig.chat(&format!("plain-{index}"), &ask("m")).await;
        assert_eq!(response.status(), 200);
    }
    alpha.fail_next(503, 1);
    assert_eq!(rig.chat("retried", &ask("m")).await.status(), 200);
    let streamed = rig.chat("streamed", &ask_stream("m")).await;
    assert_eq!(streamed.status(), 200);
    let _ = streamed.text().await.unwrap();
    let unknown = rig.chat("unknown", &ask("made-up-model")).await;
    assert_eq!(unknown.status(), 404);

    let gateway = &rig.gateway;
    let scraped = scrape_until(gateway, |scrape| {
        scrape.value(
            "sluicegate_time_to_first_token_seconds_count",
            &[("channel", &a)],
        ) == Some(1.0)
    })
    .await;
    let requests = |channel: &str, model: &str, status: &str| {
        let labels = [
            ("channel", channel),
            ("model", model),
            ("endpoint", CHAT),
            ("status", status),
        ];
        scraped.count("sluicegate_requests_total", &labels)
    };
    assert_eq!(requests(&a, "m", "200"), 4);
    assert_eq!(requests(&b, "m", "200"), 1);
    assert_eq!(requests("none", "other", "404"), 1);
    let request_series = scraped
        .samples
        .iter()
        .filter(|sample| sample.name == "sluicegate_requests_total")
        .count();
    assert_eq!(request_series, 3);

    let tokens = |name: &str, channel: &str| scraped.count(name, &[("channel", channel)]);
    assert_eq!(alpha.reported_tokens(), 4 * 18);
    assert_eq!(
        tokens("sluicegate_tokens_total", &a),
        alpha.reported_tokens()
    );
    assert_eq!(
        tokens("sluicegate_tokens_total", &b),
        beta.reported_tokens()
    );
    assert_eq!(tokens("sluicegate_prompt_tokens_total", &a), 4 * 11);
    assert_eq!(tokens("sluicegate_completion_tokens_total", &a), 4 * 7);
    assert_eq!(tokens("sluicegate_estimated_tokens_total", &a), 0);
    assert_eq!(tokens("sluicegate_retries_total", &a), 1);
    assert_eq!(tokens("sluicegate_retries_total", &b), 0);
    assert_eq!(tokens("sluicegate_auto_disables_total", &a), 0);
    // Five attempts on alpha (one failed), one on beta.
    assert_eq!(tokens("sluicegate_upstream_latency_seconds_count", &a), 5);
    assert_eq!(tokens("sluicegate_upstream_latency_seconds_count", &b), 1);
    scraped.assert_histograms_well_formed();

    let usage: Value = gateway
        .admin(reqwest::Method::GET, "/api/usage")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for row in usage["items"].as_array().unwrap() {
        let channel = row["channel_id"].to_string();
        let gauge = |name: &str| scraped.count(name, &[("channel", &channel)]);
        assert_eq!(
            gauge("sluicegate_channel_daily_used_tokens"),
            row["used"].as_u64().unwrap(),
            "{row}"
        );
        assert_eq!(
            gauge("sluicegate_channel_daily_limit_tokens"),
            row["limit"].as_u64().unwrap(),
            "{row}"
        );
        assert_eq!(gauge("sluicegate_channel_daily_reserved_tokens"), 0);
    }
    assert_eq!(
        scraped.count("sluicegate_channel_daily_used_tokens", &[("channel", &a)]),
        72
    );
    assert_eq!(
        scraped.count("sluicegate_channel_daily_limit_tokens", &[("channel", &a)]),
        100_000
    );
    let info = [
        ("channel", a.as_str()),
        ("name", "alpha"),
        ("type", "openai"),
        ("status", "enabled"),
    ];
    assert_eq!(scraped.count("sluicegate_channel_info", &info), 1);
    assert_eq!(scraped.count("sluicegate_cluster_enabled", &[]), 0);
}

/// An upstream 401 disables the channel and counts one auto-disable.
#[tokio::test]
async fn an_auto_disable_is_counted() {
    let rig = Rig::start().await;
    let alpha = upstream("alpha").await;
    let id = rig.channel(&alpha, &["m"], json!({})).await.to_string();
    alpha.fail_next(401, 1);
    let _ = rig.chat("refused", &ask("m")).await;
    let scraped = scrape_until(&rig.gateway, |scrape| {
        scrape.value("sluicegate_auto_disables_total", &[("channel", &id)]) == Some(1.0)
    })
    .await;
    let info = [
        ("channel", id.as_str()),
        ("name", "alpha"),
        ("type", "openai"),
        ("status", "auto_disabled"),
    ];
    let status = scrape_until(&rig.gateway, |scrape| {
        scrape.value("sluicegate_channel_info", &info) == Some(1.0)
    })
    .await;
    assert_eq!(
        status.count("sluicegate_auto_disables_total", &[("channel", &id)]),
        1
    );
    assert_eq!(
        scraped.count("sluicegate_retries_total", &[("channel", &id)]),
        0
    );
}

/// Without a token, or with a wrong one, `/metrics` answers 401 in our
/// JSON error shape; the admin token and the metrics token both work.
#[tokio::test]
async fn metrics_need_the_admin_or_the_metrics_token() {
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("metrics-token");
    std::fs::write(&token_file, "scrape-me\n").unwrap();
    let path = token_file.clone();
    let gateway = TestGateway::start_with(move |config| {
        config.metrics_token_file = Some(path);
    })
    .await;
    let url = gateway.url("/metrics");
    let missing = gateway.client.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    let wrong = gateway
        .client
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
    for token in [gateway.admin_token.as_str(), "scrape-me"] {
        let response = gateway
            .client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{token}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("sluicegate_build_info")
        );
    }
    // Replacing the file rotates the token.
    std::fs::write(&token_file, "rotated\n").unwrap();
    let old = gateway
        .client
        .get(&url)
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = gateway
        .client
        .get(&url)
        .bearer_auth("rotated")
        .send()
        .await
        .unwrap();
    assert_eq!(new.status(), StatusCode::OK);
}

/// Wrong tokens lock the address out like wrong admin tokens, and then the
/// right metrics token is refused too, so it cannot be guessed faster.
#[tokio::test]
async fn wrong_metrics_tokens_lock_the_address_out() {
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("metrics-token");
    std::fs::write(&token_file, "scrape-me\n").unwrap();
    let gateway = TestGateway::start_with(move |config| {
        config.metrics_token_file = Some(token_file);
    })
    .await;
    let url = gateway.url("/metrics");
    let scrape_with = |token: &'static str| gateway.client.get(&url).bearer_auth(token).send();
    let mut locked = false;
    for _ in 0..100 {
        let status = scrape_with("guess").await.unwrap().status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            locked = true;
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(locked, "wrong tokens never locked the address out");
    let right = scrape_with("scrape-me").await.unwrap();
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(right.headers().contains_key("retry-after"));
}

/// `--metrics-public` serves scrapes without any token.
#[tokio::test]
async fn the_public_flag_opens_metrics() {
    let gateway = TestGateway::start_with(|config| config.metrics_public = true).await;
    let response = gateway
        .client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let scraped = Scrape::parse(&response.text().await.unwrap());
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(scraped.count("sluicegate_build_info", &version), 1);
    scraped.assert_histograms_well_formed();
}

/// `/healthz` and `/readyz` answer 200 without a token on a single node.
#[tokio::test]
async fn probes_answer_without_a_token() {
    let gateway = TestGateway::start().await;
    let health = gateway
        .client
        .get(gateway.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let ready = gateway
        .client
        .get(gateway.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );
}

/// A metrics token file that cannot be read stops the start, naming the flag.
#[tokio::test]
async fn an_unreadable_metrics_token_file_stops_the_start() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = sluicegate::config::Config {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.path().to_path_buf(),
        admin_token: Some("t".to_string()),
        metrics_token_file: Some(data_dir.path().join("missing")),
        ..sluicegate::config::Config::default()
    };
    let error = match sluicegate::server::start(config).await {
        Ok(_) => panic!("started with a missing metrics token file"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("--metrics-token-file"), "{error}");
}

/// Three real nodes: the leader exports `role="leader"`, the others
/// `role="follower"`; all know the leader, share the term, are not
/// degraded, have applied entries, and are ready. A loaded machine may
/// re-elect or miss a quorum ack for a moment, so the whole check is
/// repeated until one pass sees a settled cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_nodes_export_their_raft_state() {
    use crate::cluster::harness::{self, Cluster};
    let cluster = Cluster::start("metrics").await;
    poll::Wait::new("the cluster metrics to settle", harness::PATIENCE)
        .every(Duration::from_millis(200))
        .until(async || {
            let leader = cluster.leader(&[1, 2, 3]).await;
            settled_cluster_metrics(&cluster, leader).await
        })
        .await;
}

/// One pass over the three nodes' `/metrics` and `/readyz`.
async fn settled_cluster_metrics(
    cluster: &crate::cluster::harness::Cluster,
    leader: u64,
) -> Result<(), String> {
    use crate::cluster::harness::ADMIN;
    let mut terms = Vec::new();
    for id in 1..=3 {
        let base = cluster.node(id).base();
        let get = |path: &str| cluster.client.get(format!("{base}{path}"));
        let response = get("/metrics").bearer_auth(ADMIN).send().await;
        let text = response
            .map_err(|error| error.to_string())?
            .text()
            .await
            .map_err(|error| error.to_string())?;
        let scraped = Scrape::parse(&text);
        let role = if id == leader { "leader" } else { "follower" };
        let value = |name: &str, labels: &[(&str, &str)]| scraped.value(name, labels);
        let expected = [
            ("sluicegate_cluster_enabled", vec![], 1.0),
            ("sluicegate_cluster_role", vec![("role", role)], 1.0),
            ("sluicegate_cluster_role", vec![("role", "candidate")], 0.0),
            ("sluicegate_cluster_has_leader", vec![], 1.0),
            ("sluicegate_cluster_degraded", vec![], 0.0),
        ];
        for (name, labels, wanted) in expected {
            if value(name, &labels) != Some(wanted) {
                return Err(format!(
                    "node {id}: {name} {labels:?} is not {wanted}:\n{text}"
                ));
            }
        }
        let applied = scraped.count("sluicegate_cluster_applied_index", &[]);
        assert!(applied >= 1, "{text}");
        assert!(scraped.count("sluicegate_cluster_commit_index", &[]) >= applied);
        assert!(scraped.count("sluicegate_cluster_last_log_index", &[]) >= applied);
        assert!(value("sluicegate_cluster_unreplicated_tokens", &[]).is_some());
        terms.push(scraped.count("sluicegate_cluster_term", &[]));
        let ready = get("/readyz")
            .send()
            .await
            .map_err(|error| error.to_string())?;
        assert_eq!(ready.status(), StatusCode::OK);
    }
    if terms.iter().all(|term| *term >= 1 && *term == terms[0]) {
        Ok(())
    } else {
        Err(format!("terms differ: {terms:?}"))
    }
}

/// With `--features otel`: a relayed request's span reaches a fake OTLP/HTTP
/// collector as protobuf carrying its route and request id.
#[cfg(feature = "otel")]
#[tokio::test]
async fn spans_are_exported_to_an_otlp_collector() {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use tracing_subscriber::layer::SubscriberExt;

    let received: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let sink = Arc::clone(&received);
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                sink.lock().unwrap().push((kind, body));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let (layer, provider) = sluicegate::otel::layer(&endpoint).unwrap();
    // This test's runtime is single-threaded, so the gateway's tasks run
    // on this thread and see this subscriber.
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let configured = endpoint.clone();
    let rig = Rig::start_with(move |config| config.otlp_endpoint = Some(configured)).await;
    let alpha = upstream("alpha").await;
    rig.channel(&alpha, &["m"], json!({})).await;
    assert_eq!(rig.chat("traced-request-1", &ask("m")).await.status(), 200);
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    assert!(matches!(flushed, Ok(Ok(()))), "{flushed:?}");
    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "no export reached the collector");
    let contains = |needle: &[u8]| {
        received
            .iter()
            .any(|(_, body)| body.windows(needle.len()).any(|window| window == needle))
    };
    assert!(
        received
            .iter()
            .all(|(kind, _)| kind == "application/x-protobuf")
    );
    assert!(contains(b"POST /v1/chat/completions"));
    assert!(contains(b"traced-request-1"));
    assert!(contains(b"sluicegate"));
}
