//! OpenTelemetry traces over OTLP/HTTP (protobuf), off by default.
//!
//! Built as a `tracing` layer: the pipeline creates `tracing` spans with target [`TARGET`] and
//! `tracing-opentelemetry` turns them into OpenTelemetry spans, batched by the SDK on a thread
//! of its own and sent to the collector through the gateway's own `reqwest` ([`Sender`]).
//! Nothing of this runs while tracing is off: no layer is installed and every span helper
//! returns [`Span::none`] after one relaxed atomic load ([`on`]).
//!
//! One trace per proxied request:
//!
//! ```text
//! POST /v1/chat/completions          server  (http.*, gen_ai.*, usage, sluice.request.id)
//! ├── authenticate / admit / route    internal
//! ├── translate_request               internal, one per attempt
//! ├── chat <model>                    client, one per upstream attempt (traceparent sent)
//! └── translate_response | relay      internal (relay: until the stream's last byte)
//! ```
//!
//! A client's W3C `traceparent` makes the server span a child of the client's span; each
//! attempt sends its own span's context upstream. Prompt and completion text never enter a
//! span unless `tracing.record-content` is on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::TracingConfig;
use crate::pipeline::account::UsageRecord;

/// The `tracing` target of every span that becomes an OpenTelemetry span. The log output never
/// shows these spans, and the OpenTelemetry layer sees nothing else.
pub const TARGET: &str = "sluice::otel";

/// Most bytes of a body recorded in a span when `record-content` is on.
pub const MAX_CONTENT: usize = 16 * 1024;

static ON: AtomicBool = AtomicBool::new(false);
static RECORD_CONTENT: AtomicBool = AtomicBool::new(false);

/// Whether traces are being exported (the layer is installed).
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Whether bodies may be recorded in spans (`tracing.record-content`).
pub fn records_content() -> bool {
    RECORD_CONTENT.load(Ordering::Relaxed)
}

/// The samplers `OTEL_TRACES_SAMPLER` and `tracing.sampler` accept.
const SAMPLERS: [&str; 6] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// Config checks for `tracing:`.
pub fn validate(config: &TracingConfig, err: &mut impl FnMut(String, &str)) {
    if !config.endpoint.is_empty() && http_url(&config.endpoint).is_none() {
        err(
            "tracing.endpoint".into(),
            "must be an http:// or https:// URL (the collector's OTLP/HTTP base URL)",
        );
    }
    if !SAMPLERS.contains(&config.sampler.as_str()) {
        err(
            "tracing.sampler".into(),
            "must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
        );
    }
    if config
        .sampler_arg
        .is_some_and(|r| !(0.0..=1.0).contains(&r))
    {
        err("tracing.sampler-arg".into(), "must be between 0 and 1");
    }
    if config.timeout.is_zero() {
        err("tracing.timeout".into(), "must be greater than zero");
    }
    for name in config.headers.keys() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            err(format!("tracing.headers.{name}"), "not a valid header name");
        }
    }
}

fn http_url(text: &str) -> Option<reqwest::Url> {
    reqwest::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// What the exporter does, after the environment has overridden the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The full traces URL (`…/v1/traces`).
    pub endpoint: String,
    pub headers: BTreeMap<String, String>,
    pub service_name: String,
    pub sampler: String,
    pub sampler_arg: Option<f64>,
    pub timeout: Duration,
    pub record_content: bool,
}

/// Where traces go unless told otherwise (the OTLP/HTTP default).
const DEFAULT_ENDPOINT: &str = "http://localhost:4318";
const TRACES_PATH: &str = "/v1/traces";

impl Export {
    /// The export the config and the process environment ask for; `None` when tracing is off.
    pub fn from_env(config: &TracingConfig) -> Result<Option<Export>, String> {
        Self::resolve(config, &|name| std::env::var(name).ok())
    }

    /// As [`Export::from_env`], reading variables through `env`. The standard variables win
    /// over the config: `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn tracing
    /// off; an endpoint variable (or `OTEL_TRACES_EXPORTER=otlp`) turns it on.
    pub fn resolve(
        config: &TracingConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Export>, String> {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let mut on = config.enabled;
        match var("OTEL_TRACES_EXPORTER").as_deref() {
            None => {}
            Some("none") => return Ok(None),
            Some("otlp") => on = true,
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_EXPORTER={other}: Sluice exports traces with `otlp` only (or `none`)"
                ));
            }
        }
        let signal_endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let base_endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        on |= signal_endpoint.is_some() || base_endpoint.is_some();
        if !on {
            return Ok(None);
        }
        let (endpoint, from) = match (signal_endpoint, base_endpoint) {
            (Some(url), _) => (url, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            (None, Some(base)) => (traces_url(&base), "OTEL_EXPORTER_OTLP_ENDPOINT"),
            (None, None) if !config.endpoint.is_empty() => {
                (traces_url(&config.endpoint), "tracing.endpoint")
            }
            (None, None) => (traces_url(DEFAULT_ENDPOINT), "the default endpoint"),
        };
        if http_url(&endpoint).is_none() {
            return Err(format!(
                "{from}: `{endpoint}` is not an http:// or https:// URL"
            ));
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(protocol) = var(name) {
                if protocol != "http/protobuf" {
                    return Err(format!(
                        "{name}={protocol}: Sluice exports traces over http/protobuf only"
                    ));
                }
                break;
            }
        }
        let mut headers: BTreeMap<String, String> = config
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(list) = var(name) {
                for (k, v) in parse_headers(&list).map_err(|e| format!("{name}: {e}"))? {
                    headers.insert(k, v);
                }
            }
        }
        let sampler = var("OTEL_TRACES_SAMPLER").unwrap_or_else(|| config.sampler.clone());
        if !SAMPLERS.contains(&sampler.as_str()) {
            return Err(format!(
                "OTEL_TRACES_SAMPLER={sampler}: not one of {}",
                SAMPLERS.join(", ")
            ));
        }
        let sampler_arg = match var("OTEL_TRACES_SAMPLER_ARG") {
            Some(arg) => Some(
                arg.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        format!("OTEL_TRACES_SAMPLER_ARG={arg}: not a ratio between 0 and 1")
                    })?,
            ),
            None => config.sampler_arg,
        };
        let timeout = match var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
        {
            Some(ms) => Duration::from_millis(
                ms.parse::<u64>()
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| format!("OTLP timeout `{ms}`: not a number of milliseconds"))?,
            ),
            None => config.timeout,
        };
        Ok(Some(Export {
            endpoint,
            headers,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| config.service_name.clone()),
            sampler,
            sampler_arg,
            timeout,
            record_content: config.record_content,
        }))
    }

    fn sampler(&self) -> Sampler {
        let ratio = self.sampler_arg.unwrap_or(1.0);
        match self.sampler.as_str() {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio),
            "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            "parentbased_traceidratio" => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
            }
            _ => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        }
    }
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` semantics: the signal's path appended to the base URL.
fn traces_url(base: &str) -> String {
    format!("{}{TRACES_PATH}", base.trim_end_matches('/'))
}

/// `key=value,key2=value2` with percent-encoded values (the OTLP exporter convention).
fn parse_headers(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{}` is not key=value", k_only(pair)))?;
        let k = k.trim().to_ascii_lowercase();
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(format!("`{k}` is not a header name"));
        }
        out.push((k, percent_decode(v.trim())));
    }
    Ok(out)
}

/// The part of a malformed pair that is safe to print (never a value: it may be a key).
fn k_only(pair: &str) -> &str {
    pair.get(..pair.len().min(20)).unwrap_or("")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The running exporter: flush it on shutdown.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Exports what is still batched, then stops the exporter (blocking: call it off the
    /// async threads, with the runtime still running).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!("traces could not be flushed: {e}");
        }
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!("the trace exporter did not stop cleanly: {e}");
        }
    }
}

/// Builds the exporter and the `tracing` layer that feeds it, and switches span creation on.
/// `runtime` runs the export requests (the SDK's batch thread waits for them).
pub fn install<S>(
    export: &Export,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<(Traces, impl tracing_subscriber::Layer<S> + use<S>)>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    let client = reqwest::Client::builder()
        .timeout(export.timeout)
        .build()
        .map_err(|e| anyhow::anyhow!("tracing: cannot build the exporter's HTTP client: {e}"))?;
    let headers: std::collections::HashMap<String, String> = export
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Sender { client, runtime })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(export.endpoint.clone())
        .with_timeout(export.timeout)
        .with_headers(headers)
        .build()
        .map_err(|e| anyhow::anyhow!("tracing: cannot build the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(export.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(export.sampler())
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("sluice");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_level(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() == TARGET
        }));
    RECORD_CONTENT.store(export.record_content, Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    Ok((Traces { provider }, layer))
}

/// The exporter's HTTP client: the gateway's `reqwest` (rustls), driven on the gateway's
/// runtime, since the SDK's batch thread has no reactor of its own.
#[derive(Debug)]
struct Sender {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Sender {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let sent = self.runtime.spawn(async move {
            let response = client
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        // A transport error names the collector's URL, never a header value.
        let (status, headers, body) = sent.await?.map_err(|e| e.without_url())?;
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The server span of one proxied request (disabled while tracing is off). A valid client
/// `traceparent` makes it a child of the client's span.
pub fn server_span(parts: &http::request::Parts, endpoint: &'static str, request_id: &str) -> Span {
    if !on() {
        return Span::none();
    }
    let (fallback_route, dialect, operation) = crate::telemetry::endpoint_labels(endpoint, false);
    let route = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or(fallback_route, |p| p.as_str());
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = %format_args!("{} {route}", parts.method),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %parts.method,
        http.route = route,
        http.response.status_code = Empty,
        gen_ai.operation.name = operation,
        gen_ai.request.model = Empty,
        gen_ai.response.model = Empty,
        gen_ai.provider.name = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.usage.cache_creation.input_tokens = Empty,
        gen_ai.usage.reasoning.output_tokens = Empty,
        error.type = Empty,
        sluice.request.id = request_id,
        sluice.endpoint = endpoint,
        sluice.dialect = dialect,
        sluice.stream = Empty,
        sluice.provider = Empty,
        sluice.credential = Empty,
        sluice.key.id = Empty,
        sluice.attempts = Empty,
        sluice.cost_usd = Empty,
        sluice.usage.estimated = Empty,
        sluice.request.body = Empty,
        sluice.response.body = Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(&parts.headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// A phase of the gateway's own work under `parent` (`authenticate`, `admit`, `route`,
/// `translate_request`, `translate_response`, `relay`); it ends when dropped.
pub fn phase(parent: &Span, name: &'static str) -> Span {
    if parent.is_disabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        parent: parent,
        "phase",
        otel.name = name,
        otel.status_code = Empty,
        error.type = Empty,
    )
}

/// Marks a phase span failed with `error_type`.
pub fn phase_failed(span: &Span, error_type: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error_type);
}

/// What an upstream attempt's span says about it before it is sent.
pub struct AttemptInfo<'a> {
    pub operation: &'static str,
    pub provider: &'a str,
    pub platform: &'a str,
    /// The credential's name (`provider#n`), never its secret.
    pub credential: &'a str,
    pub model: &'a str,
    pub url: &'a reqwest::Url,
    pub number: u32,
}

/// The client span of one upstream attempt under the server span, with its context written
/// into the request's headers as `traceparent` (and `tracestate`).
pub fn attempt(parent: &Span, info: &AttemptInfo<'_>, headers: &mut HeaderMap) -> Span {
    if parent.is_disabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: parent,
        "attempt",
        otel.name = %format_args!("{} {}", info.operation, info.model),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = info.operation,
        gen_ai.provider.name = sluice_telemetry::provider_name(info.platform),
        gen_ai.request.model = info.model,
        server.address = info.url.host_str().unwrap_or_default(),
        server.port = info.url.port_or_known_default().map_or(0, i64::from),
        http.request.method = "POST",
        http.response.status_code = Empty,
        error.type = Empty,
        sluice.provider = info.provider,
        sluice.credential = info.credential,
        sluice.attempt = i64::from(info.number),
        sluice.failover.reason = Empty,
    );
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
    span
}

/// An attempt that got a 2xx.
pub fn attempt_succeeded(span: &Span, status: u16) {
    if !span.is_disabled() {
        span.record("http.response.status_code", i64::from(status));
    }
}

/// An attempt that failed: the upstream's status (or the gateway's 502/504 for a transport
/// failure), its error code, and why the request moved on (`None`: it did not).
pub fn attempt_failed(span: &Span, status: u16, code: &str, failover: Option<&str>) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", i64::from(status));
    span.record("otel.status_code", "ERROR");
    let error_type = match code {
        "upstream_timeout" | "upstream_connect_timeout" => "timeout".to_string(),
        "upstream_unavailable" => "connect".to_string(),
        _ => status.to_string(),
    };
    span.record("error.type", error_type.as_str());
    if let Some(reason) = failover {
        span.record("sluice.failover.reason", reason);
    }
}

/// Records a body in `field` of `span` when `record-content` is on (cut at [`MAX_CONTENT`]).
pub fn record_content(span: &Span, field: &'static str, body: &[u8]) {
    if span.is_disabled() || !records_content() {
        return;
    }
    let cut = &body[..body.len().min(MAX_CONTENT)];
    span.record(field, String::from_utf8_lossy(cut).as_ref());
}

/// Whether `record-content` wants stream bytes kept for `span`.
pub fn wants_content(span: &Span) -> bool {
    !span.is_disabled() && records_content()
}

/// The finished request's facts onto its server span (which ends when the ledger drops it).
pub fn close_server(span: &Span, r: &UsageRecord) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", i64::from(r.status));
    span.record("sluice.stream", r.stream);
    if let Some(model) = &r.model_requested {
        span.record("gen_ai.request.model", model.as_str());
    }
    if let Some(model) = &r.model_served {
        span.record("gen_ai.response.model", model.as_str());
    }
    if let Some(platform) = &r.platform {
        span.record(
            "gen_ai.provider.name",
            sluice_telemetry::provider_name(platform),
        );
    }
    if let Some(provider) = &r.provider {
        span.record("sluice.provider", provider.as_str());
    }
    if let Some(credential) = &r.credential {
        span.record("sluice.credential", credential.as_str());
    }
    if let Some(key) = &r.key_id {
        span.record("sluice.key.id", key.as_str());
    }
    span.record("sluice.attempts", i64::from(r.attempts));
    let u = &r.usage;
    if u.total() > 0 {
        // OpenTelemetry has no unsigned integers: counts go as i64 (u64 would become text).
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        span.record("gen_ai.usage.input_tokens", n(u.input_tokens));
        span.record("gen_ai.usage.output_tokens", n(u.output_tokens));
        span.record(
            "gen_ai.usage.cache_read.input_tokens",
            n(u.cache_read_tokens),
        );
        span.record(
            "gen_ai.usage.cache_creation.input_tokens",
            n(u.cache_write_tokens),
        );
        span.record(
            "gen_ai.usage.reasoning.output_tokens",
            n(u.reasoning_tokens),
        );
        span.record("sluice.cost_usd", r.cost_nanos as f64 / 1e9);
        span.record("sluice.usage.estimated", r.estimated);
    }
    if let Some(error_type) = sluice_telemetry::server_error_type(r.status, r.error.as_deref()) {
        span.record("error.type", error_type.as_str());
        // HTTP server semantics: 5xx and answers that broke after their 2xx are errors; the
        // client's own mistakes (4xx) and disconnects are not the server's.
        if r.status >= 500 || (200..300).contains(&r.status) {
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn resolve(config: &TracingConfig, vars: &[(&str, &str)]) -> Result<Option<Export>, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        Export::resolve(config, &move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn off_unless_enabled_or_an_endpoint_is_set() {
        assert_eq!(resolve(&TracingConfig::default(), &[]).unwrap(), None);
        let on = resolve(
            &TracingConfig::default(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(on.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(on.service_name, "sluice");
        assert_eq!(on.sampler, "parentbased_always_on");
        let enabled = TracingConfig {
            enabled: true,
            ..TracingConfig::default()
        };
        let default = resolve(&enabled, &[]).unwrap().unwrap();
        assert_eq!(default.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(
            resolve(&enabled, &[("OTEL_SDK_DISABLED", "true")]),
            Ok(None)
        );
        assert_eq!(
            resolve(&enabled, &[("OTEL_TRACES_EXPORTER", "none")]),
            Ok(None)
        );
        assert!(resolve(&enabled, &[("OTEL_TRACES_EXPORTER", "zipkin")]).is_err());
    }

    #[test]
    fn the_environment_overrides_the_config() {
        let config = TracingConfig {
            enabled: true,
            endpoint: "https://config.example:4318".into(),
            headers: [("X-Team".to_string(), "config".to_string())].into(),
            service_name: "from-config".into(),
            sampler: "traceidratio".into(),
            sampler_arg: Some(0.5),
            ..TracingConfig::default()
        };
        let from_config = resolve(&config, &[]).unwrap().unwrap();
        assert_eq!(
            from_config.endpoint,
            "https://config.example:4318/v1/traces"
        );
        assert_eq!(from_config.headers["x-team"], "config");
        assert_eq!(from_config.sampler_arg, Some(0.5));
        let env = resolve(
            &config,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://signal:9999/custom",
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-team=env%20team, api-key=k1",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=k2"),
                ("OTEL_SERVICE_NAME", "gateway-eu"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(env.endpoint, "http://signal:9999/custom");
        assert_eq!(env.headers["x-team"], "env team");
        assert_eq!(env.headers["api-key"], "k2");
        assert_eq!(env.service_name, "gateway-eu");
        assert_eq!(env.sampler, "parentbased_traceidratio");
        assert_eq!(env.sampler_arg, Some(0.25));
        assert_eq!(env.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let on = TracingConfig {
            enabled: true,
            ..TracingConfig::default()
        };
        for (var, value) in [
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign"),
        ] {
            let e = resolve(&on, &[(var, value)]).unwrap_err();
            assert!(e.contains(var), "{e}");
        }
        assert!(
            resolve(&on, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")])
                .unwrap()
                .is_some()
        );
        let mut errors = Vec::new();
        let bad = TracingConfig {
            endpoint: "not a url".into(),
            sampler: "often".into(),
            sampler_arg: Some(-1.0),
            ..TracingConfig::default()
        };
        validate(&bad, &mut |key, _| errors.push(key));
        assert_eq!(
            errors,
            ["tracing.endpoint", "tracing.sampler", "tracing.sampler-arg"]
        );
    }

    #[test]
    fn spans_are_disabled_while_tracing_is_off() {
        assert!(!on());
        let request = http::Request::builder()
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let span = server_span(&parts, "openai.chat", "req_1");
        assert!(span.is_disabled());
        assert!(phase(&span, "route").is_disabled());
        let url = reqwest::Url::parse("http://upstream/v1/chat/completions").unwrap();
        let mut headers = HeaderMap::new();
        let info = AttemptInfo {
            operation: "chat",
            provider: "p",
            platform: "openai",
            credential: "p#0",
            model: "m",
            url: &url,
            number: 1,
        };
        assert!(attempt(&span, &info, &mut headers).is_disabled());
        assert!(headers.is_empty(), "nothing is propagated while off");
    }
}
