//! The cluster shared secret and the per-request authenticator every
//! internal RPC carries.
//!
//! A request is signed, not merely tagged: the header
//! `x-sluicegate-cluster: v1.<node_id>.<unix_ms>.<nonce>.<mac>` carries
//! `HMAC-SHA256(key, "v1|node_id|unix_ms|nonce|METHOD|path|hex(sha256(body))")`,
//! where `key` is derived from the secret. A bearer token would be enough
//! against outsiders on a TLS link, but internal RPC may run in plaintext
//! on a private network; a MAC bound to the body and a fresh timestamp
//! means an eavesdropper can neither forge a request nor reuse one. A
//! timestamp more than [`REPLAY_WINDOW_MS`] from our clock is refused, and
//! within the window each `(node_id, nonce)` is accepted once.
//!
//! This module never logs or prints the secret; [`ClusterSecret`]'s
//! `Debug` is redacted.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The header that carries the authenticator.
pub const HEADER: &str = "x-sluicegate-cluster";
/// How far a request's timestamp may be from our clock, either way.
pub const REPLAY_WINDOW_MS: u64 = 30_000;
/// Entropy the secret must carry, by the estimate in [`entropy_bits`].
pub const MIN_ENTROPY_BITS: usize = 256;
const VERSION: &str = "v1";

/// Why a secret file was refused or a request not authenticated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("reading the cluster secret file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "the cluster secret in {path} is too weak: about {bits} bits of entropy, at least \
         {MIN_ENTROPY_BITS} are required (e.g. `openssl rand -hex 32` gives 64 hex characters)"
    )]
    Weak { path: String, bits: usize },
    #[error("no cluster authenticator")]
    Missing,
    #[error("malformed cluster authenticator")]
    Malformed,
    #[error("cluster authenticator timestamp is {skew_ms} ms away from this node's clock")]
    Stale { skew_ms: u64 },
    #[error("cluster authenticator does not match")]
    BadMac,
    #[error("cluster authenticator was already used")]
    Replayed,
}

/// The shared secret, as a derived MAC key.
#[derive(Clone)]
pub struct ClusterSecret {
    key: [u8; 32],
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ClusterSecret(<redacted>)")
    }
}

impl ClusterSecret {
    /// Reads `--cluster-secret-file`: trimmed, and refused when weak.
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let shown = path.display().to_string();
        let raw = std::fs::read(path).map_err(|error| Error::Read {
            path: shown.clone(),
            reason: error.to_string(),
        })?;
        warn_if_readable_by_others(path);
        Self::from_bytes(&raw).map_err(|bits| Error::Weak { path: shown, bits })
    }

    /// Builds the key from secret text; `Err(bits)` when it is too weak.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, usize> {
        let secret = raw.trim_ascii();
        let bits = entropy_bits(secret);
        if bits < MIN_ENTROPY_BITS {
            return Err(bits);
        }
        // Domain separation: the raw secret is never used as a key itself.
        let key = mac_over(&Sha256::digest(secret), &[b"sluicegate cluster rpc v1"]);
        Ok(Self { key })
    }

    /// The header value for a request from `node_id` at `unix_ms`.
    pub fn sign(
        &self,
        node_id: u64,
        unix_ms: u64,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> String {
        let nonce: u64 = rand::random();
        let nonce = format!("{nonce:016x}");
        let mac = self.mac(node_id, unix_ms, &nonce, method, path, body);
        format!("{VERSION}.{node_id}.{unix_ms}.{nonce}.{}", hex::encode(mac))
    }

    /// Checks a header value; returns the sender's node id. Constant-time
    /// on the MAC. Does not check for replays; [`Verifier`] does.
    pub fn verify(
        &self,
        header: Option<&str>,
        now_ms: u64,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Authenticated, Error> {
        let header = header.ok_or(Error::Missing)?;
        let parts: Vec<&str> = header.split('.').collect();
        let [VERSION, node_id, unix_ms, nonce, mac] = parts[..] else {
            return Err(Error::Malformed);
        };
        let node_id: u64 = node_id.parse().map_err(|_| Error::Malformed)?;
        let unix_ms: u64 = unix_ms.parse().map_err(|_| Error::Malformed)?;
        let nonce_value = u64::from_str_radix(nonce, 16).map_err(|_| Error::Malformed)?;
        let mac = hex::decode(mac).map_err(|_| Error::Malformed)?;
        let skew_ms = now_ms.abs_diff(unix_ms);
        if skew_ms > REPLAY_WINDOW_MS {
            return Err(Error::Stale { skew_ms });
        }
        let verifier = self.mac_state(node_id, unix_ms, nonce, method, path, body);
        // `verify_slice` compares in constant time.
        verifier.verify_slice(&mac).map_err(|_| Error::BadMac)?;
        Ok(Authenticated {
            node_id,
            nonce: nonce_value,
        })
    }

    fn mac(
        &self,
        node_id: u64,
        ms: u64,
        nonce: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> [u8; 32] {
        self.mac_state(node_id, ms, nonce, method, path, body)
            .finalize()
            .into_bytes()
            .into()
    }

    fn mac_state(
        &self,
        node_id: u64,
        unix_ms: u64,
        nonce: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> HmacSha256 {
        let message = format!(
            "{VERSION}|{node_id}|{unix_ms}|{nonce}|{method}|{path}|{}",
            hex::encode(Sha256::digest(body))
        );
        let mut state = hmac_state(&self.key);
        state.update(message.as_bytes());
        state
    }
}

/// A request that passed [`ClusterSecret::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// The node id the sender signed with.
    pub node_id: u64,
    nonce: u64,
}

/// [`ClusterSecret::verify`] plus a memory of the nonces seen within the
/// replay window, so an exact copy of a request is refused.
#[derive(Debug)]
pub struct Verifier {
    secret: ClusterSecret,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// `(forget_at_ms, key)`, in arrival order, so expiry pops the front.
    order: VecDeque<(u64, (u64, u64))>,
    keys: HashSet<(u64, u64)>,
}

impl Verifier {
    pub fn new(secret: ClusterSecret) -> Self {
        Self {
            secret,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Verifies and records the request; see [`ClusterSecret::verify`].
    pub fn check(
        &self,
        header: Option<&str>,
        now_ms: u64,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Authenticated, Error> {
        let authenticated = self.secret.verify(header, now_ms, method, path, body)?;
        let Ok(mut seen) = self.seen.lock() else {
            return Err(Error::Replayed);
        };
        while seen
            .order
            .front()
            .is_some_and(|(forget_at, _)| *forget_at < now_ms)
        {
            if let Some((_, key)) = seen.order.pop_front() {
                seen.keys.remove(&key);
            }
        }
        let key = (authenticated.node_id, authenticated.nonce);
        if !seen.keys.insert(key) {
            return Err(Error::Replayed);
        }
        // A timestamp accepted now stays acceptable for at most two windows.
        seen.order.push_back((now_ms + 2 * REPLAY_WINDOW_MS, key));
        Ok(authenticated)
    }

    /// The secret, to sign outgoing requests with.
    pub fn secret(&self) -> &ClusterSecret {
        &self.secret
    }
}

/// Milliseconds since the Unix epoch by the wall clock (0 if before it).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A conservative estimate of the secret's entropy: bits per character by
/// the narrowest alphabet it fits (hex 4, base64 6, other 8) times its
/// length, and nothing for a secret of fewer than 8 distinct bytes. A
/// heuristic: it refuses short and obviously patterned secrets, it cannot
/// prove a long one random.
pub fn entropy_bits(secret: &[u8]) -> usize {
    let distinct: HashSet<u8> = secret.iter().copied().collect();
    if distinct.len() < 8 {
        return 0;
    }
    let per_char = if secret.iter().all(u8::is_ascii_hexdigit) {
        4
    } else if secret
        .iter()
        .all(|byte| byte.is_ascii_alphanumeric() || b"+/-_=".contains(byte))
    {
        6
    } else {
        8
    };
    secret.len() * per_char
}

fn hmac_state(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length, so this never fails; the fallback
    // keeps the function total without a panic.
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| HmacSha256::new(&Default::default()))
}

fn mac_over(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut state = hmac_state(key);
    for part in parts {
        state.update(part);
    }
    state.finalize().into_bytes().into()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the cluster secret file is readable by group or others; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"3f9c1a7be2d4406f8a51c0de9b7e2a4410f3c6d8e9a7b5c3d1e0f2a4b6c8d0e2";
    const NOW: u64 = 1_750_000_000_000;

    fn secret() -> ClusterSecret {
        ClusterSecret::from_bytes(GOOD).unwrap()
    }

    /// A signed request verifies and names its sender.
    #[test]
    fn good_authenticator_is_accepted() {
        let header = secret().sign(2, NOW, "POST", "/raft/vote", b"{}");
        let verifier = Verifier::new(secret());
        let authenticated = verifier
            .check(Some(&header), NOW + 5, "POST", "/raft/vote", b"{}")
            .unwrap();
        assert_eq!(authenticated.node_id, 2);
    }

    /// A different secret, body, path or sender id fails the MAC.
    #[test]
    fn wrong_secret_or_tampered_request_is_refused() {
        let other =
            ClusterSecret::from_bytes(b"Zq8w3Lr5Tn7Vp9Xb2Dc4Fg6Hj8Kk0Mm1Nn3Pp5Rr7Ss9").unwrap();
        let header = other.sign(2, NOW, "POST", "/raft/vote", b"{}");
        let verifier = Verifier::new(secret());
        assert_eq!(
            verifier.check(Some(&header), NOW, "POST", "/raft/vote", b"{}"),
            Err(Error::BadMac)
        );

        let header = secret().sign(2, NOW, "POST", "/raft/vote", b"{}");
        assert_eq!(
            verifier.check(Some(&header), NOW, "POST", "/raft/vote", b"{\"x\":1}"),
            Err(Error::BadMac)
        );
        assert_eq!(
            verifier.check(Some(&header), NOW, "POST", "/raft/append", b"{}"),
            Err(Error::BadMac)
        );
        let forged_sender = header.replacen(".2.", ".3.", 1);
        assert_eq!(
            verifier.check(Some(&forged_sender), NOW, "POST", "/raft/vote", b"{}"),
            Err(Error::BadMac)
        );
    }

    /// No header, or garbage, is refused before any MAC work.
    #[test]
    fn missing_or_malformed_authenticator_is_refused() {
        let verifier = Verifier::new(secret());
        assert_eq!(
            verifier.check(None, NOW, "POST", "/", b""),
            Err(Error::Missing)
        );
        for bad in [
            "",
            "v1.2.3",
            "v2.1.1.00.00",
            "v1.x.1.00.00",
            "v1.1.1.zz.00",
            "v1.1.1.00.zz",
        ] {
            assert_eq!(
                verifier.check(Some(bad), NOW, "POST", "/", b""),
                Err(Error::Malformed),
                "{bad}"
            );
        }
    }

    /// The exact same request is accepted once within the window.
    #[test]
    fn replayed_authenticator_is_refused() {
        let header = secret().sign(1, NOW, "POST", "/raft/append", b"[]");
        let verifier = Verifier::new(secret());
        assert!(
            verifier
                .check(Some(&header), NOW, "POST", "/raft/append", b"[]")
                .is_ok()
        );
        assert_eq!(
            verifier.check(Some(&header), NOW + 1_000, "POST", "/raft/append", b"[]"),
            Err(Error::Replayed)
        );
    }

    /// A timestamp outside ±30 s is refused, even with a valid MAC.
    #[test]
    fn stale_or_future_authenticator_is_refused() {
        let verifier = Verifier::new(secret());
        let old = secret().sign(1, NOW - REPLAY_WINDOW_MS - 1, "POST", "/", b"");
        assert!(matches!(
            verifier.check(Some(&old), NOW, "POST", "/", b""),
            Err(Error::Stale { .. })
        ));
        let future = secret().sign(1, NOW + REPLAY_WINDOW_MS + 1, "POST", "/", b"");
        assert!(matches!(
            verifier.check(Some(&future), NOW, "POST", "/", b""),
            Err(Error::Stale { .. })
        ));
        let edge = secret().sign(1, NOW - REPLAY_WINDOW_MS, "POST", "/", b"");
        assert!(verifier.check(Some(&edge), NOW, "POST", "/", b"").is_ok());
    }

    /// Seen nonces are forgotten once no timestamp could still be fresh.
    #[test]
    fn replay_memory_is_bounded_by_the_window() {
        let verifier = Verifier::new(secret());
        for offset in 0..10 {
            let header = secret().sign(1, NOW + offset, "POST", "/", b"");
            assert!(
                verifier
                    .check(Some(&header), NOW + offset, "POST", "/", b"")
                    .is_ok()
            );
        }
        let later = NOW + 3 * REPLAY_WINDOW_MS;
        let header = secret().sign(1, later, "POST", "/", b"");
        assert!(
            verifier
                .check(Some(&header), later, "POST", "/", b"")
                .is_ok()
        );
        assert_eq!(verifier.seen.lock().unwrap().keys.len(), 1);
    }

    /// Short, low-alphabet or patterned secrets are refused; trimmed files load.
    #[test]
    fn weak_secrets_are_refused_and_files_are_trimmed() {
        assert!(ClusterSecret::from_bytes(b"correct horse").is_err());
        assert!(ClusterSecret::from_bytes(&[b'a'; 100]).is_err());
        // 32 hex characters are only 128 bits.
        assert!(ClusterSecret::from_bytes(&GOOD[..32]).is_err());
        assert!(ClusterSecret::from_bytes(&GOOD[..64]).is_ok());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, [GOOD, b"\n"].concat()).unwrap();
        let loaded = ClusterSecret::from_file(&path).unwrap();
        let header = loaded.sign(1, NOW, "POST", "/", b"");
        assert!(
            secret()
                .verify(Some(&header), NOW, "POST", "/", b"")
                .is_ok()
        );
        assert_eq!(format!("{loaded:?}"), "ClusterSecret(<redacted>)");

        std::fs::write(&path, b"short\n").unwrap();
        let error = ClusterSecret::from_file(&path).unwrap_err();
        assert!(matches!(error, Error::Weak { .. }));
        assert!(error.to_string().contains("openssl rand -hex 32"));
        let missing = ClusterSecret::from_file(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, Error::Read { .. }));
    }
}
