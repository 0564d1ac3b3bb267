//! `sluice migrate` and `sluice store copy|prune`: moving an installation between stores and
//! keeping the usage table small.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::{block_on, finish, load};
use crate::accounts::open_store;
use crate::config::CONFIG_ENV;
use crate::store::{Location, Store, UsageFilter};

/// Records copied per page.
const PAGE: i64 = 2_000;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy users, keys and every usage record from one store into an empty one, keeping ids
    /// (stop the gateways writing to the source first).
    Copy {
        /// `sqlite://<data-dir>` or `postgres://…`
        #[arg(long)]
        from: String,
        /// `sqlite://<data-dir>` or `postgres://…`; must be empty.
        #[arg(long)]
        to: String,
    },
    /// Remove usage records older than a duration (PostgreSQL drops whole months).
    Prune {
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
        /// e.g. `400days`; records older than this go.
        #[arg(long)]
        older_than: humantime::Duration,
    },
}

/// Runs `sluice migrate`: applies pending migrations to the config's store.
pub fn run_migrate(config: &Path) -> ExitCode {
    finish((|| {
        let config = load(config)?;
        let location = config.store_location()?;
        block_on(async {
            open_store(&config).await.map_err(|e| format!("{e:#}"))?;
            Ok(())
        })?;
        println!("{}: schema up to date", location.redacted());
        Ok(())
    })())
}

/// Runs `sluice store …`.
pub fn run_store(command: StoreCommand) -> ExitCode {
    finish(match command {
        StoreCommand::Copy { from, to } => copy(&from, &to),
        StoreCommand::Prune { config, older_than } => prune(&config, older_than.into()),
    })
}

async fn open(flag: &str, url: &str) -> Result<(Location, std::sync::Arc<dyn Store>), String> {
    let location = Location::parse(url).map_err(|e| format!("{flag}: {e}"))?;
    let store = crate::store::open(&location)
        .await
        .map_err(|e| format!("{flag}: cannot open {}: {e}", location.redacted()))?;
    Ok((location, store))
}

fn copy(from: &str, to: &str) -> Result<(), String> {
    block_on(async {
        let (source_at, source) = open("--from", from).await?;
        let (target_at, target) = open("--to", to).await?;
        if source_at == target_at {
            return Err("--from and --to name the same store".into());
        }
        let db = |e: crate::store::StoreError| e.to_string();
        if !target.list_users().await.map_err(db)?.is_empty()
            || !target.usage_after(None, 1).await.map_err(db)?.is_empty()
        {
            return Err(format!(
                "--to: {} is not empty; copy into a fresh store",
                target_at.redacted()
            ));
        }
        let users = source.list_users().await.map_err(db)?;
        let keys = source.keys_changed_since(0).await.map_err(db)?;
        target.restore_accounts(&users, &keys).await.map_err(db)?;
        let mut cursor = None;
        let mut records = 0usize;
        loop {
            let page = source.usage_after(cursor.clone(), PAGE).await.map_err(db)?;
            let Some(last) = page.last() else { break };
            cursor = Some((last.time_ms, last.request_id.clone()));
            target.insert_usage(&page).await.map_err(db)?;
            records += page.len();
        }
        let all = UsageFilter {
            start_day: "0000-01-01".into(),
            end_day: "9999-12-31".into(),
            ..Default::default()
        };
        let (a, b) = (
            source.usage_totals(&all).await.map_err(db)?,
            target.usage_totals(&all).await.map_err(db)?,
        );
        if a != b {
            return Err(format!(
                "the copy does not add up: {} records ({} nanos) in the source, {} ({} nanos) in the target",
                a.requests, a.cost_nanos, b.requests, b.cost_nanos
            ));
        }
        println!(
            "copied {} users, {} keys and {records} usage records from {} to {}",
            users.len(),
            keys.len(),
            source_at.redacted(),
            target_at.redacted()
        );
        Ok(())
    })
}

fn prune(config: &Path, older_than: Duration) -> Result<(), String> {
    let config = load(config)?;
    let cut = chrono::Utc::now().timestamp_millis()
        - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let removed = block_on(async {
        let store = open_store(&config).await.map_err(|e| format!("{e:#}"))?;
        store.prune_usage(cut).await.map_err(|e| e.to_string())
    })?;
    println!("removed {removed} usage records");
    Ok(())
}
