//! The shared state of several gateway instances, on Redis: per-key limits ([`limiter`]),
//! routing health ([`routing`]), change events ([`events`]) and locks ([`lock`]).
//!
//! Redis holds only what can be rebuilt: limit counters reseed from the store with
//! set-if-missing, cooldown windows end by themselves, events have an epoch counter and a
//! periodic refresh behind them. Money is integer nano-dollars (`HINCRBY`), never floats.
//!
//! **Key layout** (Redis Cluster–safe: every script touches keys of one hash tag):
//! - `{<prefix>:k:<key id>}:rl` — the key's sliding minute (sorted set: ticket → admission ms);
//!   `…:d:<local day number>` — requests that local day; `…:m:<local month number>` — hash
//!   `seeded`, `spent`, `reserved` (nanos); `…:res:<month>` / `…:amt:<month>` — reservations in
//!   flight (ticket → deadline / amount); `…:lost:<month>` — reservations whose lease ended
//!   before they were settled.
//! - `{<prefix>:routing}:cool` (sorted set `credential\nmodel` → deadline ms), `…:reason`,
//!   `…:disabled` (hash credential → reason), `…:probe:<credential>\n<model>` (lease).
//! - `{<prefix>:lock}:<name>` — single-flight locks.
//! - `<prefix>:epoch` (counter) and the pub/sub channel `<prefix>:events`.
//!
//! Every time that matters (the minute window, days and months, reservation leases, cooldown
//! deadlines) is Redis's own `TIME`, so instances with skewed clocks still agree.

pub mod events;
pub mod limiter;
pub mod lock;
pub mod routing;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::shared::Health;

/// What the gateway does with per-key limits while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRedisError {
    /// Refuse requests that need a limit decision (503): no limit can be overrun.
    #[default]
    FailClosed,
    /// Count in this process until Redis returns: each instance enforces the limits on its own,
    /// so N instances may admit up to N times a limit during the outage.
    Local,
}

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// Prefix of every key and channel (several deployments, or tests, can share one Redis).
    pub prefix: String,
    pub on_error: OnRedisError,
    /// Longest wait for one command before Redis counts as unreachable.
    pub timeout: Duration,
}

/// A shared connection to Redis and what is known about its reachability.
#[derive(Clone)]
pub struct Link {
    pub(crate) conn: ConnectionManager,
    pub(crate) client: redis::Client,
    pub(crate) prefix: Arc<str>,
    pub(crate) health: Arc<Health>,
    /// Commands timed out in a row: one slow answer under load is not an outage.
    timeouts: Arc<std::sync::atomic::AtomicU32>,
}

/// Consecutive timeouts after which Redis counts as unreachable (a refused or dropped
/// connection counts at once).
const TIMEOUTS_TO_DEGRADE: u32 = 3;

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("prefix", &self.prefix)
            .field("degraded", &self.health.degraded())
            .finish()
    }
}

impl Link {
    /// Connects lazily (a Redis that is down at start-up is a degraded state, not a failed
    /// start) and starts the watcher that notices when it comes back.
    pub fn open(settings: &RedisSettings) -> Result<Link, redis::RedisError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(settings.timeout))
            .set_connection_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        let link = Link {
            conn,
            client,
            prefix: settings.prefix.as_str().into(),
            health: Arc::default(),
            timeouts: Arc::default(),
        };
        link.spawn_watch();
        Ok(link)
    }

    /// Reachability (shared by everything using this link).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// A connection handle (multiplexed; cheap to clone).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Notes a command that succeeded.
    pub(crate) fn succeeded(&self) {
        self.timeouts.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Notes a failed command: Redis is now degraded until the watcher reaches it again (for a
    /// timeout, once several came in a row).
    pub(crate) fn failed(&self, what: &str, error: &redis::RedisError) {
        if error.is_timeout()
            && self
                .timeouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1
                < TIMEOUTS_TO_DEGRADE
        {
            tracing::warn!(what, "a Redis command timed out (limits.redis-timeout)");
            return;
        }
        let reason = format!("redis unreachable ({what}: {})", error.kind_str());
        if self.health.set_down(reason) {
            tracing::error!(
                error = %error,
                what,
                "Redis is unreachable: shared limits, cooldowns and events are degraded; check the Redis server named by limits.redis"
            );
        }
    }

    /// Pings Redis every 500 ms while it is degraded, and marks it up when it answers.
    fn spawn_watch(&self) {
        let link = self.clone();
        let weak = Arc::downgrade(&self.health);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(health) = weak.upgrade() else {
                    return;
                };
                if health.is_up() {
                    continue;
                }
                let mut conn = link.conn();
                let ping: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
                if ping.is_ok() && health.set_up() {
                    tracing::warn!(
                        "Redis is reachable again: shared limits, cooldowns and events resume"
                    );
                }
            }
        });
    }

    /// `{<prefix>:<scope>}`: the hash tag of a group of keys one script may touch together.
    pub(crate) fn tag(&self, scope: &str) -> String {
        format!("{{{}:{scope}}}", self.prefix)
    }
}

/// Kind of a Redis error in a few words, for logs and `/readyz`.
trait KindStr {
    fn kind_str(&self) -> &'static str;
}

impl KindStr for redis::RedisError {
    fn kind_str(&self) -> &'static str {
        if self.is_timeout() {
            "timed out"
        } else if self.is_connection_refusal() {
            "connection refused"
        } else if self.is_connection_dropped() || self.is_io_error() {
            "connection lost"
        } else {
            "command failed"
        }
    }
}
