//! Phase 3 of the pipeline: which credential of which provider serves a request, and what
//! happens when it fails.
//!
//! - [`catalog`]: model names and aliases → providers (with priority tier and weight);
//!   `platform,model`; the `preview-model` fallback.
//! - [`Router::plan`] starts a request's [`Plan`]; [`Plan::next`] picks the next credential:
//!   the sticky session's binding if it is usable, else (after a failure) another credential
//!   of the same provider, else the highest priority tier with an available credential,
//!   spread by the strategy (round-robin, weighted, fill-first). When nothing of the model is
//!   left, the preview model's credentials (with `quota-exceeded.switch-preview-model`).
//! - [`health`]: cooldown windows and disabling per credential and model.
//! - [`sticky`]: session → credential bindings with a TTL.
//! - [`failover`]: the attempt loop the pipeline runs (retries before the first byte).
//! - [`status`]: the health of every credential as JSON for the management API.

pub mod catalog;
pub mod failover;
pub mod health;
pub mod probe;
pub mod status;
pub mod sticky;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Config, Strategy};
use crate::error::GatewayError;
use crate::providers::{Credential, Origin};
pub use catalog::{Catalog, Entry, Rotation, Target};
use health::{Availability, Clock, Health, Policy};
use sticky::{SessionKey, Sticky};

/// The retry rules in effect.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Extra attempts after the first (seed 003's `request-retry`).
    pub request_retry: u32,
    /// Move to another credential on a quota error.
    pub switch_project: bool,
    /// Fall back to the model's `preview-model` when none of its credentials is left.
    pub switch_preview_model: bool,
}

/// Routing state of a runtime: catalog, health, rotation, sessions.
#[derive(Debug)]
pub struct Router {
    pub catalog: Catalog,
    pub health: Health,
    pub clock: Clock,
    pub retry: RetryPolicy,
    strategy: Strategy,
    sticky: Option<Sticky>,
    session_header: http::HeaderName,
    /// Cooldowns, probes and disables shared with other instances (`limits.redis`).
    shared: std::sync::OnceLock<Arc<dyn crate::store::shared::SharedRouting>>,
    /// Sticky bindings are shared too (`routing.shared-sticky-sessions`).
    shared_sticky: bool,
}

/// A credential chosen for one attempt.
#[derive(Debug, Clone)]
pub struct Pick {
    pub target: Target,
    pub credential: Arc<Credential>,
    /// Whether this attempt is the probe of a credential whose cooldown just ended.
    pub probe: bool,
}

/// Why no credential could be picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exhausted {
    /// Every untried credential is cooling down (or being probed); the first is free then.
    Cooling { until: Instant },
    /// Every untried credential is disabled; one of the reasons.
    Disabled { reason: String },
    /// Every credential was tried, or the provider has none (an empty token pool).
    NoneLeft,
}

impl Router {
    /// The routing state for a config, with `catalog` built from its providers.
    pub fn new(config: &Config, catalog: Catalog) -> Self {
        Self {
            catalog,
            health: Health::new(Policy::from(&config.cooldown)),
            clock: Clock::default(),
            retry: RetryPolicy {
                request_retry: config.request_retry,
                switch_project: config.quota_exceeded.switch_project,
                switch_preview_model: config.quota_exceeded.switch_preview_model,
            },
            strategy: config.routing.strategy,
            sticky: config
                .routing
                .sticky_sessions
                .then(|| Sticky::new(config.routing.sticky_ttl)),
            session_header: http::HeaderName::from_bytes(config.routing.session_header.as_bytes())
                .unwrap_or(http::HeaderName::from_static("x-session-id")),
            shared: std::sync::OnceLock::new(),
            shared_sticky: config.routing.shared_sticky_sessions,
        }
    }

    /// Shares this router's cooldowns, probes and disables with other instances.
    pub fn share_with(&self, shared: Arc<dyn crate::store::shared::SharedRouting>) {
        let _ = self.shared.set(shared);
    }

    /// The shared routing state, when instances share one.
    pub fn shared(&self) -> Option<&Arc<dyn crate::store::shared::SharedRouting>> {
        self.shared.get()
    }

    /// Keeps what the running router learned (cooldowns, failure streaks, sessions) across a
    /// config reload; disabled credentials get another chance.
    pub fn inherit(&self, previous: &Router) {
        if let Some(shared) = previous.shared() {
            self.share_with(shared.clone());
            // The reload is the operator's fix: the credentials disabled before get their
            // chance on every instance, not only here.
            let disabled = previous.health.disabled();
            if !disabled.is_empty()
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let shared = shared.clone();
                runtime.spawn(async move {
                    for credential in disabled {
                        shared.enable(&credential).await;
                    }
                });
            }
        }
        self.clock.inherit(&previous.clock);
        self.health.inherit(&previous.health);
        if let (Some(new), Some(old)) = (&self.sticky, &previous.sticky) {
            new.inherit(old, self.clock.now());
        }
    }

    /// The header naming a session, when sticky sessions are on.
    pub fn session_header(&self) -> Option<&http::HeaderName> {
        self.sticky.as_ref().map(|_| &self.session_header)
    }

    /// Starts routing a request for `requested` (`model` or `platform,model`); 404 when no
    /// provider serves it. `session` is the request's session key, if it has one.
    pub fn plan<'r>(
        &'r self,
        requested: &'r str,
        only_platform: Option<&'r str>,
        session: Option<&str>,
    ) -> Result<Plan<'r>, GatewayError> {
        let resolved = self.catalog.resolve(requested, only_platform)?;
        let session = match (&self.sticky, session) {
            (Some(_), Some(s)) => Some(Sticky::key(&resolved.entry.name, s)),
            _ => None,
        };
        Ok(Plan {
            router: self,
            entry: resolved.entry,
            platform: resolved.platform,
            session,
            tried: Vec::new(),
            again: None,
            last_target: None,
            fell_back: false,
            caller: None,
            only: Vec::new(),
            dry_run: false,
        })
    }

    /// Binds a session to the credential that served it (on every instance, when bindings are
    /// shared; written off the request path).
    pub fn bind_session(&self, plan: &Plan<'_>, credential: &Arc<str>) {
        if let (Some(sticky), Some(key)) = (&self.sticky, plan.session) {
            sticky.bind(key, credential.clone(), self.clock.now());
            if let Some(shared) = self.shared_sessions()
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let (session, credential) = (key.hex(), credential.to_string());
                let ttl_ms = u64::try_from(sticky.ttl().as_millis()).unwrap_or(u64::MAX);
                runtime.spawn(async move {
                    shared.bind_session(&session, &credential, ttl_ms).await;
                });
            }
        }
    }

    /// Before a plan's first pick: a session this instance has not seen, bound by another
    /// instance, takes that binding.
    pub async fn adopt_shared_session(&self, plan: &Plan<'_>) {
        let (Some(sticky), Some(key), Some(shared)) =
            (&self.sticky, plan.session, self.shared_sessions())
        else {
            return;
        };
        if sticky.bound(&key, self.clock.now()).is_some() {
            return;
        }
        if let Some(credential) = shared.session(&key.hex()).await {
            sticky.bind(key, credential.into(), self.clock.now());
        }
    }

    fn shared_sessions(&self) -> Option<Arc<dyn crate::store::shared::SharedRouting>> {
        self.shared_sticky.then(|| self.shared().cloned()).flatten()
    }

    /// Live sticky bindings.
    pub fn sessions(&self) -> usize {
        self.sticky.as_ref().map_or(0, |s| s.len(self.clock.now()))
    }
}

/// One request's way through the candidates.
#[derive(Debug)]
pub struct Plan<'r> {
    router: &'r Router,
    entry: &'r Entry,
    platform: Option<&'r str>,
    session: Option<SessionKey>,
    tried: Vec<Arc<str>>,
    /// A credential that may be tried once more (its token was just refreshed).
    again: Option<Arc<str>>,
    last_target: Option<usize>,
    fell_back: bool,
    /// The caller's own token: only providers that allow client tokens, with that token.
    caller: Option<String>,
    /// Only targets passing every test (token counting: providers that count; a stored key's
    /// allowed platforms and models).
    only: Vec<TargetTest<'r>>,
    /// A preview: nothing is taken, moved or logged.
    dry_run: bool,
}

/// One credential a routing preview would try.
#[derive(Debug, Clone)]
pub struct PreviewStep {
    /// The client-facing model it would serve (the preview model's after a fallback).
    pub model: String,
    pub target: Target,
    pub credential: Arc<Credential>,
    /// Whether that attempt would be the probe of a credential whose window ended.
    pub probe: bool,
}

/// What a plan would do now ([`Plan::preview`]).
#[derive(Debug, Clone)]
pub struct Preview {
    /// The credentials in the order the attempts would take them.
    pub steps: Vec<PreviewStep>,
    /// Credentials of the model that cannot take it now, with their state.
    pub unavailable: Vec<(Target, Arc<Credential>, Availability)>,
    /// Why no credential at all can take it now (when `steps` is empty).
    pub exhausted: Option<Exhausted>,
}

/// A condition a target must meet to serve a plan.
struct TargetTest<'r>(Box<dyn Fn(&Target) -> bool + Send + Sync + 'r>);

impl std::fmt::Debug for TargetTest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TargetTest")
    }
}

/// A candidate: target index, credential, availability.
type Candidate = (usize, Arc<Credential>, Availability);

impl<'r> Plan<'r> {
    /// Routes with the caller's own upstream token (seed 000): only providers with
    /// `allow-client-tokens` qualify, and they get the caller's token instead of theirs.
    pub fn with_caller_token(mut self, token: String) -> Self {
        self.caller = Some(token);
        self
    }

    /// Considers only the targets passing `test`; whether any target of the model does.
    pub fn restrict(&mut self, test: impl Fn(&Target) -> bool + Send + Sync + 'r) -> bool {
        self.only.push(TargetTest(Box::new(test)));
        self.entry.targets.iter().any(|t| {
            self.only.iter().all(|test| (test.0)(t)) && catalog::serves_platform(t, self.platform)
        })
    }

    /// The platform of the first target that would serve the plan, for error messages.
    pub fn first_platform(&self) -> Option<&str> {
        self.entry
            .targets
            .iter()
            .find(|t| catalog::serves_platform(t, self.platform))
            .map(|t| &*t.provider.common().platform)
    }

    /// The model entry being served (the preview model's after a fallback).
    pub fn entry(&self) -> &'r Entry {
        self.entry
    }

    /// Whether the plan fell back to the preview model.
    pub fn fell_back(&self) -> bool {
        self.fell_back
    }

    /// Lets a credential be tried once more (after its token was refreshed).
    pub fn allow_again(&mut self, credential: &Arc<str>) {
        self.tried.retain(|id| id != credential);
        self.again = Some(credential.clone());
    }

    /// The next credential to try.
    pub fn next_pick(&mut self) -> Result<Pick, Exhausted> {
        let router = self.router;
        loop {
            let now = router.clock.now();
            let candidates = self.candidates(now);
            let eligible: Vec<&Candidate> = candidates.iter().filter(|c| c.2.eligible()).collect();
            if eligible.is_empty() {
                if self.try_preview() {
                    continue;
                }
                return Err(exhausted(&candidates));
            }
            let chosen = {
                let entry = self.entry;
                let mut rotation = entry.rotation();
                self.choose(&eligible, now, &mut rotation)
            };
            let (ti, credential, _) = chosen;
            let target = &self.entry.targets[*ti];
            let lease = target.provider.common().timeouts.first_byte;
            let probe = matches!(chosen.2, Availability::ProbeDue);
            let taken = credential.origin == Origin::Caller
                || router
                    .health
                    .lock()
                    .acquire(&credential.id, &target.upstream_model, now, lease);
            self.tried.push(credential.id.clone());
            if !taken {
                // Another request took the probe between the look and the grab: next one.
                continue;
            }
            self.again = None;
            self.last_target = Some(*ti);
            return Ok(Pick {
                target: target.clone(),
                credential: credential.clone(),
                probe,
            });
        }
    }

    /// Every credential of the model's providers not tried yet, with its availability.
    fn candidates(&self, now: Instant) -> Vec<Candidate> {
        let health = self.router.health.lock();
        let mut out = Vec::new();
        for (ti, target) in self.entry.targets.iter().enumerate() {
            if !catalog::serves_platform(target, self.platform)
                || !self.only.iter().all(|test| (test.0)(target))
            {
                continue;
            }
            let common = target.provider.common();
            if let Some(token) = &self.caller {
                if !common.allow_client_tokens {
                    continue;
                }
                if let Some(credential) = common.caller_credential(token)
                    && !self.tried.contains(&credential.id)
                {
                    out.push((ti, credential, Availability::Available));
                }
                continue;
            }
            for credential in common.credentials().iter() {
                if self.tried.contains(&credential.id) {
                    continue;
                }
                let availability = health.availability(&credential.id, &target.upstream_model, now);
                out.push((ti, credential.clone(), availability));
            }
        }
        out
    }

    /// The credentials this plan would try now, in order, as [`Plan::next_pick`] chooses them
    /// after each failure (the same code, on a copy of the rotation), without taking a probe
    /// lease, moving the real rotation or binding a session.
    pub fn preview(mut self) -> Preview {
        self.dry_run = true;
        let mut rotation = self.entry.rotation().clone();
        let mut preview = Preview {
            steps: Vec::new(),
            unavailable: Vec::new(),
            exhausted: None,
        };
        loop {
            let now = self.router.clock.now();
            let candidates = self.candidates(now);
            for (ti, credential, availability) in &candidates {
                let target = &self.entry.targets[*ti];
                if !availability.eligible()
                    && !preview.unavailable.iter().any(|(t, c, _)| {
                        c.id == credential.id && t.upstream_model == target.upstream_model
                    })
                {
                    preview.unavailable.push((
                        target.clone(),
                        credential.clone(),
                        availability.clone(),
                    ));
                }
            }
            let eligible: Vec<&Candidate> = candidates.iter().filter(|c| c.2.eligible()).collect();
            if eligible.is_empty() {
                if self.try_preview() {
                    rotation = self.entry.rotation().clone();
                    continue;
                }
                if preview.steps.is_empty() {
                    preview.exhausted = Some(exhausted(&candidates));
                }
                return preview;
            }
            let (ti, credential, availability) = self.choose(&eligible, now, &mut rotation);
            self.tried.push(credential.id.clone());
            self.last_target = Some(*ti);
            preview.steps.push(PreviewStep {
                model: self.entry.name.clone(),
                target: self.entry.targets[*ti].clone(),
                credential: credential.clone(),
                probe: matches!(availability, Availability::ProbeDue),
            });
        }
    }

    fn choose<'c>(
        &mut self,
        eligible: &[&'c Candidate],
        now: Instant,
        rotation: &mut Rotation,
    ) -> &'c Candidate {
        let router = self.router;
        // 1. A session's binding, on its first attempt; released when its credential is out.
        if self.tried.is_empty()
            && let (Some(sticky), Some(key)) = (&router.sticky, &self.session)
            && let Some(bound) = sticky.bound(key, now)
        {
            match eligible.iter().find(|c| c.1.id == bound) {
                Some(found) => return found,
                None if self.dry_run => {}
                None => sticky.release(key),
            }
        }
        // 2. After a failure: another credential of the same provider.
        if let Some(last) = self.last_target {
            let same: Vec<&&Candidate> = eligible.iter().filter(|c| c.0 == last).collect();
            if !same.is_empty() {
                let turn = rotation.cursor[last];
                rotation.cursor[last] = turn.wrapping_add(1);
                return same[turn % same.len()];
            }
        }
        // 3. The highest tier, spread by the strategy.
        let top = eligible
            .iter()
            .map(|c| self.entry.targets[c.0].priority)
            .max()
            .unwrap_or_default();
        let tier: Vec<&Candidate> = eligible
            .iter()
            .copied()
            .filter(|c| self.entry.targets[c.0].priority == top)
            .collect();
        match router.strategy {
            Strategy::FillFirst => tier[0],
            Strategy::RoundRobin => {
                let turn = rotation.turn;
                rotation.turn = turn.wrapping_add(1);
                tier[turn % tier.len()]
            }
            Strategy::Weighted => {
                // Smooth weighted round-robin (nginx's): exact shares, evenly interleaved.
                let mut targets: Vec<usize> = tier.iter().map(|c| c.0).collect();
                targets.dedup();
                let total: i64 = targets
                    .iter()
                    .map(|t| i64::from(self.entry.targets[*t].weight))
                    .sum();
                let mut best = targets[0];
                for t in &targets {
                    rotation.current[*t] += i64::from(self.entry.targets[*t].weight);
                    if rotation.current[*t] > rotation.current[best] {
                        best = *t;
                    }
                }
                rotation.current[best] -= total;
                let own: Vec<&Candidate> = tier.iter().copied().filter(|c| c.0 == best).collect();
                let turn = rotation.cursor[best];
                rotation.cursor[best] = turn.wrapping_add(1);
                own[turn % own.len()]
            }
        }
    }

    /// Switches to the preview model, once, when allowed and configured.
    fn try_preview(&mut self) -> bool {
        if self.fell_back || !self.router.retry.switch_preview_model || self.caller.is_some() {
            return false;
        }
        let Some(preview) = self
            .entry
            .preview
            .as_deref()
            .and_then(|name| self.router.catalog.entry(name))
        else {
            return false;
        };
        if !self.dry_run {
            tracing::info!(
                model = %self.entry.name,
                preview = %preview.name,
                "no credential of the model can take the request: falling back to its preview model"
            );
        }
        self.entry = preview;
        self.fell_back = true;
        self.last_target = None;
        true
    }
}

/// Why the candidates left cannot be used.
fn exhausted(candidates: &[Candidate]) -> Exhausted {
    let cooling = candidates
        .iter()
        .filter_map(|c| match c.2 {
            Availability::Cooling { until, .. } | Availability::Probing { until } => Some(until),
            _ => None,
        })
        .min();
    if let Some(until) = cooling {
        return Exhausted::Cooling { until };
    }
    candidates
        .iter()
        .find_map(|c| match &c.2 {
            Availability::Disabled { reason } => Some(Exhausted::Disabled {
                reason: reason.clone(),
            }),
            _ => None,
        })
        .unwrap_or(Exhausted::NoneLeft)
}

/// How long until `until`, rounded up to whole seconds (for `Retry-After`).
pub fn seconds_until(until: Instant, now: Instant) -> u64 {
    let left = until.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0 || left.is_zero())
}

/// A `Duration` from a `Retry-After` (seconds or HTTP date) or `retry-after-ms` header.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_millis(ms as u64));
    }
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate_parse(value)?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn httpdate_parse(value: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(value).ok().or_else(|| {
        // IMF-fixdate, e.g. `Wed, 21 Oct 2015 07:28:00 GMT`.
        let parts: Vec<&str> = value.split_whitespace().collect();
        let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
            return None;
        };
        let month = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .iter()
        .position(|m| m == month)?
            + 1;
        let text = format!("{year}-{month:02}-{:0>2}T{time}Z", day);
        humantime::parse_rfc3339(&text).ok()
    })
}

#[cfg(test)]
mod tests;
