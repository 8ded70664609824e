//! The admin token: where it comes from, how it is checked, how it rotates.
//!
//! `SLUICEGATE_ADMIN_TOKEN` wins. Otherwise the token lives in
//! `<data-dir>/admin-token` (mode 0600), generated on first start. Only its
//! SHA-256 is kept in memory. [`watch`] re-reads the file every second, on
//! the blocking pool, and compares what it holds (not its modification
//! time, which a fast rotation can leave unchanged): after `sluicegate
//! admin-token --rotate` the new token is in force within a second, with
//! no restart, and checking a token never touches the disk.
//!
//! In a cluster the token is replicated as its hash (`ConfigCommand::SetAdminToken`):
//! once the cluster has one, that hash is the one every node accepts, and
//! a rotation on any node (the file changing) is proposed to all of them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

/// The file name of the generated token inside the data dir.
pub const TOKEN_FILE: &str = "admin-token";
/// How often [`watch`] looks at the token file.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

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
        let token = read_token_file(&path)?;
        Ok(AdminAuth {
            source: Source::File(path),
            current: Mutex::new(Current {
                hash: digest(&token),
                rotated: false,
            }),
            replicated: Mutex::new(None),
        })
    }

    /// Whether `presented` is the admin token, compared in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        self.matches(&digest(presented))
    }

    /// The SHA-256 of the token in force: the root from which session
    /// cookies are signed (`session`). It is secret as the token is, never
    /// leaves the process, and is the same on every node that shares the
    /// token, so their sessions are interchangeable.
    pub fn token_digest(&self) -> [u8; 32] {
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
        let mut current = self.current.lock().ok()?;
        if !current.rotated {
            return None;
        }
        current.rotated = false;
        Some(current.hash)
    }

    fn matches(&self, presented: &[u8; 32]) -> bool {
        self.effective().ct_eq(presented).into()
    }

    /// Re-reads the token file and installs its token if it differs from
    /// the one held. Blocking (file IO): [`watch`] runs it on the blocking
    /// pool. Returns whether a new token was loaded; an unreadable or empty
    /// file keeps the token held (and is logged).
    pub fn refresh(&self) -> bool {
        let Source::File(path) = &self.source else {
            return false;
        };
        let token = match read_token_file(path) {
            Ok(token) => token,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the admin token file; keeping the token in force");
                return false;
            }
        };
        let hash = digest(&token);
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if bool::from(current.hash.ct_eq(&hash)) {
            return false;
        }
        *current = Current {
            hash,
            rotated: true,
        };
        tracing::info!("admin token file changed; the new token is in force");
        true
    }
}

/// Re-reads the token file every [`WATCH_INTERVAL`] until `stop` (a token
/// from the environment has no file, and nothing to watch).
pub async fn watch(auth: Arc<AdminAuth>, stop: CancellationToken) {
    if auth.from_env() {
        return;
    }
    let mut ticks = tokio::time::interval(WATCH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let auth = Arc::clone(&auth);
        if let Err(error) = tokio::task::spawn_blocking(move || auth.refresh()).await {
            tracing::warn!(%error, "checking the admin token file failed");
        }
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

fn read_token_file(path: &Path) -> std::io::Result<String> {
    let token = std::fs::read_to_string(path)?.trim().to_string();
    if token.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(token)
}

/// Writes the token atomically, created with mode 0600 so it is never
/// readable by others, even briefly.
fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    crate::durable::write_atomic(path, format!("{token}\n").as_bytes(), 0o600)
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

    /// A rotation is seen by content: even with the modification time put
    /// back, a refresh installs the new token and marks the rotation once;
    /// until the refresh, the old token stays in force.
    #[test]
    fn rotation_is_picked_up_by_content_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        let auth = AdminAuth::load(dir.path(), None).unwrap();
        let old = std::fs::read_to_string(&path).unwrap();
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!auth.refresh());
        let new = rotate(dir.path()).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert!(auth.verify(old.trim()));
        assert!(auth.refresh());
        assert!(auth.verify(&new));
        assert!(!auth.verify(old.trim()));
        assert_eq!(auth.take_rotation(), Some(digest(&new)));
        assert_eq!(auth.take_rotation(), None);
        // An emptied file keeps the token in force.
        std::fs::write(&path, "").unwrap();
        assert!(!auth.refresh());
        assert!(auth.verify(&new));
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
