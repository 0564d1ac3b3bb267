//! The scale-out scenarios (`--postgres` and `--redis`): Sluice instances sharing one
//! PostgreSQL store and one Redis limiter, in front of the same mock as the other scenarios.
//! A fresh database and Redis key prefix are made for the run and removed after it.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use sluice_store::testing::{TestDatabase, unique_suffix};
use tokio::process::Child;

use crate::load::HttpClient;
use crate::servers::{self, Binaries};

/// N instances on one PostgreSQL database and one Redis prefix.
pub struct Cluster {
    instances: Vec<(Child, SocketAddr)>,
    pub addrs: Vec<SocketAddr>,
    redis: String,
    prefix: String,
    _db: TestDatabase,
    _scratch: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` instances routing to the mock at `mock`.
    pub async fn start(
        binaries: &Binaries,
        client: &HttpClient,
        mock: SocketAddr,
        postgres: &str,
        redis: &str,
        n: usize,
    ) -> Result<Cluster> {
        let scratch = tempfile::Builder::new()
            .prefix("sluice-bench-scale-")
            .tempdir()
            .context("creating a temporary directory for config and logs")?;
        let db = TestDatabase::create(postgres)
            .await
            .context("creating the benchmark's PostgreSQL database")?;
        let prefix = format!("sluice-bench-{}", unique_suffix());
        let mut instances = Vec::with_capacity(n);
        for i in 0..n {
            let addr = servers::free_local_addr()?;
            let config = format!(
                "{}store: {}\nlimits: {{redis: '{redis}', redis-prefix: {prefix}}}\n",
                servers::sluice_config(addr, mock, &scratch.path().join(format!("data-{i}"))),
                db.url
            );
            let name = format!("sluice-{n}x-{i}");
            let mut child = servers::spawn_sluice(binaries, scratch.path(), &name, &config)?;
            let log = scratch.path().join(format!("{name}.log"));
            servers::wait_ready(&mut child, addr, &log, client).await?;
            instances.push((child, addr));
        }
        let addrs = instances.iter().map(|(_, a)| *a).collect();
        Ok(Cluster {
            instances,
            addrs,
            redis: redis.to_owned(),
            prefix,
            _db: db,
            _scratch: scratch,
        })
    }

    /// A stored key (created through the first instance; the others learn of it at once).
    pub async fn stored_key(&self, client: &HttpClient) -> Result<String> {
        let key = servers::stored_key(client, self.addrs[0]).await?;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        Ok(key)
    }

    /// The instances' base URLs.
    pub fn bases(&self) -> Vec<String> {
        self.addrs.iter().map(|a| format!("http://{a}")).collect()
    }

    /// CPU time of all instances together so far.
    pub fn cpu_time(&self) -> Option<std::time::Duration> {
        self.instances
            .iter()
            .map(|(child, _)| servers::process_cpu(child.id()))
            .sum()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.instances {
            let _ = child.start_kill();
        }
        // Remove the run's Redis keys (all under its own prefix).
        let (url, prefix) = (self.redis.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            for pattern in [format!("{{{prefix}:*"), format!("{prefix}:*")] {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(pattern)
                    .query(&mut conn)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
                }
            }
        })
        .join();
    }
}
