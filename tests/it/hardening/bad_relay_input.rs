//! The `/v1` bad-input sweep. The relay has no schema of its own (it passes
//! OpenAI and Anthropic bodies through), so its table (`relay_table`) is
//! written by hand, one valid request per route, and a test fails when the
//! relay's route list (`relay::route_table`, the list its router is built
//! from) has a route the table does not cover.
//!
//! Each case is one fault in a valid request, sent with a valid key to a
//! fake upstream that refuses everything it receives with a 400 (as a strict
//! upstream would). A case is either **local**, refused by the gateway
//! itself in the route's envelope with our stable code and nothing sent
//! upstream (the body as a whole, `model`, multipart forms, sizes), or
//! **delegated**: a field the relay passes through, whose validity is the
//! upstream's to judge (`messages`, `stream`, `max_tokens`, unknown
//! fields); those must reach the upstream and come back as its 4xx.

use reqwest::{Method, StatusCode};
use sluicegate::error::ErrorCode;

use super::bad_input::judge;
use super::relay_table::{Expect, Kind, RelayCase, cases_for, relay_request, relay_routes};
use super::{Bench, Reply, Shape, Tally, error_code, send};

/// Whether the reply's code is one of our stable codes (or, in Anthropic's
/// envelope, one of the types they map to).
fn is_stable(reply: &Reply, shape: Shape) -> bool {
    let Ok(code) = error_code(reply, shape) else {
        return false;
    };
    ErrorCode::ALL.iter().any(|stable| match shape {
        Shape::Anthropic => stable.anthropic_type() == code,
        _ => stable.as_str() == code,
    })
}

/// The relay's route list and this table cover the same routes.
#[test]
fn the_table_covers_every_relay_route() {
    let mut routed: Vec<(String, String)> = sluicegate::relay::route_table()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let mut tabled: Vec<(String, String)> = relay_routes()
        .into_iter()
        .map(|route| (route.method.to_string(), route.path.to_string()))
        .collect();
    routed.sort();
    tabled.sort();
    assert_eq!(tabled, routed, "add the new /v1 route to relay_routes");
}

/// Each route's valid request is served (it reaches the upstream), so every
/// case below is exactly one fault away from a request that works.
#[tokio::test]
async fn every_valid_relay_request_reaches_the_upstream() {
    let bench = Bench::start().await;
    for route in relay_routes() {
        let before = bench.upstream.requests();
        let reply = send(relay_request(&bench, &route).bearer_auth(&bench.key)).await;
        match route.kind {
            Kind::Empty => assert_eq!(reply.status, StatusCode::OK, "{}", route.path),
            Kind::Realtime => {
                assert_eq!(
                    reply.status,
                    StatusCode::SWITCHING_PROTOCOLS,
                    "{}",
                    reply.text()
                );
                assert_eq!(bench.upstream.requests(), before + 1, "{}", route.path);
            }
            _ => assert_eq!(
                bench.upstream.requests(),
                before + 1,
                "{}: {}",
                route.path,
                reply.text()
            ),
        }
    }
}

/// Every `/v1` route refuses every bad input with a 4xx in its envelope;
/// what the gateway refuses itself never reaches the upstream, what it
/// passes through comes back as the upstream's 4xx; nothing stored changes.
#[tokio::test]
async fn every_relay_route_refuses_bad_input_cleanly() {
    let bench = Bench::start().await;
    // A strict upstream: whatever reaches it is refused.
    bench.upstream.fail_always(400);
    let before = bench.stored().await;
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for route in relay_routes() {
        let name = format!("{} {}", route.method, route.path);
        let shape = Shape::of(route.path);
        for RelayCase {
            case,
            expect,
            headers,
        } in cases_for(&route)
        {
            let upstream_before = bench.upstream.requests();
            let mut request = case
                .request(&bench, &bench.gateway.client)
                .bearer_auth(&bench.key);
            for (header, value) in headers {
                request = request.header(header, value);
            }
            let reply = send(request).await;
            let forwarded = bench.upstream.requests() - upstream_before;
            let verdict = judge(&reply, shape).and_then(|outcome| match (expect, forwarded) {
                (Expect::Local, 0) if is_stable(&reply, shape) => Ok(format!("local {outcome}")),
                (Expect::Delegated, 1) => Ok(format!("upstream {outcome}")),
                _ => Err(format!(
                    "expected {expect:?}, forwarded {forwarded}: {outcome} {}",
                    reply.text()
                )),
            });
            match verdict {
                Ok(outcome) => tally.record(&name, &outcome),
                Err(problem) => {
                    tally.record(&name, "FAILED");
                    failures.push(format!("{name} [{}]: {problem}", case.name));
                }
            }
        }
    }
    tally.print("relay bad input");
    assert!(
        failures.is_empty(),
        "{} bad cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        bench.stored().await,
        before,
        "a refused request changed stored state"
    );
    // Rows are written for requests with a known key, each with its 4xx.
    let rows = bench.log_rows().await;
    assert!(
        rows.iter().all(|row| row["status"]
            .as_u64()
            .is_some_and(|status| (400..500).contains(&status))),
        "{rows:?}"
    );
    assert!(tally.total() > 300, "only {} cases", tally.total());
}

/// Unknown paths under `/v1` answer 404 in the family's envelope (not the
/// admin shape), with or without a key, and reach no upstream.
#[tokio::test]
async fn unknown_relay_paths_are_404_in_the_envelope() {
    let bench = Bench::start().await;
    for path in [
        "/v1/nope",
        "/v1/chat/completions/x",
        "/v1/messages/nope",
        "/v1/%FF",
    ] {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            for key in [Some(bench.key.as_str()), None] {
                let mut request = bench
                    .gateway
                    .client
                    .request(method.clone(), bench.gateway.url(path));
                if let Some(key) = key {
                    request = request.bearer_auth(key);
                }
                let reply = send(request).await;
                assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
                assert!(
                    is_stable(&reply, Shape::of(path)),
                    "{method} {path}: {}",
                    reply.text()
                );
            }
        }
    }
    assert_eq!(bench.upstream.requests(), 0);
}
