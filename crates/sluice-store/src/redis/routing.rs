//! [`SharedRouting`] on Redis: cooldown windows where the later deadline wins (`ZADD GT` on
//! Redis's clock), one probe lease per cooled credential and model (`SET NX PX`), disables in
//! a hash (and durably in the store, when it keeps them), each change published as an [`Event`] so other instances apply it at once; sticky
//! session bindings (when shared) as keys expiring with their TTL.

use std::sync::Arc;

use async_trait::async_trait;

use super::Link;
use crate::Store;
use crate::shared::{Event, EventBus, RoutingSnapshot, SharedRouting};

/// KEYS: cool zset, reason hash. ARGV: member, window ms, reason. Returns the window in effect.
const COOL_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local wanted = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'GT', wanted, ARGV[1])
local until_ms = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if until_ms == wanted then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
return until_ms - now
";

/// KEYS: cool zset, reason hash, disabled hash. Returns {now, cooling…, disabled…} flattened.
const SNAPSHOT_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cooling = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #cooling, 2 do
  local reason = redis.call('HGET', KEYS[2], cooling[i]) or 'quota'
  table.insert(out, {cooling[i], tonumber(cooling[i + 1]) - now, reason})
end
return {out, redis.call('HGETALL', KEYS[3])}
";

/// Shared routing health.
#[derive(Debug)]
pub struct RedisRouting {
    link: Link,
    events: Arc<dyn EventBus>,
    /// Where disables are kept durably (PostgreSQL keeps them; SQLite keeps none).
    store: Arc<dyn Store>,
    cool: redis::Script,
    snapshot: redis::Script,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn member(credential: &str, model: &str) -> String {
    format!("{credential}\n{model}")
}

impl RedisRouting {
    pub fn new(link: Link, events: Arc<dyn EventBus>, store: Arc<dyn Store>) -> RedisRouting {
        RedisRouting {
            link,
            events,
            store,
            cool: redis::Script::new(COOL_LUA),
            snapshot: redis::Script::new(SNAPSHOT_LUA),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.link.tag("routing"))
    }

    /// A session binding: a key (and hash slot) of its own, expiring with the binding.
    fn session_key(&self, session: &str) -> String {
        self.link.tag(&format!("session:{session}"))
    }
}

#[async_trait]
impl SharedRouting for RedisRouting {
    async fn cool(&self, credential: &str, model: &str, window_ms: u64, reason: &str) -> u64 {
        if !self.link.health.is_up() {
            return window_ms;
        }
        let mut conn = self.link.conn();
        let effective: Result<i64, _> = self
            .cool
            .key(self.key("cool"))
            .key(self.key("reason"))
            .arg(member(credential, model))
            .arg(window_ms)
            .arg(reason)
            .invoke_async(&mut conn)
            .await;
        match effective {
            Ok(ms) => {
                let remaining_ms = u64::try_from(ms).unwrap_or(0).max(window_ms);
                self.events
                    .publish(Event::Cooled {
                        credential: credential.into(),
                        model: model.into(),
                        remaining_ms,
                        reason: reason.into(),
                    })
                    .await;
                remaining_ms
            }
            Err(e) => {
                self.link.failed("cool", &e);
                window_ms
            }
        }
    }

    async fn clear(&self, credential: &str, model: &str) {
        if !self.link.health.is_up() {
            return;
        }
        let mut conn = self.link.conn();
        let m = member(credential, model);
        let done: Result<(), _> = redis::pipe()
            .atomic()
            .zrem(self.key("cool"), &m)
            .hdel(self.key("reason"), &m)
            .del(self.key(&format!("probe:{m}")))
            .query_async(&mut conn)
            .await;
        match done {
            Ok(()) => {
                self.events
                    .publish(Event::Cleared {
                        credential: credential.into(),
                        model: model.into(),
                    })
                    .await;
            }
            Err(e) => self.link.failed("clear", &e),
        }
    }

    async fn try_probe(&self, credential: &str, model: &str, lease_ms: u64) -> bool {
        if !self.link.health.is_up() {
            return true;
        }
        let mut conn = self.link.conn();
        let taken: Result<Option<String>, _> = redis::cmd("SET")
            .arg(self.key(&format!("probe:{}", member(credential, model))))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(lease_ms.max(1))
            .query_async(&mut conn)
            .await;
        match taken {
            Ok(answer) => answer.is_some(),
            Err(e) => {
                self.link.failed("probe", &e);
                true
            }
        }
    }

    async fn disable(&self, credential: &str, reason: &str) {
        if let Err(e) = self
            .store
            .set_credential_disabled(credential, Some(reason), now_ms())
            .await
        {
            tracing::warn!(error = %e, credential, "could not record a credential's disable in the store");
        }
        if !self.link.health.is_up() {
            return;
        }
        let mut conn = self.link.conn();
        let done: Result<(), _> = redis::cmd("HSET")
            .arg(self.key("disabled"))
            .arg(credential)
            .arg(reason)
            .query_async(&mut conn)
            .await;
        match done {
            Ok(()) => {
                self.events
                    .publish(Event::Disabled {
                        credential: credential.into(),
                        reason: reason.into(),
                    })
                    .await;
            }
            Err(e) => self.link.failed("disable", &e),
        }
    }

    async fn enable(&self, credential: &str) {
        if let Err(e) = self
            .store
            .set_credential_disabled(credential, None, now_ms())
            .await
        {
            tracing::warn!(error = %e, credential, "could not clear a credential's disable in the store");
        }
        if !self.link.health.is_up() {
            return;
        }
        let mut conn = self.link.conn();
        let removed: Result<i64, _> = redis::cmd("HDEL")
            .arg(self.key("disabled"))
            .arg(credential)
            .query_async(&mut conn)
            .await;
        match removed {
            Ok(0) => {}
            Ok(_) => {
                self.events
                    .publish(Event::Enabled {
                        credential: credential.into(),
                    })
                    .await;
            }
            Err(e) => self.link.failed("enable", &e),
        }
    }

    async fn session(&self, session: &str) -> Option<String> {
        if !self.link.health.is_up() {
            return None;
        }
        let mut conn = self.link.conn();
        let bound: Result<Option<String>, _> = redis::cmd("GET")
            .arg(self.session_key(session))
            .query_async(&mut conn)
            .await;
        bound.unwrap_or_else(|e| {
            self.link.failed("session", &e);
            None
        })
    }

    async fn bind_session(&self, session: &str, credential: &str, ttl_ms: u64) {
        if !self.link.health.is_up() {
            return;
        }
        let mut conn = self.link.conn();
        let done: Result<(), _> = redis::cmd("SET")
            .arg(self.session_key(session))
            .arg(credential)
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut conn)
            .await;
        if let Err(e) = done {
            self.link.failed("bind session", &e);
        }
    }

    async fn snapshot(&self) -> Option<RoutingSnapshot> {
        if !self.link.health.is_up() {
            return None;
        }
        let durable = self.store.credential_disables().await.unwrap_or_default();
        let mut conn = self.link.conn();
        type Raw = (Vec<(String, i64, String)>, Vec<String>);
        let raw: Result<Raw, _> = self
            .snapshot
            .key(self.key("cool"))
            .key(self.key("reason"))
            .key(self.key("disabled"))
            .invoke_async(&mut conn)
            .await;
        let (cooling, disabled) = match raw {
            Ok(raw) => raw,
            Err(e) => {
                self.link.failed("snapshot", &e);
                return None;
            }
        };
        Some(RoutingSnapshot {
            cooling: cooling
                .into_iter()
                .filter_map(|(m, remaining, reason)| {
                    let (credential, model) = m.split_once('\n')?;
                    Some((
                        credential.to_string(),
                        model.to_string(),
                        u64::try_from(remaining).ok()?,
                        reason,
                    ))
                })
                .collect(),
            disabled: disabled
                .chunks(2)
                .filter_map(|pair| match pair {
                    [credential, reason] => Some((credential.clone(), reason.clone())),
                    _ => None,
                })
                .chain(durable)
                .collect(),
        })
    }
}
