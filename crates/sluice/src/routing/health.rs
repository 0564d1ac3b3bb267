//! Health per credential and model: cooldown windows, probes, and disabling.
//!
//! Every state but "disabled" is a **window** with an end (`cooldown_until`, `probe_until`):
//! a credential is eligible again as soon as its windows have ended, whatever else happened,
//! and the next real request after a cooldown is its probe. Nothing here sleeps or schedules:
//! time is a parameter (`now`), so tests drive it directly and a cooldown cannot get stuck.
//!
//! - 429 / quota errors: the upstream's `Retry-After`, else an exponential backoff
//!   (`quota-backoff`, doubling per consecutive quota error, capped at `quota-backoff-max`, which
//!   also caps `Retry-After`).
//! - 5xx answers and timeouts: after `server-error-threshold` consecutive ones, a short
//!   `server-error` cooldown; each further failure before a success cools again.
//! - 401/403: the credential is disabled for every model, with the reason (a refreshable token
//!   is refreshed first, by the caller). Only a refresh or a config reload re-enables it.
//! - A probe (the first pick after a window) holds a lease so concurrent requests do not all
//!   rush a credential that may still be failing; the lease is itself a window, and the probe's
//!   outcome (or its abandonment) ends it early.
//!
//! Every change of a credential's state (cooling, probing, recovered, disabled, enabled) is
//! published on a broadcast channel ([`Health::subscribe`]) from the place it happens, so the
//! dashboard's live pages hear of it without polling the table. A window that simply ends is
//! no event: listeners know its deadline from the `Cooling` change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::CooldownConfig;

/// The gateway's monotonic clock for routing decisions. `advance` moves it forward, so tests
/// (and only tests) can end windows without sleeping.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicU64,
}

impl Clock {
    /// Now, on this clock.
    pub fn now(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Continues another clock (on a config reload).
    pub fn inherit(&self, previous: &Clock) {
        self.offset_ms.store(
            previous.offset_ms.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// Moves the clock forward (a test hook: production code never calls it).
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// What an attempt told us about a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered (2xx, or a 4xx that was the caller's fault): the credential works.
    Success,
    /// 429 / quota exhausted, with the upstream's `Retry-After` if it sent one.
    Quota { retry_after: Option<Duration> },
    /// 5xx, timeout, connection failure, broken body.
    ServerError,
    /// 401/403 that a refresh could not cure: disable, with a reason free of secrets.
    Unauthorized { reason: String },
    /// The attempt ended without a verdict (the client left, the request was answered locally).
    Abandoned,
}

/// Why a credential is cooling down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CooldownReason {
    Quota,
    ServerError,
}

/// Whether a credential may take a request for a model now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Healthy.
    Available,
    /// A window has ended and nobody has probed yet: the next pick is the probe.
    ProbeDue,
    /// A probe is in flight until this instant (or until it reports).
    Probing { until: Instant },
    /// Cooling down until this instant.
    Cooling {
        until: Instant,
        reason: CooldownReason,
    },
    /// Disabled for every model.
    Disabled { reason: String },
}

impl Availability {
    /// Whether a request may go to the credential.
    pub fn eligible(&self) -> bool {
        matches!(self, Availability::Available | Availability::ProbeDue)
    }
}

/// Cooldown settings in effect.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub quota_backoff: Duration,
    pub quota_backoff_max: Duration,
    pub server_error_threshold: u32,
    pub server_error: Duration,
}

impl From<&CooldownConfig> for Policy {
    fn from(c: &CooldownConfig) -> Self {
        Self {
            quota_backoff: c.quota_backoff,
            quota_backoff_max: c.quota_backoff_max,
            server_error_threshold: c.server_error_threshold.max(1),
            server_error: c.server_error,
        }
    }
}

impl Policy {
    /// The longest cooldown this policy can set.
    pub fn longest_window(&self) -> Duration {
        self.quota_backoff_max.max(self.server_error)
    }

    fn quota_cooldown(&self, strikes: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = || {
            let doublings = strikes.saturating_sub(1).min(30);
            self.quota_backoff.saturating_mul(1u32 << doublings)
        };
        retry_after
            .unwrap_or_else(backoff)
            .min(self.quota_backoff_max)
    }
}

#[derive(Debug, Default, Clone)]
struct ModelState {
    cooldown_until: Option<Instant>,
    reason: Option<CooldownReason>,
    quota_strikes: u32,
    server_failures: u32,
    probe_until: Option<Instant>,
}

impl ModelState {
    fn availability(&self, now: Instant) -> Availability {
        if let (Some(until), Some(reason)) = (self.cooldown_until, self.reason)
            && until > now
        {
            return Availability::Cooling { until, reason };
        }
        if let Some(until) = self.probe_until
            && until > now
        {
            return Availability::Probing { until };
        }
        if self.cooldown_until.is_some() {
            Availability::ProbeDue
        } else {
            Availability::Available
        }
    }

    fn is_clean(&self) -> bool {
        self.cooldown_until.is_none()
            && self.probe_until.is_none()
            && self.quota_strikes == 0
            && self.server_failures == 0
    }
}

#[derive(Debug, Default, Clone)]
struct CredentialState {
    disabled: Option<String>,
    models: HashMap<Arc<str>, ModelState>,
    requests: u64,
    failures: u64,
    last_used: Option<SystemTime>,
    last_error: Option<String>,
    /// The upstream's words for the last failure (secrets already redacted).
    last_error_detail: Option<String>,
}

/// What became of a credential (for one model, or for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A cooldown window opened (or moved).
    Cooling,
    /// A probe took the credential after its window ended.
    Probing,
    /// A window ended and nobody has probed yet.
    ProbeDue,
    /// Healthy again: a probe succeeded, or an operator cleared the cooldown.
    Recovered,
    /// Disabled for every model (401/403, a token that needs a new sign-in, an operator).
    Disabled,
    /// Re-enabled (a refresh, an operator).
    Enabled,
}

/// A change in a credential's state, as published to listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub credential: Arc<str>,
    /// `None`: the change concerns every model (disabled, enabled).
    pub model: Option<Arc<str>>,
    pub kind: ChangeKind,
}

/// How many changes a slow listener may fall behind before it is told it lagged.
const CHANGES_BUFFER: usize = 256;

/// The channel changes are published on; kept across config reloads, so a listener that
/// subscribed before a reload keeps hearing.
#[derive(Debug)]
struct Changes(Mutex<tokio::sync::broadcast::Sender<Change>>);

impl Default for Changes {
    fn default() -> Self {
        Changes(Mutex::new(
            tokio::sync::broadcast::channel(CHANGES_BUFFER).0,
        ))
    }
}

impl Changes {
    fn sender(&self) -> MutexGuard<'_, tokio::sync::broadcast::Sender<Change>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, credential: &str, model: Option<&str>, kind: ChangeKind) {
        let tx = self.sender();
        if tx.receiver_count() > 0 {
            // No listener is no error: nobody has a live page open.
            let _ = tx.send(Change {
                credential: credential.into(),
                model: model.map(Into::into),
                kind,
            });
        }
    }
}

/// The kind of change between two availabilities, if they differ in a way listeners see.
fn change_between(before: &Availability, after: &Availability) -> Option<ChangeKind> {
    use Availability as A;
    match (before, after) {
        (A::Cooling { until: a, .. }, A::Cooling { until: b, .. }) if a == b => None,
        (_, A::Cooling { .. }) => Some(ChangeKind::Cooling),
        (A::Probing { .. }, A::Probing { .. }) => None,
        (_, A::Probing { .. }) => Some(ChangeKind::Probing),
        (A::ProbeDue, A::ProbeDue) => None,
        (_, A::ProbeDue) => Some(ChangeKind::ProbeDue),
        (A::Disabled { .. }, A::Disabled { .. }) => None,
        (_, A::Disabled { .. }) => Some(ChangeKind::Disabled),
        (A::Disabled { .. }, A::Available) => Some(ChangeKind::Enabled),
        (A::Cooling { .. } | A::Probing { .. } | A::ProbeDue, A::Available) => {
            Some(ChangeKind::Recovered)
        }
        (A::Available, A::Available) => None,
    }
}

/// Every credential's health. One short lock per routing decision and per outcome.
#[derive(Debug)]
pub struct Health {
    policy: Policy,
    table: Mutex<HashMap<Arc<str>, CredentialState>>,
    changes: Changes,
}

impl Health {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            table: Mutex::default(),
            changes: Changes::default(),
        }
    }

    /// Hears every change of state from now on (cooling, probing, recovered, disabled,
    /// enabled), across config reloads.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.sender().subscribe()
    }

    /// Records the upstream's words for a credential's last failure (already free of secrets;
    /// cut to 300 characters).
    pub fn note_error(&self, credential: &str, words: &str) {
        let words: String = words.chars().take(300).collect();
        if let Some(state) = self.lock().table.get_mut(credential) {
            state.last_error_detail = Some(words);
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Locks the table for a routing decision (several lookups and one acquisition).
    pub fn lock(&self) -> HealthGuard<'_> {
        HealthGuard {
            // Every update leaves the table consistent, so a poisoned lock is still usable.
            table: self.table.lock().unwrap_or_else(PoisonError::into_inner),
            changes: &self.changes,
        }
    }

    /// Runs `update` on the locked table and publishes what it changed for (credential, model).
    fn changing<T>(
        &self,
        credential: &str,
        model: Option<&str>,
        now: Instant,
        update: impl FnOnce(&mut HealthGuard<'_>) -> T,
    ) -> T {
        let mut guard = self.lock();
        let look = |g: &HealthGuard<'_>| match model {
            Some(m) => g.availability(credential, m, now),
            None => g.disabled_state(credential),
        };
        let before = look(&guard);
        let out = update(&mut guard);
        let after = look(&guard);
        drop(guard);
        if let Some(kind) = change_between(&before, &after) {
            self.changes.publish(credential, model, kind);
        }
        out
    }

    /// Records what an attempt told us.
    pub fn report(&self, credential: &str, model: &str, outcome: &Outcome, now: Instant) {
        if let Outcome::Unauthorized { .. } = outcome {
            // Disabling concerns every model: published as the credential's change.
            self.changing(credential, None, now, |g| {
                self.report_locked(g, credential, model, outcome, now)
            });
        } else {
            self.changing(credential, Some(model), now, |g| {
                self.report_locked(g, credential, model, outcome, now)
            });
        }
    }

    fn report_locked(
        &self,
        guard: &mut HealthGuard<'_>,
        credential: &str,
        model: &str,
        outcome: &Outcome,
        now: Instant,
    ) {
        let state = guard.table.entry(credential.into()).or_default();
        state.requests += u64::from(!matches!(outcome, Outcome::Abandoned));
        state.last_used = Some(SystemTime::now());
        let model_state = state.models.entry(model.into()).or_default();
        match outcome {
            Outcome::Success => *model_state = ModelState::default(),
            Outcome::Abandoned => model_state.probe_until = None,
            Outcome::Quota { retry_after } => {
                model_state.quota_strikes = model_state.quota_strikes.saturating_add(1);
                let window = self
                    .policy
                    .quota_cooldown(model_state.quota_strikes, *retry_after);
                model_state.cooldown_until = Some(now + window);
                model_state.reason = Some(CooldownReason::Quota);
                model_state.probe_until = None;
            }
            Outcome::ServerError => {
                model_state.server_failures = model_state.server_failures.saturating_add(1);
                if model_state.server_failures >= self.policy.server_error_threshold {
                    model_state.cooldown_until = Some(now + self.policy.server_error);
                    model_state.reason = Some(CooldownReason::ServerError);
                }
                model_state.probe_until = None;
            }
            Outcome::Unauthorized { reason } => {
                model_state.probe_until = None;
                state.disabled = Some(reason.clone());
            }
        }
        let clean = state.models.get(model).is_some_and(ModelState::is_clean);
        if clean {
            state.models.remove(model);
        }
        match outcome {
            Outcome::Success | Outcome::Abandoned => {}
            Outcome::Quota { .. } => {
                state.failures += 1;
                state.last_error = Some("quota".into());
            }
            Outcome::ServerError => {
                state.failures += 1;
                state.last_error = Some("server_error".into());
            }
            Outcome::Unauthorized { .. } => {
                state.failures += 1;
                state.last_error = Some("unauthorized".into());
            }
        }
    }

    /// Takes over another table's cooldown windows, streaks and counters (on a config reload).
    /// Disabled states and probe leases are not carried: a reload is when an operator fixes a
    /// key, and the next request may probe again.
    pub fn inherit(&self, previous: &Health) {
        let carried: Vec<(Arc<str>, CredentialState)> = previous
            .lock()
            .table
            .iter()
            .map(|(id, state)| {
                let mut state = state.clone();
                state.disabled = None;
                for model in state.models.values_mut() {
                    model.probe_until = None;
                }
                (id.clone(), state)
            })
            .collect();
        self.lock().table.extend(carried);
        let listeners = previous.changes.sender().clone();
        *self.changes.sender() = listeners;
    }

    /// Credentials disabled now (a reload gives them another chance on every instance).
    pub fn disabled(&self) -> Vec<Arc<str>> {
        self.lock()
            .table
            .iter()
            .filter(|(_, state)| state.disabled.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    // --- Applying what other instances saw (shared through Redis; issue 14) ---

    /// Cools a credential for a model until `until` unless a later window is already set (the
    /// later deadline wins); a probe in flight here is not disturbed.
    pub fn cool_until(
        &self,
        credential: &str,
        model: &str,
        until: Instant,
        reason: CooldownReason,
        now: Instant,
    ) {
        self.changing(credential, Some(model), now, |guard| {
            let state = guard.table.entry(credential.into()).or_default();
            let m = state.models.entry(model.into()).or_default();
            if m.cooldown_until.is_none_or(|current| current < until) {
                m.cooldown_until = Some(until);
                m.reason = Some(reason);
            }
        });
    }

    /// Ends a credential's cooldown for a model (another instance's probe succeeded, or an
    /// operator cleared it).
    pub fn clear(&self, credential: &str, model: &str, now: Instant) {
        self.changing(credential, Some(model), now, |guard| {
            if let Some(state) = guard.table.get_mut(credential) {
                state.models.remove(model);
            }
        });
    }

    /// Disables a credential (another instance was refused with it, an OAuth account needs a
    /// new sign-in, or an operator turned it off).
    pub fn disable(&self, credential: &str, reason: &str) {
        self.changing(credential, None, Instant::now(), |guard| {
            guard.table.entry(credential.into()).or_default().disabled = Some(reason.to_string());
        });
    }

    /// Another instance holds the probe of this credential: skip it here until `until`, then
    /// look again.
    pub fn hold_probe(&self, credential: &str, model: &str, until: Instant) {
        if let Some(m) = self
            .lock()
            .table
            .get_mut(credential)
            .and_then(|s| s.models.get_mut(model))
        {
            m.probe_until = Some(until);
        }
    }

    /// Re-enables a disabled credential (after a successful token refresh, or by an operator).
    pub fn enable(&self, credential: &str) {
        self.changing(credential, None, Instant::now(), |guard| {
            if let Some(state) = guard.table.get_mut(credential) {
                state.disabled = None;
            }
        });
    }

    /// Models of a credential that have a cooldown window or probe (ended or not).
    pub fn windows_of(&self, credential: &str) -> Vec<Arc<str>> {
        self.lock()
            .table
            .get(credential)
            .map(|s| s.models.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Availability of one credential for one model.
    pub fn availability(&self, credential: &str, model: &str, now: Instant) -> Availability {
        self.lock().availability(credential, model, now)
    }

    /// Everything known about one credential, for status listings.
    pub fn report_for(&self, credential: &str, now: Instant) -> CredentialReport {
        let guard = self.lock();
        let Some(state) = guard.table.get(credential) else {
            return CredentialReport::default();
        };
        let mut models: Vec<ModelReport> = state
            .models
            .iter()
            .filter_map(|(model, m)| {
                let (status, remaining, reason) = match m.availability(now) {
                    Availability::Cooling { until, reason } => {
                        ("cooling", Some(until - now), Some(reason))
                    }
                    Availability::Probing { until } => ("probing", Some(until - now), None),
                    Availability::ProbeDue => ("probe_due", None, None),
                    Availability::Available if m.server_failures > 0 => ("degraded", None, None),
                    _ => return None,
                };
                Some(ModelReport {
                    model: model.to_string(),
                    status,
                    reason,
                    remaining_ms: remaining.map(|d| d.as_millis() as u64),
                    consecutive_quota_errors: m.quota_strikes,
                    consecutive_server_errors: m.server_failures,
                })
            })
            .collect();
        models.sort_by(|a, b| a.model.cmp(&b.model));
        CredentialReport {
            disabled: state.disabled.clone(),
            models,
            requests: state.requests,
            failures: state.failures,
            last_used: state
                .last_used
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            last_error: state.last_error.clone(),
            last_error_detail: state.last_error_detail.clone(),
        }
    }
}

/// The locked table.
pub struct HealthGuard<'a> {
    table: MutexGuard<'a, HashMap<Arc<str>, CredentialState>>,
    changes: &'a Changes,
}

impl HealthGuard<'_> {
    /// `Disabled` or `Available`: the credential-wide part of its state.
    fn disabled_state(&self, credential: &str) -> Availability {
        match self.table.get(credential).and_then(|s| s.disabled.clone()) {
            Some(reason) => Availability::Disabled { reason },
            None => Availability::Available,
        }
    }

    /// Availability of one credential for one model.
    pub fn availability(&self, credential: &str, model: &str, now: Instant) -> Availability {
        let Some(state) = self.table.get(credential) else {
            return Availability::Available;
        };
        if let Some(reason) = &state.disabled {
            return Availability::Disabled {
                reason: reason.clone(),
            };
        }
        state
            .models
            .get(model)
            .map_or(Availability::Available, |m| m.availability(now))
    }

    /// Takes the credential for a request if it is eligible. When its cooldown has just ended,
    /// this request is the probe: others skip the credential until the probe reports or
    /// `lease` passes. Returns whether it was taken.
    pub fn acquire(
        &mut self,
        credential: &str,
        model: &str,
        now: Instant,
        lease: Duration,
    ) -> bool {
        match self.availability(credential, model, now) {
            Availability::Available => true,
            Availability::ProbeDue => {
                if let Some(m) = self
                    .table
                    .get_mut(credential)
                    .and_then(|s| s.models.get_mut(model))
                {
                    m.probe_until = Some(now + lease);
                }
                self.changes
                    .publish(credential, Some(model), ChangeKind::Probing);
                true
            }
            _ => false,
        }
    }
}

/// One credential's health, for the management API and `/api/token-status`.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct CredentialReport {
    /// Why the credential is disabled, if it is.
    pub disabled: Option<String>,
    /// Models with a cooldown, probe or failure streak (healthy ones are not listed).
    pub models: Vec<ModelReport>,
    /// Upstream attempts made with it.
    pub requests: u64,
    /// Of which failed.
    pub failures: u64,
    /// RFC 3339.
    pub last_used: Option<String>,
    /// Kind of the last failure: `quota`, `server_error`, `unauthorized`.
    pub last_error: Option<String>,
    /// The upstream's words for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_detail: Option<String>,
}

impl CredentialReport {
    /// `active`, `cooling` (some model cooling or probing), or `disabled`.
    pub fn status(&self) -> &'static str {
        if self.disabled.is_some() {
            "disabled"
        } else if self
            .models
            .iter()
            .any(|m| matches!(m.status, "cooling" | "probing"))
        {
            "cooling"
        } else {
            "active"
        }
    }
}

/// One model's state on one credential.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelReport {
    pub model: String,
    /// `cooling`, `probing`, `probe_due` or `degraded` (failures below the threshold).
    pub status: &'static str,
    pub reason: Option<CooldownReason>,
    /// Until the window ends.
    pub remaining_ms: Option<u64>,
    pub consecutive_quota_errors: u32,
    pub consecutive_server_errors: u32,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    const LEASE: Duration = Duration::from_secs(30);

    fn policy() -> Policy {
        Policy {
            quota_backoff: Duration::from_secs(1),
            quota_backoff_max: Duration::from_secs(60),
            server_error_threshold: 2,
            server_error: Duration::from_secs(10),
        }
    }

    fn take(h: &Health, now: Instant) -> bool {
        h.lock().acquire("c", "m", now, LEASE)
    }

    #[test]
    fn retry_after_sets_the_window_and_the_next_request_probes() {
        let h = Health::new(policy());
        let t0 = Instant::now();
        h.report(
            "c",
            "m",
            &Outcome::Quota {
                retry_after: Some(Duration::from_secs(5)),
            },
            t0,
        );
        assert!(!take(&h, t0 + Duration::from_millis(4999)));
        // Other models of the same credential are unaffected.
        assert!(h.lock().acquire("c", "other", t0, LEASE));
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(h.availability("c", "m", t1), Availability::ProbeDue);
        assert!(take(&h, t1), "the window is over: this request probes");
        assert!(!take(&h, t1), "one probe at a time");
        h.report("c", "m", &Outcome::Success, t1);
        assert_eq!(h.availability("c", "m", t1), Availability::Available);
        assert!(take(&h, t1) && take(&h, t1));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let h = Health::new(policy());
        let mut now = Instant::now();
        let mut windows = Vec::new();
        for _ in 0..9 {
            h.report("c", "m", &Outcome::Quota { retry_after: None }, now);
            let Availability::Cooling { until, .. } = h.availability("c", "m", now) else {
                panic!("not cooling")
            };
            windows.push((until - now).as_secs());
            now = until;
        }
        assert_eq!(windows, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // Retry-After is capped too.
        h.report(
            "c",
            "m",
            &Outcome::Quota {
                retry_after: Some(Duration::from_secs(86_400)),
            },
            now,
        );
        assert!(take(&h, now + Duration::from_secs(60)));
    }

    #[test]
    fn server_errors_cool_after_the_threshold_and_success_resets() {
        let h = Health::new(policy());
        let t = Instant::now();
        h.report("c", "m", &Outcome::ServerError, t);
        assert!(take(&h, t), "one failure is below the threshold");
        h.report("c", "m", &Outcome::ServerError, t);
        assert!(!take(&h, t));
        let after = t + Duration::from_secs(10);
        assert!(take(&h, after));
        h.report("c", "m", &Outcome::ServerError, after);
        assert!(!take(&h, after), "a failed probe cools again at once");
        let later = after + Duration::from_secs(10);
        assert!(take(&h, later));
        h.report("c", "m", &Outcome::Success, later);
        h.report("c", "m", &Outcome::ServerError, later);
        assert!(take(&h, later), "the streak restarted");
    }

    #[test]
    fn unauthorized_disables_every_model_until_enabled() {
        let h = Health::new(policy());
        let t = Instant::now();
        h.report(
            "c",
            "m",
            &Outcome::Unauthorized {
                reason: "HTTP 401".into(),
            },
            t,
        );
        assert_eq!(
            h.availability("c", "other", t + Duration::from_secs(86_400)),
            Availability::Disabled {
                reason: "HTTP 401".into()
            }
        );
        assert_eq!(h.report_for("c", t).status(), "disabled");
        h.enable("c");
        assert!(take(&h, t));
    }

    #[test]
    fn an_abandoned_probe_frees_the_credential_at_once() {
        let h = Health::new(policy());
        let t = Instant::now();
        h.report("c", "m", &Outcome::Quota { retry_after: None }, t);
        let t1 = t + Duration::from_secs(1);
        assert!(take(&h, t1));
        h.report("c", "m", &Outcome::Abandoned, t1);
        assert!(take(&h, t1), "probe due again");
    }

    #[test]
    fn every_change_of_state_is_published_once_where_it_happens() {
        let h = Health::new(policy());
        let mut heard = h.subscribe();
        let mut next = || {
            heard
                .try_recv()
                .map(|c| {
                    (
                        c.credential.to_string(),
                        c.model.map(|m| m.to_string()),
                        c.kind,
                    )
                })
                .ok()
        };
        let t0 = Instant::now();
        let m = || Some("m".to_string());
        let quota = Outcome::Quota {
            retry_after: Some(Duration::from_secs(5)),
        };
        h.report("c", "m", &quota, t0);
        assert_eq!(next(), Some(("c".into(), m(), ChangeKind::Cooling)));
        h.report("c", "m", &Outcome::Success, t0);
        assert_eq!(next(), Some(("c".into(), m(), ChangeKind::Recovered)));
        h.report("c", "m", &Outcome::Success, t0);
        assert_eq!(next(), None, "no change, no event");
        h.report("c", "m", &quota, t0);
        next();
        let t1 = t0 + Duration::from_secs(6);
        assert!(take(&h, t1));
        assert_eq!(next(), Some(("c".into(), m(), ChangeKind::Probing)));
        h.report("c", "m", &Outcome::Success, t1);
        assert_eq!(next(), Some(("c".into(), m(), ChangeKind::Recovered)));
        let refused = Outcome::Unauthorized {
            reason: "401".into(),
        };
        h.report("c", "m", &refused, t1);
        assert_eq!(next(), Some(("c".into(), None, ChangeKind::Disabled)));
        h.enable("c");
        assert_eq!(next(), Some(("c".into(), None, ChangeKind::Enabled)));
        h.cool_until(
            "c",
            "m",
            t1 + Duration::from_secs(9),
            CooldownReason::Quota,
            t1,
        );
        assert_eq!(next(), Some(("c".into(), m(), ChangeKind::Cooling)));
        h.clear("c", "m", t1);
        assert_eq!(next(), Some(("c".into(), m(), ChangeKind::Recovered)));
        // A reload's table keeps the listeners.
        let reloaded = Health::new(policy());
        reloaded.inherit(&h);
        reloaded.report("d", "m", &quota, t1);
        assert_eq!(next(), Some(("d".into(), m(), ChangeKind::Cooling)));
    }

    #[test]
    fn clock_advances_without_sleeping() {
        let clock = Clock::default();
        let before = clock.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now() >= before + Duration::from_secs(3600));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Quota(Option<u64>),
        Server,
        Success,
        Abandon,
        Take,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            proptest::option::of(0u64..1_000_000).prop_map(Op::Quota),
            Just(Op::Server),
            Just(Op::Success),
            Just(Op::Abandon),
            Just(Op::Take),
        ]
    }

    proptest! {
        /// No sequence of outcomes leaves a credential unavailable past the longest window
        /// (plus a probe lease) after the last event, and no window is ever set longer than the
        /// policy allows.
        #[test]
        fn no_state_outlives_its_window(
            ops in proptest::collection::vec((0u64..120_000, op()), 0..60),
            threshold in 1u32..5,
        ) {
            let policy = Policy { server_error_threshold: threshold, ..policy() };
            let h = Health::new(policy);
            let start = Instant::now();
            let mut now = start;
            for (dt, op) in &ops {
                now += Duration::from_millis(*dt);
                match op {
                    Op::Quota(ra) => h.report("c", "m", &Outcome::Quota { retry_after: ra.map(Duration::from_millis) }, now),
                    Op::Server => h.report("c", "m", &Outcome::ServerError, now),
                    Op::Success => h.report("c", "m", &Outcome::Success, now),
                    Op::Abandon => h.report("c", "m", &Outcome::Abandoned, now),
                    Op::Take => { take(&h, now); }
                }
                match h.availability("c", "m", now) {
                    Availability::Cooling { until, .. } => prop_assert!(until <= now + policy.longest_window()),
                    Availability::Probing { until } => prop_assert!(until <= now + LEASE),
                    Availability::Disabled { .. } => prop_assert!(false, "never disabled here"),
                    Availability::Available | Availability::ProbeDue => {}
                }
            }
            let end = now + policy.longest_window() + LEASE;
            prop_assert!(h.availability("c", "m", end).eligible());
            prop_assert!(take(&h, end));
        }
    }
}
