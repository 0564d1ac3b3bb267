//! Failure counting and bans in front of slow secret checks (the management key's bcrypt,
//! sign-in passwords' argon2).
//!
//! An attempt is counted as a failure **before** its slow check runs ([`Bans::begin`]), and
//! forgiven only when the check succeeds ([`Bans::clear`]). So however many attempts arrive at
//! once, at most `max-failures` of them per source reach the slow check; the next one is refused
//! as banned straight away, and the ban starts then. That bounds the hashing work one source can
//! cause to `max-failures` checks per ban window.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::settings::ManagementBan;

/// Sources remembered at most; beyond it, sources without an active ban are forgotten.
const MAX_TRACKED: usize = 10_000;

/// The failure record of each source (an address, a user name).
#[derive(Debug)]
pub struct Bans<K> {
    strikes: Mutex<HashMap<K, Strikes>>,
}

impl<K> Default for Bans<K> {
    fn default() -> Self {
        Self {
            strikes: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Debug, Default)]
struct Strikes {
    /// Failed attempts, and attempts still being checked.
    failures: u32,
    banned_until: Option<Instant>,
}

impl<K: Hash + Eq + Clone> Bans<K> {
    /// Counts an attempt by `source` as a failure until it proves otherwise. `Err` with the time
    /// left when the source is banned, or when `max-failures` attempts are already counted
    /// (which starts the ban).
    pub fn begin(&self, source: &K, policy: &ManagementBan) -> Result<(), Duration> {
        let Ok(mut strikes) = self.strikes.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        if strikes.len() >= MAX_TRACKED {
            strikes.retain(|_, s| s.banned_until.is_some_and(|u| u > now));
        }
        let entry = strikes.entry(source.clone()).or_default();
        match entry.banned_until {
            Some(until) if until > now => return Err(until - now),
            Some(_) => *entry = Strikes::default(),
            None => {}
        }
        if entry.failures >= policy.max_failures {
            entry.banned_until = Some(now + policy.duration);
            return Err(policy.duration);
        }
        entry.failures += 1;
        Ok(())
    }

    /// The attempt begun for `source` failed; true when this failure started its ban.
    pub fn failed(&self, source: &K, policy: &ManagementBan) -> bool {
        let Ok(mut strikes) = self.strikes.lock() else {
            return false;
        };
        let Some(entry) = strikes.get_mut(source) else {
            return false;
        };
        if entry.failures >= policy.max_failures && entry.banned_until.is_none() {
            entry.banned_until = Some(Instant::now() + policy.duration);
            return true;
        }
        false
    }

    /// The attempt succeeded: `source` starts over.
    pub fn clear(&self, source: &K) {
        if let Ok(mut strikes) = self.strikes.lock() {
            strikes.remove(source);
        }
    }

    /// The time left on a ban of `source`, if it is banned.
    pub fn banned(&self, source: &K) -> Option<Duration> {
        let strikes = self.strikes.lock().ok()?;
        let until = strikes.get(source)?.banned_until?;
        until.checked_duration_since(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy(max_failures: u32) -> ManagementBan {
        ManagementBan {
            max_failures,
            duration: Duration::from_secs(60),
        }
    }

    #[test]
    fn failures_ban_after_the_limit_and_success_clears() {
        let bans = Bans::default();
        let policy = policy(3);
        let ip = "192.0.2.1";
        assert!(bans.begin(&ip, &policy).is_ok());
        bans.clear(&ip);
        for _ in 0..2 {
            assert!(bans.begin(&ip, &policy).is_ok());
            assert!(!bans.failed(&ip, &policy));
        }
        assert!(bans.banned(&ip).is_none());
        assert!(bans.begin(&ip, &policy).is_ok());
        assert!(bans.failed(&ip, &policy));
        assert!(
            bans.banned(&ip)
                .is_some_and(|d| d > Duration::from_secs(50))
        );
        assert!(bans.begin(&ip, &policy).is_err());
        assert!(bans.banned(&"192.0.2.2").is_none());
    }

    #[test]
    fn concurrent_attempts_beyond_the_limit_are_refused_before_checking() {
        let bans = Bans::default();
        let policy = policy(5);
        let admitted = (0..200)
            .filter(|_| bans.begin(&"198.51.100.7", &policy).is_ok())
            .count();
        assert_eq!(admitted, 5, "only five reach the slow check");
        assert!(bans.banned(&"198.51.100.7").is_some());
    }
}
