//! Extractors for admin requests that fail in *our* error shape, never in
//! axum's plain text: a JSON body ([`Json`], or [`OptionalJson`] where it
//! may be left out), a query string ([`Query`]) and an integer path id ([`Id`]).
//!
//! serde reports where a value went wrong (axum tracks the path with
//! `serde_path_to_error`); these extractors turn that into the dotted `field`
//! of the error (`models.0`, `settings`, `foo` for an unknown field) so a
//! client can point at the offending input.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

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
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_error(&rejection)),
        }
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
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(OptionalJson(value)),
            Err(rejection) => Err(json_error(&rejection)),
        }
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
        match axum::extract::Query::<T>::try_from_uri(&parts.uri) {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_error(&rejection)),
        }
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

const JSON_DATA_PREFIX: &str = "Failed to deserialize the JSON body into the target type: ";
const QUERY_PREFIX: &str = "Failed to deserialize query string: ";

fn json_error(rejection: &JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        // The text is "<prefix><path>: <serde message> at line L column C",
        // where `<path>` is serde_path_to_error's rendering ("." for the root).
        // At the root the path is left out altogether.
        JsonRejection::JsonDataError(_) => match text.strip_prefix(JSON_DATA_PREFIX) {
            Some(rest) => match split_path(rest) {
                Some((path, message)) => located_error(path, without_position(message)),
                None => located_error(".", without_position(rest)),
            },
            None => invalid_value(text),
        },
        // Syntax errors keep serde's line and column: they help find the typo.
        _ => invalid_value(text),
    }
}

fn query_error(rejection: &QueryRejection) -> ApiError {
    let text = rejection.body_text();
    match text
        .strip_prefix(QUERY_PREFIX)
        .and_then(|rest| rest.split_once(": "))
    {
        Some((path, message)) => located_error(path, message),
        None => invalid_value(text),
    }
}

/// An error at serde path `path` with serde's `message`, as a 400 whose
/// `field` is the dotted path. A missing or duplicated field is reported at
/// its parent by serde, so its name is appended here.
fn located_error(path: &str, message: &str) -> ApiError {
    let mut field = dotted(path);
    let named =
        backticked(message, "missing field `").or_else(|| backticked(message, "duplicate field `"));
    if let Some(name) = named {
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

/// `a.b[0]` → `a.b.0`; the root (`.`) → empty.
fn dotted(path: &str) -> String {
    if path == "." {
        return String::new();
    }
    path.replace("][", ".").replace('[', ".").replace(']', "")
}

/// The name between `prefix` and the next backtick, if `message` starts with `prefix`.
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// Messages serde produces itself; text starting with one is at the root,
/// not `<path>: <message>`.
const SERDE_MESSAGE_STARTS: [&str; 8] = [
    "missing field `",
    "invalid type: ",
    "invalid value: ",
    "invalid length ",
    "unknown variant `",
    "unknown field `",
    "duplicate field `",
    "expected ",
];

/// Splits "<path>: <message>", or `None` if the text is a root-level message.
fn split_path(text: &str) -> Option<(&str, &str)> {
    if SERDE_MESSAGE_STARTS
        .iter()
        .any(|start| text.starts_with(start))
    {
        return None;
    }
    text.split_once(": ")
}

/// serde_json's message without its " at line L column C" suffix.
fn without_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(index) if message[index..].contains(" column ") => &message[..index],
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths_become_dotted_fields() {
        let cases = [
            (".", "invalid type: string \"x\", expected i64", None),
            (
                "priority",
                "invalid type: string \"x\", expected i64",
                Some("priority"),
            ),
            (
                "models[0]",
                "invalid type: integer `1`, expected a string",
                Some("models.0"),
            ),
            (
                "foo",
                "unknown field `foo`, expected one of `name`",
                Some("foo"),
            ),
            (".", "missing field `models`", Some("models")),
            // Found by the admin_channel_body fuzz target: a repeated key
            // was a 400 naming no field.
            (".", "duplicate field `groups`", Some("groups")),
            ("a.b", "missing field `c`", Some("a.b.c")),
            ("a[1][2]", "bad", Some("a.1.2")),
        ];
        for (path, message, field) in cases {
            let error = located_error(path, message);
            assert_eq!(error.field.as_deref(), field, "{path} / {message}");
            assert_eq!(
                error.message,
                crate::error::Text::Catalog(Message::InvalidValue {
                    detail: message.to_string()
                })
            );
        }
    }

    #[test]
    fn root_messages_have_no_path() {
        let cases = [
            ("missing field `models`", None),
            (
                "invalid type: integer `1`, expected struct NewChannel",
                None,
            ),
            (
                "models[1]: invalid type: integer `7`, expected a string",
                Some("models[1]"),
            ),
            ("foo: unknown field `foo`", Some("foo")),
        ];
        for (text, path) in cases {
            assert_eq!(split_path(text).map(|(path, _)| path), path, "{text}");
        }
    }

    #[test]
    fn positions_are_dropped_from_data_errors() {
        assert_eq!(
            without_position("missing field `a` at line 1 column 2"),
            "missing field `a`"
        );
        assert_eq!(without_position("no position here"), "no position here");
    }
}
