//! Reading a buffered `multipart/form-data` audio request with `multer`:
//! the text fields the relay needs (`model`, `stream`) and the file's bytes,
//! for the duration estimate. The body itself is forwarded untouched.
//!
//! The body is already in memory, so `multer`'s futures never wait: they
//! are polled once (`now_or_never`), and one that did wait would be
//! reported as malformed rather than block.

use std::convert::Infallible;

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use futures_util::FutureExt;

use crate::error::{ApiError, ErrorCode};
use crate::i18n::Message;

/// The fields of an audio form the relay reads.
#[derive(Debug, Default)]
pub struct AudioForm {
    pub model: Option<String>,
    /// `stream=true` (streamed transcription).
    pub stream: bool,
    pub file_name: Option<String>,
    pub file: Option<Bytes>,
    /// The client's content type, boundary included, to forward as is.
    pub content_type: Option<HeaderValue>,
}

/// Parses `body` as the multipart form its `Content-Type` announces.
pub fn read(body: Bytes, headers: &HeaderMap) -> Result<AudioForm, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .ok_or_else(|| malformed("the Content-Type header is missing"))?;
    let text = content_type
        .to_str()
        .map_err(|_| malformed("the Content-Type header is not text"))?;
    let boundary = multer::parse_boundary(text).map_err(|error| malformed(&error.to_string()))?;
    let chunks = futures_util::stream::once(async move { Ok::<Bytes, Infallible>(body) });
    let mut multipart = multer::Multipart::new(chunks, boundary);
    let mut form = AudioForm {
        content_type: Some(content_type.clone()),
        ..AudioForm::default()
    };
    while let Some(field) = now(multipart.next_field())? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                form.file_name = field.file_name().map(str::to_string);
                form.file = Some(now(field.bytes())?);
            }
            "model" => form.model = Some(now(field.text())?.trim().to_string()),
            "stream" => form.stream = now(field.text())?.trim() == "true",
            // Other fields are only read past; the upstream gets them all.
            _ => drop(now(field.bytes())?),
        }
    }
    Ok(form)
}

/// Polls a `multer` future over an in-memory body once.
fn now<T>(
    future: impl std::future::Future<Output = Result<T, multer::Error>>,
) -> Result<T, ApiError> {
    match future.now_or_never() {
        Some(result) => result.map_err(|error| malformed(&error.to_string())),
        None => Err(malformed("the body ended early")),
    }
}

fn malformed(detail: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequest,
        Message::MalformedMultipart {
            detail: detail.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(content_type) {
            headers.insert(header::CONTENT_TYPE, value);
        }
        headers
    }

    /// A well-formed form yields its model, stream flag and file.
    #[test]
    fn reads_fields_and_file() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\
                    Content-Type: audio/mpeg\r\n\r\nABCD\r\n--b--\r\n";
        let form = read(
            Bytes::from(body),
            &headers("multipart/form-data; boundary=b"),
        );
        let form = form.unwrap_or_default();
        assert_eq!(form.model.as_deref(), Some("whisper-1"));
        assert!(form.stream);
        assert_eq!(form.file_name.as_deref(), Some("a.mp3"));
        assert_eq!(form.file.as_deref(), Some(&b"ABCD"[..]));
    }

    /// Missing boundaries, wrong types and truncated bodies are 400s.
    #[test]
    fn malformed_forms_are_invalid_requests() {
        let cases = [
            ("application/json", "--b\r\n"),
            ("multipart/form-data; boundary=b", "not a form"),
            (
                "multipart/form-data; boundary=b",
                "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhis",
            ),
        ];
        for (content_type, body) in cases {
            let error = read(Bytes::from(body), &headers(content_type)).err();
            assert_eq!(
                error.map(|error| error.code),
                Some(ErrorCode::InvalidRequest),
                "{content_type} {body:?}"
            );
        }
    }
}
