//! The attempt loop: send to the credential the plan picks; on a failure that another
//! credential could absorb, tell the health table, note the failed attempt in the usage record,
//! and try the next pick — up to `request-retry` extra attempts, and only before anything has
//! reached the client (a stream is handed over only once its upstream answered 2xx).
//!
//! | upstream answer | health | retried? |
//! |---|---|---|
//! | 2xx | success | — |
//! | 429, 402 | quota cooldown (`Retry-After` / `retry-after-ms`, else backoff) | if `quota-exceeded.switch-project` |
//! | 401, 403 | refresh the token if it can be, else disable | yes (after a refresh: the same credential) |
//! | a Qwen OAuth token's "free tier quota exceeded / discontinued" (any status) | disable; an auth-file account is retired (`needs_relogin`), a pool token retired in the pool's file (both kept across reloads and restarts), never refreshed | yes |
//! | 408, 5xx, timeout, connection or body failure | server-error streak | yes |
//! | other 4xx (the caller's request) | success | never |
//! | a 2xx stream that later breaks, stalls or ends early | server-error streak | never (the client has bytes) |
//!
//! A caller's own token (`allow-client-tokens`) is never cooled or disabled: its failures are
//! the caller's, and a 401/403 with it is not retried.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use sluice_dialect::{ErrorBody, ErrorKind};

use super::health::Outcome;
use super::{Exhausted, Pick, Plan, Router, seconds_until};
use crate::error::{ErrorExtra, Fault, GatewayError};
use crate::oauth::Recovery;
use crate::pipeline::account::{FailedAttempt, Ledger};
use crate::pipeline::upstream;
use crate::providers::{Origin, UpstreamRequest};

/// What the upstream answered, once an attempt succeeded.
#[derive(Debug)]
pub enum Answer {
    /// A 2xx stream, headers received, body not read; with the credentials the attempt sent
    /// ([`upstream::secrets_of`]), for redacting the upstream's own error events in it.
    Stream {
        response: reqwest::Response,
        secrets: Vec<String>,
    },
    /// A complete 2xx body.
    Complete(Bytes),
}

/// The attempt that succeeded.
#[derive(Debug)]
pub struct Served {
    pub pick: Pick,
    pub answer: Answer,
}

/// How one failed attempt is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Quota(Option<Duration>),
    Auth,
    Server,
    /// The caller's request was at fault: the credential is fine and retrying cannot help.
    Caller,
}

impl Failure {
    fn of_status(status: StatusCode, retry_after: Option<Duration>) -> Self {
        match status.as_u16() {
            429 | 402 => Failure::Quota(retry_after),
            401 | 403 => Failure::Auth,
            408 => Failure::Server,
            s if s >= 500 => Failure::Server,
            _ => Failure::Caller,
        }
    }
}

/// Runs attempts until one succeeds or none may follow. `build` prepares the request for a
/// pick (its body depends on the provider's dialect); an error from it is the caller's and ends
/// the loop.
pub async fn run(
    router: &Router,
    plan: &mut Plan<'_>,
    ledger: &mut Ledger,
    stream: bool,
    mut build: impl FnMut(&Pick) -> Result<UpstreamRequest, GatewayError>,
) -> Result<Served, GatewayError> {
    router.adopt_shared_session(plan).await;
    let mut max_attempts = router.retry.request_retry.saturating_add(1);
    let mut attempts: u32 = 0;
    // An OAuth account gets one refresh and one retry per request after a 401.
    let mut account_refreshed = false;
    let mut last_error: Option<GatewayError> = None;
    // Whether `last_error` came from an upstream attempt (rather than an account sitting out).
    let mut last_error_attempted = false;
    loop {
        if attempts >= max_attempts {
            break;
        }
        let mut pick = match plan.next_pick() {
            Ok(pick) => pick,
            Err(exhausted) => {
                if last_error.is_none() {
                    return Err(exhausted_error(
                        &exhausted,
                        &plan.entry().name,
                        router.clock.now(),
                    ));
                }
                break;
            }
        };
        if pick.credential.origin == Origin::Pool
            && let Some(pool) = &pick.target.provider.common().pool
        {
            pick.credential = pool.fresh(&pick.credential).await;
        }
        if pick.probe
            && pick.credential.origin != Origin::Caller
            && let Some(shared) = router.shared()
        {
            // One probe per cooled credential across every instance: the others skip it for a
            // moment and look again.
            let lease = pick.target.provider.common().timeouts.first_byte;
            let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
            if !shared
                .try_probe(&pick.credential.id, &pick.target.upstream_model, lease_ms)
                .await
            {
                router.health.hold_probe(
                    &pick.credential.id,
                    &pick.target.upstream_model,
                    router.clock.now() + PROBE_RECHECK,
                );
                continue;
            }
        }
        let started = Instant::now();
        let started_ms = ledger.elapsed_ms();
        let common = pick.target.provider.common();
        ledger.with(|r| {
            r.last_attempt_ms = Some(started_ms);
            r.provider = Some(common.name.to_string());
            r.platform = Some(common.platform.to_string());
            r.credential = Some(pick.credential.id.to_string());
            r.model_served = Some(pick.target.upstream_model.to_string());
            r.upstream_dialect = Some(dialect_name(pick.target.provider.dialect()));
        });
        let mut guard = ProbeGuard::new(router, &pick);
        let account = common.account.clone();
        let sent_token = match &account {
            None => None,
            Some(account) => match account.refresher.fresh(&account.file).await {
                Ok(token) => Some(token),
                Err(recovery) => {
                    // Expired and not refreshable now: this account sits out, unasked.
                    let now = router.clock.now();
                    let exhausted = match &recovery {
                        Recovery::Dead(reason) => Exhausted::Disabled {
                            reason: crate::oauth::scheduler::relogin_reason(reason),
                        },
                        _ => Exhausted::Cooling {
                            until: now + recovery_window(&recovery),
                        },
                    };
                    guard.report(sit_out(recovery));
                    last_error = Some(exhausted_error(&exhausted, &plan.entry().name, now));
                    last_error_attempted = false;
                    continue;
                }
            },
        };
        // A request that cannot be built for this provider is the caller's: no attempt counted.
        let mut request = build(&pick)?;
        if let Some(token) = &sent_token
            && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}"))
        {
            value.set_sensitive(true);
            request.headers.insert(http::header::AUTHORIZATION, value);
        }
        attempts += 1;
        ledger.with(|r| r.attempts = attempts);
        let span = attempt_span(ledger, &pick, &mut request, attempts);
        let (failure, error) = match attempt(&pick, request, stream, &span).await {
            Ok(answer) => {
                guard.report(Outcome::Success);
                drop(guard);
                router.bind_session(plan, &pick.credential.id);
                return Ok(Served { pick, answer });
            }
            Err(failed) => failed,
        };
        // Qwen's OAuth free tier ended (2026-04-15): such a token will never serve again, and
        // refreshing it cannot help. Out of rotation with Qwen's words, never refreshed.
        let ended = (&*common.platform == "qwen"
            && (account.is_some() || pick.credential.origin == Origin::Pool))
            .then(|| qwen_free_tier_ended(&error))
            .flatten();
        if let (Some(reason), Some(account)) = (&ended, &account) {
            account.refresher.retire(&account.file, reason).await;
        }
        if let (Some(reason), Some(pool)) = (&ended, &common.pool)
            && pick.credential.origin == Origin::Pool
        {
            pool.retire(&pick.credential.id, reason);
        }
        let failure = if ended.is_some() {
            Failure::Auth
        } else {
            failure
        };
        let outcome = match failure {
            _ if let Some(reason) = ended => Outcome::Unauthorized { reason },
            Failure::Caller => Outcome::Success,
            Failure::Quota(retry_after) => Outcome::Quota { retry_after },
            Failure::Server => Outcome::ServerError,
            Failure::Auth
                if error.status == StatusCode::UNAUTHORIZED
                    && let (Some(account), Some(sent)) = (&account, &sent_token) =>
            {
                if account_refreshed {
                    // The token refreshed for this request was refused too: fail over.
                    Outcome::Unauthorized {
                        reason: disable_reason(&error),
                    }
                } else {
                    account_refreshed = true;
                    match account
                        .refresher
                        .after_unauthorized(&account.file, sent)
                        .await
                    {
                        Recovery::Retry => {
                            router.health.enable(&pick.credential.id);
                            plan.allow_again(&pick.credential.id);
                            max_attempts = max_attempts.saturating_add(1);
                            Outcome::Abandoned
                        }
                        other => sit_out(other),
                    }
                }
            }
            Failure::Auth => {
                if refresh(&pick).await {
                    router.health.enable(&pick.credential.id);
                    plan.allow_again(&pick.credential.id);
                    Outcome::Abandoned
                } else {
                    Outcome::Unauthorized {
                        reason: disable_reason(&error),
                    }
                }
            }
        };
        let own_token = pick.credential.origin == Origin::Caller;
        if !own_token {
            if let Outcome::Unauthorized { reason } = &outcome {
                tracing::warn!(
                    credential = %pick.credential.id,
                    %reason,
                    "upstream refused the credential: disabled until the config is reloaded; replace or fix the key"
                );
            }
            let cools = matches!(outcome, Outcome::Quota { .. } | Outcome::ServerError);
            guard.report(outcome);
            if failure != Failure::Caller {
                router
                    .health
                    .note_error(&pick.credential.id, &upstream_words(&error));
            }
            if cools
                && let super::health::Availability::Cooling { reason, .. } =
                    router.health.availability(
                        &pick.credential.id,
                        &pick.target.upstream_model,
                        router.clock.now(),
                    )
            {
                let reason = match reason {
                    super::health::CooldownReason::Quota => "quota",
                    super::health::CooldownReason::ServerError => "server_error",
                };
                ledger.with(|r| r.cooldowns.push((common.name.to_string(), reason)));
            }
        }
        drop(guard);
        let cooldown_until_ms = cooldown_opened(router, &pick);
        let retryable = match failure {
            Failure::Caller => false,
            Failure::Quota(_) => router.retry.switch_project,
            Failure::Auth => !own_token,
            Failure::Server => true,
        };
        tracing::debug!(
            credential = %pick.credential.id,
            status = error.status.as_u16(),
            retryable,
            "upstream attempt failed"
        );
        let code = error_code(&error);
        let status = error.status.as_u16();
        crate::otel::attempt_failed(
            &span,
            status,
            &code,
            retryable.then(|| sluice_telemetry::attempt_outcome(status, Some(&code))),
        );
        drop(span);
        if !retryable {
            ledger.with(|r| r.last_cooldown_until_ms = cooldown_until_ms);
            return Err(error);
        }
        ledger.with(|r| {
            r.failed_attempts.push(FailedAttempt {
                provider: common.name.to_string(),
                credential: pick.credential.id.to_string(),
                model: pick.target.upstream_model.to_string(),
                status: error.status.as_u16(),
                error: error_code(&error),
                latency_ms: (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0,
                platform: common.platform.to_string(),
                cooldown_until_ms,
            });
        });
        last_error = Some(error);
        last_error_attempted = true;
    }
    // The last failure is what the client sees; its attempt is the record's own, not a
    // "failed attempt before the answer".
    if last_error_attempted {
        ledger.with(|r| {
            if let Some(last) = r.failed_attempts.pop() {
                r.last_cooldown_until_ms = last.cooldown_until_ms;
            }
        });
    }
    Err(last_error.unwrap_or_else(|| {
        exhausted_error(&Exhausted::NoneLeft, &plan.entry().name, router.clock.now())
    }))
}

/// The wire name of a dialect, as usage records show it.
pub fn dialect_name(dialect: sluice_dialect::Dialect) -> &'static str {
    match dialect {
        sluice_dialect::Dialect::OpenAiChat => "openai_chat",
        sluice_dialect::Dialect::OpenAiResponses => "openai_responses",
        sluice_dialect::Dialect::Anthropic => "anthropic",
        sluice_dialect::Dialect::Gemini => "gemini",
    }
}

/// The end (unix ms, wall clock) of the cooldown window the credential and model are in right
/// after a failure was reported, if they are cooling.
fn cooldown_opened(router: &Router, pick: &Pick) -> Option<i64> {
    use super::health::Availability;
    let now = router.clock.now();
    match router
        .health
        .availability(&pick.credential.id, &pick.target.upstream_model, now)
    {
        Availability::Cooling { until, .. } => {
            let left = i64::try_from((until - now).as_millis()).unwrap_or(i64::MAX / 2);
            Some(chrono::Utc::now().timestamp_millis() + left)
        }
        _ => None,
    }
}

/// The client span of an attempt (`crate::otel`), its context sent upstream as `traceparent`.
fn attempt_span(
    ledger: &Ledger,
    pick: &Pick,
    request: &mut UpstreamRequest,
    number: u32,
) -> tracing::Span {
    let server = ledger.span();
    if server.is_disabled() {
        return tracing::Span::none();
    }
    let endpoint = ledger.peek(|r| r.endpoint).unwrap_or_default();
    let common = pick.target.provider.common();
    let info = crate::otel::AttemptInfo {
        operation: crate::telemetry::endpoint_labels(endpoint, false).2,
        provider: &common.name,
        platform: &common.platform,
        credential: &pick.credential.id,
        model: &pick.target.upstream_model,
        url: &request.url,
        number,
    };
    crate::otel::attempt(server, &info, &mut request.headers)
}

/// One attempt: send, then for a non-stream read the whole body (a body that breaks off is
/// still retryable: nothing reached the client yet).
async fn attempt(
    pick: &Pick,
    request: UpstreamRequest,
    stream: bool,
    span: &tracing::Span,
) -> Result<Answer, (Failure, GatewayError)> {
    let provider = pick.target.provider.as_ref();
    let common = provider.common();
    let secrets = upstream::secrets_of(&request);
    let first_byte = request.first_byte.unwrap_or(common.timeouts.first_byte);
    let response = upstream::send(&pick.credential.http, provider.name(), request, first_byte)
        .await
        .map_err(|e| (Failure::Server, e))?;
    let status = response.status();
    if !status.is_success() {
        let retry_after = super::retry_after(response.headers());
        let refusal = upstream::error_from_response(
            provider.name(),
            provider.dialect(),
            response,
            common.timeouts.idle,
            &secrets,
        )
        .await;
        // An invalid key is the credential's fault whatever the status (Gemini: 400).
        let failure = if refusal.credential_invalid {
            Failure::Auth
        } else {
            Failure::of_status(status, retry_after)
        };
        return Err((failure, refusal.error));
    }
    crate::otel::attempt_succeeded(span, status.as_u16());
    if stream {
        return Ok(Answer::Stream { response, secrets });
    }
    let body = upstream::read_body(provider.name(), response, common.timeouts.idle)
        .await
        .map_err(|e| (Failure::Server, e))?;
    if !provider.forces_stream() {
        return Ok(Answer::Complete(provider.answer_body(body)));
    }
    // An upstream that only streams, for a client that asked for one answer: the stream folded
    // into the complete answer in the upstream's own dialect (usage as the stream reported it).
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dialect = provider.dialect();
    dialect
        .fold_stream(&body, created)
        .map(|answer| {
            Answer::Complete(bytes::Bytes::from(
                dialect.encode_response(&answer).to_string(),
            ))
        })
        .map_err(|e| {
            (
                Failure::Server,
                GatewayError::upstream_failed(provider.name(), &e.message),
            )
        })
}

/// What a relayed stream calls when its upstream breaks, stalls or truncates it: the
/// credential's server-error streak grows (no retry: the client already has bytes).
pub fn stream_fault_reporter(
    runtime: std::sync::Arc<crate::gateway::Runtime>,
    pick: &Pick,
) -> Option<Box<dyn FnOnce() + Send>> {
    if pick.credential.origin == Origin::Caller {
        return None;
    }
    let credential = pick.credential.id.clone();
    let model = pick.target.upstream_model.clone();
    Some(Box::new(move || {
        let router = &runtime.router;
        router.health.report(
            &credential,
            &model,
            &Outcome::ServerError,
            router.clock.now(),
        );
    }))
}

/// How long an OAuth account that is backing off sits out.
fn recovery_window(recovery: &Recovery) -> Duration {
    match recovery {
        Recovery::Wait(window) => (*window).max(Duration::from_secs(1)),
        _ => Duration::from_secs(1),
    }
}

/// What an OAuth account that cannot serve now means for its credential's health.
fn sit_out(recovery: Recovery) -> Outcome {
    match recovery {
        Recovery::Wait(window) => Outcome::Quota {
            retry_after: Some(window.max(Duration::from_secs(1))),
        },
        Recovery::Dead(reason) => Outcome::Unauthorized {
            reason: crate::oauth::scheduler::relogin_reason(&reason),
        },
        Recovery::Retry => Outcome::Abandoned,
    }
}

/// Refreshes an uploaded OAuth token after a 401/403; whether it worked.
async fn refresh(pick: &Pick) -> bool {
    if pick.credential.origin != Origin::Pool {
        return false;
    }
    match &pick.target.provider.common().pool {
        Some(pool) => pool.refresh_after_rejection(&pick.credential.id).await,
        None => false,
    }
}

/// Reports a probe's outcome, or its abandonment when the request goes away mid-attempt, so a
/// probe lease never outlives its attempt.
struct ProbeGuard<'a> {
    router: &'a Router,
    pick: &'a Pick,
    reported: bool,
}

impl<'a> ProbeGuard<'a> {
    fn new(router: &'a Router, pick: &'a Pick) -> Self {
        Self {
            router,
            pick,
            reported: pick.credential.origin == Origin::Caller,
        }
    }

    fn report(&mut self, outcome: Outcome) {
        if self.reported {
            return;
        }
        self.reported = true;
        let now = self.router.clock.now();
        let (credential, model) = (&self.pick.credential.id, &self.pick.target.upstream_model);
        self.router.health.report(credential, model, &outcome, now);
        if let Some(shared) = self.router.shared() {
            share(shared.clone(), self.router, self.pick, &outcome, now);
        }
    }
}

/// How soon an instance that lost the race for a probe looks at the credential again.
const PROBE_RECHECK: Duration = Duration::from_secs(1);

/// Tells the other instances what an attempt taught this one, off the request path: a cooldown
/// window set here, a probe that succeeded, a credential disabled.
fn share(
    shared: std::sync::Arc<dyn crate::store::shared::SharedRouting>,
    router: &Router,
    pick: &Pick,
    outcome: &Outcome,
    now: Instant,
) {
    use super::health::{Availability, CooldownReason};
    let credential = pick.credential.id.to_string();
    let model = pick.target.upstream_model.to_string();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    match outcome {
        Outcome::Quota { .. } | Outcome::ServerError => {
            if let Availability::Cooling { until, reason } =
                router.health.availability(&credential, &model, now)
            {
                let window_ms = u64::try_from((until - now).as_millis()).unwrap_or(u64::MAX);
                let reason = match reason {
                    CooldownReason::Quota => "quota",
                    CooldownReason::ServerError => "server_error",
                };
                runtime.spawn(async move {
                    shared.cool(&credential, &model, window_ms, reason).await;
                });
            }
        }
        Outcome::Success if pick.probe => {
            runtime.spawn(async move { shared.clear(&credential, &model).await });
        }
        Outcome::Unauthorized { reason } => {
            let reason = reason.clone();
            runtime.spawn(async move { shared.disable(&credential, &reason).await });
        }
        Outcome::Success | Outcome::Abandoned => {}
    }
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if self.pick.probe {
            self.report(Outcome::Abandoned);
        }
    }
}

/// Why a credential is disabled, in words without secrets: the status and the upstream's code.
/// Qwen's "free tier quota exceeded / discontinued" answer, as a reason in its words.
fn qwen_free_tier_ended(error: &GatewayError) -> Option<String> {
    let message = error.body.message.to_ascii_lowercase();
    let ended = message.contains("free tier")
        && (message.contains("discontinued") || message.contains("quota exceeded"));
    ended.then(|| {
        let words: String = error.body.message.chars().take(300).collect();
        format!("Qwen's OAuth free tier was discontinued (2026-04-15): {words}; sign in with a Coding Plan or ModelStudio API key instead")
    })
}

/// An upstream failure in the upstream's words (its status and message; secrets were redacted
/// when the body was read), as the dashboard shows a credential's last error.
pub fn upstream_words(error: &GatewayError) -> String {
    format!("HTTP {}: {}", error.status.as_u16(), error.body.message)
}

fn disable_reason(error: &GatewayError) -> String {
    let code = error
        .body
        .code
        .clone()
        .unwrap_or_else(|| error.body.kind.openai_type().to_string());
    format!("upstream answered HTTP {} ({code})", error.status.as_u16())
}

fn error_code(error: &GatewayError) -> String {
    error
        .body
        .code
        .clone()
        .unwrap_or_else(|| error.body.kind.openai_type().to_string())
}

/// The error when no attempt could be made at all.
pub fn exhausted_error(exhausted: &Exhausted, model: &str, now: Instant) -> GatewayError {
    match exhausted {
        Exhausted::Cooling { until } => {
            let secs = seconds_until(*until, now);
            let mut e = GatewayError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Fault::Upstream,
                ErrorBody::new(
                    ErrorKind::RateLimited,
                    format!(
                        "Every credential serving `{model}` is cooling down after upstream rate limits or errors; retry in {secs} s."
                    ),
                )
                .with_code("credentials_cooling_down"),
            );
            e.extra = Some(Box::new(ErrorExtra {
                retry_after: HeaderValue::from_str(&secs.to_string()).ok(),
                ..ErrorExtra::default()
            }));
            e
        }
        Exhausted::Disabled { reason } => GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Fault::Upstream,
            ErrorBody::new(
                ErrorKind::Overloaded,
                format!(
                    "Every credential serving `{model}` is disabled ({reason}); the operator must fix or replace them."
                ),
            )
            .with_code("credentials_disabled"),
        ),
        Exhausted::NoneLeft => GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Fault::Upstream,
            ErrorBody::new(
                ErrorKind::Overloaded,
                format!("No upstream credential is available for `{model}`."),
            )
            .with_code("no_credentials"),
        ),
    }
}

/// The dialect an error for this request renders in is decided by the pipeline; this only says
/// which header carries the attempt count.
pub const ATTEMPTS_HEADER: &str = "x-sluice-attempts";

/// Adds `x-sluice-attempts` to a response (absent when no upstream attempt was made).
pub fn tag_attempts(response: &mut axum::response::Response, attempts: u32) {
    if attempts > 0
        && let Ok(v) = HeaderValue::from_str(&attempts.to_string())
    {
        response.headers_mut().insert(ATTEMPTS_HEADER, v);
    }
}
