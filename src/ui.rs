//! The embedded web UI: the files `vite build` writes to `assets/ui/`,
//! compiled into the binary with rust-embed, so `cargo build` and the
//! binary need no Node and no files beside them.
//!
//! - Hashed files under `/assets/` are immutable: cached for a year.
//! - `index.html` (and any other unhashed file) is `no-cache`: revalidated
//!   with its ETag on every load, so a new binary's UI shows at once.
//! - A precompressed `name.gz` sibling is served, with
//!   `Content-Encoding: gzip`, to clients that accept gzip.
//! - Any other GET outside `/api`, `/v1` and the probe paths is an SPA
//!   route: it gets `index.html`, and the UI's router takes over.
//! - Every response here carries the Content-Security-Policy and friends.
//!
//! This module has no access to state and calls no API: the UI is a plain
//! client of the admin API.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::{EmbeddedFile, RustEmbed};

use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;

#[derive(RustEmbed)]
#[folder = "assets/ui/"]
struct Assets;

/// The policy on every UI response: only our own scripts, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Paths that are never the UI's, even when nothing else matched them.
const RESERVED: [&str; 5] = ["/api", "/v1", "/metrics", "/healthz", "/readyz"];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The router's fallback: an embedded file, the SPA's `index.html`, or 404.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    respond::<Assets>(&method, uri.path(), &headers)
}

/// [`serve`] over any embedded folder, so tests can use a fixture.
fn respond<A: RustEmbed>(method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if RESERVED
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
    {
        return ApiError::new(ErrorCode::NotFound, Message::NoSuchRoute).into_response();
    }
    let mut response = if method != Method::GET && method != Method::HEAD {
        let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        response
    } else {
        let name = path.trim_start_matches('/');
        let name = if name.is_empty() { "index.html" } else { name };
        match A::get(name) {
            Some(file) => file_response::<A>(name, file, headers),
            // A missing hashed asset is a 404, never HTML under a script's name.
            None if name.starts_with("assets/") => StatusCode::NOT_FOUND.into_response(),
            None => match A::get("index.html") {
                Some(file) => file_response::<A>("index.html", file, headers),
                None => StatusCode::NOT_FOUND.into_response(),
            },
        }
    };
    if method == Method::HEAD {
        *response.body_mut() = Body::empty();
    }
    secure(response.headers_mut());
    response
}

/// One file: the gzip variant when there is one and the client accepts it,
/// its caching headers, and 304 when the client's ETag is current.
fn file_response<A: RustEmbed>(name: &str, file: EmbeddedFile, request: &HeaderMap) -> Response {
    let variant = A::get(&format!("{name}.gz"));
    let has_variant = variant.is_some();
    let gzipped = variant.filter(|_| accepts_gzip(request));
    let served_gzip = gzipped.is_some();
    let (etag, body) = match gzipped {
        Some(variant) => (etag(&file, "-gz"), variant.data),
        None => (etag(&file, ""), file.data),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    let cache = if name.starts_with("assets/") {
        IMMUTABLE
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if has_variant {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if not_modified(request, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if served_gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    (headers, body.into_owned()).into_response()
}

/// A strong ETag from the file's SHA-256 (computed at build time), with a
/// suffix per encoding so caches never mix the two bodies.
fn etag(file: &EmbeddedFile, suffix: &str) -> String {
    let hash = hex::encode(&file.metadata.sha256_hash()[..16]);
    format!("\"{hash}{suffix}\"")
}

fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|candidate| candidate.trim() == etag || candidate.trim() == "*")
        })
}

/// Whether `Accept-Encoding` allows gzip (present, and not with `q=0`).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|parameter| {
                parameter
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn content_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// The security headers on every UI response.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_acceptance_honours_q_values() {
        let cases = [
            ("gzip, deflate, br", true),
            ("br;q=1.0, gzip;q=0.8", true),
            ("gzip;q=0", false),
            ("identity", false),
            ("*", true),
            ("", false),
        ];
        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            assert_eq!(accepts_gzip(&headers), expected, "{value:?}");
        }
    }

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/app-3f2a.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type("assets/app-3f2a.CSS"),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    /// The placeholder (or the built UI) is embedded and has an index.
    #[test]
    fn index_is_embedded() {
        assert!(Assets::get("index.html").is_some());
    }

    #[derive(RustEmbed)]
    #[folder = "tests/fixtures/ui-embed/"]
    struct Fixture;

    fn get(path: &str, accept_encoding: Option<&'static str>) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(value) = accept_encoding {
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        }
        respond::<Fixture>(&Method::GET, path, &headers)
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }

    /// Hashed assets are immutable; the gzip sibling is served only when accepted.
    #[test]
    fn hashed_assets_are_immutable_and_gzipped_on_request() {
        let plain = get("/assets/app-1a2b3c.js", None);
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(header_of(&plain, header::CACHE_CONTROL), IMMUTABLE);
        assert_eq!(header_of(&plain, header::CONTENT_ENCODING), "");
        assert_eq!(header_of(&plain, header::VARY), "Accept-Encoding");
        assert!(header_of(&plain, header::CONTENT_TYPE).starts_with("text/javascript"));
        let gzipped = get("/assets/app-1a2b3c.js", Some("gzip, br"));
        assert_eq!(header_of(&gzipped, header::CONTENT_ENCODING), "gzip");
        assert_ne!(
            header_of(&gzipped, header::ETAG),
            header_of(&plain, header::ETAG)
        );
        assert_eq!(
            get("/assets/missing-0000.js", None).status(),
            StatusCode::NOT_FOUND
        );
    }

    /// SPA routes get index.html, no-cache, with the CSP; a matching ETag gives 304.
    #[test]
    fn spa_routes_get_the_index_and_revalidate() {
        let response = get("/channels/42", None);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        assert_eq!(
            header_of(&response, header::CONTENT_SECURITY_POLICY),
            CONTENT_SECURITY_POLICY
        );
        let etag = header_of(&response, header::ETAG).to_string();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        let again = respond::<Fixture>(&Method::GET, "/", &headers);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let post = respond::<Fixture>(&Method::POST, "/channels", &HeaderMap::new());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        for reserved in ["/api/nope", "/v1/nope", "/metrics", "/healthz"] {
            assert_eq!(
                get(reserved, None).status(),
                StatusCode::NOT_FOUND,
                "{reserved}"
            );
        }
    }
}
