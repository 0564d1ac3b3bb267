//! The gateway's side of `sluice-telemetry`: usage records become metric observations
//! ([`MetricsSink`], so `/metrics` and the usage store count the same requests), credential
//! health becomes the state gauges at each scrape, and `GET /metrics` is served — on the main
//! listener or `metrics.listen`, open to local scrapers and to others with
//! `metrics.bearer-token`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use sluice_telemetry::{Attempt, CredentialState, RequestDone, Telemetry, Tokens};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::gateway::AppState;
use crate::pipeline::account::{UsageRecord, UsageSink};
use crate::routing::Router;

/// Build identity for `sluice_build_info` (`SLUICE_COMMIT` at build time, if set).
pub const BUILD: sluice_telemetry::Build = sluice_telemetry::Build {
    version: env!("CARGO_PKG_VERSION"),
    commit: match option_env!("SLUICE_COMMIT") {
        Some(commit) => commit,
        None => "unknown",
    },
};

/// The metrics a config asks for.
pub fn from_config(config: &Config) -> Arc<Telemetry> {
    let m = &config.metrics;
    Arc::new(Telemetry::new(
        sluice_telemetry::Settings {
            enabled: m.enabled,
            per_key: m.per_key,
            per_key_limit: m.per_key_limit,
            ..sluice_telemetry::Settings::default()
        },
        BUILD,
    ))
}

/// (templated route, client dialect, `gen_ai.operation.name`) of a usage record's endpoint.
pub fn endpoint_labels(endpoint: &str, stream: bool) -> (&'static str, &'static str, &'static str) {
    match endpoint {
        "openai.chat" => ("/v1/chat/completions", "openai_chat", "chat"),
        "openai.responses" => ("/v1/responses", "openai_responses", "chat"),
        "anthropic.messages" => ("/v1/messages", "anthropic_messages", "chat"),
        "anthropic.count_tokens" => (
            "/v1/messages/count_tokens",
            "anthropic_messages",
            "count_tokens",
        ),
        "gemini.generate" if stream => (
            "/v1beta/models/{model}:streamGenerateContent",
            "gemini",
            "generate_content",
        ),
        "gemini.generate" => (
            "/v1beta/models/{model}:generateContent",
            "gemini",
            "generate_content",
        ),
        "gemini.count_tokens" => (
            "/v1beta/models/{model}:countTokens",
            "gemini",
            "count_tokens",
        ),
        "platform.openai" => ("/openai/v1/chat/completions", "openai_chat", "chat"),
        "platform.claude" => ("/claude/v1/messages", "anthropic_messages", "chat"),
        "platform.gemini" => ("/gemini/v1/chat", "openai_chat", "chat"),
        _ => ("other", "other", "other"),
    }
}

/// Turns every usage record into metric observations, on the usage writer's task.
pub struct MetricsSink(pub Arc<Telemetry>);

impl UsageSink for MetricsSink {
    fn write(&mut self, batch: &[UsageRecord]) {
        if !self.0.enabled() {
            return;
        }
        for r in batch {
            self.0.request(&observation(r));
        }
    }
}

fn secs(ms: f64) -> Duration {
    Duration::from_secs_f64((ms / 1000.0).max(0.0))
}

/// What a record tells the metrics.
fn observation(r: &UsageRecord) -> RequestDone<'_> {
    let (route, dialect, operation) = endpoint_labels(r.endpoint, r.stream);
    let mut attempts: Vec<Attempt<'_>> = r
        .failed_attempts
        .iter()
        .map(|a| Attempt {
            provider: &a.provider,
            platform: &a.platform,
            credential: &a.credential,
            model: &a.model,
            status: a.status,
            error: Some(a.error.as_str()),
            duration: secs(a.latency_ms),
            first_chunk: None,
            failed_over: true,
        })
        .collect();
    if r.attempts as usize > r.failed_attempts.len()
        && let (Some(provider), Some(credential), Some(started)) =
            (&r.provider, &r.credential, r.last_attempt_ms)
    {
        let first_chunk = if r.stream && (200..300).contains(&r.status) {
            r.ttft_ms.map(|t| secs(t - started))
        } else {
            None
        };
        attempts.push(Attempt {
            provider,
            platform: r.platform.as_deref().unwrap_or_default(),
            credential,
            model: r.model_served.as_deref().unwrap_or_default(),
            status: r.status,
            error: r.error.as_deref(),
            duration: secs(r.latency_ms - started),
            first_chunk,
            failed_over: false,
        });
    }
    RequestDone {
        route,
        dialect,
        operation,
        provider: r.provider.as_deref(),
        platform: r.platform.as_deref(),
        model: r.model_requested.as_deref().filter(|_| r.model_known),
        status: r.status,
        error: r.error.as_deref(),
        stream: r.stream,
        duration: secs(r.latency_ms),
        ttft: r.ttft_ms.map(secs),
        tokens: Tokens {
            input: r.usage.input_tokens,
            output: r.usage.output_tokens,
            cache_read: r.usage.cache_read_tokens,
            cache_write: r.usage.cache_write_tokens,
            reasoning: r.usage.reasoning_tokens,
        },
        cost_usd: r.cost_nanos as f64 / 1e9,
        estimated: r.estimated,
        key_id: r.key_id.as_deref(),
        attempts,
        overhead: r.overhead,
        cooldowns: &r.cooldowns,
    }
}

/// Every credential's state now, into the state-set gauges.
pub fn snapshot_credentials(telemetry: &Telemetry, router: &Router) {
    let status = crate::routing::status::credentials(router);
    telemetry.credentials(status.credentials.iter().map(|c| CredentialState {
        provider: &c.provider,
        credential: &c.id,
        state: match c.status {
            // An uploaded OAuth token whose refresh failed: only a new login brings it back.
            "disabled" if c.origin == "pool" => "needs_relogin",
            "disabled" => "disabled",
            "cooling" if c.health.models.iter().any(|m| m.status == "probing") => "probing",
            "cooling" => "cooling",
            _ => "active",
        },
    }));
}

/// `GET /metrics`: OpenMetrics text. Local scrapers are served; others need
/// `Authorization: Bearer <metrics.bearer-token>`.
pub async fn serve(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let runtime = app.runtime.load();
    let config = &runtime.config;
    let local = crate::peer::client_addr(
        request.extensions(),
        request.headers(),
        &config.trusted_proxies,
    )
    .is_some_and(|c| c.local);
    if !local {
        let token = config.metrics.bearer_token.as_bytes();
        if token.is_empty() {
            return refuse(
                StatusCode::FORBIDDEN,
                "metrics are served only to local scrapers; set metrics.bearer-token to allow remote ones",
            );
        }
        let sent = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(token)) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "missing or wrong metrics bearer token",
            );
        }
    }
    let telemetry = &app.telemetry;
    snapshot_credentials(telemetry, &runtime.router);
    telemetry.limiter_degraded(app.accounts.degraded().is_some());
    let mut response = telemetry.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(sluice_telemetry::CONTENT_TYPE),
    );
    response
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": message}))).into_response()
}

/// Serves `/metrics` alone on `metrics.listen` until `stop`; the bound address.
pub async fn listen(
    addr: std::net::SocketAddr,
    state: Arc<AppState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen: cannot bind {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(serve))
        .with_state(state);
    tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics listening");
    Ok(bound)
}
