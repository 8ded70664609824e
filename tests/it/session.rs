//! The web UI's session over real sockets: the cookie's flags, CSRF on
//! state-changing requests, Bearer untouched, sign-out, token rotation, and
//! the per-IP limit on wrong tokens.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::gateway::{ADMIN_TOKEN, TestGateway};

/// A signed-in browser: the cookie pair and the CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn sign_in(gateway: &TestGateway, token: &str) -> reqwest::Response {
    gateway
        .client
        .post(gateway.url("/api/session"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap()
}

async fn browser(gateway: &TestGateway) -> Browser {
    let response = sign_in(gateway, ADMIN_TOKEN).await;
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    Browser {
        cookie: set_cookie.split(';').next().unwrap().to_string(),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    }
}

impl Browser {
    fn request(
        &self,
        gateway: &TestGateway,
        method: Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        gateway
            .client
            .request(method, gateway.url(path))
            .header("cookie", &self.cookie)
    }
}

fn channel_body(name: &str) -> Value {
    json!({"name": name, "base_url": "http://127.0.0.1:9/v1", "key": "sk-x", "models": ["m"]})
}

async fn channel_count(gateway: &TestGateway) -> usize {
    let list: Value = gateway
        .admin(Method::GET, "/api/channels")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["items"].as_array().map_or(0, Vec::len)
}

/// Sign-in sets an HttpOnly, SameSite=Strict, 12-hour cookie and returns its CSRF token.
#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie() {
    let gateway = TestGateway::start().await;
    let response = sign_in(&gateway, ADMIN_TOKEN).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    for flag in [
        "sg_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    let body: Value = response.json().await.unwrap();
    assert!(
        body["expires_at"].is_string() && body["csrf_token"].is_string(),
        "{body}"
    );
    let wrong = sign_in(&gateway, "nope").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
}

/// The cookie works on GET routes and GET /api/session returns the same CSRF token.
#[tokio::test]
async fn cookie_authenticates_reads() {
    let gateway = TestGateway::start().await;
    let browser = browser(&gateway).await;
    let list = browser
        .request(&gateway, Method::GET, "/api/channels")
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let session: Value = browser
        .request(&gateway, Method::GET, "/api/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(session["csrf_token"], browser.csrf.as_str());
    let anonymous = gateway
        .client
        .get(gateway.url("/api/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let forged = gateway
        .client
        .get(gateway.url("/api/channels"))
        .header("cookie", "sg_session=9999999999.00.00")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}

/// With the cookie, a POST without or with a wrong CSRF token is 403 and stores nothing; with it, it works.
#[tokio::test]
async fn state_changes_need_the_csrf_token() {
    let gateway = TestGateway::start().await;
    let browser = browser(&gateway).await;
    let missing = browser
        .request(&gateway, Method::POST, "/api/channels")
        .json(&channel_body("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf_failed");
    let wrong = browser
        .request(&gateway, Method::POST, "/api/channels")
        .header("x-csrf-token", "00ff")
        .json(&channel_body("b"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(channel_count(&gateway).await, 0);
    let good = browser
        .request(&gateway, Method::POST, "/api/channels")
        .header("x-csrf-token", &browser.csrf)
        .json(&channel_body("c"))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 201);
    // Scripts keep using Bearer, with no CSRF token.
    gateway.create_channel(channel_body("d")).await;
    assert_eq!(channel_count(&gateway).await, 2);
}

/// Sign-out clears the cookie, and the old cookie is refused when replayed.
#[tokio::test]
async fn sign_out_revokes_the_cookie() {
    let gateway = TestGateway::start().await;
    let browser = browser(&gateway).await;
    let without_csrf = browser
        .request(&gateway, Method::DELETE, "/api/session")
        .send()
        .await
        .unwrap();
    assert_eq!(without_csrf.status(), 403);
    let response = browser
        .request(&gateway, Method::DELETE, "/api/session")
        .header("x-csrf-token", &browser.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let replay = browser
        .request(&gateway, Method::GET, "/api/channels")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
}

/// Rotating the admin token (file-based) invalidates every session.
#[tokio::test]
async fn rotating_the_admin_token_ends_sessions() {
    let gateway = TestGateway::start_with(|config| config.admin_token = None).await;
    let dir = gateway.data_dir.path().to_path_buf();
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    let response = sign_in(&gateway, token.trim()).await;
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get = |cookie: String| {
        gateway
            .client
            .get(gateway.url("/api/session"))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(get(cookie.clone()).await.unwrap().status(), 200);
    // The server notices a rotation by the file's content, within its
    // watch interval; the session ends then.
    sluicegate::admin_token::rotate(&dir).unwrap();
    crate::support::poll::until(
        "the session to end after the rotation",
        crate::support::poll::PATIENCE,
        async || get(cookie.clone()).await.unwrap().status() == 401,
    )
    .await;
}

/// After 10 wrong tokens the address gets 429 with Retry-After, even for the right token.
#[tokio::test]
async fn wrong_tokens_are_rate_limited() {
    let gateway = TestGateway::start().await;
    for attempt in 0..10 {
        let response = if attempt % 2 == 0 {
            sign_in(&gateway, "wrong").await
        } else {
            gateway
                .client
                .get(gateway.url("/api/channels"))
                .bearer_auth("wrong")
                .send()
                .await
                .unwrap()
        };
        assert_eq!(response.status(), 401, "attempt {attempt}");
    }
    let limited = sign_in(&gateway, ADMIN_TOKEN).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    let bearer = gateway
        .admin(Method::GET, "/api/channels")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 429);
}
