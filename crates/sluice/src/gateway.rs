//! The running state, built from a [`Config`] by one function, [`Runtime::build`]. Start-up
//! uses it; a reload will call the same function and swap the result in atomically.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::oauth::Refresher;
use crate::pipeline::account::UsageLog;
use crate::pipeline::admit::Admission;
use crate::pipeline::authenticate::ClientKeys;
use crate::pricing::PriceTable;
use crate::providers::{BuildContext, Provider};
use crate::routing::Router;
use crate::routing::catalog::{Catalog, ModelName};
use crate::token_pool::TokenPool;
use crate::transport::Clients;

/// What a config change replaces: keys, providers, the model catalog and routing state.
#[derive(Debug)]
pub struct Runtime {
    pub keys: ClientKeys,
    /// Catalog, health, rotation and sticky sessions.
    pub router: Router,
    /// Seed 000's token pool, when configured.
    pub token_pool: Option<Arc<TokenPool>>,
    /// Upstream clients by (proxy, connect timeout); kept across reloads so open connections
    /// survive a config change that does not touch them.
    pub clients: Arc<Clients>,
    /// The (validated, environment-expanded) config this runtime was built from.
    pub config: Arc<Config>,
    /// Model prices: built in, with the config's `prices` on top.
    pub prices: Arc<PriceTable>,
    /// The OAuth accounts of `auth-dir` and their refresh state; kept across reloads.
    pub refresher: Arc<Refresher>,
}

impl Runtime {
    /// Builds the serving state from a validated config.
    pub fn build(config: &Config) -> anyhow::Result<Runtime> {
        Self::build_from(config, None)
    }

    /// Builds the serving state for a reload: keeps the running token pool when its settings did
    /// not change, the upstream clients whose settings did not change, and the routing state
    /// (cooldowns, failure streaks, sticky sessions; not disabled credentials, which get another
    /// chance).
    pub fn build_from(config: &Config, previous: Option<&Runtime>) -> anyhow::Result<Runtime> {
        let token_pool = match (&config.token_pool, config.token_pool_path()) {
            (Some(settings), Some(dir)) => match previous.and_then(|p| p.token_pool.as_ref()) {
                Some(pool) if pool.settings() == settings && pool.dir() == dir => {
                    Some(pool.clone())
                }
                _ => Some(Arc::new(
                    TokenPool::open(settings, &dir).map_err(anyhow::Error::msg)?,
                )),
            },
            _ => None,
        };
        let clients = previous.map(|p| p.clients.clone()).unwrap_or_default();
        let refresher = previous.map(|p| p.refresher.clone()).unwrap_or_default();
        refresher
            .sync(config, &clients)
            .map_err(anyhow::Error::msg)?;
        let catalog = build_catalog_with(
            config,
            &clients,
            token_pool.clone(),
            Some(refresher.clone()),
        )
        .map_err(anyhow::Error::msg)?;
        if let Some(pool) = &token_pool {
            pool.attach(config, &clients).map_err(anyhow::Error::msg)?;
        }
        let mut keys = config.api_keys.clone();
        if let Some(settings) = &config.token_pool {
            keys.push(settings.service_key.clone());
        }
        let router = Router::new(config, catalog);
        if let Some(previous) = previous {
            router.inherit(&previous.router);
        }
        let runtime = Runtime {
            keys: ClientKeys::new(&keys, config.allow_anonymous)
                .allow_loopback(config.allow_localhost_unauthenticated),
            router,
            token_pool,
            clients,
            config: Arc::new(config.clone()),
            prices: Arc::new(PriceTable::new(
                &config.prices,
                config.default_price.clone(),
            )),
            refresher,
        };
        // A reload gives disabled credentials another chance, but not accounts that need a
        // new sign-in: only a new token file brings those back.
        for (file, reason) in runtime.refresher.dead() {
            crate::oauth::scheduler::disable_in(&runtime, &file, &reason);
        }
        Ok(runtime)
    }

    /// The model catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.router.catalog
    }
}

/// The model catalog of every configured provider: the `providers:` list, then the providers
/// of seed 003's key lists, then those of the token files in `auth-dir`.
pub fn build_catalog(config: &Config) -> Result<Catalog, String> {
    build_catalog_with(config, &Clients::default(), None, None)
}

fn build_catalog_with(
    config: &Config,
    clients: &Clients,
    pool: Option<Arc<TokenPool>>,
    refresher: Option<Arc<Refresher>>,
) -> Result<Catalog, String> {
    let ctx = BuildContext {
        defaults: &config.timeouts,
        proxy_url: &config.proxy_url,
        clients,
        pool,
        refresher,
    };
    let seeded = crate::settings::seed_providers(config);
    let from_files = crate::auth_files::providers(config);
    let mut providers =
        Vec::with_capacity(config.providers.len() + seeded.len() + from_files.len());
    for p in config.providers.iter().chain(&seeded).chain(&from_files) {
        let provider = Provider::from_config(p, &ctx)?;
        let models = p
            .models
            .iter()
            .map(|m| ModelName {
                name: m.name.clone(),
                alias: m.alias.clone(),
                preview: m.preview_model.clone(),
                capabilities: m.capabilities(),
            })
            .collect();
        providers.push((provider, models, p.priority, p.weight));
    }
    Ok(Catalog::new(&providers))
}

/// Request-size limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_size: u64,
    /// `max-upload-size`: the body limit of multipart endpoints.
    pub max_upload_size: u64,
    /// `connections.body-read-timeout` (the listener enforces it; the pipeline names it).
    pub body_read_timeout: std::time::Duration,
}

/// Everything a handler can reach.
pub struct AppState {
    pub runtime: ArcSwap<Runtime>,
    pub usage: UsageLog,
    pub admission: Admission,
    /// Users, stored keys, per-key limits (seed 004).
    pub accounts: Arc<Accounts>,
    pub limits: Limits,
    /// Set when the shutdown grace period is over: open streams end with an error event.
    pub hard_stop: watch::Sender<bool>,
    /// Unix time the gateway started; the `created` of listed models.
    pub started_unix: u64,
    /// The management plane: config file, management key, bans.
    pub management: crate::management::Plane,
    /// Failed sign-ins (`/api/auth/login`) per address and per user name.
    pub login_bans: crate::throttle::Bans<crate::api::session::LoginSource>,
    /// Metrics (`GET /metrics`).
    pub telemetry: Arc<sluice_telemetry::Telemetry>,
    draining: AtomicBool,
}

impl AppState {
    pub fn new(
        config: &Config,
        usage: UsageLog,
        accounts: Arc<Accounts>,
    ) -> anyhow::Result<AppState> {
        Self::with_host(config, usage, accounts, crate::management::Host::default())
    }

    /// The state of a gateway whose config lives in a file (`host`).
    pub fn with_host(
        config: &Config,
        usage: UsageLog,
        accounts: Arc<Accounts>,
        host: crate::management::Host,
    ) -> anyhow::Result<AppState> {
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let runtime = Runtime::build(config)?;
        if let Some(shared) = &accounts.shared {
            runtime.router.share_with(shared.routing.clone());
            runtime.refresher.share_lock(shared.lock.clone());
        }
        Ok(AppState {
            runtime: ArcSwap::from_pointee(runtime),
            usage: usage.clone(),
            admission: Admission::new(config.max_concurrent_requests),
            accounts,
            limits: Limits {
                max_body_size: config.max_body_size.0,
                max_upload_size: config.max_upload_size.0,
                body_read_timeout: config.connections.body_read_timeout,
            },
            hard_stop: watch::Sender::new(false),
            started_unix,
            management: crate::management::Plane::new(config, host),
            login_bans: crate::throttle::Bans::default(),
            telemetry: usage.telemetry().clone(),
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
