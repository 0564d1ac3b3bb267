//! Users, keys, limits and accounting: the state behind them, opened once at start-up
//! ([`Accounts::open`]) and shared by the proxy pipeline, the `/api` surface and the CLI.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::api::session::Sessions;
use crate::config::Config;
use crate::keys::KeyCache;
use crate::limits::memory::MemoryLimiter;
use crate::limits::{Calendar, Clock, Limiter};
use crate::store::shared::{Event, EventBus, Health, SharedLock, SharedRouting};
use crate::store::{NewUser, Role, Store, StoreError};

/// Everything behind users, keys and limits.
#[derive(Debug)]
pub struct Accounts {
    pub store: Arc<dyn Store>,
    pub keys: KeyCache,
    pub limiter: Arc<dyn Limiter>,
    pub clock: Arc<dyn Clock>,
    pub calendar: Calendar,
    pub sessions: Sessions,
    /// Keys a user may hold (seed 004: 10).
    pub max_keys_per_user: i64,
    /// `rate_limit` of a key created without one (seed 004: 60).
    pub default_rate_limit: i64,
    /// Serialises `/api` writes of keys' limits in this process, so a user's keys are checked
    /// against their owner's ceilings (a monthly budget is shared by all of them) one at a time.
    pub key_writes: tokio::sync::Mutex<()>,
    /// How often the key cache reads changes made outside this process.
    pub refresh: Duration,
    /// What several instances share through Redis (`limits.redis`); `None` for one instance.
    pub shared: Option<Shared>,
    /// Usage records handed to the store's writer and not yet committed.
    pub store_backlog: crate::store::sink::Backlog,
}

/// The state instances share beyond the store (Redis), as traits.
#[derive(Debug, Clone)]
pub struct Shared {
    pub events: Arc<dyn EventBus>,
    pub routing: Arc<dyn SharedRouting>,
    /// Single-flight locks across instances (an OAuth refresher's seam).
    pub lock: Arc<dyn SharedLock>,
    /// Whether Redis is reachable.
    pub health: Arc<Health>,
}

/// Opens the configured store (`store:`, else SQLite in `data-dir`), applying migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let location = config
        .store_location()
        .map_err(|e| anyhow::anyhow!("store: {e}"))?;
    // The data directory holds generated secrets and the token pool even when the store is
    // elsewhere.
    let dir = config.data_path();
    crate::store::private::create_dir(&dir)
        .with_context(|| format!("data-dir: cannot create {}", dir.display()))?;
    crate::store::open(&location)
        .await
        .with_context(|| match &location {
            crate::store::Location::Sqlite(dir) => {
                format!("data-dir: cannot open the store in {}", dir.display())
            }
            other => format!("store: cannot open {}", other.redacted()),
        })
}

/// The limiter and shared services the config asks for.
fn open_limits(
    config: &Config,
    store: &Arc<dyn Store>,
    calendar: Calendar,
) -> anyhow::Result<(Arc<dyn Limiter>, Option<Shared>)> {
    use crate::store::redis::{
        Link, OnRedisError, RedisSettings, events::RedisEvents, limiter::RedisLimiter,
        lock::RedisLock, routing::RedisRouting,
    };
    let limits = &config.limits;
    if limits.redis.is_empty() {
        return Ok((Arc::new(MemoryLimiter::new(calendar)), None));
    }
    let on_error = match limits.on_redis_error {
        crate::config::OnRedisError::FailClosed => OnRedisError::FailClosed,
        crate::config::OnRedisError::Local => OnRedisError::Local,
    };
    let link = Link::open(&RedisSettings {
        url: limits.redis.clone(),
        prefix: limits.redis_prefix.clone(),
        on_error,
        timeout: limits.redis_timeout,
    })
    .map_err(|e| anyhow::anyhow!("limits.redis: {e}"))?;
    let events: Arc<dyn EventBus> = RedisEvents::start(link.clone(), limits.pubsub);
    let shared = Shared {
        routing: Arc::new(RedisRouting::new(
            link.clone(),
            events.clone(),
            store.clone(),
        )),
        lock: Arc::new(RedisLock::new(link.clone())),
        health: link.health().clone(),
        events,
    };
    tracing::info!(
        redis = %crate::store::redact_url(&limits.redis),
        prefix = %limits.redis_prefix,
        "per-key limits, cooldowns and key changes are shared through Redis"
    );
    let limiter = RedisLimiter::new(link, store.clone(), calendar, on_error);
    Ok((Arc::new(limiter), Some(shared)))
}

impl Accounts {
    /// Opens the store, creates the configured admin if missing, loads every key into the
    /// cache and resumes today's and this month's counters.
    pub async fn open(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Accounts>> {
        let store = open_store(config).await?;
        let calendar = Calendar::new(config.timezone()?);
        let sessions = Sessions::new(config)?;
        if let Some(admin) = &config.auth.admin {
            match store.user_by_name(&admin.username).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    let password_hash = hash_password(&admin.password)?;
                    let created = store
                        .create_user(
                            NewUser {
                                username: admin.username.clone(),
                                password_hash,
                                role: Role::Admin,
                            },
                            clock.now_ms(),
                        )
                        .await;
                    match created {
                        Ok(_) => {
                            tracing::info!(username = %admin.username, "created the admin user from `auth.admin`");
                        }
                        // Another instance starting on the same store created it first.
                        Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        let (limiter, shared) = open_limits(config, &store, calendar)?;
        let now = clock.now_ms();
        for (key_id, spend) in store
            .key_spend(&calendar.day(now), &calendar.month_start_day(now))
            .await?
        {
            limiter.resume(key_id, spend, now);
        }
        let accounts = Accounts {
            store,
            keys: KeyCache::default(),
            limiter,
            clock,
            calendar,
            sessions,
            max_keys_per_user: config.user_keys.max_per_user,
            default_rate_limit: config.user_keys.default_rate_limit,
            key_writes: tokio::sync::Mutex::new(()),
            refresh: config.user_keys.refresh,
            shared,
            store_backlog: Default::default(),
        };
        accounts.keys.refresh(&*accounts.store, now).await?;
        Ok(Arc::new(accounts))
    }

    /// Unix milliseconds now, by the accounts' clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Tells the other instances that users or keys changed in the store (they re-read them).
    pub async fn announce_keys(&self) {
        if let Some(shared) = &self.shared {
            shared.events.publish(Event::Keys).await;
        }
    }

    /// Why the accounts cannot enforce shared limits right now, if they cannot.
    pub fn degraded(&self) -> Option<String> {
        self.limiter.degraded()
    }

    /// Keeps the key cache in step with changes made outside this process.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        telemetry: Arc<sluice_telemetry::Telemetry>,
    ) -> tokio::task::JoinHandle<()> {
        let accounts = Arc::downgrade(self);
        let every = self.refresh;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(accounts) = accounts.upgrade() else {
                    return;
                };
                let started = std::time::Instant::now();
                let refreshed = accounts
                    .keys
                    .refresh(&*accounts.store, accounts.now_ms())
                    .await;
                telemetry.store_query("refresh_keys", started.elapsed());
                if let Err(e) = refreshed {
                    tracing::warn!(error = %e, "could not refresh API keys from the store; retrying");
                }
            }
        })
    }
}

/// An argon2id PHC string for a password (default parameters, random salt).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches a PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Checks a new username: 1–64 letters, digits and `_ . @ -`.
pub fn check_username(username: &str) -> Result<(), String> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err("username must be 1-64 letters, digits or _ . @ -".into())
    }
}

/// Checks a new password: at least 8 characters.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() >= 8 {
        Ok(())
    } else {
        Err("password must be at least 8 characters".into())
    }
}

/// Reads or creates the secret that signs session tokens: `<data-dir>/jwt-secret`.
pub fn jwt_secret_file(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().to_string()),
        Ok(_) => anyhow::bail!(
            "{} holds a secret shorter than 32 characters; delete it to generate a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    use rand::distr::{Alphanumeric, SampleString};
    let secret = Alphanumeric.sample_string(&mut rand::rng(), 64);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated the session-token signing secret");
    Ok(secret)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong horse", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn jwt_secret_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = jwt_secret_file(dir.path()).unwrap();
        let b = jwt_secret_file(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
    }
}
