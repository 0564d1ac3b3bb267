//! [`Limiter`] with counters in this process: one small mutex-guarded window per key, so a
//! check and its count are one step and keys never contend with each other.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use super::{Calendar, KeyLimits, Limiter, MINUTE_MS, Refusal, Reservation};
use crate::{KeySpend, Nanos};

/// Per-key counters.
#[derive(Debug, Default)]
struct Window {
    /// Admission times (unix ms) within the last minute, oldest first: a sliding log, so the
    /// limit holds over any 60 s, not only within calendar minutes.
    minute: VecDeque<i64>,
    /// (local day, requests admitted that day)
    day: (i64, u64),
    /// (local month, cost settled, cost reserved by requests in flight)
    month: (i64, Nanos, Nanos),
}

/// In-process limiter.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    calendar: Calendar,
    windows: RwLock<HashMap<i64, Arc<Mutex<Window>>>>,
}

impl MemoryLimiter {
    pub fn new(calendar: Calendar) -> Self {
        Self {
            calendar,
            windows: RwLock::default(),
        }
    }

    fn window(&self, key_id: i64) -> Arc<Mutex<Window>> {
        if let Some(w) = self
            .windows
            .read()
            .ok()
            .and_then(|m| m.get(&key_id).cloned())
        {
            return w;
        }
        match self.windows.write() {
            Ok(mut map) => map.entry(key_id).or_default().clone(),
            // A poisoned map still yields a working (if unshared) window rather than a panic.
            Err(poisoned) => poisoned.into_inner().entry(key_id).or_default().clone(),
        }
    }

    fn day_number(&self, ms: i64) -> i64 {
        chrono::Datelike::num_days_from_ce(&self.calendar.date(ms)).into()
    }

    /// Test view: (requests in the last minute, requests today, settled, reserved).
    pub fn snapshot(&self, key_id: i64, now_ms: i64) -> (usize, u64, Nanos, Nanos) {
        let w = self.window(key_id);
        let w = w.lock().unwrap_or_else(|p| p.into_inner());
        let in_minute = w.minute.iter().filter(|t| **t > now_ms - MINUTE_MS).count();
        (in_minute, w.day.1, w.month.1, w.month.2)
    }

    /// The synchronous core of [`Limiter::admit`].
    pub fn admit_now(
        &self,
        limits: &KeyLimits,
        now_ms: i64,
        estimate: Nanos,
    ) -> Result<Reservation, Refusal> {
        let window = self.window(limits.key_id);
        let mut w = window.lock().unwrap_or_else(|p| p.into_inner());
        while w.minute.front().is_some_and(|t| *t <= now_ms - MINUTE_MS) {
            w.minute.pop_front();
        }
        if limits.rate_limit > 0 && w.minute.len() as u64 >= limits.rate_limit {
            let frees_at = w.minute.front().copied().unwrap_or(now_ms) + MINUTE_MS;
            return Err(Refusal::RateLimited {
                limit: limits.rate_limit,
                retry_after_secs: secs_until(now_ms, frees_at),
            });
        }
        let today = self.day_number(now_ms);
        if w.day.0 != today {
            w.day = (today, 0);
        }
        if limits.daily_limit > 0 && w.day.1 >= limits.daily_limit {
            return Err(Refusal::DailyLimit {
                limit: limits.daily_limit,
                retry_after_secs: secs_until(now_ms, self.calendar.next_midnight_ms(now_ms)),
            });
        }
        let month = self.calendar.month_number(now_ms);
        if w.month.0 != month {
            w.month = (month, 0, 0);
        }
        if limits.monthly_quota > 0 && w.month.1 + w.month.2 >= limits.monthly_quota {
            return Err(Refusal::QuotaExhausted {
                quota: limits.monthly_quota,
            });
        }
        if limits.rate_limit > 0 {
            w.minute.push_back(now_ms);
        }
        w.day.1 += 1;
        let amount = estimate.max(0);
        w.month.2 += amount;
        Ok(Reservation {
            key_id: limits.key_id,
            month,
            amount,
            ticket: 0,
        })
    }
}

fn secs_until(now_ms: i64, at_ms: i64) -> u64 {
    u64::try_from((at_ms - now_ms).max(0))
        .unwrap_or(0)
        .div_ceil(1000)
        .max(1)
}

#[async_trait]
impl Limiter for MemoryLimiter {
    async fn admit(
        &self,
        limits: &KeyLimits,
        now_ms: i64,
        estimate: Nanos,
    ) -> Result<Reservation, Refusal> {
        self.admit_now(limits, now_ms, estimate)
    }

    fn settle(&self, reservation: Reservation, actual: Nanos) {
        let window = self.window(reservation.key_id);
        let mut w = window.lock().unwrap_or_else(|p| p.into_inner());
        // A reservation from last month settles nothing this month.
        if w.month.0 == reservation.month {
            w.month.2 = (w.month.2 - reservation.amount).max(0);
            w.month.1 += actual.max(0);
        }
    }

    fn resume(&self, key_id: i64, spend: KeySpend, now_ms: i64) {
        let today = self.day_number(now_ms);
        let month = self.calendar.month_number(now_ms);
        let window = self.window(key_id);
        let mut w = window.lock().unwrap_or_else(|p| p.into_inner());
        w.day = (today, u64::try_from(spend.requests_today).unwrap_or(0));
        w.month = (month, spend.cost_this_month, w.month.2);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::limits::{Clock, ManualClock};
    use std::sync::Arc;

    fn limits(rate: u64, daily: u64, quota: Nanos) -> KeyLimits {
        KeyLimits {
            key_id: 7,
            rate_limit: rate,
            daily_limit: daily,
            monthly_quota: quota,
        }
    }

    #[test]
    fn concurrent_admissions_are_exact() {
        let limiter = Arc::new(MemoryLimiter::default());
        let now = 1_700_000_000_000;
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..25 {
                        if limiter.admit_now(&limits(60, 0, 0), now, 0).is_ok() {
                            admitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 60);
    }

    #[test]
    fn the_minute_slides() {
        let l = MemoryLimiter::default();
        let t0 = 1_700_000_000_000;
        for i in 0..3 {
            let _ = l.admit_now(&limits(3, 0, 0), t0 + i * 10_000, 0).unwrap();
        }
        // The fourth request in the same 60 s is refused until the first one leaves the window.
        let refused = l.admit_now(&limits(3, 0, 0), t0 + 59_000, 0).unwrap_err();
        assert_eq!(
            refused,
            Refusal::RateLimited {
                limit: 3,
                retry_after_secs: 1
            }
        );
        assert!(l.admit_now(&limits(3, 0, 0), t0 + 60_000, 0).is_ok());
        assert!(l.admit_now(&limits(3, 0, 0), t0 + 60_001, 0).is_err());
    }

    #[test]
    fn daily_limit_resets_at_local_midnight() {
        // 2025-03-09 23:59:30 in Shanghai (UTC+8) is 15:59:30 UTC.
        let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
        let clock = ManualClock::new(
            chrono::DateTime::parse_from_rfc3339("2025-03-09T15:59:30Z")
                .unwrap()
                .timestamp_millis(),
        );
        let l = MemoryLimiter::new(Calendar::new(tz));
        let daily = limits(0, 2, 0);
        let _ = l.admit_now(&daily, clock.now_ms(), 0).unwrap();
        let _ = l.admit_now(&daily, clock.now_ms(), 0).unwrap();
        let refused = l.admit_now(&daily, clock.now_ms(), 0).unwrap_err();
        assert_eq!(
            refused,
            Refusal::DailyLimit {
                limit: 2,
                retry_after_secs: 30
            }
        );
        clock.advance(29_000);
        assert!(
            l.admit_now(&daily, clock.now_ms(), 0).is_err(),
            "still the same local day"
        );
        clock.advance(1_000); // 00:00:00 in Shanghai, still 2025-03-09 in UTC
        let _ = l.admit_now(&daily, clock.now_ms(), 0).unwrap();
        let _ = l.admit_now(&daily, clock.now_ms(), 0).unwrap();
        assert!(l.admit_now(&daily, clock.now_ms(), 0).is_err());
    }

    #[test]
    fn quota_reserves_then_settles() {
        let l = MemoryLimiter::default();
        let now = 1_700_000_000_000;
        let q = limits(0, 0, 100);
        let a = l.admit_now(&q, now, 40).unwrap();
        let b = l.admit_now(&q, now, 40).unwrap();
        let c = l.admit_now(&q, now, 40).unwrap(); // 80 < 100: admitted, reserving up to 120
        assert_eq!(
            l.admit_now(&q, now, 40).unwrap_err(),
            Refusal::QuotaExhausted { quota: 100 }
        );
        l.settle(a, 10);
        l.settle(b, 10);
        assert_eq!(l.snapshot(7, now), (0, 3, 20, 40));
        let d = l.admit_now(&q, now, 40).unwrap();
        l.settle(c, 50);
        l.settle(d, 50);
        assert_eq!(
            l.snapshot(7, now).2,
            120,
            "overshoot bounded by what was in flight"
        );
        assert!(l.admit_now(&q, now, 0).is_err());
    }

    #[test]
    fn resume_restores_today_and_this_month() {
        let l = MemoryLimiter::default();
        let now = 1_700_000_000_000;
        l.resume(
            7,
            KeySpend {
                requests_today: 5,
                cost_this_month: 90,
            },
            now,
        );
        assert!(l.admit_now(&limits(0, 5, 0), now, 0).is_err());
        assert!(l.admit_now(&limits(0, 0, 90), now, 0).is_err());
        assert!(l.admit_now(&limits(0, 0, 91), now, 0).is_ok());
    }
}
