//! The running state, built from a [`Config`] by one function, [`Runtime::build`]. Start-up
//! uses it; a reload will call the same function and swap the result in atomically.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::pipeline::account::UsageLog;
use crate::pipeline::admit::Admission;
use crate::pipeline::authenticate::ClientKeys;
use crate::pipeline::route::Catalog;
use crate::pricing::PriceTable;
use crate::providers::Provider;

/// What a config change replaces: keys, providers and the model catalog.
#[derive(Debug)]
pub struct Runtime {
    pub keys: ClientKeys,
    pub catalog: Catalog,
    /// Model prices: built in, with the config's `prices` on top.
    pub prices: Arc<PriceTable>,
}

impl Runtime {
    /// Builds the serving state from a validated config.
    pub fn build(config: &Config) -> anyhow::Result<Runtime> {
        Ok(Runtime {
            keys: ClientKeys::new(&config.api_keys, config.allow_anonymous),
            catalog: build_catalog(config).map_err(anyhow::Error::msg)?,
            prices: Arc::new(PriceTable::new(&config.prices)),
        })
    }
}

/// The model catalog of every configured provider.
pub fn build_catalog(config: &Config) -> Result<Catalog, String> {
    let mut providers = Vec::with_capacity(config.providers.len());
    for p in &config.providers {
        let provider = Provider::from_config(p, &config.timeouts)?;
        let models = p
            .models
            .iter()
            .map(|m| (m.name.clone(), m.alias.clone()))
            .collect();
        providers.push((provider, models));
    }
    Ok(Catalog::new(&providers))
}

/// Request-size limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_size: u64,
}

/// Everything a handler can reach.
pub struct AppState {
    pub runtime: ArcSwap<Runtime>,
    /// One pooled client for every upstream (keep-alive, HTTP/2 where the upstream offers it).
    pub http: reqwest::Client,
    pub usage: UsageLog,
    pub admission: Admission,
    /// Users, stored keys, per-key limits (seed 004).
    pub accounts: Arc<Accounts>,
    pub limits: Limits,
    /// Set when the shutdown grace period is over: open streams end with an error event.
    pub hard_stop: watch::Sender<bool>,
    /// Unix time the gateway started; the `created` of listed models.
    pub started_unix: u64,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(
        config: &Config,
        usage: UsageLog,
        accounts: Arc<Accounts>,
    ) -> anyhow::Result<AppState> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .tcp_nodelay(true)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(AppState {
            runtime: ArcSwap::from_pointee(Runtime::build(config)?),
            http,
            usage,
            admission: Admission::new(config.max_concurrent_requests),
            accounts,
            limits: Limits {
                max_body_size: config.max_body_size.0,
            },
            hard_stop: watch::Sender::new(false),
            started_unix,
            draining: AtomicBool::new(false),
        })
    }

    /// Shutdown has begun: readiness fails and new proxied requests get 503.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Unix seconds now.
    pub fn now_unix(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// Shared handle.
pub type SharedState = Arc<AppState>;
