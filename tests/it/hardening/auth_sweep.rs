//! The auth sweep. Every `/api` operation in the OpenAPI document (which a
//! unit test ties to the admin router's route table, and this sweep ties
//! again) is called without admin credentials in every way we could think
//! of: none, a wrong token, malformed `Authorization` values, a client API
//! key (a `/v1` key must not open `/api`), the admin token where it does not
//! belong, forged cookies. Each must be a 401 `invalid_api_key` in the admin
//! shape with `WWW-Authenticate: Bearer`, with path parameters naming real
//! rows and garbage, and with a valid body, so a route that forgot the check
//! would have acted. A session cookie without its CSRF token is a 403
//! `csrf_failed` on every state-changing route. `/v1` routes refuse the
//! admin token and the cookie. Afterwards nothing stored has changed.
//!
//! The routes that authenticate themselves are listed in [`SELF_AUTHENTICATED`],
//! the one place exceptions live; the document must mark exactly those as
//! public (`security: [{}]`).

use std::collections::BTreeSet;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};

use super::bad_input::{real_path, valid_body};
use super::openapi::{self, Operation};
use super::relay_table::{relay_request, relay_routes};
use super::{Addresses, Bench, Reply, Shape, Tally, error_code, send};

/// The `/api` routes outside the admin check (`Routes::public`), with what a
/// caller without valid credentials gets, and why.
const SELF_AUTHENTICATED: [(&str, &str, u16, &str); 3] = [
    (
        "POST",
        "/api/session",
        401,
        "sign-in: the credential is the body's token; a wrong one is 401",
    ),
    (
        "GET",
        "/api/session",
        401,
        "the session check: 401 without a valid cookie",
    ),
    (
        "DELETE",
        "/api/session",
        204,
        "sign-out: 204 for anyone, and without a valid cookie it changes nothing",
    ),
];

/// Ways to call without admin credentials: a name and the headers.
fn credential_variants(bench: &Bench) -> Vec<(&'static str, HeaderMap)> {
    let admin = &bench.gateway.admin_token;
    let key = &bench.key;
    let header = |pairs: &[(&'static str, Vec<u8>)]| {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        headers
    };
    let text = |value: String| value.into_bytes();
    vec![
        ("no credentials", HeaderMap::new()),
        ("wrong token", header(&[("authorization", text("Bearer wrong-admin-token".into()))])),
        ("admin token plus a byte", header(&[("authorization", text(format!("Bearer {admin}x")))])),
        ("client API key as Bearer", header(&[("authorization", text(format!("Bearer {key}")))])),
        ("client API key as x-api-key", header(&[("x-api-key", text(key.clone()))])),
        ("admin token as x-api-key", header(&[("x-api-key", text(admin.clone()))])),
        ("Basic scheme", header(&[("authorization", text(format!("Basic {admin}")))])),
        ("Token scheme", header(&[("authorization", text(format!("Token {admin}")))])),
        ("no scheme", header(&[("authorization", text(admin.clone()))])),
        ("Bearer without token", header(&[("authorization", text("Bearer".into()))])),
        ("Bearer with blanks", header(&[("authorization", text("Bearer    ".into()))])),
        ("Bearer with a tab", header(&[("authorization", text(format!("Bearer\t{admin}")))])),
        ("non-ASCII bytes", header(&[("authorization", b"Bearer \xff\xfe".to_vec())])),
        (
            "wrong Authorization first, right second",
            header(&[
                ("authorization", text("Bearer wrong".into())),
                ("authorization", text(format!("Bearer {admin}"))),
            ]),
        ),
        ("garbage cookie", header(&[("cookie", text("sg_session=garbage".into()))])),
        (
            "forged cookie",
            header(&[("cookie", text("sg_session=9999999999.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()))]),
        ),
        ("admin token as cookie", header(&[("cookie", text(format!("sg_session={admin}")))])),
    ]
}

/// Whether `reply` is the admin check's 401.
fn is_admin_401(reply: &Reply) -> Result<(), String> {
    if reply.status != StatusCode::UNAUTHORIZED {
        return Err(format!("status {}: {}", reply.status, reply.text()));
    }
    let code = error_code(reply, Shape::Admin)?;
    if code != "invalid_api_key" {
        return Err(format!("code {code}"));
    }
    if reply
        .headers
        .get("www-authenticate")
        .is_none_or(|value| value != "Bearer")
    {
        return Err("no WWW-Authenticate: Bearer".to_string());
    }
    Ok(())
}

/// A request to `operation` at `target`, with its valid body if it has one.
fn request(
    bench: &Bench,
    client: &reqwest::Client,
    operation: &Operation,
    target: &str,
) -> reqwest::RequestBuilder {
    let request = client.request(operation.method.clone(), bench.gateway.url(target));
    match valid_body(&operation.method, &operation.path) {
        Some(body) => request.json(&body),
        None => request,
    }
}

fn expected_exception(operation: &Operation) -> Option<u16> {
    SELF_AUTHENTICATED
        .iter()
        .find(|(method, path, _, _)| {
            operation.method.as_str() == *method && operation.path == *path
        })
        .map(|(_, _, status, _)| *status)
}

/// Every `/api` route answers 401 to every way of calling it without admin
/// credentials, except the listed self-authenticating session routes.
#[tokio::test]
async fn every_admin_route_refuses_callers_without_admin_credentials() {
    let bench = Bench::start().await;
    let document = openapi::document(&bench).await;
    let operations: Vec<Operation> = openapi::operations(&document)
        .into_iter()
        .filter(|operation| operation.path.starts_with("/api/"))
        .collect();

    // The document, the router and the exceptions agree.
    let documented: BTreeSet<(String, String)> = operations
        .iter()
        .map(|operation| (operation.method.to_string(), operation.path.clone()))
        .collect();
    let routed: BTreeSet<(String, String)> = sluicegate::admin::route_table()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(
        documented, routed,
        "the document and the admin router differ"
    );
    let public: BTreeSet<(String, String)> = operations
        .iter()
        .filter(|operation| operation.public)
        .map(|operation| (operation.method.to_string(), operation.path.clone()))
        .collect();
    let exceptions: BTreeSet<(String, String)> = SELF_AUTHENTICATED
        .iter()
        .map(|(method, path, _, _)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(
        public, exceptions,
        "public operations other than the listed exceptions"
    );

    let before = bench.stored().await;
    let upstream_before = bench.upstream.requests();
    let variants = credential_variants(&bench);
    let mut tally = Tally::default();
    let mut addresses = Addresses::default();
    let mut failures = Vec::new();
    for operation in &operations {
        let mut targets = vec![real_path(&bench, &operation.path)];
        if operation.has_path_params() {
            targets.push(operation.path.replace("{id}", "abc"));
            targets.push(operation.path.replace("{id}", "999999"));
        }
        for target in &targets {
            for (name, headers) in &variants {
                // Wrong tokens count per address: the sweep moves on before a lockout.
                let client = addresses.next();
                let reply =
                    send(request(&bench, &client, operation, target).headers(headers.clone()))
                        .await;
                let verdict = match expected_exception(operation) {
                    Some(status) if reply.status.as_u16() == status => Ok(()),
                    Some(status) => Err(format!(
                        "expected {status}, got {}: {}",
                        reply.status,
                        reply.text()
                    )),
                    None => is_admin_401(&reply),
                };
                match verdict {
                    Ok(()) => tally.record(&operation.route(), &reply.status.as_u16().to_string()),
                    Err(problem) => {
                        tally.record(&operation.route(), "FAILED");
                        failures.push(format!("{} {target} [{name}]: {problem}", operation.method));
                    }
                }
            }
        }
    }
    // The catch-all under /api is behind the check too.
    for target in ["/api/nope", "/api/channels/1/nope"] {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let reply = send(
                bench
                    .gateway
                    .client
                    .request(method.clone(), bench.gateway.url(target)),
            )
            .await;
            let route = format!("{method} {target} (unknown)");
            match is_admin_401(&reply) {
                Ok(()) => tally.record(&route, "401"),
                Err(problem) => failures.push(format!("{route}: {problem}")),
            }
        }
    }
    tally.print("auth sweep, /api without admin credentials");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        bench.stored().await,
        before,
        "an unauthenticated request changed stored state"
    );
    assert_eq!(
        bench.upstream.requests(),
        upstream_before,
        "an unauthenticated request reached the upstream"
    );
    // The sweep's wrong tokens came from other addresses: the admin's still works.
    let reply = send(bench.gateway.admin(Method::GET, "/api/channels")).await;
    assert_eq!(reply.status, StatusCode::OK);
}

/// Signs in with the admin token; returns the cookie header and the CSRF token.
async fn sign_in(bench: &Bench) -> (String, String) {
    let reply = send(
        bench
            .gateway
            .client
            .post(bench.gateway.url("/api/session"))
            .json(&serde_json::json!({"token": bench.gateway.admin_token})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let set_cookie = reply.headers["set-cookie"].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let csrf = reply.json.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    (cookie, csrf)
}

/// With the session cookie, every state-changing route needs the session's
/// own CSRF token: none, a wrong one or another session's is a 403
/// `csrf_failed`; a signed-out cookie is a 401.
#[tokio::test]
async fn cookie_sessions_need_their_csrf_token_on_every_state_change() {
    let bench = Bench::start().await;
    let document = openapi::document(&bench).await;
    let (cookie, csrf) = sign_in(&bench).await;
    let (_, other_csrf) = sign_in(&bench).await;
    let before = bench.stored().await;
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    let mutating = openapi::operations(&document)
        .into_iter()
        .filter(|operation| {
            operation.path.starts_with("/api/")
            && operation.method != Method::GET
            // Sign-in takes the admin token, not the cookie.
            && !(operation.method == Method::POST && operation.path == "/api/session")
        });
    for operation in mutating {
        let target = real_path(&bench, &operation.path);
        let variants: [(&str, Option<&str>); 4] = [
            ("no CSRF token", None),
            ("wrong CSRF token", Some("wrong")),
            ("another session's CSRF token", Some(other_csrf.as_str())),
            ("empty CSRF token", Some("")),
        ];
        for (name, token) in variants {
            let mut request = request(&bench, &bench.gateway.client, &operation, &target)
                .header("cookie", &cookie);
            if let Some(token) = token {
                request = request.header("x-csrf-token", token);
            }
            let reply = send(request).await;
            let verdict = match error_code(&reply, Shape::Admin) {
                Ok(code) if reply.status == StatusCode::FORBIDDEN && code == "csrf_failed" => {
                    Ok(())
                }
                other => Err(format!("{}: {other:?} {}", reply.status, reply.text())),
            };
            match verdict {
                Ok(()) => tally.record(&operation.route(), "403 csrf_failed"),
                Err(problem) => failures.push(format!("{} [{name}]: {problem}", operation.route())),
            }
        }
    }
    tally.print("auth sweep, cookie without CSRF");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        bench.stored().await,
        before,
        "a request without CSRF changed stored state"
    );

    // The cookie itself is good: a read needs no CSRF token.
    let reply = send(
        bench
            .gateway
            .client
            .get(bench.gateway.url("/api/channels"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Signed out, it opens nothing.
    let reply = send(
        bench
            .gateway
            .client
            .delete(bench.gateway.url("/api/session"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = send(
        bench
            .gateway
            .client
            .get(bench.gateway.url("/api/channels"))
            .header("cookie", &cookie),
    )
    .await;
    assert!(is_admin_401(&reply).is_ok(), "{}", reply.text());
}

/// No `/v1` route accepts admin credentials or a malformed key: each
/// answers 401 in its own envelope, and the upstream hears nothing.
#[tokio::test]
async fn relay_routes_refuse_admin_credentials_and_bad_keys() {
    let bench = Bench::start().await;
    let (cookie, csrf) = sign_in(&bench).await;
    let admin = bench.gateway.admin_token.clone();
    let variants: [(&str, &str, String); 7] = [
        ("no credentials", "x-none", String::new()),
        (
            "admin token as Bearer",
            "authorization",
            format!("Bearer {admin}"),
        ),
        ("admin token as x-api-key", "x-api-key", admin.clone()),
        ("admin session cookie", "cookie", cookie.clone()),
        ("wrong key", "authorization", "Bearer sk-wrong".to_string()),
        (
            "Basic scheme",
            "authorization",
            format!("Basic {}", bench.key),
        ),
        ("key without scheme", "authorization", bench.key.clone()),
    ];
    let before = bench.stored().await;
    let upstream_before = bench.upstream.requests();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for route in relay_routes() {
        for (name, header, value) in &variants {
            let mut request = relay_request(&bench, &route).header("x-csrf-token", &csrf);
            if !value.is_empty() {
                request = request.header(*header, value);
            }
            let reply = send(request).await;
            let shape = Shape::of(route.path);
            let expected = if shape == Shape::Anthropic {
                "authentication_error"
            } else {
                "invalid_api_key"
            };
            match error_code(&reply, shape) {
                Ok(code) if reply.status == StatusCode::UNAUTHORIZED && code == expected => {
                    tally.record(&format!("{} {}", route.method, route.path), "401")
                }
                other => failures.push(format!(
                    "{} {} [{name}]: {} {other:?}",
                    route.method, route.path, reply.status
                )),
            }
        }
    }
    tally.print("auth sweep, /v1 without a client key");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(bench.upstream.requests(), upstream_before);
    assert_eq!(bench.stored().await, before);
}
