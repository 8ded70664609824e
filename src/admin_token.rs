//! The admin token: where it comes from, how it is checked, how it rotates.
//!
//! `SLUICEGATE_ADMIN_TOKEN` wins. Otherwise the token lives in
//! `<data-dir>/admin-token` (mode 0600), generated on first start. Only its
//! SHA-256 is kept in memory. If the file changes on disk (after
//! `sluicegate admin-token --rotate`), the running server notices on the next
//! check and reloads it, so rotation needs no restart.
//!
//! In a cluster the token is replicated as its hash (`Command::SetAdminToken`):
//! once the cluster has one, that hash is the one every node accepts, and
//! a rotation on any node (the file changing) is proposed to all of them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// The file name of the generated token inside the data dir.
pub const TOKEN_FILE: &str = "admin-token";

pub struct AdminAuth {
    source: Source,
    current: Mutex<Current>,
    /// Cluster mode: the replicated hash, which wins over `current` once set.
    replicated: Mutex<Option<[u8; 32]>>,
}

enum Source {
    Env,
    File(PathBuf),
}

struct Current {
    hash: [u8; 32],
    modified: Option<SystemTime>,
    /// The file changed since [`AdminAuth::take_rotation`] last looked.
    rotated: bool,
}

impl AdminAuth {
    /// Uses `env_token` when given, otherwise the token file, creating it
    /// (and announcing where on stderr) if it does not exist yet.
    pub fn load(data_dir: &Path, env_token: Option<&str>) -> std::io::Result<AdminAuth> {
        if let Some(token) = env_token {
            return Ok(AdminAuth {
                source: Source::Env,
                current: Mutex::new(Current {
                    hash: digest(token),
                    modified: None,
                    rotated: false,
                }),
                replicated: Mutex::new(None),
            });
        }
        let path = data_dir.join(TOKEN_FILE);
        if !path.exists() {
            write_token_file(&path, &generate())?;
            eprintln!("sluicegate: generated an admin token in {}", path.display());
        }
        let (token, modified) = read_token_file(&path)?;
        Ok(AdminAuth {
            source: Source::File(path),
            current: Mutex::new(Current {
                hash: digest(&token),
                modified,
                rotated: false,
            }),
            replicated: Mutex::new(None),
        })
    }

    /// Whether `presented` is the admin token, compared in constant time.
    /// The token file is stat'ed first, so a rotated token takes effect (and
    /// the old one stops working) at once.
    pub fn verify(&self, presented: &str) -> bool {
        self.reload_if_changed();
        self.matches(&digest(presented))
    }

    /// The SHA-256 of the current token (rotations picked up first): the
    /// root from which session cookies are signed (`session`). It is secret
    /// as the token is, never leaves the process, and is the same on every
    /// node that shares the token, so their sessions are interchangeable.
    pub fn token_digest(&self) -> [u8; 32] {
        self.reload_if_changed();
        self.effective()
    }

    /// The hash in force: the cluster's once replicated, else this node's.
    fn effective(&self) -> [u8; 32] {
        let replicated = match self.replicated.lock() {
            Ok(replicated) => *replicated,
            Err(poisoned) => *poisoned.into_inner(),
        };
        replicated.unwrap_or_else(|| self.local_digest())
    }

    /// The SHA-256 of this node's own token (env or file), whatever the
    /// cluster's is.
    pub fn local_digest(&self) -> [u8; 32] {
        match self.current.lock() {
            Ok(current) => current.hash,
            // Nothing panics while holding the lock; the data is intact anyway.
            Err(poisoned) => poisoned.into_inner().hash,
        }
    }

    /// Whether this node's token came from `SLUICEGATE_ADMIN_TOKEN`.
    pub fn from_env(&self) -> bool {
        matches!(self.source, Source::Env)
    }

    /// Cluster mode: installs the replicated hash (applied from the log).
    pub fn set_replicated(&self, hash: [u8; 32]) {
        match self.replicated.lock() {
            Ok(mut replicated) => *replicated = Some(hash),
            Err(poisoned) => *poisoned.into_inner() = Some(hash),
        }
    }

    /// Installs a replicated hash given as 64 hex digits (as stored and
    /// replicated); anything else is ignored and reported as `false`.
    pub fn set_replicated_hex(&self, sha256: &str) -> bool {
        let mut hash = [0u8; 32];
        let valid = hex::decode_to_slice(sha256, &mut hash).is_ok();
        if valid {
            self.set_replicated(hash);
        }
        valid
    }

    /// The replicated hash, if the cluster has one.
    pub fn replicated(&self) -> Option<[u8; 32]> {
        self.replicated
            .lock()
            .ok()
            .and_then(|replicated| *replicated)
    }

    /// Cluster mode: the new local hash if the token file was rotated since
    /// the last call (which clears the mark), so the rotation can be
    /// proposed to every node.
    pub fn take_rotation(&self) -> Option<[u8; 32]> {
        self.reload_if_changed();
        let mut current = self.current.lock().ok()?;
        if !current.rotated {
            return None;
        }
        current.rotated = false;
        Some(current.hash)
    }

    fn matches(&self, presented: &[u8; 32]) -> bool {
        constant_time_eq(&self.effective(), presented)
    }

    /// Re-reads the token file if its modification time moved. Returns
    /// whether a new token was loaded.
    fn reload_if_changed(&self) -> bool {
        let Source::File(path) = &self.source else {
            return false;
        };
        let Ok((token, modified)) = read_token_file(path) else {
            return false;
        };
        let Ok(mut current) = self.current.lock() else {
            return false;
        };
        if current.modified == modified {
            return false;
        }
        *current = Current {
            hash: digest(&token),
            modified,
            rotated: true,
        };
        true
    }
}

/// Replaces the token in `<data-dir>/admin-token` and returns the new one.
pub fn rotate(data_dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(data_dir)?;
    let token = generate();
    write_token_file(&data_dir.join(TOKEN_FILE), &token)?;
    Ok(token)
}

/// A new random token: `sga-` + 40 alphanumeric characters.
pub fn generate() -> String {
    let body: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("sga-{body}")
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

fn constant_time_eq(left: &[u8; 32], right: &[u8; 32]) -> bool {
    left.iter()
        .zip(right.iter())
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

fn read_token_file(path: &Path) -> std::io::Result<(String, Option<SystemTime>)> {
    let token = std::fs::read_to_string(path)?.trim().to_string();
    if token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is empty", path.display()),
        ));
    }
    let modified = std::fs::metadata(path)?.modified().ok();
    Ok((token, modified))
}

/// Writes the token through a temporary file renamed into place, created
/// with mode 0600 so it is never readable by others, even briefly.
fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_is_persisted_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = AdminAuth::load(dir.path(), None).unwrap();
        let token = std::fs::read_to_string(dir.path().join(TOKEN_FILE)).unwrap();
        assert!(first.verify(token.trim()));
        assert!(!first.verify("wrong"));
        let second = AdminAuth::load(dir.path(), None).unwrap();
        assert!(second.verify(token.trim()));
    }

    #[test]
    fn rotation_is_picked_up_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let auth = AdminAuth::load(dir.path(), None).unwrap();
        let old = std::fs::read_to_string(dir.path().join(TOKEN_FILE)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let new = rotate(dir.path()).unwrap();
        assert!(auth.verify(&new));
        assert!(!auth.verify(old.trim()));
    }

    #[cfg(unix)]
    #[test]
    fn token_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        AdminAuth::load(dir.path(), None).unwrap();
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn env_token_wins() {
        let dir = tempfile::tempdir().unwrap();
        let auth = AdminAuth::load(dir.path(), Some("from-env")).unwrap();
        assert!(auth.verify("from-env"));
        assert!(!dir.path().join(TOKEN_FILE).exists());
    }
}
