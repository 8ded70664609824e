//! Extractors for admin requests that fail in *our* error shape, never in
//! axum's plain text: a JSON body ([`Json`], or [`OptionalJson`] where it
//! may be left out), a query string ([`Query`]) and an integer path id ([`Id`]).
//!
//! Bodies and queries are deserialized through `serde_path_to_error`, whose
//! [`Path`] says where a value went wrong; it becomes the dotted `field` of
//! the error (`models.0`, `settings.auto_disable`, `foo` for an unknown
//! field) so a client can point at the offending input. The path is read
//! from that structure, not from an error message's text; only the name of
//! a missing or repeated field, which serde puts in no path, comes from
//! serde's fixed wording ([`named_field`]).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_path_to_error::{Path, Segment};

use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;

/// A JSON request body. Unlike `axum::Json` it does not insist on a
/// `Content-Type` header (so `curl -d` works), and every rejection is an
/// [`ApiError`] naming the field at fault.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_error)?;
        from_json(&bytes).map(Json)
    }
}

/// A JSON request body that may be left out: an empty body is `T::default()`.
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_error)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        from_json(&bytes).map(OptionalJson)
    }
}

/// A query string deserialized into `T` (which should deny unknown fields).
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        from_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// The integer `{id}` of a path. Anything else is a 400 naming `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub i64);

impl<S> FromRequestParts<S> for Id
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::invalid("id", Message::IdNotInteger))?;
        raw.parse()
            .map(Id)
            .map_err(|_| ApiError::invalid("id", Message::IdNotInteger))
    }
}

/// A 400 whose detail (serde's or axum's own words) is data, kept as it is
/// inside a localized sentence.
fn invalid_value(detail: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, Message::InvalidValue { detail })
}

/// axum's default body limit, which the admin routes keep.
const BODY_LIMIT: usize = 2 * 1024 * 1024;

fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = BODY_LIMIT;
        ApiError::new(ErrorCode::PayloadTooLarge, Message::BodyTooLarge { limit })
    } else {
        invalid_value(rejection.body_text())
    }
}

/// How a malformed body's detail starts, as axum worded it before these
/// extractors parsed bodies themselves; `fuzzing::admin` recognises a syntax
/// error by it.
const JSON_SYNTAX_PREFIX: &str = "Failed to parse the request body as JSON";

/// One whole JSON value into `T`, with nothing but whitespace after it.
fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer
        .end()
        .map_err(|error| invalid_value(format!("{JSON_SYNTAX_PREFIX}: {error}")))?;
    Ok(value)
}

/// A query string into `T`, which names its fields (a struct).
fn from_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs))
        .map_err(|error| located_error(error.path(), &error.inner().to_string()))
}

fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    match error.inner().classify() {
        // Well-formed JSON that does not fit `T`: name the field.
        Category::Data => located_error(error.path(), &without_position(error.inner())),
        // Syntax errors name no field (the body may stop anywhere) and keep
        // the path, line and column in the detail: they help find the typo.
        Category::Syntax | Category::Eof | Category::Io => {
            invalid_value(format!("{JSON_SYNTAX_PREFIX}: {error}"))
        }
    }
}

/// An error at `path` with serde's `message`, as a 400 whose `field` is the
/// dotted path. serde reports a missing or duplicated field at its parent,
/// so its name is appended.
fn located_error(path: &Path, message: &str) -> ApiError {
    let mut field = dotted(path);
    if let Some(name) = named_field(message) {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(name);
    }
    let error = invalid_value(message.to_string());
    if field.is_empty() {
        error
    } else {
        error.with_field(field)
    }
}

/// `models[1]` → `models.1`, `settings.auto_disable` as it is, the root →
/// empty. A map key is kept whole, whatever characters it holds.
fn dotted(path: &Path) -> String {
    let segments: Vec<String> = path
        .iter()
        .map(|segment| match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } | Segment::Enum { variant: key } => key.clone(),
            // A step serde_path_to_error could not name (such as a map key
            // that is no string or number); it prints `?` for it too.
            Segment::Unknown => "?".to_string(),
        })
        .collect();
    segments.join(".")
}

/// The field named by serde's `missing field` or `duplicate field` error.
///
/// These are the one place where the name is only in the message: serde
/// raises them from the struct's visitor, after the map has been read, so no
/// path segment holds the name, and `serde_json::Error` keeps no structured
/// copy. The wording is the default of `serde::de::Error::missing_field` and
/// `duplicate_field`, which serde_json and serde_urlencoded both use; a test
/// below breaks if it ever changes.
fn named_field(message: &str) -> Option<&str> {
    ["missing field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
}

/// serde_json's message without the " at line L column C" it appends when it
/// knows the position (it has no accessor for the message alone). The suffix
/// is rebuilt from `line()` and `column()`, so only that exact text goes.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if error.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialized, to see where it fails")]
    struct Body {
        models: Vec<String>,
        #[serde(default)]
        groups: Vec<String>,
        #[serde(default)]
        priority: i64,
        #[serde(default)]
        model_mapping: BTreeMap<String, String>,
        settings: Option<Settings>,
        #[serde(default)]
        kind: Kind,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialized, to see where it fails")]
    struct Settings {
        daily_token_limit: u64,
        auto_disable: Option<bool>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        #[default]
        Openai,
        Anthropic,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialized, to see where it fails")]
    struct Page {
        page: Option<u32>,
        status: Option<Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only deserialized, to see where it fails")]
    struct Required {
        since: String,
    }

    fn detail(error: &ApiError) -> String {
        match &error.message {
            crate::error::Text::Catalog(Message::InvalidValue { detail }) => detail.clone(),
            other => format!("not InvalidValue: {other:?}"),
        }
    }

    /// Every data error in a body names the exact path at fault, with
    /// serde's message (without its position) as the detail.
    #[test]
    fn body_errors_name_the_field() {
        let cases = [
            (
                r#"{"models": [], "priority": "x"}"#,
                Some("priority"),
                r#"invalid type: string "x", expected i64"#,
            ),
            (
                r#"{"models": ["a", 1]}"#,
                Some("models.1"),
                "invalid type: integer `1`, expected a string",
            ),
            (
                r#"{"models": [], "foo": 1}"#,
                Some("foo"),
                "unknown field `foo`, expected one of `models`, `groups`, `priority`, \
                 `model_mapping`, `settings`, `kind`",
            ),
            (r#"{}"#, Some("models"), "missing field `models`"),
            // Found by the admin_channel_body fuzz target: a repeated key
            // was a 400 naming no field.
            (
                r#"{"models": [], "groups": [], "groups": []}"#,
                Some("groups"),
                "duplicate field `groups`",
            ),
            (
                r#"{"models": [], "settings": {}}"#,
                Some("settings.daily_token_limit"),
                "missing field `daily_token_limit`",
            ),
            (
                r#"{"models": [], "settings": {"daily_token_limit": -1}}"#,
                Some("settings.daily_token_limit"),
                "invalid value: integer `-1`, expected u64",
            ),
            (
                r#"{"models": [], "settings": {"daily_token_limit": 1, "auto_disable": "no"}}"#,
                Some("settings.auto_disable"),
                r#"invalid type: string "no", expected a boolean"#,
            ),
            (
                r#"{"models": [], "settings": [1]}"#,
                Some("settings"),
                "invalid length 1, expected struct Settings with 2 elements",
            ),
            (
                r#"{"models": [], "kind": "gemini"}"#,
                Some("kind"),
                "unknown variant `gemini`, expected `openai` or `anthropic`",
            ),
            // A key is kept whole: reading the path back out of the message
            // text mangled brackets and stopped at ": ".
            (
                r#"{"models": [], "model_mapping": {"a[1]: `b`": 3}}"#,
                Some("model_mapping.a[1]: `b`"),
                "invalid type: integer `3`, expected a string",
            ),
            // serde reads a struct from an array too, by position; the text
            // parsing made this `.0`.
            (
                "[1, 2]",
                Some("0"),
                "invalid type: integer `1`, expected a sequence",
            ),
            (
                r#""text""#,
                None,
                r#"invalid type: string "text", expected struct Body"#,
            ),
        ];
        for (body, field, message) in cases {
            let Err(error) = from_json::<Body>(body.as_bytes()) else {
                panic!("{body} was accepted");
            };
            assert_eq!(error.code, ErrorCode::InvalidRequest, "{body}");
            assert_eq!(error.field.as_deref(), field, "{body}");
            assert_eq!(detail(&error), message, "{body}");
        }
    }

    /// Malformed JSON names no field and keeps axum's wording, with the
    /// line and column that help find the typo.
    #[test]
    fn syntax_errors_keep_their_position() {
        let cases = [
            (
                r#"{"models":"#,
                "models: EOF while parsing a value at line 1 column 10",
            ),
            ("not json", "expected ident at line 1 column 2"),
            (
                r#"{"models": []} x"#,
                "trailing characters at line 1 column 16",
            ),
            ("", "EOF while parsing a value at line 1 column 0"),
        ];
        for (body, message) in cases {
            let Err(error) = from_json::<Body>(body.as_bytes()) else {
                panic!("{body} was accepted");
            };
            assert_eq!(error.field, None, "{body}");
            assert_eq!(
                detail(&error),
                format!("{JSON_SYNTAX_PREFIX}: {message}"),
                "{body}"
            );
        }
    }

    /// A bad query names its parameter, a repeated or missing one included.
    #[test]
    fn query_errors_name_the_parameter() {
        let cases = [
            ("page=abc", "page", "invalid digit found in string"),
            ("page=-1", "page", "invalid digit found in string"),
            (
                "status=bogus",
                "status",
                "unknown variant `bogus`, expected `openai` or `anthropic`",
            ),
            (
                "colour=red",
                "colour",
                "unknown field `colour`, expected `page` or `status`",
            ),
            ("page=1&page=2", "page", "duplicate field `page`"),
        ];
        for (query, field, message) in cases {
            let Err(error) = from_query::<Page>(query) else {
                panic!("{query} was accepted");
            };
            assert_eq!(error.field.as_deref(), Some(field), "{query}");
            assert_eq!(detail(&error), message, "{query}");
        }
        let Err(error) = from_query::<Required>("") else {
            panic!("a missing parameter was accepted");
        };
        assert_eq!(error.field.as_deref(), Some("since"));
        assert!(from_query::<Page>("page=2&status=anthropic").is_ok());
    }

    /// Positions go from data errors, and only the exact suffix serde_json added.
    #[test]
    fn positions_are_dropped_from_data_errors() {
        let error = serde_json::from_str::<u8>("300").err();
        assert_eq!(
            error.as_ref().map(without_position).as_deref(),
            Some("invalid value: integer `300`, expected u8")
        );
        let custom = <serde_json::Error as serde::de::Error>::custom("at line 9 column 9");
        assert_eq!(without_position(&custom), "at line 9 column 9");
    }
}
