//! Sluice's web dashboard: server-rendered pages under `/ui`.
//!
//! Pages are [askama] templates (compile-time checked, HTML-escaped), partial updates use the
//! vendored htmx, charts the vendored uPlot, and everything else is one small `app.js`. Every
//! static file is embedded in the binary and served under a content-hashed, immutable URL
//! ([`assets`]). Every `/ui` response carries a strict Content-Security-Policy (no inline
//! script or style, no eval) and the usual hardening headers ([`security`]).
//!
//! Sign-in makes an opaque server-side session ([`session`]): a random id in an `HttpOnly;
//! SameSite=Strict` cookie, stored only as its SHA-256, with idle and absolute expiry; sign-out
//! and a password change delete it. Every unsafe request carries the session's CSRF token and a
//! same-origin `Origin`; sign-in attempts are rate-limited per address and per user name.
//!
//! The crate depends on the store's types and on the narrow [`Gateway`] trait the gateway
//! implements; it never sees the gateway's application state.
#![forbid(unsafe_code)]

pub mod assets;
pub mod i18n;
mod live;
mod pages;
pub mod security;
pub mod session;
pub mod svg;
pub mod view;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::{get, post};
use sluice_store::{Store, User};

/// What only the gateway knows, as the dashboard needs it.
#[async_trait]
pub trait Gateway: Send + Sync + 'static {
    /// The users, keys and usage store.
    fn store(&self) -> &dyn Store;
    /// Unix milliseconds now.
    fn now_ms(&self) -> i64;
    /// The client's address (the socket peer, or what a trusted proxy says).
    fn client_ip(&self, parts: &http::request::Parts) -> Option<IpAddr>;
    /// Whether `password` is `user`'s (argon2; slow by design, run off the async threads).
    /// `None` (no such user) is `false`, after the same work as a real check.
    async fn verify_password(&self, user: Option<&User>, password: &str) -> bool;
    /// What the System page shows.
    async fn system(&self) -> SystemInfo;
    /// Every credential's health now, in config order (ids, never secrets).
    fn credentials(&self) -> Vec<CredentialHealth>;
    /// The calendar limits count days and months in.
    fn calendar(&self) -> sluice_store::limits::Calendar;
    /// A counter bumped each time a batch of usage records leaves the store writer: the live
    /// pages wait on it instead of polling the store.
    fn usage_written(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Changes a key through the same code as seed 004's `/api/api-keys` (validation, the
    /// owner's ceilings, the key cache); `actor` must be allowed to change it.
    async fn write_key(&self, actor: &Actor, write: KeyWrite) -> Result<KeyWritten, WriteError>;
    /// Model names clients may ask for (the catalog's), for ready-to-paste snippets.
    fn models(&self) -> Vec<String>;
    /// Creates or changes a user through the same code as `/api/users` (validation, password
    /// hashing, lowering keys to new ceilings); only an admin `actor` may.
    async fn write_user(&self, actor: &Actor, write: UserWrite) -> Result<User, WriteError>;
    /// How many keys one user may have (`user-keys.max-per-user`; 0: no cap).
    fn max_keys_per_user(&self) -> i64;
}

/// Who is making a change from the dashboard.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: i64,
    pub username: String,
    pub role: sluice_store::Role,
}

/// A change to an API key; bodies are seed 004's JSON fields.
#[derive(Debug, Clone)]
pub enum KeyWrite {
    /// A new key of the actor's.
    Create(serde_json::Map<String, serde_json::Value>),
    Update(i64, serde_json::Map<String, serde_json::Value>),
    Toggle(i64),
    Delete(i64),
    /// A new secret, same settings (answered in `KeyWritten::secret`).
    Rotate(i64),
}

/// A change to a user; bodies are `/api/users`' JSON fields.
#[derive(Debug, Clone)]
pub enum UserWrite {
    /// `username`, `password`, `role`.
    Create(serde_json::Map<String, serde_json::Value>),
    /// Any of `role`, `status`, `password`.
    Update(i64, serde_json::Map<String, serde_json::Value>),
}

/// A key after a write; `secret` only after a create or a rotation (it exists nowhere else).
#[derive(Debug, Clone)]
pub struct KeyWritten {
    pub key: Option<sluice_store::ApiKey>,
    pub secret: Option<String>,
}

/// A refused write, in the gateway's words.
#[derive(Debug, Clone)]
pub struct WriteError {
    pub status: u16,
    pub message: String,
}

/// One credential's health, as the routing table sees it now.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CredentialHealth {
    pub id: String,
    pub provider: String,
    /// `config`, `pool` or `caller`.
    pub origin: String,
    /// `active`, `cooling`, `disabled` or `needs_relogin`.
    pub status: String,
    /// Why it is disabled.
    pub disabled: Option<String>,
    /// Models cooling, probing or failing (healthy ones are not listed).
    pub models: Vec<ModelHealth>,
    pub requests: u64,
    pub failures: u64,
    /// Kind of the last failure: `quota`, `server_error`, `unauthorized`.
    pub last_error: Option<String>,
}

/// One model's state on one credential.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ModelHealth {
    pub model: String,
    /// `cooling`, `probing`, `probe_due` or `degraded`.
    pub status: String,
    /// `quota` or `server_error`.
    pub reason: Option<String>,
    pub remaining_ms: Option<u64>,
}

/// The gateway as the System page shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SystemInfo {
    pub version: String,
    /// Unix seconds the gateway started.
    pub started_unix: i64,
    /// The data directory.
    pub data_dir: String,
    /// The store, without any password (`sqlite://…`, `postgres://user:***@…`).
    pub store: String,
    /// Size of the SQLite database file (with its WAL), when the store is SQLite.
    pub database_bytes: Option<u64>,
    /// Usage records accepted but not yet committed to the store.
    pub usage_backlog: u64,
    /// `allow-remote-management`.
    pub remote_management: bool,
    /// Whether a management key is set (without one the management API answers 403).
    pub management_key_set: bool,
    /// Providers and credentials configured.
    pub providers: usize,
    pub credentials: usize,
    /// Paths of other surfaces when this build serves them (`/openapi.json`, `/metrics`).
    pub links: Vec<(String, String)>,
}

/// Dashboard settings (`dashboard:` in the config).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark the session cookie `Secure` (set it when Sluice is reached over TLS).
    pub secure_cookie: bool,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub session_max: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            secure_cookie: false,
            session_idle: Duration::from_secs(2 * 3600),
            session_max: Duration::from_secs(24 * 3600),
        }
    }
}

/// The dashboard: its settings, the gateway behind it, and the sign-in rate limits.
pub struct Web {
    pub(crate) gateway: Arc<dyn Gateway>,
    pub(crate) config: WebConfig,
    pub(crate) logins: session::LoginLimits,
}

impl Web {
    pub fn new(gateway: Arc<dyn Gateway>, config: WebConfig) -> Arc<Web> {
        Arc::new(Web {
            gateway,
            config,
            logins: session::LoginLimits::default(),
        })
    }
}

/// The routes under `/ui`, to merge into the gateway's router.
pub fn router<S: Clone + Send + Sync + 'static>(web: Arc<Web>) -> Router<S> {
    Router::new()
        .route("/ui", get(pages::home))
        .route("/ui/", get(pages::home))
        .route("/ui/login", get(pages::login_page).post(pages::login))
        .route("/ui/logout", post(pages::logout))
        .route("/ui/prefs", post(pages::prefs))
        .route("/ui/overview", get(pages::overview::page))
        .route("/ui/overview/series", get(pages::overview::series))
        .route("/ui/live/overview", get(live::overview))
        .route("/ui/live/requests", get(live::requests))
        .route("/ui/live/keys", get(live::keys))
        .route("/ui/keys", get(pages::keys::page).post(pages::keys::create))
        .route("/ui/keys/{id}", post(pages::keys::update))
        .route("/ui/keys/{id}/edit", get(pages::keys::edit_page))
        .route("/ui/keys/{id}/toggle", post(pages::keys::toggle))
        .route("/ui/keys/{id}/delete", post(pages::keys::delete))
        .route("/ui/keys/{id}/rotate", post(pages::keys::rotate))
        .route("/ui/requests", get(pages::requests::page))
        .route("/ui/requests.csv", get(pages::requests::csv))
        .route("/ui/requests/{time}/{id}", get(pages::requests::detail))
        .route("/ui/usage", get(pages::usage::page))
        .route("/ui/usage.csv", get(pages::usage::csv))
        .route(
            "/ui/users",
            get(pages::users::page).post(pages::users::create),
        )
        .route(
            "/ui/users/{id}",
            get(pages::users::detail).post(pages::users::update),
        )
        .route("/ui/system", get(pages::system))
        .route("/ui/me", get(pages::me::page))
        .route("/ui/me/keys", post(pages::me::create))
        .route("/ui/me/keys/{id}/rotate", post(pages::me::rotate))
        .route("/ui/static/{file}", get(assets::serve))
        .route("/ui/{*rest}", get(pages::not_found).post(pages::not_found))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            security::guard,
        ))
        .layer(axum::middleware::map_response(security::headers))
        .with_state(web)
}
