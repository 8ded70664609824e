//! The upstream side, below the relay: where a channel's operations go and
//! how they are authenticated (`target`), and the pooled HTTP client that
//! sends them (`client`). The relay and the channel probes (`health`) both
//! build on it; it knows nothing of routing, counting or the state.

pub mod client;
pub mod target;

use axum::http::StatusCode;

/// Installs the process-wide TLS provider (ring) that rustls clients use
/// (the upstream client, the realtime WebSocket, cluster RPC). Idempotent.
pub fn install_tls_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The longest summary of an upstream error a client is shown.
const SUMMARY_CHARS: usize = 200;

/// `upstream returned 429 Too Many Requests: <message>`, the message taken from
/// a JSON error body when there is one, shortened, and scrubbed of the key.
pub fn summarise(status: StatusCode, body: &[u8], key: &str) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            let message = value
                .pointer("/error/message")
                .or_else(|| value.get("error"))
                .or_else(|| value.get("message"))?;
            message.as_str().map(str::to_string)
        });
    let mut summary = format!("upstream returned {status}");
    if let Some(message) = message {
        let mut short: String = message.chars().take(SUMMARY_CHARS).collect();
        if short.len() < message.len() {
            short.push('…');
        }
        if !key.is_empty() {
            short = short.replace(key, "***");
        }
        summary.push_str(": ");
        summary.push_str(&short);
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Summaries quote a JSON error message, shortened, never the key.
    #[test]
    fn summaries_hide_keys() {
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"error":{"message":"bad key sk-secret"}}"#,
                "upstream returned 401 Unauthorized: bad key ***",
            ),
            (
                br#"{"error":"plain"}"#,
                "upstream returned 401 Unauthorized: plain",
            ),
            (b"<html>oops</html>", "upstream returned 401 Unauthorized"),
            (b"", "upstream returned 401 Unauthorized"),
        ];
        for (body, expected) in cases {
            assert_eq!(
                summarise(StatusCode::UNAUTHORIZED, body, "sk-secret"),
                expected
            );
        }
        let long = format!(r#"{{"message":"{}"}}"#, "x".repeat(500));
        assert!(
            summarise(StatusCode::BAD_GATEWAY, long.as_bytes(), "k")
                .chars()
                .count()
                < 260
        );
    }
}
