//! Sluice's metrics: one [`Telemetry`] holding a `prometheus-client` registry, fed by the
//! gateway at its pipeline's phase boundaries and by the usage writer, and encoded as
//! OpenMetrics text for `GET /metrics`.
//!
//! The crate knows nothing of the gateway's state: it takes plain observations
//! ([`RequestDone`], [`Attempt`], [`CredentialState`]) and keeps the rules that make the metrics
//! safe to scrape — the OpenTelemetry GenAI names and buckets, the semantic-convention provider
//! names, and bounded labels (unknown models are `other`; credential and per-key labels are
//! capped, with `sluice_metrics_series_dropped_total` counting what overflowed).
//!
//! Durations carry their unit in the name (`_seconds`) without OpenMetrics `# UNIT` lines,
//! which some parsers refuse on histograms; every family has one label set.
#![forbid(unsafe_code)]

pub mod buckets;
pub mod labels;
mod series;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use labels::{
    CostLabels, DurationLabels, GenAi, OverheadLabels, Plain, ProviderLabels, RequestLabels,
    RouteLabels, TokenLabels,
};

/// The `Content-Type` of [`Telemetry::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label value that stands for everything a bounded label does not name.
pub const OTHER: &str = "other";

/// What the operator chose (`metrics:` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Off: nothing is recorded and `/metrics` is not served.
    pub enabled: bool,
    /// Adds a `key_id` label to `sluice_requests_total`, `gen_ai_client_token_usage` and
    /// `sluice_cost_usd_total`.
    pub per_key: bool,
    /// At most this many distinct key ids get their own series; the rest are `other`.
    pub per_key_limit: usize,
    /// At most this many distinct credentials get their own series; the rest are `other`.
    pub credential_limit: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_key: false,
            per_key_limit: 100,
            credential_limit: 200,
        }
    }
}

/// Time spent in the gateway's own phases for one request (what Sluice adds to the upstream's
/// time). A phase the request never reached is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Overhead {
    pub authenticate: Option<Duration>,
    pub admit: Option<Duration>,
    pub route: Option<Duration>,
    pub translate_request: Option<Duration>,
    pub translate_response: Option<Duration>,
}

/// The names of [`Overhead`]'s phases, in [`Overhead::phases`]' order.
const PHASES: [&str; 5] = [
    "authenticate",
    "admit",
    "route",
    "translate_request",
    "translate_response",
];

impl Overhead {
    fn phases(&self) -> [Option<Duration>; 5] {
        [
            self.authenticate,
            self.admit,
            self.route,
            self.translate_request,
            self.translate_response,
        ]
    }

    /// Adds `spent` to a phase (translation of a stream happens chunk by chunk).
    pub fn add(slot: &mut Option<Duration>, spent: Duration) {
        *slot = Some(slot.unwrap_or_default() + spent);
    }
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

/// One upstream call.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    /// The configured provider.
    pub provider: &'a str,
    /// Its platform label (`openai`, `claude-official`, `gemini`, …).
    pub platform: &'a str,
    pub credential: &'a str,
    /// The model as sent upstream (from the config).
    pub model: &'a str,
    /// The upstream's status, or the gateway's (502/504) for a transport failure.
    pub status: u16,
    /// The error code, for telling timeouts and connection failures from upstream answers.
    pub error: Option<&'a str>,
    pub duration: Duration,
    /// Streams: until the first chunk was relayed.
    pub first_chunk: Option<Duration>,
    /// Another credential was tried after this one.
    pub failed_over: bool,
}

/// One finished proxied request, as its usage record describes it.
#[derive(Debug, Clone)]
pub struct RequestDone<'a> {
    /// The templated route (`/v1/chat/completions`).
    pub route: &'static str,
    /// The client's dialect (`openai_chat`, `openai_responses`, `anthropic_messages`, `gemini`).
    pub dialect: &'static str,
    /// `gen_ai.operation.name`.
    pub operation: &'static str,
    /// The provider that served it, if any attempt was made.
    pub provider: Option<&'a str>,
    pub platform: Option<&'a str>,
    /// The model as the client named it, when the catalog knows it; `None` is `other`.
    pub model: Option<&'a str>,
    pub status: u16,
    /// The error code, when the request did not complete normally.
    pub error: Option<&'a str>,
    pub stream: bool,
    pub duration: Duration,
    /// Until the first byte reached the client.
    pub ttft: Option<Duration>,
    pub tokens: Tokens,
    pub cost_usd: f64,
    pub estimated: bool,
    pub key_id: Option<&'a str>,
    pub attempts: Vec<Attempt<'a>>,
    pub overhead: Overhead,
    /// Cooldowns this request's attempts started: (provider, reason).
    pub cooldowns: &'a [(String, &'static str)],
}

/// One credential's state, for the state-set gauges.
#[derive(Debug, Clone)]
pub struct CredentialState<'a> {
    pub provider: &'a str,
    pub credential: &'a str,
    /// `active`, `cooling`, `probing`, `disabled` or `needs_relogin`.
    pub state: &'static str,
}

/// The states [`CredentialState::state`] takes.
pub const CREDENTIAL_STATES: [&str; 5] =
    ["active", "cooling", "probing", "disabled", "needs_relogin"];

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric family, registered once.
pub struct Telemetry {
    settings: Settings,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    inflight: Family<RouteLabels, Gauge>,
    server_duration: Hist<DurationLabels>,
    server_ttft: Hist<GenAi>,
    server_tpot: Hist<GenAi>,
    client_duration: Hist<DurationLabels>,
    client_ttfc: Hist<GenAi>,
    overhead: Hist<OverheadLabels>,
    tokens: Hist<TokenLabels>,
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    attempts: Family<ProviderLabels, Counter>,
    failovers: Family<ProviderLabels, Counter>,
    credential_state: Family<ProviderLabels, Gauge>,
    credentials: Family<ProviderLabels, Gauge>,
    cooldowns: Family<ProviderLabels, Counter>,
    rejections: Family<Plain, Counter>,
    limiter_degraded: Gauge,
    queue_depth: Family<Plain, Gauge>,
    write_lag: Hist<Plain>,
    batch_size: Hist<Plain>,
    records: Family<Plain, Counter>,
    store_query: Hist<Plain>,
    series_dropped: Family<Plain, Counter>,
    per_key: SeriesCap,
    credential_cap: SeriesCap,
    /// Serialises scrapes: a credential snapshot clears and refills its gauges.
    scrape: Mutex<()>,
    /// The series of the request and attempt label tuples seen so far (only the usage
    /// writer's task records requests, so the lock is uncontended).
    resolved: Mutex<Resolved>,
}

/// [`Telemetry::request`]'s resolved series.
#[derive(Default)]
struct Resolved {
    requests: series::Cache<RequestKey, RequestSeries>,
    attempts: series::Cache<AttemptKey, AttemptSeries>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Build identity for `sluice_build_info`.
#[derive(Debug, Clone, Copy)]
pub struct Build {
    pub version: &'static str,
    pub commit: &'static str,
}

impl Telemetry {
    pub fn new(settings: Settings, build: Build) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "sluice_requests",
            "Proxied requests by templated route, client dialect, provider, model, status and stream",
            requests.clone(),
        );
        let inflight = Family::<RouteLabels, Gauge>::default();
        registry.register(
            "sluice_inflight_requests",
            "Proxied requests in progress (streams until their last byte)",
            inflight.clone(),
        );
        let server_duration: Hist<DurationLabels> =
            Family::new_with_constructor(buckets::server_duration);
        registry.register(
            "gen_ai_server_request_duration_seconds",
            "Request duration at the gateway, headers in to last byte out",
            server_duration.clone(),
        );
        let server_ttft: Hist<GenAi> = Family::new_with_constructor(buckets::ttft);
        registry.register(
            "gen_ai_server_time_to_first_token_seconds",
            "Time until the first byte of a streamed answer reached the client",
            server_ttft.clone(),
        );
        let server_tpot: Hist<GenAi> = Family::new_with_constructor(buckets::tpot);
        registry.register(
            "gen_ai_server_time_per_output_token_seconds",
            "Streams: (duration - time to first token) / (output tokens - 1)",
            server_tpot.clone(),
        );
        let client_duration: Hist<DurationLabels> =
            Family::new_with_constructor(buckets::server_duration);
        registry.register(
            "gen_ai_client_operation_duration_seconds",
            "Upstream duration per attempt (streams: until the upstream stream ended)",
            client_duration.clone(),
        );
        let client_ttfc: Hist<GenAi> = Family::new_with_constructor(buckets::ttft);
        registry.register(
            "gen_ai_client_operation_time_to_first_chunk_seconds",
            "Streams: from sending an attempt until its first chunk was relayed",
            client_ttfc.clone(),
        );
        let overhead: Hist<OverheadLabels> = Family::new_with_constructor(buckets::overhead);
        registry.register(
            "sluice_gateway_overhead_seconds",
            "Time spent in the gateway's own phases (authenticate, admit, route, translate_request, translate_response)",
            overhead.clone(),
        );
        let tokens: Hist<TokenLabels> = Family::new_with_constructor(buckets::tokens);
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens per request by type (input, output, cache_read_input, cache_creation_input, reasoning_output)",
            tokens.clone(),
        );
        let cost = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "sluice_cost_usd",
            "What requests cost in US dollars, from the price table (estimated: tokens counted by the gateway)",
            cost.clone(),
        );
        let attempts = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "sluice_upstream_attempts",
            "Upstream attempts by credential and outcome (ok, 429, 4xx, 5xx, timeout, connect, auth)",
            attempts.clone(),
        );
        let failovers = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "sluice_failovers",
            "Attempts retried on another credential or provider, by the failed provider and reason",
            failovers.clone(),
        );
        let credential_state = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "sluice_credential_state",
            "1 for each credential's current state (active, cooling, probing, disabled, needs_relogin), 0 for the others",
            credential_state.clone(),
        );
        let credentials = Family::<ProviderLabels, Gauge>::default();
        registry.register(
            "sluice_credentials",
            "Credentials per provider and state",
            credentials.clone(),
        );
        let cooldowns = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "sluice_credential_cooldowns",
            "Cooldowns started, by provider and reason (quota, server_error)",
            cooldowns.clone(),
        );
        let rejections = Family::<Plain, Counter>::default();
        registry.register(
            "sluice_limiter_rejections",
            "Requests refused by a limit, by reason and scope",
            rejections.clone(),
        );
        let limiter_degraded = Gauge::default();
        registry.register(
            "sluice_limiter_degraded",
            "1 while the shared limiter (Redis) is unreachable",
            limiter_degraded.clone(),
        );
        let queue_depth = Family::<Plain, Gauge>::default();
        registry.register(
            "sluice_usage_queue_depth",
            "Usage records waiting in a writer's queue",
            queue_depth.clone(),
        );
        let write_lag: Hist<Plain> = Family::new_with_constructor(buckets::write_lag);
        registry.register(
            "sluice_usage_write_lag_seconds",
            "From a record's close to its commit",
            write_lag.clone(),
        );
        let batch_size: Hist<Plain> = Family::new_with_constructor(buckets::batch_size);
        registry.register(
            "sluice_usage_batch_size",
            "Records per write (per store transaction)",
            batch_size.clone(),
        );
        let records = Family::<Plain, Counter>::default();
        registry.register(
            "sluice_usage_records",
            "Usage records by sink and result (written, dropped)",
            records.clone(),
        );
        let store_query: Hist<Plain> = Family::new_with_constructor(buckets::store_query);
        registry.register(
            "sluice_store_query_seconds",
            "Store operations by kind",
            store_query.clone(),
        );
        let series_dropped = Family::<Plain, Counter>::default();
        registry.register(
            "sluice_metrics_series_dropped",
            "Observations folded into `other` because a label's series cap was reached",
            series_dropped.clone(),
        );
        registry.register(
            "sluice_build",
            "Version and commit of the running binary",
            Info::new(vec![("version", build.version), ("commit", build.commit)]),
        );
        Self {
            per_key: SeriesCap::new(settings.per_key_limit),
            credential_cap: SeriesCap::new(settings.credential_limit),
            settings,
            registry,
            requests,
            inflight,
            server_duration,
            server_ttft,
            server_tpot,
            client_duration,
            client_ttfc,
            overhead,
            tokens,
            cost,
            attempts,
            failovers,
            credential_state,
            credentials,
            cooldowns,
            rejections,
            limiter_degraded,
            queue_depth,
            write_lag,
            batch_size,
            records,
            store_query,
            series_dropped,
            scrape: Mutex::new(()),
            resolved: Mutex::default(),
        }
    }

    /// Metrics that record nothing (`metrics.enabled: false`, and unit tests).
    pub fn disabled() -> Self {
        Self::new(
            Settings {
                enabled: false,
                ..Settings::default()
            },
            Build {
                version: "",
                commit: "",
            },
        )
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Counts a request in progress on `route` until the guard drops.
    pub fn in_flight(&self, route: &'static str) -> InFlight {
        if !self.settings.enabled {
            return InFlight(None);
        }
        let gauge = self.inflight.get_or_create(&RouteLabels { route }).clone();
        gauge.inc();
        InFlight(Some(gauge))
    }

    /// Records everything one finished request tells.
    pub fn request(&self, r: &RequestDone<'_>) {
        if !self.settings.enabled {
            return;
        }
        let Ok(mut resolved) = self.resolved.lock() else {
            return;
        };
        let resolved = &mut *resolved;
        let key = RequestTuple::of(r, self.settings.per_key);
        let series = resolved.requests.get(
            &key,
            |owned| owned.borrowed() == key,
            || (key.owned(), self.request_series(r, &key)),
        );
        if series.key_dropped {
            self.dropped("per_key");
        }
        series.requests.inc();
        series.duration.observe(r.duration.as_secs_f64());
        if r.stream
            && key.error.is_none()
            && let Some(ttft) = r.ttft
        {
            let genai = || self.genai(r);
            series
                .ttft
                .get_or_insert_with(|| self.server_ttft.get_or_create_owned(&genai()))
                .observe(ttft.as_secs_f64());
            if r.tokens.output > 1 {
                let decoding = r.duration.saturating_sub(ttft).as_secs_f64();
                series
                    .tpot
                    .get_or_insert_with(|| self.server_tpot.get_or_create_owned(&genai()))
                    .observe(decoding / (r.tokens.output - 1) as f64);
            }
        }
        if r.tokens.input > 0 || r.tokens.output > 0 {
            let t = &r.tokens;
            let counts = [
                (t.input, true),
                (t.output, true),
                (t.cache_read, false),
                (t.cache_write, false),
                (t.reasoning, false),
            ];
            for (i, (count, always)) in counts.into_iter().enumerate() {
                if always || count > 0 {
                    series.tokens[i]
                        .get_or_insert_with(|| {
                            self.tokens.get_or_create_owned(&TokenLabels {
                                genai: self.genai(r),
                                token_type: TOKEN_TYPES[i],
                                key_id: series.key_label.clone(),
                            })
                        })
                        .observe(count as f64);
                }
            }
        }
        if r.cost_usd > 0.0 {
            series
                .cost
                .get_or_insert_with(|| {
                    self.cost.get_or_create_owned(&CostLabels {
                        provider_name: r.platform.map_or("none", provider_name).to_string(),
                        provider: r.provider.unwrap_or("none").to_string(),
                        model: r.model.unwrap_or(OTHER).to_string(),
                        estimated: if r.estimated { "true" } else { "false" },
                        key_id: series.key_label.clone(),
                    })
                })
                .inc_by(r.cost_usd);
        }
        for (i, spent) in r.overhead.phases().into_iter().enumerate() {
            if let Some(spent) = spent {
                series.overhead[i]
                    .get_or_insert_with(|| {
                        self.overhead.get_or_create_owned(&OverheadLabels {
                            route: r.route,
                            dialect: r.dialect,
                            phase: PHASES[i],
                        })
                    })
                    .observe(spent.as_secs_f64());
            }
        }
        for attempt in &r.attempts {
            self.attempt(&mut resolved.attempts, r, attempt);
        }
        for (provider, reason) in r.cooldowns {
            self.cooldowns
                .get_or_create(&ProviderLabels {
                    provider: provider.clone(),
                    credential: None,
                    kind: "reason",
                    value: reason,
                })
                .inc();
        }
        if let Some((reason, scope)) = r.error.and_then(rejection) {
            self.rejections
                .get_or_create(&Plain::two(("reason", reason), ("scope", scope)))
                .inc();
        }
    }

    /// The series every record of `key` observes; the optional ones are resolved when first
    /// observed.
    fn request_series(&self, r: &RequestDone<'_>, key: &RequestTuple<'_>) -> RequestSeries {
        let (key_label, key_dropped) = match key.key_id {
            Some(id) => {
                let mut dropped = false;
                let label = self.per_key.label(id, || dropped = true);
                (Some(label), dropped)
            }
            None => (None, false),
        };
        let requests = self.requests.get_or_create_owned(&RequestLabels {
            route: r.route,
            dialect: r.dialect,
            provider: r.provider.unwrap_or("none").to_string(),
            model: r.model.unwrap_or(OTHER).to_string(),
            status_code: r.status.to_string(),
            stream: if r.stream { "true" } else { "false" },
            key_id: key_label.clone(),
        });
        let duration = self.server_duration.get_or_create_owned(&DurationLabels {
            genai: self.genai(r),
            stream: if r.stream { "true" } else { "false" },
            error_type: key.error.map(ErrorType::label),
        });
        RequestSeries {
            requests,
            duration,
            ttft: None,
            tpot: None,
            tokens: Default::default(),
            cost: None,
            overhead: Default::default(),
            key_label,
            key_dropped,
        }
    }

    /// The GenAI labels of a request.
    fn genai(&self, r: &RequestDone<'_>) -> GenAi {
        GenAi {
            operation: r.operation,
            provider_name: r.platform.map_or("none", provider_name).to_string(),
            model: r.model.unwrap_or(OTHER).to_string(),
            dialect: r.dialect,
            provider: r.provider.unwrap_or("none").to_string(),
        }
    }

    fn attempt(
        &self,
        cache: &mut series::Cache<AttemptKey, AttemptSeries>,
        r: &RequestDone<'_>,
        a: &Attempt<'_>,
    ) {
        let outcome = attempt_outcome(a.status, a.error);
        let error = if outcome == "ok" {
            // A stream that broke after the upstream's 2xx is an error of the attempt too.
            r.error
                .filter(|_| r.stream && a.first_chunk.is_some() && !a.failed_over)
                .and_then(|e| error_type(r.status, Some(e)))
        } else {
            Some(ErrorType::Outcome(outcome))
        };
        let key = AttemptTuple {
            operation: r.operation,
            dialect: r.dialect,
            stream: r.stream,
            provider: a.provider,
            platform: a.platform,
            credential: a.credential,
            model: a.model,
            outcome,
            error,
        };
        let series = cache.get(
            &key,
            |owned| owned.borrowed() == key,
            || (key.owned(), self.attempt_series(&key)),
        );
        if series.credential_dropped {
            self.dropped("credential");
        }
        series.attempts.inc();
        if a.failed_over {
            series
                .failovers
                .get_or_insert_with(|| {
                    self.failovers.get_or_create_owned(&ProviderLabels {
                        provider: a.provider.to_string(),
                        credential: None,
                        kind: "reason",
                        value: outcome,
                    })
                })
                .inc();
        }
        if let Some(first) = a.first_chunk {
            series
                .ttfc
                .get_or_insert_with(|| self.client_ttfc.get_or_create_owned(&key.genai()))
                .observe(first.as_secs_f64());
        }
        series.duration.observe(a.duration.as_secs_f64());
    }

    fn attempt_series(&self, key: &AttemptTuple<'_>) -> AttemptSeries {
        let mut credential_dropped = false;
        let credential = self
            .credential_cap
            .label(key.credential, || credential_dropped = true);
        let attempts = self.attempts.get_or_create_owned(&ProviderLabels {
            provider: key.provider.to_string(),
            credential: Some(credential),
            kind: "outcome",
            value: key.outcome,
        });
        let duration = self.client_duration.get_or_create_owned(&DurationLabels {
            genai: key.genai(),
            stream: if key.stream { "true" } else { "false" },
            error_type: key.error.map(ErrorType::label),
        });
        AttemptSeries {
            attempts,
            failovers: None,
            ttfc: None,
            duration,
            credential_dropped,
        }
    }

    fn dropped(&self, cap: &'static str) {
        self.series_dropped
            .get_or_create(&Plain::one("cap", cap))
            .inc();
    }

    /// Replaces the credential state gauges with `states` (called before each scrape).
    pub fn credentials<'a>(&self, states: impl IntoIterator<Item = CredentialState<'a>>) {
        if !self.settings.enabled {
            return;
        }
        let _scrape = self.scrape.lock();
        self.credential_state.clear();
        self.credentials.clear();
        for s in states {
            let credential = self
                .credential_cap
                .label(s.credential, || self.dropped("credential"));
            for state in CREDENTIAL_STATES {
                let set = self.credential_state.get_or_create(&ProviderLabels {
                    provider: s.provider.to_string(),
                    credential: Some(credential.clone()),
                    kind: "state",
                    value: state,
                });
                set.set(i64::from(state == s.state));
            }
            self.credentials
                .get_or_create(&ProviderLabels {
                    provider: s.provider.to_string(),
                    credential: None,
                    kind: "state",
                    value: s.state,
                })
                .inc();
        }
    }

    /// Whether the shared limiter is unreachable (set before each scrape).
    pub fn limiter_degraded(&self, degraded: bool) {
        self.limiter_degraded.set(i64::from(degraded));
    }

    /// Records entered a writer's queue (`sink`: `channel`, `store`).
    pub fn usage_queued(&self, sink: &'static str, n: usize) {
        if self.settings.enabled {
            self.queue_depth
                .get_or_create(&Plain::one("sink", sink))
                .inc_by(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Records left a writer's queue.
    pub fn usage_dequeued(&self, sink: &'static str, n: usize) {
        if self.settings.enabled {
            self.queue_depth
                .get_or_create(&Plain::one("sink", sink))
                .dec_by(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// A batch of `lags.len()` records was committed; each lag is from its record's close.
    pub fn usage_written(&self, sink: &'static str, lags: impl ExactSizeIterator<Item = Duration>) {
        if !self.settings.enabled {
            return;
        }
        let n = lags.len();
        self.batch_size
            .get_or_create(&Plain::one("sink", sink))
            .observe(n as f64);
        let lag = self.write_lag.get_or_create(&Plain::one("sink", sink));
        for l in lags {
            lag.observe(l.as_secs_f64());
        }
        self.records
            .get_or_create(&Plain::two(("sink", sink), ("result", "written")))
            .inc_by(n as u64);
    }

    /// `n` records were given up.
    pub fn usage_dropped(&self, sink: &'static str, n: usize) {
        if self.settings.enabled {
            self.records
                .get_or_create(&Plain::two(("sink", sink), ("result", "dropped")))
                .inc_by(n as u64);
        }
    }

    /// One store operation took `spent`.
    pub fn store_query(&self, op: &'static str, spent: Duration) {
        if self.settings.enabled {
            self.store_query
                .get_or_create(&Plain::one("op", op))
                .observe(spent.as_secs_f64());
        }
    }

    /// The OpenMetrics text of every family.
    pub fn encode(&self) -> String {
        let _scrape = self.scrape.lock();
        let mut text = String::with_capacity(16 * 1024);
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
            text.push_str("# EOF\n");
        }
        text
    }
}

/// Holds one in-flight request's place in `sluice_inflight_requests`.
#[derive(Debug)]
pub struct InFlight(Option<Gauge>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0 {
            gauge.dec();
        }
    }
}

/// A label whose distinct values are capped: past the cap, new values become `other`.
#[derive(Debug)]
struct SeriesCap {
    limit: usize,
    seen: Mutex<HashSet<String>>,
}

impl SeriesCap {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            seen: Mutex::new(HashSet::new()),
        }
    }

    fn label(&self, value: &str, on_overflow: impl FnOnce()) -> String {
        let Ok(mut seen) = self.seen.lock() else {
            return OTHER.to_string();
        };
        if seen.contains(value) {
            return value.to_string();
        }
        if seen.len() < self.limit {
            seen.insert(value.to_string());
            return value.to_string();
        }
        drop(seen);
        on_overflow();
        OTHER.to_string()
    }
}

/// `gen_ai.provider.name` for a platform label: the semantic conventions' well-known values
/// where one applies, Sluice's platform label otherwise.
pub fn provider_name(platform: &str) -> &str {
    match platform {
        "openai" => "openai",
        "azure-openai" => "azure.ai.openai",
        "claude-official" | "claude-console" | "claude-ccr" | "anthropic" => "anthropic",
        "bedrock" => "aws.bedrock",
        "gemini" => "gcp.gemini",
        "vertex" => "gcp.vertex_ai",
        "qwen" => "alibaba.dashscope",
        "codex" => "openai.codex",
        "deepseek" => "deepseek",
        other => other,
    }
}

/// `error_type` of a request: the status for errors, a small vocabulary for streams that broke
/// after their 2xx; `None` for success.
pub fn server_error_type(status: u16, error: Option<&str>) -> Option<String> {
    error_type(status, error).map(ErrorType::label)
}

/// An `error_type` label's value, without allocating: a status, or a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ErrorType {
    Status(u16),
    Word(&'static str),
    /// An attempt's outcome (`429`, `5xx`, `timeout`, …).
    Outcome(&'static str),
}

impl ErrorType {
    fn label(self) -> String {
        match self {
            Self::Status(status) => status.to_string(),
            Self::Word(word) | Self::Outcome(word) => word.to_string(),
        }
    }
}

fn error_type(status: u16, error: Option<&str>) -> Option<ErrorType> {
    Some(match (status, error) {
        (499, _) => ErrorType::Word("client_disconnect"),
        (s, _) if s >= 400 => ErrorType::Status(s),
        (_, None) => return None,
        (_, Some("upstream_stream_broken")) => ErrorType::Word("stream_broken"),
        (_, Some("upstream_idle_timeout")) => ErrorType::Word("timeout"),
        (_, Some("shutdown")) => ErrorType::Word("shutdown"),
        (_, Some(_)) => ErrorType::Word("_OTHER"),
    })
}

/// `gen_ai_token_type` of each of [`Tokens`]' counts, in [`Telemetry::request`]'s order.
const TOKEN_TYPES: [&str; 5] = [
    "input",
    "output",
    "cache_read_input",
    "cache_creation_input",
    "reasoning_output",
];

/// What decides a request's series (besides the optional ones, resolved lazily): its labels,
/// borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RequestTuple<'a> {
    route: &'static str,
    dialect: &'static str,
    operation: &'static str,
    stream: bool,
    provider: Option<&'a str>,
    platform: Option<&'a str>,
    model: Option<&'a str>,
    status: u16,
    error: Option<ErrorType>,
    estimated: bool,
    /// The raw key id, with `metrics.per-key` only.
    key_id: Option<&'a str>,
}

impl<'a> RequestTuple<'a> {
    fn of(r: &RequestDone<'a>, per_key: bool) -> Self {
        Self {
            route: r.route,
            dialect: r.dialect,
            operation: r.operation,
            stream: r.stream,
            provider: r.provider,
            platform: r.platform,
            model: r.model,
            status: r.status,
            error: error_type(r.status, r.error),
            estimated: r.estimated,
            key_id: per_key.then(|| r.key_id.unwrap_or("none")),
        }
    }

    fn owned(&self) -> RequestKey {
        RequestKey {
            tuple: RequestTuple {
                route: self.route,
                dialect: self.dialect,
                operation: self.operation,
                stream: self.stream,
                provider: None,
                platform: None,
                model: None,
                status: self.status,
                error: self.error,
                estimated: self.estimated,
                key_id: None,
            },
            provider: self.provider.map(str::to_owned),
            platform: self.platform.map(str::to_owned),
            model: self.model.map(str::to_owned),
            key_id: self.key_id.map(str::to_owned),
        }
    }
}

/// A [`RequestTuple`] kept in the cache.
struct RequestKey {
    /// The `'static` fields (the borrowed ones `None`).
    tuple: RequestTuple<'static>,
    provider: Option<String>,
    platform: Option<String>,
    model: Option<String>,
    key_id: Option<String>,
}

impl RequestKey {
    fn borrowed(&self) -> RequestTuple<'_> {
        RequestTuple {
            provider: self.provider.as_deref(),
            platform: self.platform.as_deref(),
            model: self.model.as_deref(),
            key_id: self.key_id.as_deref(),
            ..self.tuple
        }
    }
}

/// The handles of one [`RequestTuple`].
struct RequestSeries {
    requests: Counter,
    duration: Histogram,
    ttft: Option<Histogram>,
    tpot: Option<Histogram>,
    /// By [`TOKEN_TYPES`].
    tokens: [Option<Histogram>; 5],
    cost: Option<Counter<f64, AtomicU64>>,
    /// By [`PHASES`].
    overhead: [Option<Histogram>; 5],
    /// The `key_id` label (capped), with `metrics.per-key`.
    key_label: Option<String>,
    /// The key id was folded into `other`: each observation counts as dropped.
    key_dropped: bool,
}

/// What decides an attempt's series, borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AttemptTuple<'a> {
    operation: &'static str,
    dialect: &'static str,
    stream: bool,
    provider: &'a str,
    platform: &'a str,
    credential: &'a str,
    model: &'a str,
    outcome: &'static str,
    error: Option<ErrorType>,
}

impl AttemptTuple<'_> {
    fn owned(&self) -> AttemptKey {
        AttemptKey {
            tuple: AttemptTuple {
                operation: self.operation,
                dialect: self.dialect,
                stream: self.stream,
                provider: "",
                platform: "",
                credential: "",
                model: "",
                outcome: self.outcome,
                error: self.error,
            },
            provider: self.provider.to_owned(),
            platform: self.platform.to_owned(),
            credential: self.credential.to_owned(),
            model: self.model.to_owned(),
        }
    }

    fn genai(&self) -> GenAi {
        GenAi {
            operation: self.operation,
            provider_name: provider_name(self.platform).to_string(),
            model: self.model.to_string(),
            dialect: self.dialect,
            provider: self.provider.to_string(),
        }
    }
}

/// An [`AttemptTuple`] kept in the cache.
struct AttemptKey {
    tuple: AttemptTuple<'static>,
    provider: String,
    platform: String,
    credential: String,
    model: String,
}

impl AttemptKey {
    fn borrowed(&self) -> AttemptTuple<'_> {
        AttemptTuple {
            provider: &self.provider,
            platform: &self.platform,
            credential: &self.credential,
            model: &self.model,
            ..self.tuple
        }
    }
}

/// The handles of one [`AttemptTuple`].
struct AttemptSeries {
    attempts: Counter,
    failovers: Option<Counter>,
    ttfc: Option<Histogram>,
    duration: Histogram,
    /// The credential was folded into `other`: each observation counts as dropped.
    credential_dropped: bool,
}

/// An attempt's outcome: `ok`, `429`, `auth`, `timeout`, `connect`, `5xx`, `4xx`.
pub fn attempt_outcome(status: u16, error: Option<&str>) -> &'static str {
    match (status, error) {
        (200..=299, _) => "ok",
        (429 | 402, _) => "429",
        (401 | 403, _) => "auth",
        (_, Some("upstream_timeout" | "upstream_connect_timeout")) | (408 | 504, _) => "timeout",
        (_, Some("upstream_unavailable")) => "connect",
        (500..=599, _) => "5xx",
        _ => "4xx",
    }
}

/// A limiter refusal's (reason, scope), from the request's error code.
fn rejection(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "rate_limit_exceeded" => ("rate_limit", "key"),
        "daily_limit_exceeded" => ("daily_limit", "key"),
        "monthly_quota_exceeded" => ("monthly_quota", "key"),
        "limits_unavailable" => ("limiter_unavailable", "key"),
        "gateway_overloaded" => ("gateway_concurrency", "global"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
