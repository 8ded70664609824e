//! The `/api` bad-input table, generated from the OpenAPI document: for
//! every request body, each property with a wrong JSON kind, an unknown enum
//! value, a huge string or number, a wrong item kind, and each required
//! property left out; then an unknown field and whole-body abuse (empty,
//! non-JSON, other content types, deep nesting, invalid UTF-8, oversize,
//! chunked oversize); for every path parameter, ids that are not ids or
//! name nothing; for every query parameter, values of the wrong kind and
//! unknown parameters; and an unsupported method on every path.
//!
//! Every case must be refused with a 4xx in the admin error shape (a stable
//! `code` and a message), and after the sweep nothing stored has changed
//! and the upstream heard nothing (the channel test is not run for a bad
//! body). The only table written by hand is one valid body per route, the
//! starting point of the mutations; a route with a body but no entry fails.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluicegate::error::ErrorCode;

use super::openapi::{self, Operation};
use super::{ADMIN_BODY_LIMIT, Addresses, Bench, Reply, Shape, Tally, error_code, send};

/// A request the sweep sends.
pub(crate) struct Case {
    pub name: String,
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub content_type: Option<&'static str>,
    pub body: Payload,
}

pub(crate) enum Payload {
    None,
    Bytes(Vec<u8>),
    /// Sent with chunked transfer encoding: no `Content-Length` to refuse early.
    Chunked(Vec<u8>),
}

impl Case {
    fn json(name: impl Into<String>, method: &Method, target: &str, bytes: Vec<u8>) -> Case {
        Case {
            name: name.into(),
            method: method.clone(),
            target: target.to_string(),
            content_type: Some("application/json"),
            body: Payload::Bytes(bytes),
        }
    }

    /// The request, on `client`, to `bench`'s gateway.
    pub(crate) fn request(
        &self,
        bench: &Bench,
        client: &reqwest::Client,
    ) -> reqwest::RequestBuilder {
        let mut request = client.request(self.method.clone(), bench.gateway.url(&self.target));
        if let Some(content_type) = self.content_type {
            request = request.header("content-type", content_type);
        }
        match &self.body {
            Payload::None => request,
            Payload::Bytes(bytes) => request.body(bytes.clone()),
            Payload::Chunked(bytes) => {
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes
                    .chunks(64 * 1024)
                    .map(|chunk| Ok(chunk.to_vec()))
                    .collect();
                request.body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    chunks,
                )))
            }
        }
    }
}

/// One valid body per route with a request body: what the mutations start from.
pub(crate) fn valid_body(method: &Method, path: &str) -> Option<Value> {
    let body = match (method.as_str(), path) {
        ("POST", "/api/channels") => json!({
            "name": "intruder",
            "base_url": "https://api.example.com/v1",
            "key": "sk-intruder",
            "models": ["m"],
        }),
        ("PATCH", "/api/channels/{id}") => json!({"name": "renamed"}),
        ("POST", "/api/channels/{id}/test") => json!({"model": "m"}),
        ("POST", "/api/tokens") => json!({"name": "intruder"}),
        ("PATCH", "/api/tokens/{id}") => json!({"name": "renamed"}),
        ("PATCH", "/api/settings") => json!({"max_retries": 3}),
        // Well-formed, with a wrong token: sign-in is refused either way.
        ("POST", "/api/session") => json!({"token": "not-the-admin-token"}),
        ("POST", "/api/cluster/members") => json!({"node_id": 2, "addr": "127.0.0.1:9"}),
        _ => return None,
    };
    Some(body)
}

/// `path` with its parameters naming seeded rows.
pub(crate) fn real_path(bench: &Bench, path: &str) -> String {
    let id = if path.starts_with("/api/channels/") {
        bench.channel_id.to_string()
    } else if path.starts_with("/api/tokens/") {
        bench.token_id.to_string()
    } else if path.starts_with("/api/cluster/members/") {
        "2".to_string()
    } else {
        assert!(
            !path.contains('{'),
            "no seeded row for the parameters of {path}"
        );
        return path.to_string();
    };
    path.replace("{id}", &id)
}

/// Placeholders replaced by raw bytes after serialising, for what a
/// `serde_json::Value` cannot hold (huge integers, invalid UTF-8).
const RAW: &str = "\u{1}raw\u{1}";

fn with_raw(body: &Value, raw: &[u8]) -> Vec<u8> {
    let text = serde_json::to_string(body).unwrap();
    let placeholder = serde_json::to_string(RAW).unwrap();
    let (before, after) = text.split_once(&placeholder).expect("placeholder in body");
    [before.as_bytes(), raw, after.as_bytes()].concat()
}

fn set(body: &Value, path: &[String], value: Value) -> Value {
    let mut body = body.clone();
    let mut target = &mut body;
    for key in &path[..path.len() - 1] {
        target = &mut target[key.as_str()];
    }
    target[path[path.len() - 1].as_str()] = value;
    body
}

fn remove(body: &Value, path: &[String]) -> Value {
    let mut body = body.clone();
    let mut target = &mut body;
    for key in &path[..path.len() - 1] {
        target = &mut target[key.as_str()];
    }
    if let Some(object) = target.as_object_mut() {
        object.remove(&path[path.len() - 1]);
    }
    body
}

const HUGE_STRING: usize = 1024 * 1024;
const HUGE_NUMBERS: [&str; 5] = [
    "1e308",
    "1e999",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775809",
];
/// Deeper than any parser should follow.
const DEPTH: usize = 10_000;

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// The cases generated for one operation's body.
struct Mutations<'a> {
    document: &'a Value,
    method: &'a Method,
    target: &'a str,
    cases: Vec<Case>,
}

impl Mutations<'_> {
    fn push(&mut self, name: String, bytes: Vec<u8>) {
        self.cases
            .push(Case::json(name, self.method, self.target, bytes));
    }

    /// Mutations of one property (and, for objects, of theirs), one error each.
    fn property(&mut self, base: &Value, path: Vec<String>, schema: &Value, required: bool) {
        let field = path.join(".");
        let json = |body: &Value| serde_json::to_vec(body).unwrap();
        if required {
            self.push(format!("{field}: missing"), json(&remove(base, &path)));
        }
        let Some(kinds) = openapi::kinds(self.document, schema) else {
            return;
        };
        for (kind, value) in openapi::wrong_kinds(&kinds) {
            self.push(format!("{field}: {kind}"), json(&set(base, &path, value)));
        }
        let enumerated = openapi::enum_values(self.document, schema);
        if enumerated.is_some() {
            let body = set(base, &path, json!("no-such-variant"));
            self.push(format!("{field}: not in enum"), json(&body));
        }
        let raw = set(base, &path, json!(RAW));
        if kinds.contains("string") && enumerated.is_none() {
            let body = set(base, &path, json!("x".repeat(HUGE_STRING)));
            self.push(format!("{field}: 1 MiB string"), json(&body));
            let invalid = with_raw(&raw, b"\"\xff\xfe\xc3\x28\"");
            self.push(format!("{field}: invalid UTF-8"), invalid);
            let surrogate = with_raw(&raw, br#""\ud800""#);
            self.push(format!("{field}: lone surrogate"), surrogate);
        }
        if kinds.contains("number-integral") || kinds.contains("number") {
            for number in HUGE_NUMBERS {
                self.push(
                    format!("{field}: {number}"),
                    with_raw(&raw, number.as_bytes()),
                );
            }
        }
        if let Some(items) = openapi::items(self.document, schema)
            && let Some(item_kinds) = openapi::kinds(self.document, items)
        {
            for (kind, value) in openapi::wrong_kinds(&item_kinds) {
                let body = set(base, &path, json!([value]));
                self.push(format!("{field}[0]: {kind}"), json(&body));
            }
            if item_kinds.contains("string") {
                let body = set(base, &path, json!(["x".repeat(HUGE_STRING)]));
                self.push(format!("{field}[0]: 1 MiB string"), json(&body));
            }
        }
        let nested = openapi::properties(self.document, schema);
        if !nested.is_empty() && path.len() < 3 {
            // The nested object with its required properties filled in.
            let mut inner = set(base, &path, json!({}));
            for (name, _, required) in &nested {
                if *required {
                    let mut full = path.clone();
                    full.push(name.clone());
                    inner = set(&inner, &full, json!("x"));
                }
            }
            for (name, property, required) in nested {
                let mut full = path.clone();
                full.push(name);
                self.property(&inner, full, &property, required);
            }
        }
    }
}

/// Abuse of the body as a whole.
fn body_cases(method: &Method, target: &str, base: &Value, required: bool, cases: &mut Vec<Case>) {
    let mut raw = |name: &str, content_type: Option<&'static str>, bytes: &[u8]| {
        cases.push(Case {
            name: name.to_string(),
            method: method.clone(),
            target: target.to_string(),
            content_type,
            body: Payload::Bytes(bytes.to_vec()),
        });
    };
    let json = Some("application/json");
    if required {
        raw("empty body", json, b"");
        raw("whitespace body", json, b"  \n ");
        raw("no body, no content type", None, b"");
    }
    raw("JSON null", json, b"null");
    raw("JSON array", json, b"[]");
    raw("JSON string", json, b"\"hello\"");
    raw("JSON number", json, b"42");
    raw("truncated JSON", json, b"{\"name\": ");
    raw("trailing garbage", json, b"{} garbage");
    raw(
        "byte-order mark",
        json,
        &[
            b"\xef\xbb\xbf".as_slice(),
            &serde_json::to_vec(base).unwrap(),
        ]
        .concat(),
    );
    raw("invalid UTF-8 bytes", json, b"\xff\xfe\xfd");
    raw(
        "form-encoded",
        Some("application/x-www-form-urlencoded"),
        b"name=x&models=m",
    );
    raw("text/plain", Some("text/plain"), b"hello");
    raw(
        "XML",
        Some("application/xml"),
        b"<channel><name>x</name></channel>",
    );
    raw(
        "multipart garbage",
        Some("multipart/form-data; boundary=zz"),
        b"--zz\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--zz--\r\n",
    );
    raw("deep nesting (root)", json, nested(DEPTH).as_bytes());
    let object_nesting = format!("{}1{}", "{\"a\":".repeat(DEPTH), "}".repeat(DEPTH));
    raw("deep nesting (objects)", json, object_nesting.as_bytes());
    let mut unknown = base.clone();
    unknown["zz_unknown"] = json!(1);
    raw(
        "unknown field",
        json,
        &serde_json::to_vec(&unknown).unwrap(),
    );
    if let Some((first, _)) = base.as_object().and_then(|object| object.iter().next()) {
        let deep = set(base, std::slice::from_ref(first), json!(RAW));
        raw(
            "deep nesting (in a field)",
            json,
            &with_raw(&deep, nested(DEPTH).as_bytes()),
        );
        let text = serde_json::to_string(base).unwrap();
        let duplicated = format!("{{\"{first}\": null, {}", &text[1..]);
        raw("duplicate field", json, duplicated.as_bytes());
    }
    let oversize = json!({"name": "x".repeat(ADMIN_BODY_LIMIT + 1)});
    raw(
        "oversize (limit + 1)",
        json,
        &serde_json::to_vec(&oversize).unwrap(),
    );
    let huge = json!({"name": "x".repeat(10 * 1024 * 1024)});
    raw(
        "oversize (10 MiB string)",
        json,
        &serde_json::to_vec(&huge).unwrap(),
    );
    cases.push(Case {
        name: "oversize, chunked".to_string(),
        method: method.clone(),
        target: target.to_string(),
        content_type: json,
        body: Payload::Chunked(serde_json::to_vec(&oversize).unwrap()),
    });
}

/// Ids that are not ids, or name nothing.
pub(crate) const BAD_IDS: [&str; 11] = [
    "abc",
    "-1",
    "0",
    "1.5",
    "1e3",
    "99999999999999999999",
    "9223372036854775807",
    "%20",
    "%FF",
    "1%00",
    "1;drop",
];

fn query_cases(document: &Value, operation: &Operation, path: &str, cases: &mut Vec<Case>) {
    let mut get = |name: String, query: &str| {
        cases.push(Case {
            name,
            method: operation.method.clone(),
            target: format!("{path}?{query}"),
            content_type: None,
            body: Payload::None,
        });
    };
    let params: Vec<_> = operation.query_params().collect();
    if params.is_empty() {
        return;
    }
    get("query: unknown parameter".to_string(), "zz_unknown=1");
    for param in params {
        let name = &param.name;
        let Some(kinds) = openapi::kinds(document, &param.schema) else {
            continue;
        };
        let mut values: Vec<&str> = Vec::new();
        if kinds.contains("number-integral") {
            values.extend(["abc", "1.5", "99999999999999999999", "%FF"]);
            let schema = openapi::resolve(document, &param.schema);
            if schema["minimum"]
                .as_f64()
                .is_some_and(|minimum| minimum >= 0.0)
            {
                values.push("-1");
            }
            get(
                format!("query {name}: repeated"),
                &format!("{name}=1&{name}=2"),
            );
        }
        if kinds.contains("boolean") {
            values.extend(["maybe", "2"]);
        }
        if openapi::enum_values(document, &param.schema).is_some() {
            values.push("no-such-variant");
        }
        for value in values {
            get(format!("query {name}={value}"), &format!("{name}={value}"));
        }
    }
}

/// Query values the schema cannot describe (times and dates are strings).
const QUERY_EXTRAS: [(&str, &str); 9] = [
    ("/api/logs", "since=yesterday"),
    ("/api/logs", "until=2025-13-45T00:00:00Z"),
    (
        "/api/logs",
        "since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z",
    ),
    ("/api/usage", "date=2025-02-30"),
    ("/api/usage", "date=tomorrow"),
    ("/api/channels", "per_page=501"),
    ("/api/tokens", "page=0"),
    ("/api/stats", "hours=0"),
    ("/api/stats", "hours=169"),
];

/// Every generated case for one operation.
fn cases_for(bench: &Bench, document: &Value, operation: &Operation) -> Vec<Case> {
    let mut cases = Vec::new();
    let method = &operation.method;
    let target = real_path(bench, &operation.path);
    let base = match &operation.body {
        Some((schema, required)) => {
            let base = valid_body(method, &operation.path).unwrap_or_else(|| {
                panic!("add a valid body for {} to valid_body", operation.route())
            });
            let mut mutations = Mutations {
                document,
                method,
                target: &target,
                cases: Vec::new(),
            };
            for (name, property, required) in openapi::properties(document, schema) {
                mutations.property(&base, vec![name], &property, required);
            }
            cases.append(&mut mutations.cases);
            body_cases(method, &target, &base, *required, &mut cases);
            Some(base)
        }
        None => None,
    };
    if operation.has_path_params() {
        for bad in BAD_IDS {
            let path = operation.path.replace("{id}", bad);
            let body = base.as_ref().map(|base| serde_json::to_vec(base).unwrap());
            cases.push(Case {
                name: format!("id {bad}"),
                method: method.clone(),
                target: path,
                content_type: body.as_ref().map(|_| "application/json"),
                body: body.map_or(Payload::None, Payload::Bytes),
            });
        }
    }
    query_cases(document, operation, &target, &mut cases);
    for (path, query) in QUERY_EXTRAS {
        if path == operation.path && operation.method == Method::GET {
            cases.push(Case {
                name: format!("query {query}"),
                method: Method::GET,
                target: format!("{path}?{query}"),
                content_type: None,
                body: Payload::None,
            });
        }
    }
    cases
}

/// The outcome of one case: `Ok(label)` for a proper refusal.
pub(crate) fn judge(reply: &Reply, shape: Shape) -> Result<String, String> {
    if !reply.status.is_client_error() {
        return Err(format!("status {}: {}", reply.status, reply.text()));
    }
    let code = error_code(reply, shape)?;
    let stable = ErrorCode::ALL.iter().any(|stable| stable.as_str() == code);
    if shape == Shape::Admin && !stable {
        return Err(format!("{code} is not a stable code"));
    }
    Ok(format!("{} {code}", reply.status.as_u16()))
}

/// Every `/api` route refuses every generated bad input with a 4xx in the
/// admin error shape, and the sweep changes nothing stored.
#[tokio::test]
async fn every_admin_route_refuses_bad_input_cleanly() {
    let bench = Bench::start().await;
    let document = openapi::document(&bench).await;
    let before = bench.stored().await;
    let logs_before = bench.log_rows().await.len();
    let upstream_before = bench.upstream.requests();
    let mut tally = Tally::default();
    let mut addresses = Addresses::default();
    let mut failures = Vec::new();
    let operations: Vec<Operation> = openapi::operations(&document)
        .into_iter()
        .filter(|operation| operation.path.starts_with("/api/"))
        .collect();
    let mut paths_seen = std::collections::BTreeSet::new();
    for operation in &operations {
        let mut cases = cases_for(&bench, &document, operation);
        // No admin route uses PUT: an unsupported method, once per path.
        if paths_seen.insert(operation.path.clone()) {
            cases.push(Case {
                name: "unsupported method PUT".to_string(),
                method: Method::PUT,
                target: real_path(&bench, &operation.path),
                content_type: Some("application/json"),
                body: Payload::Bytes(b"{}".to_vec()),
            });
        }
        for case in cases {
            let route = operation.route();
            // Sign-in cases send wrong tokens, which would otherwise lock
            // the sweep's address out.
            let client = addresses.next();
            let request = case
                .request(&bench, &client)
                .bearer_auth(&bench.gateway.admin_token);
            let reply = send(request).await;
            match judge(&reply, Shape::Admin) {
                Ok(outcome) => tally.record(&route, &outcome),
                Err(problem) => {
                    tally.record(&route, "FAILED");
                    failures.push(format!("{route} [{}]: {problem}", case.name));
                }
            }
        }
    }
    tally.print("admin bad input");
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
    assert_eq!(
        bench.log_rows().await.len(),
        logs_before,
        "admin requests wrote log rows"
    );
    assert_eq!(
        bench.upstream.requests(),
        upstream_before,
        "a bad body reached the upstream"
    );
    assert!(tally.total() > 300, "only {} cases", tally.total());
}

/// Unknown `/api` paths answer 404 in the admin shape, never the UI's HTML.
#[tokio::test]
async fn unknown_admin_paths_are_404_in_the_admin_shape() {
    let bench = Bench::start().await;
    for path in ["/api/nope", "/api/channels/1/nope", "/api/", "/api/%FF"] {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let reply = send(bench.gateway.admin(method.clone(), path)).await;
            let outcome = judge(&reply, Shape::Admin);
            assert!(outcome.is_ok(), "{method} {path}: {outcome:?}");
            assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        }
    }
}
