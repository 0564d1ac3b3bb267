//! OAuth accounts kept alive: every token file in `auth-dir` (Claude, Codex, Gemini, Qwen) is
//! an account whose access token the [`Refresher`] renews — ahead of expiry from the
//! background [`scheduler`], on the request path when it has already expired, and once after an
//! upstream 401 — without ever losing a rotated refresh token:
//!
//! - **single flight per account**: one async lock per file (and, with `limits.redis`, a
//!   cluster-wide [`SharedLock`] on the file name); inside it the file is **re-read**, and the
//!   refresh is skipped when another path already replaced the token;
//! - **detached**: the refresh runs in its own task, so a client that disconnects cannot drop
//!   the token endpoint's answer after it rotated the refresh token;
//! - **persisted before use**: the merged file is written atomically (temp, fsync, rename,
//!   0600) before the new token is handed out; a grant without `refresh_token` keeps the old;
//! - **permanent refusals** (`invalid_grant`, `refresh_token_reused`, a consumed token's 404…)
//!   mark the account *needs re-login* in its file: out of rotation, never retried, shown by
//!   `/v0/management/credentials` and `/auth-files`;
//! - **transient failures** (5xx, network, HTML pages, 429) back off until `Retry-After`;
//!   no token call is made inside the window;
//! - **generations**: each new access token is a new generation; a 401 earned by an older
//!   token is answered with the current one, never by disabling a freshly refreshed account.

pub mod config;
pub mod login;
pub mod scheduler;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use sluice_oauth::{Endpoints, Kind, RefreshError, TokenDoc};

pub use config::OAuthConfig;

use crate::store::shared::SharedLock;

/// The lease of the cluster-wide refresh lock (longer than a refresh may take).
const SHARED_LEASE: Duration = Duration::from_secs(45);
/// How long a refresh waits for another instance's lock.
const SHARED_WAIT: Duration = Duration::from_secs(40);
/// A token this close to its expiry is refreshed on the request path.
const EXPIRY_MARGIN_MS: i64 = 30_000;
/// Codex tokens without a known expiry are refreshed when this old (codex-rs).
const CODEX_STALE_MS: i64 = 8 * 24 * 3600 * 1000;

/// The accounts of `auth-dir` and their refresh state; kept across reloads.
#[derive(Debug, Default)]
pub struct Refresher {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    dir: PathBuf,
    settings: Option<Arc<Settings>>,
    accounts: HashMap<String, Arc<Account>>,
    shared: Option<Arc<dyn SharedLock>>,
}

/// What refreshing needs from the config.
#[derive(Debug)]
struct Settings {
    oauth: OAuthConfig,
    /// The client for token calls, per provider kind (its proxy).
    http: HashMap<Kind, reqwest::Client>,
}

/// One token file.
#[derive(Debug)]
struct Account {
    name: String,
    /// Single flight: held across re-read, token call and write.
    flight: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

/// What is known of an account (from its file and from refreshing it).
#[derive(Debug, Clone)]
struct State {
    kind: Kind,
    access_token: String,
    has_refresh_token: bool,
    expires_at_ms: Option<i64>,
    last_refresh_ms: Option<i64>,
    /// Bumped whenever the access token changes.
    generation: u64,
    needs_relogin: Option<String>,
    backoff_until_ms: Option<i64>,
    last_error: Option<String>,
    refreshes: u64,
}

impl State {
    fn from_doc(doc: &TokenDoc) -> Option<State> {
        Some(State {
            kind: doc.kind(),
            access_token: doc.access_token()?.to_string(),
            has_refresh_token: doc.refresh_token().is_some(),
            expires_at_ms: doc.expires_at_ms(),
            last_refresh_ms: doc.last_refresh_ms(),
            generation: 0,
            needs_relogin: doc.needs_relogin().map(|r| r.reason),
            backoff_until_ms: None,
            last_error: None,
            refreshes: 0,
        })
    }

    /// Takes in what the file says now; a changed token starts a new generation (and ends any
    /// back-off: it is a new credential).
    fn update(&mut self, doc: &TokenDoc) {
        let Some(fresh) = State::from_doc(doc) else {
            return;
        };
        if fresh.access_token != self.access_token {
            self.generation += 1;
            self.backoff_until_ms = None;
            self.last_error = None;
        }
        self.kind = fresh.kind;
        self.access_token = fresh.access_token;
        self.has_refresh_token = fresh.has_refresh_token;
        self.expires_at_ms = fresh.expires_at_ms;
        self.last_refresh_ms = fresh.last_refresh_ms;
        self.needs_relogin = fresh.needs_relogin;
    }

    fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms
            .is_some_and(|exp| exp <= now_ms + EXPIRY_MARGIN_MS)
    }

    /// Whether the scheduler should refresh it now: within the lead of its expiry (at most
    /// half its lifetime, so a short-lived token is not refreshed on every pass).
    fn due(&self, lead: Duration, now_ms: i64) -> bool {
        if !self.has_refresh_token || self.needs_relogin.is_some() {
            return false;
        }
        if self.backoff_until_ms.is_some_and(|until| now_ms < until) {
            return false;
        }
        let lead_ms = i64::try_from(lead.as_millis()).unwrap_or(i64::MAX);
        match (self.expires_at_ms, self.last_refresh_ms) {
            (Some(exp), Some(last)) if exp > last => exp - lead_ms.min((exp - last) / 2) <= now_ms,
            (Some(exp), _) => exp.saturating_sub(lead_ms) <= now_ms,
            (None, Some(last)) if self.kind == Kind::Codex => last + CODEX_STALE_MS <= now_ms,
            _ => false,
        }
    }
}

/// Why a refresh is wanted, checked again inside the lock against the re-read file.
#[derive(Debug, Clone)]
enum Need {
    /// This access token expired or was refused: refresh unless the file holds another.
    Replace(String),
    /// The scheduler found it due: refresh unless the file is no longer due.
    Due,
}

/// What a request may do after its account's token was refused (or found expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// A new token is in place (refreshed now, or by another path already): retry once.
    Retry,
    /// The token endpoint is backing off: the account sits out this long.
    Wait(Duration),
    /// The account needs a new sign-in.
    Dead(String),
}

/// An account as listed by the management API.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AccountStatus {
    /// `active`, `refresh_backoff` or `needs_relogin`.
    pub state: &'static str,
    /// Why it needs a re-login, or why the last refresh failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the access token expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// When it was last refreshed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<String>,
    /// When the next refresh attempt is allowed, after a transient failure (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// Refreshes made by this process.
    pub refreshes: u64,
    pub has_refresh_token: bool,
}

fn rfc3339_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Refresher {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the config's settings and the current token files (start-up and every reload).
    pub fn sync(
        &self,
        config: &crate::config::Config,
        clients: &crate::transport::Clients,
    ) -> Result<(), String> {
        let mut http = HashMap::new();
        for kind in Kind::ALL {
            let proxy = crate::transport::ProxySetting::resolve(
                None,
                config.oauth.provider(kind).proxy_url.as_deref(),
                &config.proxy_url,
            );
            http.insert(kind, clients.get(&proxy, config.timeouts.connect)?);
        }
        let dir = crate::settings::auth_dir(config);
        let files = crate::auth_files::list(&dir).unwrap_or_default();
        let mut docs = Vec::new();
        for info in files {
            let Ok(bytes) = crate::auth_files::read(&dir, &info.name) else {
                continue;
            };
            if crate::auth_files::parse(&bytes).is_err() {
                continue;
            }
            if let Ok(doc) = TokenDoc::parse(&bytes) {
                docs.push((info.name, doc));
            }
        }
        let mut inner = self.lock();
        inner.settings = Some(Arc::new(Settings {
            oauth: config.oauth.clone(),
            http,
        }));
        if inner.dir != dir {
            inner.accounts.clear();
            inner.dir = dir;
        }
        let mut seen = std::collections::HashSet::new();
        for (name, doc) in docs {
            seen.insert(name.clone());
            match inner.accounts.get(&name) {
                Some(account) => account.state().update(&doc),
                None => {
                    if let Some(state) = State::from_doc(&doc) {
                        inner.accounts.insert(
                            name.clone(),
                            Arc::new(Account {
                                name,
                                flight: tokio::sync::Mutex::new(()),
                                state: Mutex::new(state),
                            }),
                        );
                    }
                }
            }
        }
        inner.accounts.retain(|name, _| seen.contains(name));
        Ok(())
    }

    /// Refreshes take this cluster-wide lock too (`limits.redis`).
    pub fn share_lock(&self, lock: Arc<dyn SharedLock>) {
        self.lock().shared = Some(lock);
    }

    fn account(&self, name: &str) -> Option<Arc<Account>> {
        self.lock().accounts.get(name).cloned()
    }

    /// The access token to send for account `name`: refreshed first when it has expired.
    /// `Err` when the account cannot be used now.
    pub async fn fresh(self: &Arc<Self>, name: &str) -> Result<String, Recovery> {
        let Some(account) = self.account(name) else {
            return Err(Recovery::Dead("the token file is gone".into()));
        };
        let state = account.state().clone();
        if let Some(reason) = state.needs_relogin {
            return Err(Recovery::Dead(reason));
        }
        let now = now_ms();
        if state.expired(now) && state.has_refresh_token {
            if let Some(until) = state.backoff_until_ms.filter(|u| now < *u) {
                return Err(Recovery::Wait(ms_duration(until - now)));
            }
            match self
                .refresh(&account, Need::Replace(state.access_token))
                .await
            {
                Recovery::Retry => {}
                other => return Err(other),
            }
        }
        Ok(account.state().access_token.clone())
    }

    /// After the upstream refused `sent` (401): refresh unless another path already replaced
    /// it.
    pub async fn after_unauthorized(self: &Arc<Self>, name: &str, sent: &str) -> Recovery {
        let Some(account) = self.account(name) else {
            return Recovery::Dead("the token file is gone".into());
        };
        let state = account.state().clone();
        if state.access_token != sent {
            return Recovery::Retry; // a late 401 of an older generation
        }
        if let Some(reason) = state.needs_relogin {
            return Recovery::Dead(reason);
        }
        if !state.has_refresh_token {
            return Recovery::Dead(
                "the upstream refused the access token and the file has no refresh_token".into(),
            );
        }
        let now = now_ms();
        if let Some(until) = state.backoff_until_ms.filter(|u| now < *u) {
            return Recovery::Wait(ms_duration(until - now));
        }
        self.refresh(&account, Need::Replace(sent.to_string()))
            .await
    }

    /// Takes an account out of rotation for good because its upstream ended the service
    /// (Qwen's discontinued OAuth free tier): recorded in the file like a permanent refresh
    /// refusal, so neither requests nor the scheduler refresh it again.
    pub async fn retire(&self, name: &str, reason: &str) {
        let Some(account) = self.account(name) else {
            return;
        };
        let _flight = account.flight.lock().await;
        let dir = self.lock().dir.clone();
        if let Ok(mut doc) = crate::auth_files::read(&dir, name)
            .map_err(|e| e.to_string())
            .and_then(|b| TokenDoc::parse(&b))
        {
            doc.set_needs_relogin(reason, Utc::now());
            if let Err(e) = sluice_oauth::store::write_private(&dir.join(name), &doc.to_bytes()) {
                tracing::error!(file = %name, error = %e, "could not record the account's state in the token file");
            }
        }
        account.state().needs_relogin = Some(reason.to_string());
        tracing::warn!(file = %name, %reason, "OAuth account retired: its upstream ended the service");
    }

    /// The accounts the scheduler should refresh now.
    fn due(&self) -> Vec<String> {
        let inner = self.lock();
        let Some(settings) = inner.settings.clone() else {
            return Vec::new();
        };
        let now = now_ms();
        inner
            .accounts
            .values()
            .filter(|a| {
                let state = a.state();
                state.due(settings.oauth.lead(state.kind), now)
            })
            .map(|a| a.name.clone())
            .collect()
    }

    /// Refreshes account `name` if it is still due; what happened.
    async fn refresh_due(self: &Arc<Self>, name: &str) -> Option<Recovery> {
        let account = self.account(name)?;
        Some(self.refresh(&account, Need::Due).await)
    }

    /// Runs one refresh in its own task (a caller that goes away cannot cancel it) and waits
    /// for its outcome.
    async fn refresh(self: &Arc<Self>, account: &Arc<Account>, need: Need) -> Recovery {
        let (this, account) = (self.clone(), account.clone());
        let task = tokio::spawn(async move { this.refresh_locked(&account, need).await });
        match task.await {
            Ok(recovery) => recovery,
            Err(_) => Recovery::Wait(Duration::from_secs(1)),
        }
    }

    async fn refresh_locked(&self, account: &Account, need: Need) -> Recovery {
        let _flight = account.flight.lock().await;
        let shared = self.lock().shared.clone();
        let lease = match &shared {
            Some(lock) => match take_shared(lock.as_ref(), &account.name).await {
                Some(lease) => Some(lease),
                None => {
                    return Recovery::Wait(Duration::from_secs(1));
                }
            },
            None => None,
        };
        let recovery = self.refresh_file(account, need).await;
        if let (Some(lock), Some(lease)) = (shared, lease) {
            lock.unlock(lease).await;
        }
        recovery
    }

    /// Inside the locks: re-read the file, decide, call the token endpoint, write, update.
    async fn refresh_file(&self, account: &Account, need: Need) -> Recovery {
        let (dir, settings) = {
            let inner = self.lock();
            (inner.dir.clone(), inner.settings.clone())
        };
        let Some(settings) = settings else {
            return Recovery::Wait(Duration::from_secs(1));
        };
        let path = dir.join(&account.name);
        let mut doc = match crate::auth_files::read(&dir, &account.name)
            .map_err(|e| e.to_string())
            .and_then(|b| TokenDoc::parse(&b))
        {
            Ok(doc) => doc,
            Err(_) => return Recovery::Dead("the token file is gone or unreadable".into()),
        };
        account.state().update(&doc);
        let state = account.state().clone();
        if let Some(reason) = state.needs_relogin {
            return Recovery::Dead(reason);
        }
        let now = now_ms();
        let still_needed = match &need {
            Need::Replace(token) => *token == state.access_token,
            Need::Due => state.due(settings.oauth.lead(state.kind), now),
        };
        if !still_needed {
            return Recovery::Retry;
        }
        if let Some(until) = state.backoff_until_ms.filter(|u| now < *u) {
            return Recovery::Wait(ms_duration(until - now));
        }
        let Some(refresh_token) = doc.refresh_token().map(String::from) else {
            return Recovery::Dead("the token file has no refresh_token".into());
        };
        let kind = doc.kind();
        let endpoints: Endpoints = settings.oauth.endpoints(kind);
        let http = settings.http.get(&kind).cloned().unwrap_or_default();
        let result = sluice_oauth::refresh::refresh(&http, kind, &endpoints, &refresh_token).await;
        match result {
            Ok(granted) => {
                doc.apply(&granted, Utc::now());
                if let Err(e) = sluice_oauth::store::write_private(&path, &doc.to_bytes()) {
                    // The rotated pair exists only in memory now: keep using it, and keep
                    // trying to save it on the next pass.
                    tracing::error!(file = %account.name, error = %e, "refreshed OAuth tokens could not be written; the new token is used from memory");
                }
                let mut state = account.state();
                state.update(&doc);
                state.refreshes += 1;
                state.backoff_until_ms = None;
                state.last_error = None;
                tracing::info!(file = %account.name, kind = %kind, "OAuth access token refreshed");
                Recovery::Retry
            }
            Err(RefreshError::Permanent { reason }) => {
                doc.set_needs_relogin(&reason, Utc::now());
                if let Err(e) = sluice_oauth::store::write_private(&path, &doc.to_bytes()) {
                    tracing::error!(file = %account.name, error = %e, "could not record the needs-re-login state in the token file");
                }
                account.state().needs_relogin = Some(reason.clone());
                tracing::warn!(file = %account.name, kind = %kind, %reason, "OAuth account needs a new sign-in: out of rotation (sluice login, or upload a new token file)");
                Recovery::Dead(reason)
            }
            Err(RefreshError::Transient {
                reason,
                retry_after,
            }) => {
                let until =
                    now_ms() + i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX / 2);
                let mut state = account.state();
                state.backoff_until_ms = Some(until);
                state.last_error = Some(reason.clone());
                tracing::warn!(file = %account.name, kind = %kind, %reason, retry_in = ?retry_after, "OAuth refresh failed; will retry later");
                Recovery::Wait(retry_after)
            }
        }
    }

    /// Every account's state, by file name.
    pub fn statuses(&self) -> HashMap<String, AccountStatus> {
        let inner = self.lock();
        let now = now_ms();
        inner
            .accounts
            .iter()
            .map(|(name, a)| (name.clone(), a.state().status(now)))
            .collect()
    }

    /// The accounts that need a new sign-in, with the reason.
    pub fn dead(&self) -> Vec<(String, String)> {
        self.lock()
            .accounts
            .iter()
            .filter_map(|(name, a)| Some((name.clone(), a.state().needs_relogin.clone()?)))
            .collect()
    }
}

impl Account {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn status(&self, now: i64) -> AccountStatus {
        let backoff = self.backoff_until_ms.filter(|u| now < *u);
        let (state, reason) = match (&self.needs_relogin, backoff) {
            (Some(reason), _) => ("needs_relogin", Some(reason.clone())),
            (None, Some(_)) => ("refresh_backoff", self.last_error.clone()),
            (None, None) => ("active", None),
        };
        AccountStatus {
            state,
            reason,
            expires_at: self.expires_at_ms.and_then(rfc3339_ms),
            last_refresh: self.last_refresh_ms.and_then(rfc3339_ms),
            retry_at: backoff.and_then(rfc3339_ms),
            refreshes: self.refreshes,
            has_refresh_token: self.has_refresh_token,
        }
    }
}

/// Takes the cluster-wide lock of one account, waiting for another instance's refresh.
async fn take_shared(lock: &dyn SharedLock, name: &str) -> Option<crate::store::shared::LockToken> {
    let lease = u64::try_from(SHARED_LEASE.as_millis()).unwrap_or(u64::MAX);
    let deadline = tokio::time::Instant::now() + SHARED_WAIT;
    loop {
        if let Some(token) = lock.try_lock(&format!("oauth-refresh:{name}"), lease).await {
            return Some(token);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ms_duration(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
