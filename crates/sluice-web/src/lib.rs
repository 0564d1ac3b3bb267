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
    /// Hears every credential state change (cooling, probing, recovered, disabled, enabled)
    /// from where it happens; live pages wait on it instead of polling the health table.
    fn credential_changes(&self) -> tokio::sync::broadcast::Receiver<CredentialChange>;
    /// The credentials the real router would try now for `model` (as a client names it),
    /// restricted by key `key_id`'s allowed platforms and models, in order.
    async fn route_preview(&self, model: &str, key_id: Option<i64>)
    -> Result<RoutePreview, String>;
    /// Clears a cooldown, disables or enables a credential, through the routing code the
    /// management plane uses. `actor` is an admin.
    async fn credential_action(
        &self,
        actor: &Actor,
        credential: &str,
        action: CredentialAction,
    ) -> Result<(), WriteError>;
    /// "Test now": one tiny real request with `credential` (for `model`, else its provider's
    /// first chat model). Never a usage record; the dashboard stores it as a probe.
    async fn test_credential(
        &self,
        actor: &Actor,
        credential: &str,
        model: Option<&str>,
    ) -> Result<sluice_store::rollup::ProbeRow, WriteError>;
}

/// A credential's state changed (`kind`: `cooling`, `probing`, `probe_due`, `recovered`,
/// `disabled`, `enabled`); `model` is `None` for changes of the whole credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialChange {
    pub credential: String,
    pub model: Option<String>,
    pub kind: String,
}

impl CredentialChange {
    /// Changes were missed (a listener fell behind): every credential may have changed.
    pub fn missed() -> CredentialChange {
        CredentialChange {
            credential: String::new(),
            model: None,
            kind: "missed".into(),
        }
    }

    pub fn is_missed(&self) -> bool {
        self.credential.is_empty()
    }
}

/// An operator's change to a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialAction {
    /// End the cooldowns of one model, or of all.
    Clear {
        model: Option<String>,
    },
    /// Out of rotation, with the operator's reason.
    Disable {
        reason: String,
    },
    Enable,
}

/// What the router would do now for one model ([`Gateway::route_preview`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RoutePreview {
    pub model: String,
    /// In the order attempts would take them.
    pub steps: Vec<RouteStep>,
    /// Credentials of the model that cannot take it now.
    pub unavailable: Vec<RouteBlocked>,
    /// Why nothing can take it now (when `steps` is empty).
    pub blocked: Option<RouteBlocked>,
    /// How many attempts one request may make (`request-retry` + 1).
    pub attempts: u32,
}

impl RoutePreview {
    /// Whether the `index`th step (from 1) lies beyond what one request may try.
    pub fn beyond_budget(&self, index: impl std::borrow::Borrow<usize>) -> bool {
        let index = *index.borrow();
        index > usize::try_from(self.attempts).unwrap_or(usize::MAX)
    }
}

/// One credential in a routing preview.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RouteStep {
    /// The client-facing model it would serve (the preview model's after a fallback).
    pub model: String,
    pub provider: String,
    pub credential: String,
    pub upstream_model: String,
    pub priority: i32,
    /// This attempt would be the probe after a cooldown.
    pub probe: bool,
}

/// A credential that cannot take a model now, or why none can.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RouteBlocked {
    pub provider: String,
    pub credential: String,
    pub upstream_model: String,
    /// `cooling`, `probing`, `disabled` or `none` (no credential left at all).
    pub status: String,
    /// `quota` / `server_error`, or a disabled credential's reason.
    pub reason: Option<String>,
    pub remaining_ms: Option<u64>,
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
    pub platform: String,
    /// `config`, `pool` or `caller`.
    pub origin: String,
    /// The OAuth token file behind it, if any.
    pub token_file: Option<String>,
    /// RFC 3339.
    pub last_used: Option<String>,
    /// The upstream's words for the last failure.
    pub last_error_detail: Option<String>,
    /// The chat models its provider serves (what "test now" may ask).
    pub chat_models: Vec<String>,
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
        .route("/ui/credentials", get(pages::credentials::page))
        .route("/ui/credentials/row", get(pages::credentials::row))
        .route("/ui/credentials/models", get(pages::credentials::models))
        .route("/ui/credentials/test", post(pages::credentials::test))
        .route("/ui/credentials/act", post(pages::credentials::act))
        .route("/ui/live/credentials", get(live::credentials))
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
