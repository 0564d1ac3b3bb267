//! The running state, built from a [`Config`] by one function, [`Runtime::build`]. Start-up
//! uses it; a reload will call the same function and swap the result in atomically.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::Config;
use crate::pipeline::account::UsageLog;
use crate::pipeline::admit::Admission;
use crate::pipeline::authenticate::ClientKeys;
use crate::pipeline::route::Catalog;
use crate::providers::Provider;

/// What a config change replaces: keys, providers, the model catalog and the upstream client.
#[derive(Debug)]
pub struct Runtime {
    pub keys: ClientKeys,
    pub catalog: Catalog,
    /// One pooled client for every upstream (keep-alive, HTTP/2 where the upstream offers
    /// it), going through `proxy-url` when set.
    pub http: reqwest::Client,
    /// The (validated, environment-expanded) config this runtime was built from.
    pub config: Arc<Config>,
}

impl Runtime {
    /// Builds the serving state from a validated config.
    pub fn build(config: &Config) -> anyhow::Result<Runtime> {
        Self::build_after(config, None)
    }

    /// The same, for a reload: keeps the previous upstream client (and its open connections)
    /// when the settings it was built from did not change.
    pub fn build_after(config: &Config, previous: Option<&Runtime>) -> anyhow::Result<Runtime> {
        let http = match previous {
            Some(old)
                if old.config.proxy_url == config.proxy_url
                    && old.config.timeouts.connect == config.timeouts.connect =>
            {
                old.http.clone()
            }
            _ => upstream_client(config)?,
        };
        Ok(Runtime {
            keys: ClientKeys::new(&config.api_keys, config.allow_anonymous)
                .allow_loopback(config.allow_localhost_unauthenticated),
            catalog: build_catalog(config).map_err(anyhow::Error::msg)?,
            http,
            config: Arc::new(config.clone()),
        })
    }
}

/// The shared upstream client, through `proxy-url` when set.
fn upstream_client(config: &Config) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(config.timeouts.connect)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")));
    if !config.proxy_url.is_empty() {
        // The error would print the URL, which may carry the proxy's password.
        let proxy = reqwest::Proxy::all(&config.proxy_url)
            .map_err(|_| anyhow::anyhow!("proxy-url: not a usable proxy URL"))?;
        builder = builder.proxy(proxy);
    }
    Ok(builder.build()?)
}

/// The model catalog of every configured provider: the `providers:` list, then the providers
/// of seed 003's key lists, then those of the token files in `auth-dir`.
pub fn build_catalog(config: &Config) -> Result<Catalog, String> {
    let seeded = crate::settings::seed_providers(config);
    let from_files = crate::auth_files::providers(config);
    let mut providers = Vec::with_capacity(config.providers.len() + seeded.len());
    for p in config.providers.iter().chain(&seeded).chain(&from_files) {
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
    pub usage: UsageLog,
    pub admission: Admission,
    pub limits: Limits,
    /// Set when the shutdown grace period is over: open streams end with an error event.
    pub hard_stop: watch::Sender<bool>,
    /// Unix time the gateway started; the `created` of listed models.
    pub started_unix: u64,
    /// The management plane: config file, management key, bans.
    pub management: crate::management::Plane,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(config: &Config, usage: UsageLog) -> anyhow::Result<AppState> {
        Self::with_host(config, usage, crate::management::Host::default())
    }

    /// The state of a gateway whose config lives in a file (`host`).
    pub fn with_host(
        config: &Config,
        usage: UsageLog,
        host: crate::management::Host,
    ) -> anyhow::Result<AppState> {
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(AppState {
            runtime: ArcSwap::from_pointee(Runtime::build(config)?),
            usage,
            admission: Admission::new(config.max_concurrent_requests),
            limits: Limits {
                max_body_size: config.max_body_size.0,
            },
            hard_stop: watch::Sender::new(false),
            started_unix,
            management: crate::management::Plane::new(config, host),
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
