//! The `/v1` case table: one valid request per relay route (`relay_routes`,
//! checked against the relay's own route list by `bad_relay_input`), and
//! for each route the faults to send, each marked local (the gateway must
//! refuse it itself) or delegated (the relay passes the field through and
//! the upstream judges it).

use reqwest::Method;
use serde_json::{Value, json};

use super::bad_input::{Case, Payload};
use super::{Bench, CLAUDE, MODEL, RELAY_BODY_LIMIT};

/// One `/v1` route and its valid request.
pub(crate) struct RelayRoute {
    pub method: Method,
    pub path: &'static str,
    pub kind: Kind,
}

pub(crate) enum Kind {
    /// A JSON body.
    Json(Value),
    /// A multipart form with `model` and an audio `file`.
    Multipart,
    /// No body (`GET /v1/models`).
    Empty,
    /// A WebSocket upgrade with `?model=`.
    Realtime,
}

/// Every `/v1` route, with a valid request for each.
pub(crate) fn relay_routes() -> Vec<RelayRoute> {
    let chat = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let claude =
        json!({"model": CLAUDE, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let route = |method: Method, path: &'static str, kind: Kind| RelayRoute { method, path, kind };
    vec![
        route(Method::POST, "/v1/chat/completions", Kind::Json(chat)),
        route(
            Method::POST,
            "/v1/completions",
            Kind::Json(json!({"model": MODEL, "prompt": "hi"})),
        ),
        route(
            Method::POST,
            "/v1/embeddings",
            Kind::Json(json!({"model": MODEL, "input": "hi"})),
        ),
        route(
            Method::POST,
            "/v1/responses",
            Kind::Json(json!({"model": MODEL, "input": "hi"})),
        ),
        route(Method::POST, "/v1/audio/transcriptions", Kind::Multipart),
        route(Method::POST, "/v1/audio/translations", Kind::Multipart),
        route(
            Method::POST,
            "/v1/audio/speech",
            Kind::Json(json!({"model": MODEL, "input": "hi", "voice": "alloy"})),
        ),
        route(
            Method::POST,
            "/v1/images/generations",
            Kind::Json(json!({"model": MODEL, "prompt": "a cat"})),
        ),
        route(
            Method::POST,
            "/v1/moderations",
            Kind::Json(json!({"model": MODEL, "input": "hi"})),
        ),
        route(Method::POST, "/v1/messages", Kind::Json(claude.clone())),
        route(
            Method::POST,
            "/v1/messages/count_tokens",
            Kind::Json(claude),
        ),
        route(Method::GET, "/v1/models", Kind::Empty),
        route(Method::GET, "/v1/realtime", Kind::Realtime),
    ]
}

const BOUNDARY: &str = "hostile-boundary";

/// A multipart form from (name, filename, bytes) parts.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        let disposition = match filename {
            Some(file) => format!(
                "form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: audio/wav"
            ),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn multipart_type() -> &'static str {
    "multipart/form-data; boundary=hostile-boundary"
}

/// The route's valid request, without credentials.
pub(crate) fn relay_request(bench: &Bench, route: &RelayRoute) -> reqwest::RequestBuilder {
    let url = match route.kind {
        Kind::Realtime => bench.gateway.url(&format!("{}?model={MODEL}", route.path)),
        _ => bench.gateway.url(route.path),
    };
    let request = bench.gateway.client.request(route.method.clone(), url);
    match &route.kind {
        Kind::Json(body) => request.json(body),
        Kind::Multipart => request
            .header("content-type", multipart_type())
            .body(form(&[
                ("model", None, MODEL.as_bytes()),
                ("file", Some("a.wav"), b"RIFF0000"),
            ])),
        Kind::Empty => request,
        Kind::Realtime => request
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    }
}

/// Where a case must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    Local,
    Delegated,
}

pub(crate) struct RelayCase {
    pub case: Case,
    pub expect: Expect,
    /// Extra headers (the realtime handshake).
    pub headers: Vec<(&'static str, &'static str)>,
}

const DEPTH: usize = 10_000;

fn raw_json(
    name: impl Into<String>,
    path: &str,
    content_type: Option<&'static str>,
    bytes: Vec<u8>,
) -> Case {
    Case {
        name: name.into(),
        method: Method::POST,
        target: path.to_string(),
        content_type,
        body: Payload::Bytes(bytes),
    }
}

/// `base` with `field` set to the raw JSON text `raw`.
fn with_field(base: &Value, field: &str, raw: &str) -> Vec<u8> {
    let mut body = base.clone();
    body[field] = json!("\u{1}raw\u{1}");
    let text = serde_json::to_string(&body).unwrap();
    text.replace("\"\\u0001raw\\u0001\"", raw).into_bytes()
}

fn without(base: &Value, field: &str) -> Vec<u8> {
    let mut body = base.clone();
    body.as_object_mut().unwrap().remove(field);
    serde_json::to_vec(&body).unwrap()
}

/// Oversize bodies: over the limit with a length, far over it, and chunked.
fn oversize_cases(path: &str, content_type: &'static str, push: &mut impl FnMut(Case)) {
    let oversize = vec![b'x'; RELAY_BODY_LIMIT + 1];
    push(raw_json(
        "oversize (limit + 1)",
        path,
        Some(content_type),
        oversize.clone(),
    ));
    push(raw_json(
        "oversize (10 MiB)",
        path,
        Some(content_type),
        vec![b'x'; 10 * 1024 * 1024],
    ));
    push(Case {
        name: "oversize, chunked".to_string(),
        method: Method::POST,
        target: path.to_string(),
        content_type: Some(content_type),
        body: Payload::Chunked(oversize),
    });
}

fn json_cases(path: &'static str, base: &Value) -> Vec<RelayCase> {
    let mut cases = Vec::new();
    let json = Some("application/json");
    let mut local = |case: Case| {
        cases.push(RelayCase {
            case,
            expect: Expect::Local,
            headers: Vec::new(),
        })
    };
    let bytes = |text: &str| text.as_bytes().to_vec();
    local(raw_json("empty body", path, json, Vec::new()));
    local(raw_json("whitespace body", path, json, bytes(" \n ")));
    local(raw_json(
        "text/plain",
        path,
        Some("text/plain"),
        bytes("hello"),
    ));
    local(raw_json(
        "form-encoded",
        path,
        Some("application/x-www-form-urlencoded"),
        bytes("model=m&input=hi"),
    ));
    local(raw_json(
        "multipart garbage",
        path,
        Some(multipart_type()),
        form(&[("model", None, b"m")]),
    ));
    for (name, text) in [
        ("JSON null", "null"),
        ("JSON array", "[]"),
        ("JSON string", "\"hi\""),
        ("JSON number", "42"),
        ("truncated JSON", "{\"model\": "),
        ("trailing garbage", "{} garbage"),
    ] {
        local(raw_json(name, path, json, bytes(text)));
    }
    local(raw_json(
        "invalid UTF-8 bytes",
        path,
        json,
        b"\xff\xfe\xfd".to_vec(),
    ));
    local(raw_json(
        "byte-order mark",
        path,
        json,
        [
            b"\xef\xbb\xbf".as_slice(),
            &serde_json::to_vec(base).unwrap(),
        ]
        .concat(),
    ));
    local(raw_json(
        "model: missing",
        path,
        json,
        without(base, "model"),
    ));
    for (name, raw) in [
        ("integer", "42"),
        ("float", "1.5"),
        ("boolean", "true"),
        ("array", "[\"m\"]"),
        ("object", "{\"id\": \"m\"}"),
        ("null", "null"),
        ("empty", "\"\""),
        ("lone surrogate", "\"\\ud800\""),
        ("unknown", "\"no-such-model\""),
    ] {
        local(raw_json(
            format!("model: {name}"),
            path,
            json,
            with_field(base, "model", raw),
        ));
    }
    let huge_model = format!("\"{}\"", "m".repeat(128 * 1024));
    local(raw_json(
        "model: 128 KiB",
        path,
        json,
        with_field(base, "model", &huge_model),
    ));
    let mut invalid = with_field(base, "model", "\"INVALID\"");
    let at = invalid
        .windows(7)
        .position(|window| window == b"INVALID")
        .unwrap();
    invalid.splice(at..at + 7, b"\xff\xfe\xc3\x28".iter().copied());
    local(raw_json("model: invalid UTF-8", path, json, invalid));
    let nested = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    local(raw_json(
        "deep nesting (root)",
        path,
        json,
        nested.clone().into_bytes(),
    ));
    local(raw_json(
        "deep nesting (in a field)",
        path,
        json,
        with_field(base, "zz_nested", &nested),
    ));
    let objects = format!("{}1{}", "{\"a\":".repeat(DEPTH), "}".repeat(DEPTH));
    local(raw_json(
        "deep nesting (objects)",
        path,
        json,
        with_field(base, "zz_nested", &objects),
    ));
    // A non-boolean `stream` is refused locally, so the gateway and the
    // upstream never disagree on whether the reply streams.
    local(raw_json(
        "stream: string",
        path,
        json,
        with_field(base, "stream", "\"true\""),
    ));
    local(raw_json(
        "stream: integer",
        path,
        json,
        with_field(base, "stream", "1"),
    ));
    oversize_cases(path, "application/json", &mut local);

    let mut delegated = |name: &str, bytes: Vec<u8>| {
        cases.push(RelayCase {
            case: raw_json(name, path, json, bytes),
            expect: Expect::Delegated,
            headers: Vec::new(),
        })
    };
    delegated(
        "unknown field",
        with_field(base, "zz_unknown", "{\"x\": 1}"),
    );
    if base.get("messages").is_some() {
        delegated("messages: string", with_field(base, "messages", "\"hi\""));
        delegated(
            "messages: object",
            with_field(base, "messages", "{\"role\": \"user\"}"),
        );
        delegated("messages: null", with_field(base, "messages", "null"));
        delegated(
            "messages: nested 100 deep",
            with_field(
                base,
                "messages",
                &format!("{}{}", "[".repeat(100), "]".repeat(100)),
            ),
        );
        for raw in [
            "1e308",
            "18446744073709551616",
            "18446744073709551615",
            "-1",
            "\"100\"",
            "1.5",
        ] {
            delegated(
                &format!("max_tokens: {raw}"),
                with_field(base, "max_tokens", raw),
            );
        }
    }
    if path == "/v1/responses" {
        delegated(
            "max_output_tokens: 18446744073709551615",
            with_field(base, "max_output_tokens", "18446744073709551615"),
        );
        delegated("input: object", with_field(base, "input", "{\"x\": 1}"));
    }
    cases
}

fn multipart_cases(path: &'static str) -> Vec<RelayCase> {
    let mut cases = Vec::new();
    let mut local = |case: Case| {
        cases.push(RelayCase {
            case,
            expect: Expect::Local,
            headers: Vec::new(),
        })
    };
    let wav = b"RIFF0000".as_slice();
    let multipart = Some(multipart_type());
    local(raw_json(
        "JSON body",
        path,
        Some("application/json"),
        br#"{"model": "m"}"#.to_vec(),
    ));
    local(raw_json(
        "no content type",
        path,
        None,
        form(&[("model", None, b"m"), ("file", Some("a.wav"), wav)]),
    ));
    local(raw_json(
        "no boundary",
        path,
        Some("multipart/form-data"),
        form(&[("model", None, b"m"), ("file", Some("a.wav"), wav)]),
    ));
    local(raw_json(
        "other boundary",
        path,
        Some("multipart/form-data; boundary=zz"),
        form(&[("model", None, b"m")]),
    ));
    local(raw_json("empty body", path, multipart, Vec::new()));
    local(raw_json(
        "garbage body",
        path,
        multipart,
        b"\xff\xfe garbage \x00".to_vec(),
    ));
    let mut truncated = form(&[("model", None, b"m"), ("file", Some("a.wav"), wav)]);
    truncated.truncate(truncated.len() - 20);
    local(raw_json("truncated form", path, multipart, truncated));
    local(raw_json(
        "no file",
        path,
        multipart,
        form(&[("model", None, b"m")]),
    ));
    local(raw_json(
        "no model",
        path,
        multipart,
        form(&[("file", Some("a.wav"), wav)]),
    ));
    local(raw_json(
        "empty model",
        path,
        multipart,
        form(&[("model", None, b""), ("file", Some("a.wav"), wav)]),
    ));
    local(raw_json(
        "unknown model",
        path,
        multipart,
        form(&[
            ("model", None, b"no-such-model"),
            ("file", Some("a.wav"), wav),
        ]),
    ));
    local(raw_json(
        "invalid UTF-8 model",
        path,
        multipart,
        form(&[("model", None, b"\xff\xfe"), ("file", Some("a.wav"), wav)]),
    ));
    oversize_cases(path, multipart_type(), &mut local);
    // Whether a file part needs a filename is the upstream's to say.
    cases.push(RelayCase {
        case: raw_json(
            "file without a filename",
            path,
            multipart,
            form(&[("model", None, b"m"), ("file", None, wav)]),
        ),
        expect: Expect::Delegated,
        headers: Vec::new(),
    });
    cases
}

fn realtime_cases(path: &'static str) -> Vec<RelayCase> {
    let handshake = vec![
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let get = |name: &str, query: &str, headers: Vec<(&'static str, &'static str)>| RelayCase {
        case: Case {
            name: name.to_string(),
            method: Method::GET,
            target: format!("{path}{query}"),
            content_type: None,
            body: Payload::None,
        },
        expect: Expect::Local,
        headers,
    };
    vec![
        get("no upgrade", "?model=m", Vec::new()),
        get("no model", "", handshake.clone()),
        get("empty model", "?model=", handshake.clone()),
        get("unknown model", "?model=no-such-model", handshake.clone()),
        get("invalid UTF-8 model", "?model=%FF%FE", handshake.clone()),
        get("repeated model", "?model=m&model=n", handshake.clone()),
        get(
            "bad websocket version",
            "?model=m",
            vec![
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-version", "99"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        ),
    ]
}

pub(crate) fn cases_for(route: &RelayRoute) -> Vec<RelayCase> {
    let mut cases = match &route.kind {
        Kind::Json(base) => json_cases(route.path, base),
        Kind::Multipart => multipart_cases(route.path),
        Kind::Empty => Vec::new(),
        Kind::Realtime => realtime_cases(route.path),
    };
    let other = if route.method == Method::GET {
        Method::POST
    } else {
        Method::GET
    };
    cases.push(RelayCase {
        case: Case {
            name: format!("unsupported method {other}"),
            method: other,
            target: route.path.to_string(),
            content_type: None,
            body: Payload::None,
        },
        expect: Expect::Local,
        headers: Vec::new(),
    });
    cases
}
