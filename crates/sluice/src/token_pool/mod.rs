//! Seed 000's token pool: upstream tokens uploaded at run time through
//! `POST /api/upload-token`, listed (masked) by `GET /api/token-status`, both guarded by the
//! service key (which must start with `sk-`), kept in memory and persisted to
//! `{data-dir}/token-pool.json` (mode 0600).
//!
//! The tokens are credentials of the one provider with `token-pool: true`: routed, cooled and
//! disabled like configured keys. A Qwen OAuth credential is refreshed ahead of its expiry
//! (and after a 401/403) with the `refresh_token` grant against `token-pool.refresh-url`,
//! keeping the old refresh token when none comes back; its `resource_url` decides the upstream
//! base URL (`https://{resource_url}/v1`).
//!
//! Who may use what on seed 000's `/v1/chat/completions` and `/v1/models` ([`authenticate`]):
//! a Sluice client key (the service key included) uses the pool; a Bearer without the `sk-`
//! prefix (and not a Sluice session token) is the caller's own upstream token, forwarded to
//! providers with `allow-client-tokens`; no key at all uses the pool only with
//! `allow-anonymous`. Seed 004's routes always need a Sluice key ([`Scope`]).

pub mod api;
mod store;
pub mod upload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, TokenPoolConfig};
use crate::error::GatewayError;
use crate::gateway::Runtime;
use crate::pipeline::authenticate::Caller;
use crate::providers::{Credential, ProviderCommon};
use crate::transport::{Clients, ProxySetting};
pub use store::StoredToken;
pub use upload::Upload;

/// How long a refresh call may take.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(30);

/// Uploaded upstream tokens.
#[derive(Debug)]
pub struct TokenPool {
    settings: TokenPoolConfig,
    store: store::Store,
    inner: Mutex<Inner>,
    /// One refresh at a time: concurrent requests wait for it instead of refreshing again.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: Vec<StoredToken>,
    attached: Option<Attached>,
    credentials: Option<Arc<[Arc<Credential>]>>,
    refreshes: HashMap<String, u64>,
}

/// The provider the pool's tokens belong to.
#[derive(Debug, Clone)]
struct Attached {
    provider: String,
    http: reqwest::Client,
}

/// What an upload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub added: usize,
    pub updated: usize,
    /// The ids of the uploaded tokens, in upload order.
    pub ids: Vec<String>,
}

impl TokenPool {
    /// Opens the pool in `dir` (`token-pool.data-dir`, resolved) and loads its file.
    pub fn open(settings: &TokenPoolConfig, dir: &std::path::Path) -> Result<Self, String> {
        let store = store::Store::new(dir);
        let tokens = store.load().map_err(|e| format!("token-pool: {e}"))?;
        tracing::info!(
            path = %store.path().display(),
            tokens = tokens.len(),
            "token pool loaded"
        );
        Ok(Self {
            settings: settings.clone(),
            store,
            inner: Mutex::new(Inner {
                tokens,
                ..Inner::default()
            }),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn settings(&self) -> &TokenPoolConfig {
        &self.settings
    }

    /// The directory of the pool's file.
    pub fn dir(&self) -> &std::path::Path {
        self.store
            .path()
            .parent()
            .unwrap_or(std::path::Path::new(""))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Binds the pool to the provider with `token-pool: true` (its name and proxy).
    pub fn attach(&self, config: &Config, clients: &Clients) -> Result<(), String> {
        let Some(provider) = config.providers.iter().find(|p| p.token_pool) else {
            return Ok(());
        };
        let proxy = ProxySetting::resolve(None, provider.proxy_url.as_deref(), &config.proxy_url);
        let connect = provider.timeouts.connect.unwrap_or(config.timeouts.connect);
        let http = clients.get(&proxy, connect)?;
        let mut inner = self.lock();
        inner.attached = Some(Attached {
            provider: provider.name.clone(),
            http,
        });
        inner.credentials = None;
        Ok(())
    }

    /// The pool's tokens as credentials of its provider.
    pub fn credentials(&self) -> Arc<[Arc<Credential>]> {
        let mut inner = self.lock();
        if let Some(credentials) = &inner.credentials {
            return credentials.clone();
        }
        let built: Arc<[Arc<Credential>]> = match &inner.attached {
            None => Arc::from(Vec::new()),
            Some(attached) => inner
                .tokens
                .iter()
                .filter(|t| t.disabled.is_none() && self.resource_allowed(t))
                .filter_map(|t| credential(attached, t).map(Arc::new))
                .collect(),
        };
        inner.credentials = Some(built.clone());
        built
    }

    /// Whether a stored token's `resource_url` (from an older file, or a refresh answer) is
    /// still allowed; a token that is not is never used.
    fn resource_allowed(&self, token: &StoredToken) -> bool {
        let Some(resource) = &token.resource_url else {
            return true;
        };
        match check_resource_url(resource, &self.settings.resource_url_hosts) {
            Ok(()) => true,
            Err(reason) => {
                tracing::warn!(token = %token.id, %reason, "pool token not used: its resource_url is refused");
                false
            }
        }
    }

    /// Takes the token behind `credential_id` out of rotation for good, with `reason`, in the
    /// pool's file (so a reload or restart keeps it out); a new upload of it brings it back.
    pub fn retire(&self, credential_id: &str, reason: &str) {
        let mut inner = self.lock();
        let Some(provider) = inner.attached.as_ref().map(|a| a.provider.clone()) else {
            return;
        };
        let Some(token_id) = credential_id.strip_prefix(&format!("{provider}#pool-")) else {
            return;
        };
        let mut tokens = inner.tokens.clone();
        let Some(token) = tokens.iter_mut().find(|t| t.id == token_id) else {
            return;
        };
        if token.disabled.as_deref() == Some(reason) {
            return;
        }
        token.disabled = Some(reason.to_string());
        if let Err(error) = self.store.save(&tokens) {
            tracing::error!(token = %token_id, %error, "could not record the pool token's retirement; it stays out of rotation until a restart");
        }
        inner.tokens = tokens;
        inner.credentials = None;
        tracing::warn!(token = %token_id, %reason, "pool token retired for good: upload a working token instead");
    }

    /// The stored tokens, with how often each was refreshed.
    pub fn tokens(&self) -> Vec<(StoredToken, u64)> {
        let inner = self.lock();
        inner
            .tokens
            .iter()
            .map(|t| (t.clone(), inner.refreshes.get(&t.id).copied().unwrap_or(0)))
            .collect()
    }

    /// The credential id of a token.
    pub fn credential_id(&self, token_id: &str) -> Option<String> {
        self.lock()
            .attached
            .as_ref()
            .map(|a| format!("{}#pool-{token_id}", a.provider))
    }

    /// Adds tokens (an upload of a token already in the pool replaces it) and saves the pool.
    pub fn add(&self, uploads: Vec<Upload>) -> Result<Added, String> {
        let mut inner = self.lock();
        let mut tokens = inner.tokens.clone();
        let (mut added, mut updated, mut ids) = (0, 0, Vec::new());
        let now = unix_secs();
        for upload in uploads {
            let id = token_id(&upload.access_token);
            let existing = tokens.iter().position(|t| {
                t.id == id
                    || t.access_token == upload.access_token
                    || (upload.refresh_token.is_some() && t.refresh_token == upload.refresh_token)
            });
            let token = StoredToken {
                id: existing.map_or(id, |i| tokens[i].id.clone()),
                access_token: upload.access_token,
                refresh_token: upload.refresh_token,
                token_type: upload.token_type,
                resource_url: upload.resource_url,
                expiry_date: upload.expiry_date,
                added_at: now,
                disabled: None,
            };
            ids.push(token.id.clone());
            match existing {
                Some(i) => {
                    tokens[i] = token;
                    updated += 1;
                }
                None => {
                    tokens.push(token);
                    added += 1;
                }
            }
        }
        self.store.save(&tokens)?;
        inner.tokens = tokens;
        inner.credentials = None;
        Ok(Added {
            added,
            updated,
            ids,
        })
    }

    /// The credential to send with: refreshed first when its token expires within
    /// `refresh-ahead`. A failed refresh keeps the current token (the upstream decides).
    pub async fn fresh(&self, credential: &Arc<Credential>) -> Arc<Credential> {
        let Some(token_id) = self.token_of(&credential.id) else {
            return credential.clone();
        };
        if !self.needs_refresh(&token_id) {
            return credential.clone();
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if self.needs_refresh(&token_id)
            && let Err(reason) = self.refresh(&token_id).await
        {
            tracing::warn!(
                credential = %credential.id,
                %reason,
                "could not refresh an uploaded token ahead of its expiry; using it as it is (upload a new credential if it keeps failing)"
            );
        }
        self.current(&credential.id)
            .unwrap_or_else(|| credential.clone())
    }

    /// After the upstream refused a token: refresh it; whether it may be tried again.
    pub async fn refresh_after_rejection(&self, credential_id: &str) -> bool {
        let Some(token_id) = self.token_of(credential_id) else {
            return false;
        };
        let has_refresh = self
            .lock()
            .tokens
            .iter()
            .any(|t| t.id == token_id && t.refresh_token.is_some());
        if !has_refresh {
            return false;
        }
        let _one_at_a_time = self.refreshing.lock().await;
        match self.refresh(&token_id).await {
            Ok(()) => true,
            Err(reason) => {
                tracing::warn!(
                    credential = %credential_id,
                    %reason,
                    "the upstream refused an uploaded token and refreshing it failed: it is disabled; upload a new credential"
                );
                false
            }
        }
    }

    /// The current credential with this id (after a refresh, the new token).
    fn current(&self, credential_id: &str) -> Option<Arc<Credential>> {
        self.credentials()
            .iter()
            .find(|c| &*c.id == credential_id)
            .cloned()
    }

    fn token_of(&self, credential_id: &str) -> Option<String> {
        let (_, token) = credential_id.rsplit_once("#pool-")?;
        Some(token.to_string())
    }

    fn needs_refresh(&self, token_id: &str) -> bool {
        let ahead = u64::try_from(self.settings.refresh_ahead.as_millis()).unwrap_or(u64::MAX);
        let now = unix_millis();
        self.lock().tokens.iter().any(|t| {
            t.id == token_id
                && t.refresh_token.is_some()
                && t.expiry_date
                    .is_some_and(|exp| exp <= now.saturating_add(ahead))
        })
    }

    /// Exchanges a token's refresh token for a new access token, and saves the pool.
    async fn refresh(&self, token_id: &str) -> Result<(), String> {
        let (refresh_token, http) = {
            let inner = self.lock();
            let token = inner
                .tokens
                .iter()
                .find(|t| t.id == token_id)
                .ok_or("the token is no longer in the pool")?;
            let refresh = token
                .refresh_token
                .clone()
                .ok_or("it has no refresh_token")?;
            let http = inner
                .attached
                .as_ref()
                .map(|a| a.http.clone())
                .unwrap_or_default();
            (refresh, http)
        };
        let response = http
            .post(&self.settings.refresh_url)
            .header(http::header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.as_str()),
                ("client_id", self.settings.client_id.as_str()),
            ])
            .timeout(REFRESH_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the token endpoint {}",
                    crate::pipeline::upstream::describe(e)
                )
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            format!(
                "the token endpoint {}",
                crate::pipeline::upstream::describe(e)
            )
        })?;
        if !status.is_success() {
            let code = serde_json::from_slice::<OAuthError>(&body)
                .ok()
                .and_then(|e| e.error)
                .unwrap_or_default();
            return Err(format!(
                "the token endpoint answered HTTP {} {code}",
                status.as_u16()
            ));
        }
        let granted: Granted = serde_json::from_slice(&body)
            .map_err(|_| "the token endpoint's answer has no access_token".to_string())?;
        let mut inner = self.lock();
        let mut tokens = inner.tokens.clone();
        let token = tokens
            .iter_mut()
            .find(|t| t.id == token_id)
            .ok_or("the token is no longer in the pool")?;
        token.access_token = granted.access_token;
        if let Some(refresh) = granted.refresh_token.filter(|r| !r.is_empty()) {
            token.refresh_token = Some(refresh);
        }
        if let Some(kind) = granted.token_type {
            token.token_type = Some(kind);
        }
        if let Some(resource) = granted.resource_url.filter(|r| !r.is_empty()) {
            token.resource_url = Some(resource);
        }
        token.expiry_date = granted
            .expires_in
            .map(|secs| unix_millis().saturating_add(secs.saturating_mul(1000)));
        self.store.save(&tokens)?;
        inner.tokens = tokens;
        inner.credentials = None;
        *inner.refreshes.entry(token_id.to_string()).or_default() += 1;
        Ok(())
    }
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    refresh_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<u64>,
    resource_url: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: Option<String>,
}

fn credential(attached: &Attached, token: &StoredToken) -> Option<Credential> {
    ProviderCommon::bearer_credential(
        format!("{}#pool-{}", attached.provider, token.id).into(),
        &token.access_token,
        token.resource_url.as_deref().map(base_url),
        attached.http.clone(),
    )
}

/// Whether a token's `resource_url` may be its upstream: an `https://` URL (or a bare host)
/// without credentials or port whose host matches an entry of `allowed` (`host`, or `*.domain`
/// for any subdomain), or exactly an origin listed with its scheme (`http://127.0.0.1:8080`).
/// Anything else would let whoever holds the service key send the pool's tokens and callers'
/// bodies to a host of their choosing, internal ones included.
pub fn check_resource_url(resource_url: &str, allowed: &[String]) -> Result<(), String> {
    let url = reqwest::Url::parse(&base_url(resource_url))
        .map_err(|_| "is not a host name or URL".to_string())?;
    let host = url
        .host_str()
        .ok_or_else(|| "has no host".to_string())?
        .to_ascii_lowercase();
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let origin = url.origin().ascii_serialization();
    let permitted = allowed.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.contains("://") {
            return reqwest::Url::parse(&entry)
                .is_ok_and(|e| e.origin().ascii_serialization() == origin);
        }
        let host_matches = match entry.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => host == entry,
        };
        host_matches && url.scheme() == "https" && url.port().is_none()
    });
    if permitted {
        Ok(())
    } else {
        Err(format!(
            "`{origin}` is not allowed: only https:// hosts listed in token-pool.resource-url-hosts"
        ))
    }
}

/// The upstream base URL of a Qwen account: `https://{resource_url}/v1` (a URL with its own
/// scheme is kept; `/v1` is not doubled).
pub fn base_url(resource_url: &str) -> String {
    let resource = resource_url.trim().trim_end_matches('/');
    let url = if resource.starts_with("http://") || resource.starts_with("https://") {
        resource.to_string()
    } else {
        format!("https://{resource}")
    };
    if url.ends_with("/v1") {
        url
    } else {
        format!("{url}/v1")
    }
}

/// A token's id: `t-` and the first 12 hex digits of its SHA-256.
fn token_id(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("t-{hex}")
}

/// A token for listings: its first and last four characters.
pub fn mask(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() <= 12 {
        return "****".into();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn unix_secs() -> u64 {
    unix_millis() / 1000
}

/// Whose rules a route follows for a caller without a Sluice key (the brief: each seed's rules
/// hold on its own routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Seed 000's `/v1/chat/completions` and `/v1/models`: a Bearer without `sk-` is the
    /// caller's own upstream token (with `allow-client-tokens`); no key uses the pool with
    /// `allow-anonymous`.
    Seed000,
    /// The other standard routes: `allow-localhost-unauthenticated` holds; `allow-anonymous`
    /// and a caller's own token do not (a key is needed).
    Standard,
    /// Seed 004's `/openai/v1/…`, `/claude/v1/…`, `/gemini/v1/…`: a Sluice key, always, and
    /// seed 004's 401s otherwise.
    Seed004,
}

/// Authenticates a proxied request: a Sluice client key; on [`Scope::Seed000`] routes, when
/// some provider sets `allow-client-tokens`, a Bearer without the `sk-` prefix that is neither a
/// Sluice key nor a Sluice session token is the caller's own upstream token (returned as the
/// second value); no key at all only with `allow-anonymous`, and only on [`Scope::Seed000`]
/// routes.
pub fn authenticate(
    runtime: &Runtime,
    accounts: &crate::accounts::Accounts,
    headers: &http::HeaderMap,
    query: Option<&str>,
    local: bool,
    scope: Scope,
) -> Result<(Caller, Option<String>), GatewayError> {
    let keys = &runtime.keys;
    let now_ms = accounts.now_ms();
    if scope == Scope::Seed004 {
        return keys
            .authenticate_keyed(&accounts.keys, now_ms, headers, query)
            .map(|caller| (caller, None));
    }
    let anonymous_route = scope == Scope::Seed000;
    match keys.authenticate_from(
        &accounts.keys,
        now_ms,
        headers,
        query,
        local,
        anonymous_route,
    ) {
        Ok(caller) => Ok((caller, None)),
        Err(e) if scope == Scope::Seed000 => match own_token(runtime, headers) {
            Some(token) if !accounts.sessions.is_ours(&token) => Ok((
                Caller {
                    key_id: None,
                    user_id: None,
                    key: None,
                },
                Some(token),
            )),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

fn own_token(runtime: &Runtime, headers: &http::HeaderMap) -> Option<String> {
    let value = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let bearer = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    if bearer.is_empty() || bearer.starts_with("sk-") {
        return None;
    }
    runtime
        .catalog()
        .providers()
        .iter()
        .any(|p| p.common().allow_client_tokens)
        .then(|| bearer.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resource_urls_become_base_urls() {
        assert_eq!(base_url("portal.qwen.ai"), "https://portal.qwen.ai/v1");
        assert_eq!(
            base_url("https://portal.qwen.ai/v1/"),
            "https://portal.qwen.ai/v1"
        );
        assert_eq!(base_url("http://127.0.0.1:9/"), "http://127.0.0.1:9/v1");
    }

    #[test]
    fn masks_keep_only_the_ends() {
        assert_eq!(mask("eyJhbGciOiJIUzI1NiJ9.payload.sig"), "eyJh....sig");
        assert_eq!(mask("short"), "****");
        assert_eq!(token_id("a"), token_id("a"));
        assert_ne!(token_id("a"), token_id("b"));
    }
}
