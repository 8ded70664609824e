//! Channel keys at rest: the data-dir key file and the sealed envelope.
//!
//! Upstream keys are stored sealed with XChaCha20-Poly1305 under a 32-byte
//! key kept in `<data-dir>/secret.key` (64 hex digits, mode 0600, created on
//! first start), so a leaked `sluicegate.db` alone leaks no upstream key.
//! A sealed value is the text `enc:v1:<base64(nonce ‖ ciphertext)>` with a
//! random 24-byte nonce, and its associated data names the row and column
//! (`sluicegate/channels/{id}/keys`): a sealed value copied onto another
//! channel does not open there.
//!
//! The key reaches SQL as two functions registered on each connection
//! ([`register`]): `seal_secret(id, text)` and `open_secret(id, text)`. So
//! the channel queries stay plain SQL, the migration that seals existing
//! rows is one `UPDATE`, and a connection opened without the key cannot
//! read or write keys at all ("no such function") rather than silently
//! writing them in clear. Both are `DIRECTONLY`: triggers or views in a
//! crafted database file cannot call them.
//!
//! This module never logs or prints the key or a plaintext; errors name
//! files and channels, never contents.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use rusqlite::Connection;
use rusqlite::functions::{Context, FunctionFlags};
use zeroize::Zeroizing;

/// The key file's name inside the data dir.
pub const KEY_FILE: &str = "secret.key";
/// The prefix every sealed value starts with; the version names the cipher.
pub const ENVELOPE_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
/// Poly1305's tag.
const TAG_LEN: usize = 16;

/// Why a key file was refused or a sealed value did not open.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("reading the key file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error(
        "the key file {path} has mode {mode:04o}, wider than 0600; run `chmod 600 {path}` \
         (it protects every upstream key in the database)"
    )]
    Permissions { path: String, mode: u32 },
    #[error("the key file {path} is malformed: it must hold exactly 64 hex digits")]
    Malformed { path: String },
    #[error(
        "the key file {path} is missing, but the database holds encrypted channel keys; \
         restore it from your backup (without it those keys cannot be read)"
    )]
    Missing { path: String },
    #[error(
        "channel {channel} keys cannot be decrypted with {path}: wrong key file, or the \
         database was altered"
    )]
    WrongKey { channel: i64, path: String },
    #[error("channel {channel} keys are too long to seal")]
    Seal { channel: i64 },
    #[error("channel {channel} keys are stored in clear, not sealed")]
    NotSealed { channel: i64 },
    #[error("channel {channel} keys are not a valid sealed value")]
    MalformedEnvelope { channel: i64 },
    #[error("{what} cannot be decrypted: wrong key file, or the file was altered")]
    Blob { what: String },
}

/// The first bytes of a blob sealed by [`SecretKey::seal_bytes`]. Plain
/// JSON starts with `{` or `[`, never with this.
pub const BLOB_MAGIC: &[u8; 4] = b"SGE1";

/// The data-dir key, as a ready cipher. Cheap to clone; its `Debug` is
/// redacted and the cipher wipes the key when dropped.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    /// Where it came from, for error messages.
    path: PathBuf,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({}, redacted)", self.path.display())
    }
}

impl SecretKey {
    /// Reads `<data_dir>/secret.key`; `Ok(None)` if it does not exist. A
    /// file readable by group or others, or not exactly 64 hex digits, is
    /// refused.
    pub fn load(data_dir: &Path) -> Result<Option<SecretKey>, SecretError> {
        let path = data_dir.join(KEY_FILE);
        let shown = path.display().to_string();
        let read_error = |error: std::io::Error| SecretError::Read {
            path: shown.clone(),
            reason: error.to_string(),
        };
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(read_error(error)),
        };
        check_mode(&metadata, &shown)?;
        let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(read_error)?);
        let mut bytes = Zeroizing::new([0u8; 32]);
        let digits = text.trim();
        if digits.len() != 64 || hex::decode_to_slice(digits, bytes.as_mut_slice()).is_err() {
            return Err(SecretError::Malformed { path: shown });
        }
        Ok(Some(SecretKey::from_bytes(&bytes, path)))
    }

    /// Writes a new random key to `<data_dir>/secret.key` (mode 0600, through
    /// a temporary file renamed into place) and returns it. Refuses to
    /// replace an existing file.
    pub fn create(data_dir: &Path) -> Result<SecretKey, SecretError> {
        let path = data_dir.join(KEY_FILE);
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut_slice());
        let text = Zeroizing::new(format!("{}\n", hex::encode(bytes.as_slice())));
        write_private(&path, text.as_bytes()).map_err(|error| SecretError::Read {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        tracing::info!(path = %path.display(), "generated the key that encrypts channel keys; back it up separately from the database");
        Ok(SecretKey::from_bytes(&bytes, path))
    }

    /// A key from raw bytes (tests, and the two constructors above).
    pub fn from_bytes(bytes: &[u8; 32], path: PathBuf) -> SecretKey {
        SecretKey {
            cipher: XChaCha20Poly1305::new(Key::from_slice(bytes)),
            path,
        }
    }

    /// Seals `plaintext` for `channel`'s keys column. Random nonce, so two
    /// seals of the same text differ.
    pub fn seal(&self, channel: i64, plaintext: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(channel);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: aad.as_bytes(),
        };
        // Encryption fails only for messages beyond 256 GiB.
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| SecretError::Seal { channel })?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{ENVELOPE_PREFIX}{}", BASE64.encode(sealed)))
    }

    /// Opens a value sealed by [`SecretKey::seal`] for the same `channel`.
    pub fn open(&self, channel: i64, envelope: &str) -> Result<String, SecretError> {
        let Some(encoded) = envelope.strip_prefix(ENVELOPE_PREFIX) else {
            return Err(if is_sealed(envelope) {
                SecretError::MalformedEnvelope { channel }
            } else {
                SecretError::NotSealed { channel }
            });
        };
        let sealed = BASE64
            .decode(encoded)
            .map_err(|_| SecretError::MalformedEnvelope { channel })?;
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::MalformedEnvelope { channel });
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = associated_data(channel);
        let payload = Payload {
            msg: ciphertext,
            aad: aad.as_bytes(),
        };
        let wrong_key = || SecretError::WrongKey {
            channel,
            path: self.path.display().to_string(),
        };
        let plaintext = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| wrong_key())?;
        String::from_utf8(plaintext).map_err(|_| wrong_key())
    }
}

impl SecretKey {
    /// Seals a whole blob (a raft log entry, the raft snapshot file) bound
    /// to `context`: `BLOB_MAGIC ‖ nonce ‖ ciphertext`.
    pub fn seal_bytes(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = format!("sluicegate/{context}");
        let payload = Payload {
            msg: plaintext,
            aad: aad.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| SecretError::Blob {
                what: context.to_string(),
            })?;
        let mut sealed = Vec::with_capacity(BLOB_MAGIC.len() + NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(BLOB_MAGIC);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens a blob: sealed ones are decrypted; anything not starting with
    /// [`BLOB_MAGIC`] (written before blobs were sealed) passes unchanged.
    pub fn open_bytes<'a>(
        &self,
        context: &str,
        stored: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>, SecretError> {
        let Some(sealed) = stored.strip_prefix(BLOB_MAGIC.as_slice()) else {
            return Ok(std::borrow::Cow::Borrowed(stored));
        };
        let failed = || SecretError::Blob {
            what: context.to_string(),
        };
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(failed());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = format!("sluicegate/{context}");
        let payload = Payload {
            msg: ciphertext,
            aad: aad.as_bytes(),
        };
        self.cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map(std::borrow::Cow::Owned)
            .map_err(|_| failed())
    }
}

/// Whether a stored value is sealed (of any envelope version). Plain keys
/// are a JSON array, so they start with `[`, never with `enc:`.
pub fn is_sealed(value: &str) -> bool {
    value.starts_with("enc:")
}

fn associated_data(channel: i64) -> String {
    format!("sluicegate/channels/{channel}/keys")
}

/// Registers `seal_secret(id, text)` and `open_secret(id, text)` on
/// `connection`, both bound to `key`.
pub fn register(connection: &Connection, key: &SecretKey) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    let sealer = key.clone();
    connection.create_scalar_function("seal_secret", 2, flags, move |context| {
        let (channel, text) = arguments(context)?;
        sealer.seal(channel, &text).map_err(as_sqlite_error)
    })?;
    let opener = key.clone();
    connection.create_scalar_function(
        "open_secret",
        2,
        flags | FunctionFlags::SQLITE_DETERMINISTIC,
        move |context| {
            let (channel, text) = arguments(context)?;
            opener.open(channel, &text).map_err(as_sqlite_error)
        },
    )
}

/// Reported as corruption rather than as rusqlite's default constraint
/// failure, so a replicated apply stops instead of answering the command
/// with an error other nodes (with their own keys) would not share (see
/// `store::replicated::is_deterministic`).
fn as_sqlite_error(error: SecretError) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(error.to_string()),
    )
}

fn arguments(context: &Context<'_>) -> rusqlite::Result<(i64, String)> {
    Ok((context.get(0)?, context.get(1)?))
}

#[cfg(unix)]
fn check_mode(metadata: &std::fs::Metadata, path: &str) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & !0o600 != 0 {
        return Err(SecretError::Permissions {
            path: path.to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_metadata: &std::fs::Metadata, _path: &str) -> Result<(), SecretError> {
    Ok(())
}

/// Creates `path` with `contents`, readable by the owner only from the
/// first byte, through a temporary file renamed into place. An existing
/// key file is never replaced.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if path.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "refusing to replace an existing key file",
        ));
    }
    crate::durable::write_atomic(path, contents, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes(&[byte; 32], PathBuf::from("test.key"))
    }

    /// Blobs: round trip, bound to their context and key, tamper-evident;
    /// bytes without the magic (written before sealing) pass unchanged.
    #[test]
    fn blobs_seal_open_and_pass_legacy_bytes() {
        let key = key(3);
        let plain = br#"{"keys":["sk-secret"]}"#;
        let sealed = key.seal_bytes("raft-log", plain).unwrap();
        assert!(sealed.starts_with(BLOB_MAGIC));
        assert!(!sealed.windows(9).any(|window| window == b"sk-secret"));
        assert_eq!(&*key.open_bytes("raft-log", &sealed).unwrap(), plain);
        assert!(key.open_bytes("raft-snapshot", &sealed).is_err());
        assert!(
            super::tests::key(4)
                .open_bytes("raft-log", &sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.open_bytes("raft-log", &tampered).is_err());
        assert!(key.open_bytes("raft-log", &sealed[..10]).is_err());
        assert_eq!(&*key.open_bytes("raft-log", plain).unwrap(), plain);
    }

    /// A sealed value opens to the same text, and sealing twice gives two
    /// different envelopes (fresh nonces).
    #[test]
    fn seal_and_open_round_trip() {
        let key = key(1);
        let plain = r#"["sk-a","sk-b"]"#;
        let first = key.seal(7, plain).unwrap();
        let second = key.seal(7, plain).unwrap();
        assert!(first.starts_with(ENVELOPE_PREFIX), "{first}");
        assert!(!first.contains("sk-a"));
        assert_ne!(first, second);
        assert_eq!(key.open(7, &first).unwrap(), plain);
        assert_eq!(key.open(7, &second).unwrap(), plain);
    }

    /// Any flipped byte in the nonce or ciphertext, or another channel's
    /// id, makes opening fail.
    #[test]
    fn tampering_is_detected() {
        let key = key(1);
        let sealed = key.seal(7, "[\"sk-a\"]").unwrap();
        let raw = BASE64.decode(&sealed[ENVELOPE_PREFIX.len()..]).unwrap();
        for index in [0, NONCE_LEN, raw.len() - 1] {
            let mut altered = raw.clone();
            altered[index] ^= 0x01;
            let envelope = format!("{ENVELOPE_PREFIX}{}", BASE64.encode(&altered));
            assert!(
                matches!(key.open(7, &envelope), Err(SecretError::WrongKey { .. })),
                "byte {index}"
            );
        }
        assert_eq!(
            key.open(8, &sealed),
            Err(SecretError::WrongKey {
                channel: 8,
                path: "test.key".into()
            })
        );
    }

    /// Another key cannot open a value.
    #[test]
    fn wrong_key_is_refused() {
        let sealed = key(1).seal(7, "[\"sk-a\"]").unwrap();
        assert!(matches!(
            key(2).open(7, &sealed),
            Err(SecretError::WrongKey { channel: 7, .. })
        ));
    }

    /// Truncated, badly encoded, unknown-version and plain values are
    /// refused with their own errors, never opened.
    #[test]
    fn malformed_envelopes_are_refused() {
        let key = key(1);
        let malformed = SecretError::MalformedEnvelope { channel: 1 };
        for envelope in [
            "enc:v1:",
            "enc:v1:not base64!",
            "enc:v1:AAAA",
            "enc:v2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(key.open(1, envelope), Err(malformed.clone()), "{envelope}");
        }
        assert_eq!(
            key.open(1, "[\"sk-a\"]"),
            Err(SecretError::NotSealed { channel: 1 })
        );
    }

    /// A created key file is 64 hex digits, mode 0600, and loads back as
    /// the same key; a second `create` refuses to replace it.
    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SecretKey::load(dir.path()).unwrap().is_none());
        let created = SecretKey::create(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap();
        assert_eq!(text.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = SecretKey::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.open(3, &created.seal(3, "x").unwrap()).unwrap(), "x");
        assert!(SecretKey::create(dir.path()).is_err());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap(),
            text
        );
    }

    /// A key file readable by group or others, or not 64 hex digits, is
    /// refused, and the error never shows its content.
    #[cfg(unix)]
    #[test]
    fn loose_or_malformed_key_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        SecretKey::create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let content = std::fs::read_to_string(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = SecretKey::load(dir.path()).unwrap_err();
        assert!(matches!(
            error,
            SecretError::Permissions { mode: 0o644, .. }
        ));
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(SecretKey::load(dir.path()).unwrap().is_some());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        for bad in [
            "",
            "abcd\n",
            &"zz".repeat(32),
            &format!("{}00", content.trim()),
        ] {
            std::fs::write(&path, bad).unwrap();
            let error = SecretKey::load(dir.path()).unwrap_err();
            assert!(matches!(error, SecretError::Malformed { .. }), "{bad:?}");
            assert!(!error.to_string().contains(content.trim()));
        }
    }
}
