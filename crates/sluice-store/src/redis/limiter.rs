//! [`Limiter`] on Redis: one atomic Lua call admits a request (sliding minute, local day,
//! monthly quota reservation — all or nothing, on Redis's clock), an idempotent one settles it.
//!
//! A key's day count and month spend are **seeded** from the store the first time a key needs
//! them (a new day, a new month, after Redis lost its data): the script answers `seed`, this
//! limiter reads the key's records from the store and writes them with set-if-missing, then
//! admits again. Counters are never rebuilt by adding, so N instances reseeding at once count
//! the store's figures once.
//!
//! When Redis is unreachable the configured [`OnRedisError`] applies: refuse, or count in this
//! process (a [`MemoryLimiter`]) until the link's watcher sees Redis again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Link, OnRedisError};
use crate::limits::memory::MemoryLimiter;
use crate::limits::{Calendar, KeyLimits, Limiter, Refusal, Reservation};
use crate::{KeySpend, Nanos, Store};

/// How long a reservation may stay unsettled before the next admission reclaims it (a request
/// in flight longer than this is still billed when it settles, from its real cost).
const RESERVATION_LEASE_MS: i64 = 15 * 60_000;
/// Month state outlives its month by this much, so late settles still find it.
const MONTH_TTL_MS: i64 = 40 * 86_400_000;
/// Attempts at one settle before it is given up (and logged).
const SETTLE_ATTEMPTS: u32 = 5;

/// Shared by the scripts: Redis's clock, the local day and month from the caller's UTC offset,
/// and the key names derived from them. `ARGV[1]` is the key's hash tag, `ARGV[2]` the offset.
const CALENDAR_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local offset = tonumber(ARGV[2])
local day = math.floor((now + offset) / 86400000)
local day_end = (day + 1) * 86400000 - offset
local z = day + 719468
local era = math.floor(z / 146097)
local doe = z - era * 146097
local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
local mp = math.floor((5 * doy + 2) / 153)
local m = mp < 10 and mp + 3 or mp - 9
local y = yoe + era * 400
if m <= 2 then y = y + 1 end
local month = y * 12 + m - 1
local tag = ARGV[1]
local day_key = tag .. ':d:' .. day
local month_key = tag .. ':m:' .. month
local res_key = tag .. ':res:' .. month
local amt_key = tag .. ':amt:' .. month
local lost_key = tag .. ':lost:' .. month
";

/// Admission. KEYS[1]: the minute log. ARGV: tag, offset, ticket, rate, daily, quota,
/// estimate, lease ms, month ttl ms. Answers {status, a, b}: `ok` (month, now), `seed` (day,
/// month), `rate` (ms until a slot frees), `day` (ms until the day ends), `quota`.
const ADMIT_LUA: &str = r"
local ticket = ARGV[3]
local rate = tonumber(ARGV[4])
local daily = tonumber(ARGV[5])
local quota = tonumber(ARGV[6])
local estimate = tonumber(ARGV[7])
if daily > 0 and redis.call('EXISTS', day_key) == 0 then return {'seed', day, month} end
if quota > 0 and redis.call('HEXISTS', month_key, 'seeded') == 0 then return {'seed', day, month} end
if quota > 0 then
  local expired = redis.call('ZRANGEBYSCORE', res_key, '-inf', now)
  for _, id in ipairs(expired) do
    local amount = tonumber(redis.call('HGET', amt_key, id) or '0')
    redis.call('HINCRBY', month_key, 'reserved', -amount)
    redis.call('HDEL', amt_key, id)
    redis.call('SADD', lost_key, id)
    redis.call('PEXPIRE', lost_key, tonumber(ARGV[9]))
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', res_key, '-inf', now) end
end
if rate > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
  if redis.call('ZCARD', KEYS[1]) >= rate then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {'rate', tonumber(oldest[2]) + 60000 - now, 0}
  end
end
if daily > 0 and tonumber(redis.call('GET', day_key)) >= daily then
  return {'day', day_end - now, 0}
end
if quota > 0 then
  local spent = tonumber(redis.call('HGET', month_key, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', month_key, 'reserved') or '0')
  if spent + reserved >= quota then return {'quota', 0, 0} end
end
if rate > 0 then
  redis.call('ZADD', KEYS[1], now, ticket)
  redis.call('PEXPIRE', KEYS[1], 60000)
end
if daily > 0 then redis.call('INCR', day_key) end
if quota > 0 then
  redis.call('HINCRBY', month_key, 'reserved', estimate)
  redis.call('ZADD', res_key, now + tonumber(ARGV[8]), ticket)
  redis.call('HSET', amt_key, ticket, estimate)
  redis.call('PEXPIRE', res_key, tonumber(ARGV[9]))
  redis.call('PEXPIRE', amt_key, tonumber(ARGV[9]))
end
return {'ok', month, now}
";

/// Seeding, set-if-missing only. ARGV: tag, offset (unused), day, month, requests today,
/// spent this month, month ttl ms. The day and month are those `admit` named.
const SEED_LUA: &str = r"
local tag = ARGV[1]
local day = tonumber(ARGV[3])
local offset = tonumber(ARGV[2])
local day_key = tag .. ':d:' .. ARGV[3]
local month_key = tag .. ':m:' .. ARGV[4]
redis.call('SET', day_key, ARGV[5], 'NX', 'PXAT', (day + 2) * 86400000 - offset)
if redis.call('HEXISTS', month_key, 'seeded') == 0 then
  redis.call('HSET', month_key, 'seeded', 1, 'spent', ARGV[6])
  redis.call('HSETNX', month_key, 'reserved', 0)
  redis.call('PEXPIRE', month_key, tonumber(ARGV[7]))
end
return 1
";

/// Settling, once per ticket. ARGV: tag, month, ticket, actual cost. A ticket found among the
/// reservations releases its amount and adds the cost; one found among the lost (its lease
/// ended) only adds the cost; one found nowhere was settled already.
const SETTLE_LUA: &str = r"
local tag = ARGV[1]
local month_key = tag .. ':m:' .. ARGV[2]
local amt_key = tag .. ':amt:' .. ARGV[2]
local res_key = tag .. ':res:' .. ARGV[2]
local lost_key = tag .. ':lost:' .. ARGV[2]
local ticket = ARGV[3]
local amount = redis.call('HGET', amt_key, ticket)
if amount then
  redis.call('HDEL', amt_key, ticket)
  redis.call('ZREM', res_key, ticket)
  redis.call('HINCRBY', month_key, 'reserved', -tonumber(amount))
elseif redis.call('SREM', lost_key, ticket) == 0 then
  return 0
end
if redis.call('HEXISTS', month_key, 'seeded') == 1 then
  redis.call('HINCRBY', month_key, 'spent', tonumber(ARGV[4]))
end
return 1
";

/// Per-key limits counted in Redis.
#[derive(Debug)]
pub struct RedisLimiter {
    link: Link,
    store: Arc<dyn Store>,
    calendar: Calendar,
    policy: OnRedisError,
    /// Counts while Redis is unreachable under [`OnRedisError::Local`].
    local: MemoryLimiter,
    admit: redis::Script,
    seed: redis::Script,
    settle: Arc<redis::Script>,
    runtime: tokio::runtime::Handle,
}

impl RedisLimiter {
    /// A limiter on `link`, reseeding from `store`; starts its settle writer.
    pub fn new(
        link: Link,
        store: Arc<dyn Store>,
        calendar: Calendar,
        policy: OnRedisError,
    ) -> RedisLimiter {
        RedisLimiter {
            link,
            store,
            calendar,
            policy,
            local: MemoryLimiter::new(calendar),
            admit: redis::Script::new(&format!("{CALENDAR_LUA}{ADMIT_LUA}")),
            seed: redis::Script::new(SEED_LUA),
            settle: Arc::new(redis::Script::new(SETTLE_LUA)),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn tag(&self, key_id: i64) -> String {
        self.link.tag(&format!("k:{key_id}"))
    }

    /// While Redis is unreachable: the policy's answer.
    fn degraded_admit(
        &self,
        limits: &KeyLimits,
        now_ms: i64,
        estimate: Nanos,
    ) -> Result<Reservation, Refusal> {
        match self.policy {
            OnRedisError::FailClosed => Err(Refusal::Unavailable),
            OnRedisError::Local => self.local.admit_now(limits, now_ms, estimate),
        }
    }

    /// Reads a key's counts for a (local) day and month from the store and seeds them.
    async fn reseed(
        &self,
        key_id: i64,
        day: i64,
        month: i64,
        offset: i64,
    ) -> Result<(), redis::RedisError> {
        let today = Calendar::day_of_number(day);
        let month_start = format!(
            "{:04}-{:02}-01",
            month.div_euclid(12),
            month.rem_euclid(12) + 1
        );
        let spend: KeySpend = match self.store.key_spend_of(key_id, &today, &month_start).await {
            Ok(spend) => spend,
            Err(e) => {
                // Without the store's figures, admitting would count from zero: refuse instead.
                tracing::error!(error = %e, key_id, "cannot read a key's usage to seed its shared counters");
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "store unavailable for reseeding",
                )));
            }
        };
        tracing::info!(
            key_id,
            day = %today,
            requests_today = spend.requests_today,
            cost_this_month = spend.cost_this_month,
            "seeding shared limit counters from the store (set-if-missing)"
        );
        let mut conn = self.link.conn();
        let _: i64 = self
            .seed
            .arg(self.tag(key_id))
            .arg(offset)
            .arg(day)
            .arg(month)
            .arg(spend.requests_today)
            .arg(spend.cost_this_month)
            .arg(MONTH_TTL_MS)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn admit(
        &self,
        limits: &KeyLimits,
        now_ms: i64,
        estimate: Nanos,
    ) -> Result<Reservation, Refusal> {
        if limits.rate_limit == 0 && limits.daily_limit == 0 && limits.monthly_quota <= 0 {
            return Ok(Reservation {
                key_id: limits.key_id,
                month: self.calendar.month_number(now_ms),
                amount: 0,
                ticket: 0,
            });
        }
        if !self.link.health.is_up() {
            return self.degraded_admit(limits, now_ms, estimate);
        }
        let ticket = rand::random::<u64>().max(1);
        let tag = self.tag(limits.key_id);
        let minute_key = format!("{tag}:rl");
        let offset = self.calendar.utc_offset_ms(now_ms);
        let estimate = estimate.max(0);
        for _ in 0..3 {
            let mut conn = self.link.conn();
            let answer: Result<(String, i64, i64), _> = self
                .admit
                .key(&minute_key)
                .arg(&tag)
                .arg(offset)
                .arg(ticket)
                .arg(limits.rate_limit)
                .arg(limits.daily_limit)
                .arg(limits.monthly_quota.max(0))
                .arg(estimate)
                .arg(RESERVATION_LEASE_MS)
                .arg(MONTH_TTL_MS)
                .invoke_async(&mut conn)
                .await;
            let (status, a, b) = match answer {
                Ok(answer) => {
                    self.link.succeeded();
                    answer
                }
                Err(e) => {
                    self.link.failed("admit", &e);
                    return self.degraded_admit(limits, now_ms, estimate);
                }
            };
            return match status.as_str() {
                "ok" => Ok(Reservation {
                    key_id: limits.key_id,
                    month: a,
                    amount: if limits.monthly_quota > 0 {
                        estimate
                    } else {
                        0
                    },
                    ticket: if limits.monthly_quota > 0 { ticket } else { 0 },
                }),
                "rate" => Err(Refusal::RateLimited {
                    limit: limits.rate_limit,
                    retry_after_secs: secs(a),
                }),
                "day" => Err(Refusal::DailyLimit {
                    limit: limits.daily_limit,
                    retry_after_secs: secs(a),
                }),
                "quota" => Err(Refusal::QuotaExhausted {
                    quota: limits.monthly_quota,
                }),
                "seed" => {
                    if let Err(e) = self.reseed(limits.key_id, a, b, offset).await {
                        self.link.failed("seed", &e);
                        return self.degraded_admit(limits, now_ms, estimate);
                    }
                    continue;
                }
                other => {
                    tracing::error!(
                        status = other,
                        "unexpected answer from the admission script"
                    );
                    Err(Refusal::Unavailable)
                }
            };
        }
        Err(Refusal::Unavailable)
    }

    fn settle(&self, reservation: Reservation, actual: Nanos) {
        if reservation.ticket == 0 {
            // Counted in this process (no quota, or admitted while Redis was unreachable).
            self.local.settle(reservation, actual);
            return;
        }
        // At once, on its own task: the settle is queued on the shared connection before the
        // client has read its answer, so the client's next admission sees it (Redis runs one
        // connection's commands in order).
        let (link, script) = (self.link.clone(), self.settle.clone());
        self.runtime
            .spawn(settle(link, script, reservation, actual.max(0)));
    }

    fn resume(&self, key_id: i64, spend: KeySpend, now_ms: i64) {
        // Shared counters seed themselves from the store when a key first needs them; the
        // local fallback starts from the same figures.
        self.local.resume(key_id, spend, now_ms);
    }

    fn degraded(&self) -> Option<String> {
        self.link.health.degraded().map(|reason| match self.policy {
            OnRedisError::FailClosed => {
                format!("{reason}; limits.on-redis-error: fail-closed (keyed requests refused)")
            }
            OnRedisError::Local => {
                format!("{reason}; limits.on-redis-error: local (each instance counts on its own)")
            }
        })
    }

    fn refuses_when_degraded(&self) -> bool {
        self.policy == OnRedisError::FailClosed
    }
}

fn secs(ms: i64) -> u64 {
    u64::try_from(ms.max(1)).unwrap_or(1).div_ceil(1000).max(1)
}

/// Settles one reservation off the request path, retrying a few times; a settle is
/// idempotent, so a retry after a lost reply cannot count twice.
async fn settle(link: Link, script: Arc<redis::Script>, reservation: Reservation, actual: Nanos) {
    let tag = link.tag(&format!("k:{}", reservation.key_id));
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=SETTLE_ATTEMPTS {
        let mut conn = link.conn();
        let done: Result<i64, _> = script
            .arg(&tag)
            .arg(reservation.month)
            .arg(reservation.ticket)
            .arg(actual)
            .invoke_async(&mut conn)
            .await;
        match done {
            Ok(_) => return,
            Err(e) if attempt < SETTLE_ATTEMPTS => {
                link.failed("settle", &e);
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    key_id = reservation.key_id,
                    "could not settle a quota reservation in Redis; its lease releases it, and the month's spend is reseeded from the store if Redis lost it"
                );
            }
        }
    }
}
