//! Per-key limits: requests per minute, requests per day, cost per month.
//!
//! [`Limiter`] checks and counts a request in one atomic step, so concurrent requests never get
//! past a count limit together: 200 requests at once against `rate_limit: 60` admit exactly 60.
//! The monthly cost quota is reserved before forwarding (an estimate) and settled after (the
//! real cost); a request is admitted only while spent + reserved is below the quota, so the
//! quota is overshot by at most what the requests in flight when it was reached cost beyond
//! their reservations.
//!
//! [`memory::MemoryLimiter`] keeps the counters in this process;
//! [`crate::redis::limiter::RedisLimiter`] keeps them in Redis so several gateways enforce one
//! limit.
//!
//! Days and months begin at midnight in the configured time zone ([`Calendar`]); the time comes
//! from a [`Clock`], which tests replace.

pub mod memory;

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::{KeySpend, Nanos};

/// Milliseconds in the rate-limit window.
pub const MINUTE_MS: i64 = 60_000;

/// Where "now" comes from.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Calendar days and months in the configured time zone.
#[derive(Debug, Clone, Copy)]
pub struct Calendar {
    tz: Tz,
}

impl Default for Calendar {
    fn default() -> Self {
        Self { tz: Tz::UTC }
    }
}

impl Calendar {
    pub fn new(tz: Tz) -> Self {
        Self { tz }
    }

    /// The time zone's name, e.g. `Asia/Shanghai`.
    pub fn zone(&self) -> &'static str {
        self.tz.name()
    }

    fn local(&self, ms: i64) -> DateTime<Tz> {
        DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&self.tz)
    }

    /// The local date of an instant.
    pub fn date(&self, ms: i64) -> NaiveDate {
        self.local(ms).date_naive()
    }

    /// `YYYY-MM-DD` of an instant.
    pub fn day(&self, ms: i64) -> String {
        self.date(ms).format("%Y-%m-%d").to_string()
    }

    /// `YYYY-MM-01` of the month of an instant.
    pub fn month_start_day(&self, ms: i64) -> String {
        let d = self.date(ms);
        format!("{:04}-{:02}-01", d.year(), d.month())
    }

    /// A number that changes when the local month does.
    pub fn month_number(&self, ms: i64) -> i64 {
        let d = self.date(ms);
        i64::from(d.year()) * 12 + i64::from(d.month0())
    }

    /// The zone's offset from UTC at an instant, in milliseconds (east positive).
    pub fn utc_offset_ms(&self, ms: i64) -> i64 {
        use chrono::Offset;
        i64::from(self.local(ms).offset().fix().local_minus_utc()) * 1000
    }

    /// `YYYY-MM-DD` of a local day number (days since 1970-01-01).
    pub fn day_of_number(day: i64) -> String {
        NaiveDate::from_num_days_from_ce_opt(i32::try_from(day + 719_163).unwrap_or(719_163))
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string()
    }

    /// Unix milliseconds of the next local midnight after `ms`.
    pub fn next_midnight_ms(&self, ms: i64) -> i64 {
        let next = self.date(ms).succ_opt().unwrap_or(NaiveDate::MAX);
        self.start_of(next).unwrap_or(ms + 86_400_000)
    }

    /// Unix milliseconds of the start of a local date (the first valid instant that day, for
    /// zones whose midnight a DST change skips).
    pub fn start_of(&self, date: NaiveDate) -> Option<i64> {
        let mut t = date.and_hms_opt(0, 0, 0)?;
        for _ in 0..4 {
            if let Some(dt) = self.tz.from_local_datetime(&t).earliest() {
                return Some(dt.timestamp_millis());
            }
            t += chrono::Duration::minutes(30);
        }
        None
    }
}

/// A key's limits, as the limiter sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLimits {
    pub key_id: i64,
    /// Requests in any 60 s window; 0 = unlimited.
    pub rate_limit: u64,
    /// Requests per local day; 0 = unlimited.
    pub daily_limit: u64,
    /// Cost per local month; 0 = unlimited.
    pub monthly_quota: Nanos,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `rate_limit` requests already in the last minute; one frees up in `retry_after_secs`.
    RateLimited { limit: u64, retry_after_secs: u64 },
    /// `daily_limit` reached; the day ends in `retry_after_secs`.
    DailyLimit { limit: u64, retry_after_secs: u64 },
    /// Spent plus reserved cost has reached the monthly quota.
    QuotaExhausted { quota: Nanos },
    /// The shared counters cannot be reached and the policy is to refuse (`fail-closed`).
    Unavailable,
}

/// Cost held for a request in flight, to be settled with its real cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a reservation must be settled"]
pub struct Reservation {
    pub key_id: i64,
    pub month: i64,
    pub amount: Nanos,
    /// The shared limiter's handle on the reservation (0: counted in this process).
    pub ticket: u64,
}

/// Checks and counts requests against per-key limits.
#[async_trait]
pub trait Limiter: Send + Sync + Debug + 'static {
    /// Admits a request (counting it and reserving `estimate`), or says why not. Atomic per key.
    async fn admit(
        &self,
        limits: &KeyLimits,
        now_ms: i64,
        estimate: Nanos,
    ) -> Result<Reservation, Refusal>;

    /// Replaces a reservation with the real cost. Never blocks.
    fn settle(&self, reservation: Reservation, actual: Nanos);

    /// Starts a key's counters from what the store recorded (after a restart).
    fn resume(&self, key_id: i64, spend: KeySpend, now_ms: i64);

    /// `Some(reason)` while the limiter cannot enforce shared limits (its shared counters are
    /// unreachable), for `/readyz`, logs and metrics.
    fn degraded(&self) -> Option<String> {
        None
    }

    /// Whether a degraded limiter refuses requests (`fail-closed`) rather than counting locally.
    fn refuses_when_degraded(&self) -> bool {
        false
    }
}
