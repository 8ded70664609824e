//! `sluicegate admin-token [--rotate]`: show or replace the token file.
//!
//! Only the token goes to stdout, so `$(sluicegate admin-token)` works;
//! every explanation goes to stderr.

use anyhow::Context;

use super::ADMIN_TOKEN_ENV;
use crate::admin_token::{self, TOKEN_FILE};
use crate::config::Config;

/// Prints the token from `<data-dir>/admin-token`, or with `rotate` writes a
/// new one first. A running server re-reads the file every second.
pub fn admin_token(config: &Config, rotate: bool) -> anyhow::Result<()> {
    let path = config.data_dir.join(TOKEN_FILE);
    if config.admin_token.is_some() {
        eprintln!(
            "sluicegate: note: {ADMIN_TOKEN_ENV} is set; a server started with it ignores {}",
            path.display()
        );
    }
    if rotate {
        let token = admin_token::rotate(&config.data_dir)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("{token}");
        eprintln!(
            "sluicegate: wrote a new admin token to {}; a running server accepts it within \
             a second and rejects the old one from then on",
            path.display()
        );
        return Ok(());
    }
    match std::fs::read_to_string(&path) {
        Ok(token) => {
            println!("{}", token.trim());
            eprintln!("sluicegate: the admin token is in {}", path.display());
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "no admin token in {} yet: start the server once, or run `sluicegate admin-token --rotate`",
            path.display()
        ),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}
