//! The web UI's sign-in: stateless signed session cookies, their CSRF
//! tokens, sign-out, and (in `limiter`) the per-IP limit on wrong tokens.
//!
//! A cookie is `<expiry>.<nonce>.<mac>`: the expiry in Unix seconds, 16
//! random bytes, and an HMAC-SHA256 over both. The HMAC key is derived from
//! the admin token's SHA-256 ([`crate::admin_token::AdminAuth::token_digest`]),
//! so rotating the admin token invalidates every session, and nodes sharing
//! the token accept each other's cookies without sharing any state. The
//! CSRF token is an HMAC of the nonce under a second derived key: the UI
//! reads it from the sign-in response (the cookie itself is HttpOnly) and
//! echoes it in `x-csrf-token`.
//!
//! Stateless cookies cannot be deleted, so sign-out remembers the nonce in
//! [`Sessions`] until the cookie would have expired anyway. That memory is
//! per node and bounded; see [`MAX_REVOKED`].

pub mod limiter;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use limiter::FailureLimiter;

/// The cookie's name.
pub const COOKIE_NAME: &str = "sg_session";
/// How long a session lasts: 12 hours.
pub const LIFETIME_SECONDS: i64 = 12 * 60 * 60;
/// Signed-out sessions remembered at most. Past this, the one closest to
/// its expiry is forgotten first (it could be replayed for what is left of
/// its 12 hours, by someone who already holds the cookie).
pub const MAX_REVOKED: usize = 10_000;

type HmacSha256 = Hmac<Sha256>;

/// A session a valid cookie proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub nonce: [u8; 16],
    pub expires_at: DateTime<Utc>,
}

/// Issues and checks cookies, and remembers sign-outs until they expire.
#[derive(Default)]
pub struct Sessions {
    revoked: Mutex<HashMap<[u8; 16], DateTime<Utc>>>,
}

impl Sessions {
    /// A new session and its cookie value.
    pub fn issue(&self, digest: &[u8; 32], now: DateTime<Utc>) -> (String, Session) {
        let session = Session {
            nonce: rand::random(),
            expires_at: now + TimeDelta::seconds(LIFETIME_SECONDS),
        };
        let payload = payload(&session);
        let mac = hex::encode(sign(&signing_key(digest), payload.as_bytes()));
        (format!("{payload}.{mac}"), session)
    }

    /// The session `value` proves, if it is well-formed, signed with the
    /// current admin token, unexpired and not signed out.
    pub fn verify(&self, digest: &[u8; 32], value: &str, now: DateTime<Utc>) -> Option<Session> {
        let (payload, mac) = value.rsplit_once('.')?;
        let (expiry, nonce) = payload.split_once('.')?;
        let mut verifier = HmacSha256::new_from_slice(&signing_key(digest)).ok()?;
        verifier.update(payload.as_bytes());
        verifier.verify_slice(&hex::decode(mac).ok()?).ok()?;
        let session = Session {
            nonce: hex::decode(nonce).ok()?.try_into().ok()?,
            expires_at: DateTime::from_timestamp(expiry.parse().ok()?, 0)?,
        };
        let fresh = session.expires_at > now
            && session.expires_at <= now + TimeDelta::seconds(LIFETIME_SECONDS);
        (fresh && !self.is_revoked(&session)).then_some(session)
    }

    /// The CSRF token that goes with `session`.
    pub fn csrf_token(digest: &[u8; 32], session: &Session) -> String {
        hex::encode(sign(&csrf_key(digest), &session.nonce))
    }

    /// Whether `presented` is `session`'s CSRF token (constant time).
    pub fn csrf_matches(digest: &[u8; 32], session: &Session, presented: &str) -> bool {
        let Ok(presented) = hex::decode(presented.trim()) else {
            return false;
        };
        let Ok(mut verifier) = HmacSha256::new_from_slice(&csrf_key(digest)) else {
            return false;
        };
        verifier.update(&session.nonce);
        verifier.verify_slice(&presented).is_ok()
    }

    /// Signs `session` out: its cookie is refused until it expires.
    pub fn revoke(&self, session: &Session, now: DateTime<Utc>) {
        let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        revoked.retain(|_, expires_at| *expires_at > now);
        if revoked.len() >= MAX_REVOKED
            && let Some(oldest) = revoked
                .iter()
                .min_by_key(|(_, expires_at)| **expires_at)
                .map(|(nonce, _)| *nonce)
        {
            revoked.remove(&oldest);
        }
        revoked.insert(session.nonce, session.expires_at);
    }

    fn is_revoked(&self, session: &Session) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&session.nonce)
    }
}

/// The value of the session cookie among a request's `Cookie` headers.
pub fn cookie_value(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
}

/// The `Set-Cookie` value that stores `value` for the session's lifetime.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE_NAME}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={LIFETIME_SECONDS}")
}

/// The `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

fn payload(session: &Session) -> String {
    format!(
        "{}.{}",
        session.expires_at.timestamp(),
        hex::encode(session.nonce)
    )
}

fn signing_key(digest: &[u8; 32]) -> [u8; 32] {
    sign(digest, b"sluicegate session cookie v1")
}

fn csrf_key(digest: &[u8; 32]) -> [u8; 32] {
    sign(digest, b"sluicegate csrf token v1")
}

fn sign(key: &[u8], message: &[u8]) -> [u8; 32] {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().into()
        }
        // HMAC takes keys of any length; this arm is unreachable.
        Err(_) => [0; 32],
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    /// An issued cookie verifies until it expires, and only under its token.
    #[test]
    fn cookies_verify_until_expiry_and_only_under_their_token() {
        let sessions = Sessions::default();
        let digest = [7; 32];
        let (cookie, session) = sessions.issue(&digest, now());
        assert_eq!(sessions.verify(&digest, &cookie, now()), Some(session));
        let late = now() + TimeDelta::seconds(LIFETIME_SECONDS);
        assert_eq!(sessions.verify(&digest, &cookie, late), None);
        assert_eq!(sessions.verify(&[8; 32], &cookie, now()), None);
    }

    /// Any change to a cookie breaks its signature.
    #[test]
    fn tampered_cookies_are_refused() {
        let sessions = Sessions::default();
        let digest = [7; 32];
        let (cookie, _) = sessions.issue(&digest, now());
        let (expiry, rest) = cookie.split_once('.').unwrap();
        let later: i64 = expiry.parse::<i64>().unwrap() + 60;
        for forged in [
            format!("{later}.{rest}"),
            format!("{cookie}0"),
            cookie.replacen('.', "", 1),
            String::new(),
            "1.2.3".to_string(),
        ] {
            assert_eq!(sessions.verify(&digest, &forged, now()), None, "{forged}");
        }
    }

    /// The CSRF token matches its own session only.
    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let sessions = Sessions::default();
        let digest = [7; 32];
        let (_, first) = sessions.issue(&digest, now());
        let (_, second) = sessions.issue(&digest, now());
        let token = Sessions::csrf_token(&digest, &first);
        assert!(Sessions::csrf_matches(&digest, &first, &token));
        assert!(!Sessions::csrf_matches(&digest, &second, &token));
        assert!(!Sessions::csrf_matches(&digest, &first, "zz"));
        assert!(!Sessions::csrf_matches(&[8; 32], &first, &token));
    }

    /// A signed-out cookie stays refused; the memory forgets expired ones.
    #[test]
    fn revoked_sessions_are_refused_and_pruned() {
        let sessions = Sessions::default();
        let digest = [7; 32];
        let (cookie, session) = sessions.issue(&digest, now());
        sessions.revoke(&session, now());
        assert_eq!(sessions.verify(&digest, &cookie, now()), None);
        let (_, other) = sessions.issue(&digest, now() + TimeDelta::hours(13));
        sessions.revoke(&other, now() + TimeDelta::hours(13));
        let remembered = sessions.revoked.lock().unwrap().len();
        assert_eq!(remembered, 1);
    }

    /// The cookie is found among several, in several headers.
    #[test]
    fn cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.append("cookie", "a=1; b=2".parse().unwrap());
        headers.append("cookie", "x=y; sg_session=abc.def.123".parse().unwrap());
        assert_eq!(cookie_value(&headers), Some("abc.def.123"));
        assert!(set_cookie("v").contains("HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"));
    }
}
