//! `sluicegate import new-api`: carrying channels and API keys over from a
//! new-api or one-api SQLite database into a data dir, offline.
//!
//! The pieces: `store::newapi` reads the source read-only into plain rows;
//! [`channels`] and [`tokens`] map rows to validated
//! specs (pure, through the admin API's own validation); [`plan`] compares
//! them with what the data dir holds and builds the `Command`s; [`report`]
//! prints what happens. The commands are applied in one SQLite transaction
//! through the store's single `apply_in` seam, so a failure leaves nothing
//! half-written.
//!
//! It must not run beside a server on the same data dir (sled's lock
//! refuses the second opener), nor on a cluster node's data dir: cluster
//! state changes only through raft, and a local write would diverge.

pub mod channels;
pub mod plan;
pub mod report;
pub mod tokens;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};

use crate::cluster::log_store::RAFT_DIR;
use crate::config::Config;
use crate::store::newapi::Flavor;
use crate::store::{self, SQLITE_FILE, Store};

/// Where `import` reads from.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ImportSource {
    /// A new-api (or one-api) SQLite database. Prints a report of what is
    /// created, updated, unchanged or skipped; safe to run again.
    NewApi {
        /// The source database file (opened read-only).
        #[arg(long, value_name = "PATH")]
        sqlite: PathBuf,
        /// Print the report without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// The source's schema, when detection from its columns is wrong.
        #[arg(long, value_enum, value_name = "SCHEMA")]
        schema: Option<Schema>,
    },
}

/// The `--schema` a source database is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Schema {
    #[value(name = "new-api")]
    NewApi,
    #[value(name = "one-api")]
    OneApi,
}

impl From<Schema> for Flavor {
    fn from(schema: Schema) -> Flavor {
        match schema {
            Schema::NewApi => Flavor::NewApi,
            Schema::OneApi => Flavor::OneApi,
        }
    }
}

/// Runs the import into `config.data_dir` and prints the report to stdout.
pub async fn run(config: &Config, source: ImportSource) -> anyhow::Result<()> {
    let ImportSource::NewApi {
        sqlite,
        dry_run,
        schema,
    } = source;
    let data_dir = config.data_dir.clone();
    if config.cluster.is_some() || data_dir.join(RAFT_DIR).exists() {
        bail!(
            "{} belongs to a cluster node: cluster state changes only through raft, so an \
             offline import would make this node diverge. Import into a single-node data dir \
             instead (see \"Moving over from new-api / one-api\" in the README)",
            data_dir.display()
        );
    }
    let path = sqlite.clone();
    let source = tokio::task::spawn_blocking(move || store::newapi::read_source(&path))
        .await
        .context("reading the source database")??;
    let flavor = schema.map_or(source.detected, Flavor::from);
    let store = open_store(&data_dir, dry_run).await?;
    let (stored_channels, stored_tokens) = match &store {
        Some(store) => store.load().await.context("reading the data dir")?,
        None => (Vec::new(), Vec::new()),
    };
    let plan = plan::plan(
        &source,
        flavor,
        &stored_channels,
        &stored_tokens,
        chrono::Utc::now(),
    );
    let shown = sqlite.display().to_string();
    if let Some(store) = store.filter(|_| !dry_run) {
        store
            .apply_all(plan.commands.clone())
            .await
            .context("writing the import (nothing was written)")?;
        store.flush().await.context("flushing the data dir")?;
    }
    print!("{}", report::render(&plan, &shown, !dry_run));
    Ok(())
}

/// Opens the data dir's store. A dry run on a data dir without a database
/// opens nothing (and so creates nothing): it compares against an empty one.
async fn open_store(data_dir: &Path, dry_run: bool) -> anyhow::Result<Option<Store>> {
    if dry_run && !data_dir.join(SQLITE_FILE).is_file() {
        return Ok(None);
    }
    let dir = data_dir.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .context("opening the data dir")?;
    match opened {
        Ok(store) => Ok(Some(store)),
        Err(store::Error::Sled(error)) => bail!(
            "cannot open {}: {error}. Is a Sluicegate server running on this data dir? \
             Stop it first: the import writes offline",
            data_dir.display()
        ),
        Err(error) => Err(error).with_context(|| format!("opening {}", data_dir.display())),
    }
}
