//! The YAML configuration: its shape, its defaults, and the checks that refuse a bad file
//! before anything starts.
//!
//! Every key is documented in `config.example.yaml` at the repository root.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::settings::{
    ApiKeyEntry, CompatModel, ManagementBan, OpenAiCompatibility, QuotaExceeded, TrustedProxy,
};

/// Environment variable holding the config path when `--config` is not given.
pub const CONFIG_ENV: &str = "SLUICE_CONFIG";
/// Environment variable that replaces the client `api-keys` list (comma-separated).
pub const API_KEYS_ENV: &str = "SLUICE_API_KEYS";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Address the gateway listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Client keys accepted on the proxy endpoints (seed 003's `api-keys`).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Serve requests that carry no key. Off by default: without keys, requests are refused.
    #[serde(default)]
    pub allow_anonymous: bool,
    /// Debug logging (seed 003's `debug`); same as `log-level: debug`.
    #[serde(default)]
    pub debug: bool,
    /// Log level or `tracing` filter directive; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// `text` or `json` log lines.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Largest request body accepted, e.g. `20MiB`.
    #[serde(default = "default_body_limit")]
    pub max_body_size: ByteSize,
    /// Largest multipart upload accepted (`/v1/audio/transcriptions`, `/translations`,
    /// `/v1/images/edits`), e.g. `32MiB`; larger ones are answered 413.
    #[serde(default = "default_upload_limit")]
    pub max_upload_size: ByteSize,
    /// Requests handled at once before new ones get 429; 0 = no limit.
    #[serde(default)]
    pub max_concurrent_requests: usize,
    /// How long a shutdown waits for in-flight requests and streams.
    #[serde(default = "default_grace", with = "duration")]
    pub shutdown_grace_period: Duration,
    /// Client connections: how many at once, and how long a client may stall.
    #[serde(default, skip_serializing_if = "Connections::is_default")]
    pub connections: Connections,
    /// Upstream timeouts, defaults for every provider.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// An in-process fake OpenAI-compatible upstream for trying Sluice without provider keys.
    #[serde(default)]
    pub demo_upstream: Option<DemoUpstream>,
    /// Upstream providers.
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,

    // Seed 003's keys, edited by the management API (types and checks: `settings.rs`).
    /// Proxy for every upstream request (`http://`, `https://`, `socks5://`); empty = direct.
    #[serde(default)]
    pub proxy_url: String,
    /// What to do when an upstream's quota is exhausted.
    #[serde(default)]
    pub quota_exceeded: QuotaExceeded,
    /// Gemini (Generative Language API) keys: one `gemini` provider using them in turn.
    #[serde(default)]
    pub generative_language_api_key: Vec<String>,
    /// Codex / OpenAI Responses keys: one `openai-responses` provider each.
    #[serde(default)]
    pub codex_api_key: Vec<ApiKeyEntry>,
    /// Anthropic keys: one `anthropic` provider each.
    #[serde(default)]
    pub claude_api_key: Vec<ApiKeyEntry>,
    /// Named OpenAI-compatible providers.
    #[serde(default)]
    pub openai_compatibility: Vec<OpenAiCompatibility>,
    /// Attempts after a failed upstream call.
    #[serde(default = "crate::settings::default_request_retry")]
    pub request_retry: u32,
    /// Loopback clients may call the proxy endpoints without a key.
    #[serde(default)]
    pub allow_localhost_unauthenticated: bool,
    /// Log every proxied request's summary at info level.
    #[serde(default)]
    pub request_log: bool,
    /// Accept management requests from non-loopback addresses. Not changeable through the API.
    #[serde(default)]
    pub allow_remote_management: bool,
    /// The management key, bcrypt-hashed (a plaintext found at start is hashed and written
    /// back). Empty = the management API refuses every request. Not changeable through the API.
    #[serde(default)]
    pub remote_management_key: String,
    /// Directory of OAuth token files (relative to the config file's directory).
    #[serde(default = "crate::settings::default_auth_dir")]
    pub auth_dir: String,
    /// Reverse proxies whose `X-Forwarded-For` is believed (addresses or networks).
    #[serde(default)]
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Banning sources that present wrong management keys.
    #[serde(default)]
    pub management_ban: ManagementBan,
    /// The config file's directory, when loaded from a file (not a key).
    #[serde(skip)]
    pub config_dir: Option<PathBuf>,
    /// How a credential is chosen among those serving a model.
    #[serde(default)]
    pub routing: RoutingConfig,
    /// How long failing credentials step aside.
    #[serde(default)]
    pub cooldown: CooldownConfig,
    /// Seed 000's upstream token pool and its admin endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_pool: Option<TokenPoolConfig>,
    /// OAuth accounts (token files): endpoints per provider, refresh leads, the scheduler.
    #[serde(default)]
    pub oauth: crate::oauth::OAuthConfig,
    /// Directory of the embedded store (`sluice.db`) and generated secrets.
    #[serde(default = "default_store_dir")]
    pub data_dir: PathBuf,
    /// IANA time zone in which days and months of limits, quotas and usage reports begin.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Users and session tokens of the `/api` surface.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Per-user API keys (seed 004).
    #[serde(default)]
    pub user_keys: UserKeysConfig,
    /// The web dashboard at `/ui` (issue 10).
    #[serde(default)]
    pub dashboard: DashboardConfig,
    /// Price overrides by model name, USD per million tokens.
    #[serde(default)]
    pub prices: BTreeMap<String, crate::pricing::Price>,
    /// The price of a model found neither in `prices` nor in the built-in table. Without one,
    /// such a model is refused to keys with a monthly quota (and recorded at $0 for the rest).
    #[serde(default)]
    pub default_price: Option<crate::pricing::Price>,

    // --- Scale-out: several instances sharing one store and one Redis (issue 14) ---
    /// Where users, keys and usage live: empty for SQLite in `data-dir`, or `postgres://…`
    /// (one database every instance shares). `${VAR}` is read from the environment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub store: String,
    /// Where per-key limits are counted (this process, or Redis shared by every instance).
    #[serde(default, skip_serializing_if = "LimitsConfig::is_default")]
    pub limits: LimitsConfig,

    // --- Observability (issue 12) ---
    /// Where `request-log` writes, and how much it keeps.
    #[serde(default, skip_serializing_if = "RequestLogFiles::is_default")]
    pub request_log_files: RequestLogFiles,
    /// Prometheus `/metrics`.
    #[serde(default, skip_serializing_if = "MetricsConfig::is_default")]
    pub metrics: MetricsConfig,
    /// OpenTelemetry traces over OTLP/HTTP (off by default; the standard `OTEL_*` variables
    /// override these keys). Read at start: a change needs a restart.
    #[serde(default, skip_serializing_if = "TracingConfig::is_default")]
    pub tracing: TracingConfig,
}

/// `tracing:` — OpenTelemetry trace export (`crate::otel`). Every key can be overridden by its
/// standard variable: `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER(_ARG)`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TracingConfig {
    /// Export traces (off by default; an `OTEL_EXPORTER_OTLP_*ENDPOINT` variable turns it on).
    #[serde(default)]
    pub enabled: bool,
    /// The collector's OTLP/HTTP base URL; `/v1/traces` is appended (as for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`). Default `http://localhost:4318`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// Headers sent with every export (an ingest key: `${VAR}` is read from the environment).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `service.name` of the spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// `always_on`, `always_off`, `traceidratio`, `parentbased_always_on` (default),
    /// `parentbased_always_off`, `parentbased_traceidratio`.
    #[serde(default = "default_sampler")]
    pub sampler: String,
    /// The ratio of the `traceidratio` samplers, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler_arg: Option<f64>,
    /// How long one export may take.
    #[serde(default = "default_export_timeout", with = "duration")]
    pub timeout: Duration,
    /// Record prompt and completion text (request and answer bodies, cut at 16 KiB) in spans.
    /// Off by default: spans carry names, models, counts and timings, never content.
    #[serde(default)]
    pub record_content: bool,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: String::new(),
            headers: BTreeMap::new(),
            service_name: default_service_name(),
            sampler: default_sampler(),
            sampler_arg: None,
            timeout: default_export_timeout(),
            record_content: false,
        }
    }
}

impl TracingConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_service_name() -> String {
    "sluice".into()
}

fn default_sampler() -> String {
    "parentbased_always_on".into()
}

fn default_export_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `connections:` — limits on client connections to the listener (slow or idle clients must
/// not hold sockets, memory or file descriptors for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Connections {
    /// Most client connections open at once. At the cap, new connections are not accepted:
    /// they wait in the kernel's listen backlog until one closes.
    #[serde(default = "default_max_connections")]
    pub max: usize,
    /// Longest a client may take to send a complete request head (request line and headers),
    /// counted from the connection's start or the head's first byte. Then the connection is
    /// closed without an answer.
    #[serde(default = "default_header_read_timeout", with = "duration")]
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a whole request body, counted from the request's
    /// arrival. Then it is answered 408 (in the caller's dialect on the proxy routes) and
    /// the connection is closed.
    #[serde(default = "default_body_read_timeout", with = "duration")]
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1 keep-alive,
    /// HTTP/2 with a GOAWAY).
    #[serde(default = "default_idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            max: default_max_connections(),
            header_read_timeout: default_header_read_timeout(),
            body_read_timeout: default_body_read_timeout(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

impl Connections {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_max_connections() -> usize {
    10_000
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_body_read_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(75)
}

/// `metrics:` — the Prometheus / OpenMetrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MetricsConfig {
    /// Record metrics and serve `GET /metrics` (on by default).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Serve `/metrics` on this address instead of the main listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Bearer token a scraper off this machine must send; without one, only local scrapers
    /// are served (as the management API). `${VAR}` is read from the environment.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token: String,
    /// Add a `key_id` label to `sluice_requests_total`, `gen_ai_client_token_usage` and
    /// `sluice_cost_usd_total` (off: per-key usage is exact in the store already).
    #[serde(default)]
    pub per_key: bool,
    /// Most key ids with series of their own; the rest are `other`.
    #[serde(default = "default_per_key_limit")]
    pub per_key_limit: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            bearer_token: String::new(),
            per_key: false,
            per_key_limit: default_per_key_limit(),
        }
    }
}

impl MetricsConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_per_key_limit() -> usize {
    100
}

/// `request-log-files:` — the request log's files under `data-dir/request-log/`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RequestLogFiles {
    /// A file is closed and a new one begun past this size.
    #[serde(default = "default_log_file_size")]
    pub max_file_size: ByteSize,
    /// The oldest files are deleted while all of them take more than this.
    #[serde(default = "default_log_total_size")]
    pub max_total_size: ByteSize,
    /// Files older than this are deleted.
    #[serde(default = "default_log_age", with = "duration")]
    pub max_age: Duration,
    /// Bodies and streams are cut at this size in an entry.
    #[serde(default = "default_log_body")]
    pub max_body_size: ByteSize,
}

impl Default for RequestLogFiles {
    fn default() -> Self {
        Self {
            max_file_size: default_log_file_size(),
            max_total_size: default_log_total_size(),
            max_age: default_log_age(),
            max_body_size: default_log_body(),
        }
    }
}

impl RequestLogFiles {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_log_file_size() -> ByteSize {
    ByteSize(10 * 1024 * 1024)
}

fn default_log_total_size() -> ByteSize {
    ByteSize(100 * 1024 * 1024)
}

fn default_log_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_log_body() -> ByteSize {
    ByteSize(256 * 1024)
}

/// Per-key limit counting. With `redis` set, every instance counts in the same Redis, and
/// cooldowns, probes, disables and key changes are shared through it too.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LimitsConfig {
    /// `redis://[:password@]host:port[/db]` (or `rediss://`); empty = count in this process.
    #[serde(default)]
    pub redis: String,
    /// Prefix of every Redis key and channel Sluice uses (deployments sharing one Redis need
    /// different prefixes).
    #[serde(default = "default_redis_prefix")]
    pub redis_prefix: String,
    /// What keyed requests get while Redis is unreachable: `fail-closed` (503, no limit can be
    /// overrun) or `local` (each instance counts on its own until Redis returns).
    #[serde(default)]
    pub on_redis_error: OnRedisError,
    /// Longest wait for one Redis command before Redis counts as unreachable.
    #[serde(default = "default_redis_timeout", with = "duration")]
    pub redis_timeout: Duration,
    /// Receive changes over Redis pub/sub (off for Redis proxies without pub/sub: changes then
    /// arrive through the epoch poll, within a second).
    #[serde(default = "default_true")]
    pub pubsub: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            redis: String::new(),
            redis_prefix: default_redis_prefix(),
            on_redis_error: OnRedisError::default(),
            redis_timeout: default_redis_timeout(),
            pubsub: true,
        }
    }
}

impl LimitsConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `limits.on-redis-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnRedisError {
    #[default]
    FailClosed,
    Local,
}

fn default_redis_prefix() -> String {
    "sluice".into()
}
fn default_redis_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_true() -> bool {
    true
}

/// Credential selection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RoutingConfig {
    /// How requests spread over the credentials of one priority tier.
    #[serde(default)]
    pub strategy: Strategy,
    /// Keep a session on the credential that served it, for warm prompt caches.
    #[serde(default)]
    pub sticky_sessions: bool,
    /// How long a session stays bound after its last request.
    #[serde(default = "default_sticky_ttl", with = "duration")]
    pub sticky_ttl: Duration,
    /// The request header naming the session (Anthropic's `metadata.user_id` is used too).
    #[serde(default = "default_session_header")]
    pub session_header: String,
    /// Share session bindings between instances through Redis (`limits.redis`), for load
    /// balancers without session affinity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_sticky_sessions: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            sticky_sessions: false,
            sticky_ttl: default_sticky_ttl(),
            session_header: default_session_header(),
            shared_sticky_sessions: false,
        }
    }
}
fn default_sticky_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_session_header() -> String {
    "x-session-id".into()
}

/// How requests spread over the credentials of one priority tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Every credential in turn.
    #[default]
    RoundRobin,
    /// Providers in proportion to their `weight`, their credentials in turn.
    Weighted,
    /// The first available credential, in config order, until it steps aside.
    FillFirst,
}

/// Cooldown windows. Every window ends by itself; the next request after it is the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CooldownConfig {
    /// First cooldown after a quota error (429) without `Retry-After`; doubles with each
    /// consecutive one.
    #[serde(default = "default_quota_backoff", with = "duration")]
    pub quota_backoff: Duration,
    /// Longest quota cooldown, also capping the upstream's `Retry-After`.
    #[serde(default = "default_quota_backoff_max", with = "duration")]
    pub quota_backoff_max: Duration,
    /// Consecutive 5xx answers or timeouts before a credential cools down.
    #[serde(default = "default_server_error_threshold")]
    pub server_error_threshold: u32,
    /// The cooldown after them.
    #[serde(default = "default_server_error", with = "duration")]
    pub server_error: Duration,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        Self {
            quota_backoff: default_quota_backoff(),
            quota_backoff_max: default_quota_backoff_max(),
            server_error_threshold: default_server_error_threshold(),
            server_error: default_server_error(),
        }
    }
}
fn default_quota_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_quota_backoff_max() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_server_error_threshold() -> u32 {
    3
}
fn default_server_error() -> Duration {
    Duration::from_secs(10)
}

/// Seed 000's token pool: upstream tokens uploaded through `/api/upload-token`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenPoolConfig {
    /// Guards `/api/upload-token` and `/api/token-status`; must start with `sk-`. Also accepted
    /// as a client key on the proxy endpoints.
    pub service_key: String,
    /// Directory of `token-pool.json` (created with mode 0600).
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// Where Qwen OAuth tokens are refreshed (`refresh_token` grant).
    #[serde(default = "default_refresh_url")]
    pub refresh_url: String,
    /// The OAuth client id sent with a refresh.
    #[serde(default = "default_qwen_client_id")]
    pub client_id: String,
    /// Refresh a token this long before it expires.
    #[serde(default = "default_refresh_ahead", with = "duration")]
    pub refresh_ahead: Duration,
    /// The hosts a token's `resource_url` may name (`host`, or `*.domain` for its subdomains),
    /// reached over `https://` only; an entry written as an origin (`http://127.0.0.1:8080`)
    /// allows exactly that origin. Anything else is refused at upload.
    #[serde(default = "default_resource_url_hosts")]
    pub resource_url_hosts: Vec<String>,
}
fn default_data_dir() -> String {
    "data".into()
}
fn default_resource_url_hosts() -> Vec<String> {
    [
        "*.qwen.ai",
        "dashscope.aliyuncs.com",
        "dashscope-intl.aliyuncs.com",
    ]
    .map(String::from)
    .to_vec()
}
fn default_refresh_url() -> String {
    "https://chat.qwen.ai/api/v1/oauth2/token".into()
}
fn default_qwen_client_id() -> String {
    "f0304373b74a44d2b584a3fb70ca9e56".into()
}
fn default_refresh_ahead() -> Duration {
    Duration::from_secs(5 * 60)
}

fn default_store_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_timezone() -> String {
    "UTC".into()
}

/// Users and session tokens.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret for session tokens; generated once into `<data-dir>/jwt-secret` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// How long a session token from `POST /api/auth/login` is valid.
    #[serde(default = "default_jwt_expiry", with = "duration")]
    pub jwt_expiry: Duration,
    /// An admin created at start-up when no user of that name exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_expiry: default_jwt_expiry(),
            admin: None,
        }
    }
}
fn default_jwt_expiry() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// The first admin's credentials.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct AdminConfig {
    pub username: String,
    pub password: String,
}

/// The web dashboard.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard at `/ui`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Mark the session cookie `Secure`: set it when browsers reach Sluice over HTTPS (a TLS
    /// proxy in front); a `Secure` cookie is never sent over plain HTTP.
    #[serde(default)]
    pub secure_cookie: bool,
    /// A dashboard session unused this long ends.
    #[serde(default = "default_session_idle", with = "duration")]
    pub session_idle: Duration,
    /// A dashboard session ends this long after sign-in, however active.
    #[serde(default = "default_session_max", with = "duration")]
    pub session_max: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            secure_cookie: false,
            session_idle: default_session_idle(),
            session_max: default_session_max(),
        }
    }
}
fn default_session_idle() -> Duration {
    Duration::from_secs(2 * 3600)
}
fn default_session_max() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// Per-user API keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct UserKeysConfig {
    /// Keys one user may hold.
    #[serde(default = "default_max_keys")]
    pub max_per_user: i64,
    /// Requests per minute of a key created without `rate_limit`.
    #[serde(default = "default_rate_limit")]
    pub default_rate_limit: i64,
    /// How often keys changed outside this process (CLI, other instances) are re-read.
    #[serde(default = "default_key_refresh", with = "duration")]
    pub refresh: Duration,
}

impl Default for UserKeysConfig {
    fn default() -> Self {
        Self {
            max_per_user: default_max_keys(),
            default_rate_limit: default_rate_limit(),
            refresh: default_key_refresh(),
        }
    }
}
fn default_max_keys() -> i64 {
    10
}
fn default_rate_limit() -> i64 {
    60
}
fn default_key_refresh() -> Duration {
    Duration::from_secs(1)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_log_level() -> String {
    "info".into()
}
fn default_body_limit() -> ByteSize {
    ByteSize(20 * 1024 * 1024)
}
/// OpenAI takes audio files up to 25 MB; the form around them adds a little.
fn default_upload_limit() -> ByteSize {
    ByteSize(32 * 1024 * 1024)
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Upstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Timeouts {
    /// Establishing the TCP/TLS connection.
    #[serde(default = "default_connect", with = "duration")]
    pub connect: Duration,
    /// From sending the request to receiving response headers.
    #[serde(default = "default_first_byte", with = "duration")]
    pub first_byte: Duration,
    /// Longest silence between two chunks of a response body.
    #[serde(default = "default_idle", with = "duration")]
    pub idle: Duration,
    /// From sending an image request (`/v1/images/*`) to its response headers: image models
    /// take minutes, whatever `first-byte` allows chat.
    #[serde(default = "default_image", with = "duration")]
    pub image: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: default_connect(),
            first_byte: default_first_byte(),
            idle: default_idle(),
            image: default_image(),
        }
    }
}
fn default_image() -> Duration {
    Duration::from_secs(300)
}
fn default_connect() -> Duration {
    Duration::from_secs(10)
}
fn default_first_byte() -> Duration {
    Duration::from_secs(300)
}
fn default_idle() -> Duration {
    Duration::from_secs(120)
}

/// Per-provider timeout overrides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TimeoutOverrides {
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect: Option<Duration>,
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_byte: Option<Duration>,
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle: Option<Duration>,
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub image: Option<Duration>,
}

/// The demo upstream: `sluice-mock` served in-process.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DemoUpstream {
    /// Address the fake upstream listens on; point a provider's `base-url` at it.
    pub listen: SocketAddr,
    /// Models it serves (any model when empty).
    #[serde(default)]
    pub models: Vec<String>,
}

/// The API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// OpenAI's Chat Completions API: OpenAI, OpenRouter, DeepSeek, DashScope, vLLM, Ollama…
    OpenaiCompatible,
    /// OpenAI's Responses API (Codex with API keys, Responses-only relays).
    OpenaiResponses,
    /// Anthropic's Messages API (API keys; Anthropic-compatible relays).
    Anthropic,
    /// Google's Gemini API (AI Studio keys).
    Gemini,
    /// Azure OpenAI: deployments, `api-key` header, `api-version`.
    AzureOpenai,
    /// AWS Bedrock's Anthropic models: SigV4 (or a Bedrock API key), binary event streams.
    Bedrock,
    /// Qwen: DashScope API keys (OpenAI-compatible) and uploaded Qwen OAuth tokens.
    Qwen,
    /// Codex with API keys (OpenAI Responses).
    Codex,
    /// Gemini Code Assist (`cloudcode-pa` `v1internal`): Google accounts signed in with
    /// `sluice login gemini` (token files of type `gemini`), Gemini requests wrapped with the
    /// account's project.
    GeminiCodeAssist,
}

/// One upstream provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name, shown in logs, usage records and error messages.
    pub name: String,
    pub kind: ProviderKind,
    /// Platform label (seed 004): `openai`, `claude-console`, `gemini`, `qwen`, … Defaults by kind.
    #[serde(default)]
    pub platform: Option<String>,
    /// API root: `https://api.openai.com/v1` (OpenAI kinds), `https://api.anthropic.com`,
    /// `https://generativelanguage.googleapis.com`, `https://{resource}.openai.azure.com`.
    /// Optional for `qwen`, `codex` and `bedrock`, which have a default.
    #[serde(default)]
    pub base_url: String,
    /// Upstream credentials, used in turn. May be empty for keyless servers (Ollama, vLLM).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Models served, with optional client-facing aliases.
    pub models: Vec<ModelConfig>,
    /// Extra headers sent upstream with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Overrides of the global `timeouts`.
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// Tier: providers with a higher priority serve first; lower tiers take over when every
    /// credential above is unavailable.
    #[serde(default)]
    pub priority: i32,
    /// Share of traffic within a tier under the `weighted` strategy.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Proxy for this provider's traffic, overriding the global `proxy-url` (`direct` = none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    /// Credentials with their own settings, used in turn after `api-keys`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialConfig>,
    /// Seed 000: a Bearer without the `sk-` prefix is forwarded here as the caller's own
    /// upstream token.
    #[serde(default)]
    pub allow_client_tokens: bool,
    /// Seed 000: tokens uploaded through `/api/upload-token` are this provider's credentials.
    #[serde(default)]
    pub token_pool: bool,
    /// Azure OpenAI's `api-version` query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// AWS region (Bedrock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The Google Cloud project Code Assist bills (`gemini-code-assist`; a token file's
    /// `project_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The token file in `auth-dir` this provider was built from (its tokens are refreshed).
    #[serde(skip)]
    pub auth_file: Option<String>,
}

fn default_weight() -> u32 {
    1
}

/// One upstream credential with its own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CredentialConfig {
    /// The key (Bedrock: an Amazon Bedrock API key, sent as a Bearer token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// AWS access key id (Bedrock SigV4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// AWS secret access key (Bedrock SigV4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// AWS session token for temporary credentials (Bedrock SigV4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// Proxy for this credential's traffic, overriding the provider's and the global one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
}

impl Default for ProviderConfig {
    /// Every optional setting at the default the YAML gives it (`weight: 1`).
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: ProviderKind::OpenaiCompatible,
            platform: None,
            base_url: String::new(),
            api_keys: Vec::new(),
            models: Vec::new(),
            headers: BTreeMap::new(),
            timeouts: TimeoutOverrides::default(),
            priority: 0,
            weight: default_weight(),
            proxy_url: None,
            credentials: Vec::new(),
            allow_client_tokens: false,
            token_pool: false,
            api_version: None,
            region: None,
            project: None,
            auth_file: None,
        }
    }
}

impl ProviderConfig {
    /// The API root: `base-url`, or the kind's default when it has one.
    pub fn effective_base_url(&self) -> String {
        if !self.base_url.trim().is_empty() {
            return self.base_url.trim().to_string();
        }
        match self.kind {
            ProviderKind::Qwen => "https://dashscope.aliyuncs.com/compatible-mode/v1".into(),
            ProviderKind::Codex => "https://api.openai.com/v1".into(),
            ProviderKind::GeminiCodeAssist => sluice_oauth::login::CODE_ASSIST_URL.into(),
            ProviderKind::Bedrock => format!(
                "https://bedrock-runtime.{}.amazonaws.com",
                self.region.as_deref().unwrap_or("us-east-1")
            ),
            _ => String::new(),
        }
    }

    /// Whether the kind sends its key as `Authorization: Bearer` (and so can forward a
    /// caller's own token).
    pub fn bearer_auth(&self) -> bool {
        matches!(
            self.kind,
            ProviderKind::OpenaiCompatible
                | ProviderKind::OpenaiResponses
                | ProviderKind::Qwen
                | ProviderKind::Codex
        )
    }

    /// The platform label, defaulted by kind.
    pub fn platform(&self) -> &str {
        self.platform.as_deref().unwrap_or(match self.kind {
            ProviderKind::OpenaiCompatible | ProviderKind::OpenaiResponses => "openai",
            ProviderKind::Anthropic => "claude-console",
            // Seed 004's `gemini` platform: Gemini accounts of either sort (as
            // claude-relay-service, whose Gemini accounts are Code Assist OAuth accounts).
            ProviderKind::Gemini | ProviderKind::GeminiCodeAssist => "gemini",
            ProviderKind::AzureOpenai => "azure-openai",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Qwen => "qwen",
            ProviderKind::Codex => "codex",
        })
    }
}

/// A model a provider serves.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ModelConfig {
    /// The upstream's model name.
    pub name: String,
    /// The name clients may use instead; requests are rewritten to `name`.
    #[serde(default)]
    pub alias: Option<String>,
    /// Azure OpenAI: the deployment serving this model (defaults to `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The model to fall back to when no credential of this one can take a request
    /// (`quota-exceeded.switch-preview-model`); any model name or alias the gateway serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_model: Option<String>,
    /// What the model can do (`chat`, `embedding`, `image`, `rerank`, `audio`, `moderation`,
    /// `completion`); inferred from well-known names when absent (`text-embedding-*` →
    /// embedding, `gpt-3.5-turbo-instruct` → completion, …, else chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<sluice_dialect::Capability>>,
}

impl ModelConfig {
    /// The configured capabilities, or those inferred from the name.
    pub fn capabilities(&self) -> sluice_dialect::Capabilities {
        match &self.capabilities {
            Some(listed) => listed.iter().copied().collect(),
            None => sluice_dialect::Capabilities::infer(&self.name),
        }
    }
}

/// A size in bytes, written as a number or with a unit (`512KiB`, `20MiB`, `1GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_byte_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

fn parse_byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 20MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Durations as humantime strings (`30s`, `500ms`, `2m`) or whole seconds.
pub(crate) mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(Duration::from_secs(n)),
            Raw::Text(s) => humantime::parse_duration(&s).map_err(|e| {
                serde::de::Error::custom(format!("`{s}` is not a duration like 30s: {e}"))
            }),
        }
    }

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

pub(crate) mod opt_duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key, e.g. `providers[0].base-url`; empty for file-level problems.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl Config {
    /// Reads, parses, applies environment overrides and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError::new(
                "",
                format!("cannot read {}: {e}", path.display()),
            )]
        })?;
        let mut config = Self::from_yaml(&text, |name| std::env::var(name).ok())?;
        config.config_dir = path.parent().map(Path::to_path_buf);
        Ok(config)
    }

    /// Parses YAML text without environment expansion or validation: the file's own values,
    /// defaults filled in (what the management API shows and edits).
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        let text = if text.trim().is_empty() { "{}" } else { text };
        serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(text))
            .map_err(|e| vec![yaml_error(&e)])
    }

    /// Parses YAML text; `env` resolves `${VAR}` references and overrides.
    pub fn from_yaml(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<ConfigError>> {
        let mut config = Self::parse(text)?;
        let missing = config.apply_env(&env);
        if !missing.is_empty() {
            return Err(missing);
        }
        let errors = config.validate();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// `SLUICE_API_KEYS` replaces the client keys; `${VAR}` in secrets is read from the environment.
    /// Every reference to a variable that is not set is reported, not just the first.
    fn apply_env(&mut self, env: &impl Fn(&str) -> Option<String>) -> Vec<ConfigError> {
        let mut missing = Vec::new();
        if let Some(keys) = env(API_KEYS_ENV) {
            self.api_keys = keys
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect();
        }
        for (i, key) in self.api_keys.iter_mut().enumerate() {
            expand(key, &format!("api-keys[{i}]"), env, &mut missing);
        }
        if let Some(secret) = self.auth.jwt_secret.as_mut() {
            expand(secret, "auth.jwt-secret", env, &mut missing);
        }
        expand(&mut self.store, "store", env, &mut missing);
        expand(&mut self.limits.redis, "limits.redis", env, &mut missing);
        expand(
            &mut self.metrics.bearer_token,
            "metrics.bearer-token",
            env,
            &mut missing,
        );
        for (name, value) in self.tracing.headers.iter_mut() {
            expand(value, &format!("tracing.headers.{name}"), env, &mut missing);
        }
        if let Some(admin) = self.auth.admin.as_mut() {
            expand(
                &mut admin.password,
                "auth.admin.password",
                env,
                &mut missing,
            );
        }
        for (p, provider) in self.providers.iter_mut().enumerate() {
            for (i, key) in provider.api_keys.iter_mut().enumerate() {
                expand(
                    key,
                    &format!("providers[{p}].api-keys[{i}]"),
                    env,
                    &mut missing,
                );
            }
            for (name, value) in provider.headers.iter_mut() {
                expand(
                    value,
                    &format!("providers[{p}].headers.{name}"),
                    env,
                    &mut missing,
                );
            }
            if let Some(proxy) = provider.proxy_url.as_mut() {
                expand(
                    proxy,
                    &format!("providers[{p}].proxy-url"),
                    env,
                    &mut missing,
                );
            }
            for (c, credential) in provider.credentials.iter_mut().enumerate() {
                let at = |k: &str| format!("providers[{p}].credentials[{c}].{k}");
                for (name, value) in [
                    ("api-key", &mut credential.api_key),
                    ("access-key-id", &mut credential.access_key_id),
                    ("secret-access-key", &mut credential.secret_access_key),
                    ("session-token", &mut credential.session_token),
                    ("proxy-url", &mut credential.proxy_url),
                ] {
                    if let Some(value) = value.as_mut() {
                        expand(value, &at(name), env, &mut missing);
                    }
                }
            }
        }
        expand(&mut self.proxy_url, "proxy-url", env, &mut missing);
        if let Some(pool) = self.token_pool.as_mut() {
            expand(
                &mut pool.service_key,
                "token-pool.service-key",
                env,
                &mut missing,
            );
        }
        crate::settings::apply_env(self, env, &mut missing);
        missing
    }

    /// Every semantic problem at once, so an operator fixes the file in one go.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |key: String, reason: &str| errors.push(ConfigError::new(key, reason));
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            err(
                "log-level".into(),
                "not a log level (error, warn, info, debug, trace) or filter directive",
            );
        }
        if self.max_body_size.0 == 0 {
            err("max-body-size".into(), "must be greater than zero");
        }
        crate::otel::validate(&self.tracing, &mut err);
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.trim().is_empty() {
                err(format!("api-keys[{i}]"), "must not be empty");
            }
        }
        for (name, d) in [
            ("connect", self.timeouts.connect),
            ("first-byte", self.timeouts.first_byte),
            ("idle", self.timeouts.idle),
            ("image", self.timeouts.image),
        ] {
            if d.is_zero() {
                err(format!("timeouts.{name}"), "must be greater than zero");
            }
        }
        if self.connections.max == 0 {
            err("connections.max".into(), "must be greater than zero");
        }
        for (name, d) in [
            ("header-read-timeout", self.connections.header_read_timeout),
            ("body-read-timeout", self.connections.body_read_timeout),
            ("idle-timeout", self.connections.idle_timeout),
        ] {
            if d.is_zero() {
                err(format!("connections.{name}"), "must be greater than zero");
            }
        }
        let mut names = std::collections::HashSet::new();
        for (p, provider) in self.providers.iter().enumerate() {
            let at = |k: &str| format!("providers[{p}].{k}");
            if provider.name.trim().is_empty() {
                err(at("name"), "must not be empty");
            } else if !names.insert(provider.name.as_str()) {
                err(at("name"), "another provider already has this name");
            }
            match reqwest::Url::parse(&provider.effective_base_url()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
                Ok(_) => err(
                    at("base-url"),
                    "must be an http:// or https:// URL with a host",
                ),
                Err(e) => err(at("base-url"), &format!("not a URL: {e}")),
            }
            if provider.models.is_empty() {
                err(at("models"), "list at least one model the provider serves");
            }
            for (m, model) in provider.models.iter().enumerate() {
                if model.name.trim().is_empty() {
                    err(at(&format!("models[{m}].name")), "must not be empty");
                }
                if model.capabilities.as_ref().is_some_and(Vec::is_empty) {
                    err(
                        at(&format!("models[{m}].capabilities")),
                        "list at least one of chat, embedding, image, rerank, audio, moderation, completion (or leave it out to infer from the name)",
                    );
                }
                if model
                    .alias
                    .as_deref()
                    .is_some_and(|a| a.trim().is_empty() || a.contains(','))
                {
                    err(
                        at(&format!("models[{m}].alias")),
                        "must be non-empty and contain no comma",
                    );
                }
            }
            for (i, key) in provider.api_keys.iter().enumerate() {
                if key.trim().is_empty() || http::HeaderValue::from_str(key).is_err() {
                    err(
                        at(&format!("api-keys[{i}]")),
                        "must be a non-empty printable string",
                    );
                }
            }
            for (name, value) in &provider.headers {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    err(at(&format!("headers.{name}")), "not a valid header name");
                } else if http::HeaderValue::from_str(value).is_err() {
                    err(at(&format!("headers.{name}")), "not a valid header value");
                }
            }
            for (name, d) in [
                ("connect", provider.timeouts.connect),
                ("first-byte", provider.timeouts.first_byte),
                ("idle", provider.timeouts.idle),
                ("image", provider.timeouts.image),
            ] {
                if d.is_some_and(|d| d.is_zero()) {
                    err(at(&format!("timeouts.{name}")), "must be greater than zero");
                }
            }
            crate::routing::validate::provider(self, p, provider, &mut err);
        }
        crate::routing::validate::top_level(self, &mut err);
        self.validate_accounts(&mut err);
        if self
            .demo_upstream
            .as_ref()
            .is_some_and(|demo| demo.listen == self.listen)
        {
            err("demo-upstream.listen".into(), "must differ from `listen`");
        }
        crate::settings::validate(self, &mut errors);
        if let Err((key, reason)) = self.oauth.check() {
            errors.push(ConfigError::new(key, &reason));
        }
        errors
    }
}

impl Config {
    /// Where the store lives: `store:` when set, else SQLite in `data-dir`.
    pub fn store_location(&self) -> Result<sluice_store::Location, String> {
        if self.store.is_empty() {
            Ok(sluice_store::Location::Sqlite(self.data_path()))
        } else {
            sluice_store::Location::parse(&self.store)
        }
    }

    /// `data-dir`, resolved against the config file's directory when it is relative (as
    /// `auth-dir` is), so a gateway finds its store wherever it was started from.
    pub fn data_path(&self) -> PathBuf {
        self.resolve(&self.data_dir)
    }

    /// `token-pool.data-dir`, resolved against the config file's directory like `data-dir`
    /// (two gateways started from one directory must not share a pool).
    pub fn token_pool_path(&self) -> Option<PathBuf> {
        self.token_pool
            .as_ref()
            .map(|pool| self.resolve(Path::new(&pool.data_dir)))
    }

    /// A configured path: relative ones are taken from the config file's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match &self.config_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// The configured time zone (validated at load).
    pub fn timezone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.timezone.parse().map_err(|_| {
            ConfigError::new(
                "timezone",
                format!(
                    "`{}` is not an IANA time zone like UTC or Asia/Shanghai",
                    self.timezone
                ),
            )
        })
    }

    fn validate_accounts(&self, err: &mut impl FnMut(String, &str)) {
        if let Err(e) = self.timezone() {
            err(e.key, &e.reason);
        }
        if self.data_dir.as_os_str().is_empty() {
            err("data-dir".into(), "must not be empty");
        }
        if self.auth.jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            err("auth.jwt-secret".into(), "must be at least 32 characters");
        }
        if self.auth.jwt_expiry.is_zero() {
            err("auth.jwt-expiry".into(), "must be greater than zero");
        }
        if let Some(admin) = &self.auth.admin {
            if let Err(e) = crate::accounts::check_username(&admin.username) {
                err("auth.admin.username".into(), &e);
            }
            if let Err(e) = crate::accounts::check_password(&admin.password) {
                err("auth.admin.password".into(), &e);
            }
        }
        if self.dashboard.session_idle.is_zero() {
            err("dashboard.session-idle".into(), "must be greater than zero");
        }
        if self.dashboard.session_max.is_zero() {
            err("dashboard.session-max".into(), "must be greater than zero");
        }
        if self.user_keys.max_per_user < 1 {
            err("user-keys.max-per-user".into(), "must be at least 1");
        }
        if self.user_keys.default_rate_limit < 0 {
            err(
                "user-keys.default-rate-limit".into(),
                "must not be negative",
            );
        }
        if self.user_keys.refresh.is_zero() {
            err("user-keys.refresh".into(), "must be greater than zero");
        }
        if !self.store.is_empty()
            && let Err(e) = sluice_store::Location::parse(&self.store)
        {
            err("store".into(), &e);
        }
        let limits = &self.limits;
        let redis_url = limits.redis.is_empty()
            || limits.redis.starts_with("redis://")
            || limits.redis.starts_with("rediss://");
        if !redis_url {
            err(
                "limits.redis".into(),
                "must start with redis:// or rediss://",
            );
        }
        if limits.redis_prefix.is_empty()
            || limits
                .redis_prefix
                .chars()
                .any(|c| c.is_whitespace() || "{}".contains(c))
        {
            err(
                "limits.redis-prefix".into(),
                "must be non-empty, without spaces or braces",
            );
        }
        if limits.redis_timeout.is_zero() {
            err("limits.redis-timeout".into(), "must be greater than zero");
        }
        let priced = self
            .prices
            .iter()
            .map(|(model, price)| (format!("prices.{model}"), price))
            .chain(
                self.default_price
                    .iter()
                    .map(|p| ("default-price".into(), p)),
            );
        for (key, price) in priced {
            if price.numbers().any(|p| !p.is_finite() || p < 0.0) {
                err(key, "prices must be non-negative numbers");
            }
        }
    }
}

/// Replaces a whole-value `${VAR}` reference with the variable's value; a variable that is not
/// set is added to `missing`, naming the key.
pub(crate) fn expand(
    value: &mut String,
    key: &str,
    env: &impl Fn(&str) -> Option<String>,
    missing: &mut Vec<ConfigError>,
) {
    let Some(name) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
        return;
    };
    match env(name) {
        Some(v) if !v.is_empty() => *value = v,
        _ => missing.push(ConfigError::new(
            key,
            format!("refers to environment variable {name}, which is not set"),
        )),
    }
}

fn yaml_error(e: &serde_path_to_error::Error<yaml_serde::Error>) -> ConfigError {
    // yaml_serde's message names the key path of structural problems ("providers[0]: missing
    // field `name`") and the line, but not of a value a field's own deserializer refused (a bad
    // size or duration): the path the error was found at names it then.
    let message = e.inner().to_string();
    let path = e.path().to_string();
    if path == "." || message.starts_with(&path) {
        ConfigError::new("", message)
    } else {
        ConfigError::new(path, message)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn load(yaml: &str) -> Result<Config, Vec<ConfigError>> {
        Config::from_yaml(yaml, |name| {
            (name == "UPSTREAM_KEY").then(|| "from-env".to_string())
        })
    }

    const MINIMAL: &str = "
providers:
  - name: p
    kind: openai-compatible
    base-url: http://127.0.0.1:1/v1
    api-keys: ['${UPSTREAM_KEY}']
    models: [{name: m, alias: a}]
";

    #[test]
    fn defaults() {
        let c = load("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.max_body_size, ByteSize(20 * 1024 * 1024));
        assert!(!c.allow_anonymous);
        assert_eq!(c.timeouts, Timeouts::default());
    }

    #[test]
    fn env_references_are_expanded() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.providers[0].api_keys, vec!["from-env"]);
        assert_eq!(c.providers[0].platform(), "openai");
        let missing = MINIMAL.replace("UPSTREAM_KEY", "NOPE");
        let errs = load(&missing).unwrap_err();
        assert_eq!(errs[0].key, "providers[0].api-keys[0]");
        assert!(errs[0].reason.contains("NOPE"));
    }

    #[test]
    fn every_missing_variable_is_reported_at_once() {
        let yaml = "api-keys: ['${NOPE_A}']\nremote-management-key: '${NOPE_B}'\n".to_string()
            + &MINIMAL.replace("UPSTREAM_KEY", "NOPE_C");
        let errs = load(&yaml).unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "api-keys[0]",
                "providers[0].api-keys[0]",
                "remote-management-key"
            ]
        );
        for (e, var) in errs.iter().zip(["NOPE_A", "NOPE_C", "NOPE_B"]) {
            assert!(e.reason.contains(var), "{e}");
        }
    }

    #[test]
    fn a_bad_size_or_duration_names_its_key() {
        for (yaml, key) in [
            ("max-body-size: 3 parsecs", "max-body-size"),
            ("shutdown-grace-period: soon", "shutdown-grace-period"),
            ("timeouts: {idle: forever}", "timeouts.idle"),
            (
                "providers: [{name: p, kind: openai-compatible, base-url: 'http://x', models: [{name: m}], timeouts: {first-byte: later}}]",
                "providers[0].timeouts.first-byte",
            ),
        ] {
            let errs = load(yaml).unwrap_err();
            assert!(errs[0].to_string().contains(key), "{yaml}: {}", errs[0]);
        }
    }

    #[test]
    fn api_keys_env_override() {
        let c = Config::from_yaml("api-keys: [a]", |n| {
            (n == API_KEYS_ENV).then(|| "x, y".into())
        })
        .unwrap();
        assert_eq!(c.api_keys, vec!["x", "y"]);
    }

    #[test]
    fn sizes_and_durations() {
        let c = load("max-body-size: 1MiB\nshutdown-grace-period: 1500ms\ntimeouts: {idle: 5}")
            .unwrap();
        assert_eq!(c.max_body_size.0, 1 << 20);
        assert_eq!(c.shutdown_grace_period, Duration::from_millis(1500));
        assert_eq!(c.timeouts.idle, Duration::from_secs(5));
        assert!(load("max-body-size: 3 parsecs").is_err());
        assert!(load("shutdown-grace-period: soon").is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let errs = load("listen: nowhere").unwrap_err();
        assert!(errs[0].to_string().contains("listen"), "{}", errs[0]);
        let errs = load("lissen: 1").unwrap_err();
        assert!(errs[0].to_string().contains("lissen"), "{}", errs[0]);

        let bad = "
providers:
  - {name: p, kind: openai-compatible, base-url: 'ftp://x', models: []}
  - {name: p, kind: openai-compatible, base-url: 'http://x', models: [{name: m, alias: ''}], headers: {'bad header': v}}
";
        let keys: Vec<String> = load(bad).unwrap_err().into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            vec![
                "providers[0].base-url",
                "providers[0].models",
                "providers[1].name",
                "providers[1].models[0].alias",
                "providers[1].headers.bad header"
            ]
        );
        let errs = load("providers: [{name: p, kind: carrier-pigeon, base-url: 'http://x', models: [{name: m}]}]").unwrap_err();
        assert!(
            errs[0].to_string().contains("carrier-pigeon"),
            "{}",
            errs[0]
        );
    }
}
