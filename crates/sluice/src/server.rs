//! The HTTP server: routes, middleware, and a lifecycle that drains on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::config::Config;
use crate::error::GatewayError;
use crate::gateway::AppState;
use crate::pipeline::{self, account::UsageLog, account::UsageSink, models};

/// How long stragglers get after the grace period before the process gives up on them.
const HARD_STOP_WAIT: Duration = Duration::from_secs(5);

/// All routes.
pub fn router(state: Arc<AppState>) -> Router {
    let management = crate::management::api::Api::all().into_router(state.clone());
    let dashboard = crate::dashboard::router(&state).unwrap_or_default();
    Router::new()
        .merge(dashboard)
        .nest("/v0/management", management)
        .route("/openapi.json", get(crate::management::openapi::serve))
        .route("/v1/chat/completions", post(pipeline::chat_completions))
        .route("/v1/responses", post(pipeline::responses))
        .route("/v1/messages", post(pipeline::messages))
        .route("/v1/messages/count_tokens", post(pipeline::count_tokens))
        .route("/v1/models", get(models::list_models))
        .route(
            "/v1/models/{model_action}",
            post(pipeline::gemini_action).get(models::retrieve_model),
        )
        .route("/v1beta/models", get(models::list_gemini_models))
        .route(
            "/v1beta/models/{model_action}",
            post(pipeline::gemini_action).get(models::get_gemini_model),
        )
        .route(
            "/openai/v1/chat/completions",
            post(pipeline::platform_openai),
        )
        .route("/claude/v1/messages", post(pipeline::platform_claude))
        .route("/gemini/v1/chat", post(pipeline::platform_gemini))
        .merge(pipeline::beyond_chat())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .merge(crate::api::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RequestIds::default()))
        .layer(axum::middleware::map_request(drop_unsafe_request_id))
}

/// Longest client `X-Request-Id` kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client's `X-Request-Id` is kept: 1 to [`MAX_REQUEST_ID_LEN`] characters of
/// `A-Z a-z 0-9 - _ . : / + =`. Anything else is replaced by a generated id, so a client cannot
/// put hundreds of kilobytes (or control characters) into every log line and usage record.
pub fn is_safe_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// Removes an `X-Request-Id` that is not [safe](is_safe_request_id) (or comes more than once),
/// so the next layer generates one.
async fn drop_unsafe_request_id(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let mut ids = headers.get_all("x-request-id").iter();
    let keep = match (ids.next(), ids.next()) {
        (Some(id), None) => is_safe_request_id(id.as_bytes()),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !keep {
        headers.remove("x-request-id");
    }
    request
}

/// Request ids for requests that arrive without one: a random per-process prefix and a counter.
/// Unique without a system call per request (a v4 UUID reads the OS random source each time).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        let random = uuid::Uuid::new_v4().simple().to_string();
        Self {
            prefix: random[..12].into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        http::HeaderValue::from_str(&format!("req_{}{n:08x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// The request id set by the middleware (the client's safe `x-request-id`, or a generated one).
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .unwrap_or_default()
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `/metrics` on the main listener, unless metrics are off or served on `metrics.listen`.
async fn metrics(State(app): State<Arc<AppState>>, request: Request) -> Response {
    let config = app.runtime.load().config.clone();
    if !config.metrics.enabled || config.metrics.listen.is_some() {
        return GatewayError::unknown_route(request.method(), request.uri().path()).into_response();
    }
    crate::telemetry::serve(State(app), request).await
}

async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let (status, state) = if app.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if app.runtime.load().catalog().is_empty() {
        (StatusCode::SERVICE_UNAVAILABLE, "no providers configured")
    } else if let Some(reason) = app.accounts.degraded() {
        // Shared limits unreachable: `fail-closed` refuses keyed requests, so the instance is
        // not ready; `local` serves (limits per instance), visibly degraded.
        let status = if app.accounts.limiter.refuses_when_degraded() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        let body = serde_json::json!({"status": "degraded", "reason": reason});
        return (status, axum::Json(body)).into_response();
    } else {
        (StatusCode::OK, "ready")
    };
    (status, axum::Json(serde_json::json!({"status": state}))).into_response()
}

async fn unknown_route(request: Request) -> Response {
    GatewayError::unknown_route(request.method(), request.uri().path()).into_response()
}

async fn wrong_method(request: Request) -> Response {
    GatewayError::method_not_allowed(request.method(), request.uri().path()).into_response()
}

/// A server running in the background.
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `metrics.listen` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _demo: Option<sluice_mock::MockServer>,
    _watch: Option<crate::management::Watch>,
}

impl RunningServer {
    /// Begins a graceful shutdown: stop accepting, let in-flight requests finish within the
    /// grace period, flush usage.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Waits until the server has stopped and usage is flushed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }
}

/// Binds, starts the demo upstream if configured, and serves in the background.
pub async fn start(
    config: Config,
    sinks: Vec<Box<dyn UsageSink>>,
) -> anyhow::Result<RunningServer> {
    start_full(
        config,
        sinks,
        crate::management::Host::default(),
        Arc::new(crate::limits::SystemClock),
    )
    .await
}

/// [`start`] for a config that lives in a file: the management API persists to it and the
/// file is watched for changes.
pub async fn start_with(
    config: Config,
    sinks: Vec<Box<dyn UsageSink>>,
    host: crate::management::Host,
) -> anyhow::Result<RunningServer> {
    start_full(config, sinks, host, Arc::new(crate::limits::SystemClock)).await
}

/// [`start`] with the clock that per-key limits, expiry and usage days follow (tests move it).
pub async fn start_with_clock(
    config: Config,
    sinks: Vec<Box<dyn UsageSink>>,
    clock: Arc<dyn crate::limits::Clock>,
) -> anyhow::Result<RunningServer> {
    start_full(config, sinks, crate::management::Host::default(), clock).await
}

async fn start_full(
    config: Config,
    mut sinks: Vec<Box<dyn UsageSink>>,
    host: crate::management::Host,
    clock: Arc<dyn crate::limits::Clock>,
) -> anyhow::Result<RunningServer> {
    let telemetry = crate::telemetry::from_config(&config);
    let accounts = crate::accounts::Accounts::open(&config, clock).await?;
    sinks.push(Box::new(crate::store::sink::StoreSink::start_with(
        accounts.store.clone(),
        accounts.calendar,
        telemetry.clone(),
        accounts.store_backlog.clone(),
    )));
    if telemetry.enabled() {
        // `metrics: {enabled: false}`: no sink, no observation (and `/metrics` answers 404).
        sinks.push(Box::new(crate::telemetry::MetricsSink(telemetry.clone())));
    }
    sinks.push(Box::new(crate::request_log::RequestLogSink::start(
        crate::request_log::dir(&config.data_dir),
        config.request_log_files.clone(),
    )));
    let refresh = accounts.spawn_refresh(telemetry.clone());
    let demo = match &config.demo_upstream {
        Some(demo) => {
            let mock_config = sluice_mock::MockConfig {
                models: demo.models.clone(),
                api_keys: vec![],
                record: false,
            };
            let server = sluice_mock::MockServer::bind(demo.listen, mock_config)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("demo-upstream.listen: cannot bind {}: {e}", demo.listen)
                })?;
            tracing::info!(
                addr = %server.addr(),
                "demo upstream running: a FAKE OpenAI-compatible provider (sluice-mock) for trying Sluice without keys"
            );
            Some(server)
        }
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listen: cannot bind {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let (usage, writer) = UsageLog::start_with(sinks, telemetry);
    let state = Arc::new(AppState::with_host(&config, usage.clone(), accounts, host)?);
    let watch = crate::management::Plane::start(&state).await?;
    let shared_events = crate::shared::spawn_apply(&state);
    let oauth_refresh = crate::oauth::scheduler::spawn(&state);
    let (stop, stop_rx) = watch::channel(false);
    let grace = config.shutdown_grace_period;
    let connections = config.connections;
    let fd_limit = crate::listener::raise_fd_limit();
    let max_connections = crate::listener::effective_cap(connections.max, fd_limit);
    if max_connections < connections.max {
        tracing::warn!(
            configured = connections.max,
            max_connections,
            fd_limit,
            "connections.max lowered to fit the open-file limit"
        );
    }
    tracing::info!(
        fd_limit,
        max_connections,
        header_read_timeout = %humantime::format_duration(connections.header_read_timeout),
        body_read_timeout = %humantime::format_duration(connections.body_read_timeout),
        idle_timeout = %humantime::format_duration(connections.idle_timeout),
        "client connection limits"
    );
    let metrics = match config.metrics.listen {
        Some(listen) if config.metrics.enabled => {
            Some(crate::telemetry::listen(listen, state.clone(), stop_rx.clone()).await?)
        }
        _ => None,
    };
    let app = router(state.clone());
    let task_state = state.clone();
    let task = tokio::spawn(async move {
        let serve =
            crate::listener::serve(listener, app, connections, max_connections, stop_rx.clone());
        let mut serve = tokio::spawn(async move {
            serve.await;
            Ok::<(), std::io::Error>(())
        });
        let mut stop_rx = stop_rx;
        let result = tokio::select! {
            r = &mut serve => r,
            _ = async { stop_rx.wait_for(|s| *s).await.is_ok() } => {
                task_state.start_draining();
                tracing::info!(grace = %humantime::format_duration(grace), "shutting down: draining in-flight requests");
                match tokio::time::timeout(grace, &mut serve).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::warn!("grace period over: answering the requests still in flight with 503 and ending open streams");
                        task_state.hard_stop.send_replace(true);
                        match tokio::time::timeout(HARD_STOP_WAIT, &mut serve).await {
                            Ok(r) => r,
                            Err(_) => {
                                serve.abort();
                                Ok(Ok(()))
                            }
                        }
                    }
                }
            }
        };
        // Every request that reached a proxy endpoint closes its record: answered, cut by the
        // hard stop, or dropped with its connection. Wait for the stragglers, then make it all
        // durable; what could not be written makes the exit fail.
        task_state.hard_stop.send_replace(true);
        let unclosed = usage.wait_ledgers_closed(HARD_STOP_WAIT).await;
        let lost = usage.flush().await + unclosed as u64;
        refresh.abort();
        oauth_refresh.abort();
        if let Some(events) = shared_events {
            events.abort();
        }
        drop(usage);
        drop(task_state);
        writer.abort();
        if lost > 0 {
            tracing::error!(lost, "stopped: usage records could not be written");
            anyhow::bail!("{lost} usage record(s) could not be written");
        }
        tracing::info!("stopped");
        result?.map_err(anyhow::Error::from)
    });
    tracing::info!(%addr, "sluice listening");
    Ok(RunningServer {
        addr,
        metrics_addr: metrics,
        state,
        stop,
        task,
        _demo: demo,
        _watch: watch,
    })
}
