//! The embedded web UI through the real router: SPA routes get `index.html`
//! with no-cache and the security headers, hashed assets are immutable and
//! gzipped on request, and `/api` keeps its JSON 404. (The `ui` unit tests
//! cover the same over a fixed fixture; these use whatever UI is embedded.)

use serde_json::Value;

use crate::support::gateway::TestGateway;

async fn get(gateway: &TestGateway, path: &str, gzip: bool) -> reqwest::Response {
    let mut request = gateway.client.get(gateway.url(path));
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `/` and a deep SPA route both serve index.html, no-cache, with CSP, nosniff and no-referrer.
#[tokio::test]
async fn spa_routes_serve_the_index() {
    let gateway = TestGateway::start().await;
    let index =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/ui/index.html")).unwrap();
    for path in ["/", "/channels/42"] {
        let response = get(&gateway, path, false).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "cache-control"), "no-cache");
        assert!(header(&response, "content-type").starts_with("text/html"));
        assert!(header(&response, "content-security-policy").contains("frame-ancestors 'none'"));
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
        assert_eq!(response.bytes().await.unwrap().as_ref(), index.as_slice());
    }
}

/// Every embedded hashed asset is immutable, and its `.gz` sibling is served when gzip is accepted.
#[tokio::test]
async fn hashed_assets_are_immutable_and_gzipped() {
    let gateway = TestGateway::start().await;
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/ui/assets");
    let names: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| !name.ends_with(".gz"))
                .collect()
        })
        .unwrap_or_default();
    for name in names {
        let path = format!("/assets/{name}");
        let plain = get(&gateway, &path, false).await;
        assert_eq!(plain.status(), 200, "{path}");
        assert_eq!(
            header(&plain, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert!(header(&plain, "content-security-policy").starts_with("default-src 'self'"));
        if std::path::Path::new(&format!("{folder}/{name}.gz")).exists() {
            let gzipped = get(&gateway, &path, true).await;
            assert_eq!(header(&gzipped, "content-encoding"), "gzip", "{path}");
            assert_eq!(header(&gzipped, "vary"), "Accept-Encoding");
        }
    }
    assert_eq!(
        get(&gateway, "/assets/nope-0000.js", false).await.status(),
        404
    );
}

/// Unknown `/api` routes stay JSON 404s (after authentication), never the UI.
#[tokio::test]
async fn api_unknown_routes_stay_json() {
    let gateway = TestGateway::start().await;
    let response = gateway
        .admin(reqwest::Method::GET, "/api/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let relay = get(&gateway, "/v1/nope", false).await;
    assert_eq!(relay.status(), 404);
    assert!(header(&relay, "content-type").starts_with("application/json"));
}
