//! Signing an account in, shared by `sluice login` and the management API's auth URLs: a
//! pending sign-in (single-use state, PKCE verifier, redirect URI, deadline), finishing it from
//! a pasted callback or a device grant (exchange, Code Assist project discovery for Gemini),
//! and writing the token file atomically (0600) into `auth-dir`, where the running gateway's
//! watcher picks it up. Nothing here prints or logs a token, code or state.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice_oauth::flow::{self, LoginUrls};
use sluice_oauth::login::{self, Authorize, Pasted, Pkce};
use sluice_oauth::{Endpoints, Granted, Kind};

use crate::config::Config;

/// How long a sign-in may stay open by default (the research's 5–15 min).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// What a sign-in of one provider talks to, from the config.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub kind: Kind,
    pub http: reqwest::Client,
    pub endpoints: Endpoints,
    pub urls: LoginUrls,
    pub dir: PathBuf,
}

impl Ctx {
    /// The endpoints, client (through the provider's proxy) and `auth-dir` of `kind`.
    pub fn new(config: &Config, kind: Kind) -> Result<Ctx, String> {
        let proxy = crate::transport::ProxySetting::resolve(
            None,
            config.oauth.provider(kind).proxy_url.as_deref(),
            &config.proxy_url,
        );
        let http = crate::transport::Clients::default().get(&proxy, config.timeouts.connect)?;
        Ok(Self::with_client(config, kind, http))
    }

    pub fn with_client(config: &Config, kind: Kind, http: reqwest::Client) -> Ctx {
        Ctx {
            kind,
            http,
            endpoints: config.oauth.endpoints(kind),
            urls: config.oauth.login_urls(kind),
            dir: crate::settings::auth_dir(config),
        }
    }
}

/// A sign-in waiting for its callback.
pub struct Pending {
    pub kind: Kind,
    pub state: String,
    pkce: Pkce,
    pub redirect_uri: String,
    pub url: String,
    pub deadline: Instant,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Starts a PKCE sign-in: a fresh state and verifier, and the authorize URL to open.
/// `redirect_uri` overrides the configured one (a local callback listener).
pub fn begin(ctx: &Ctx, redirect_uri: Option<&str>, timeout: Duration) -> Result<Pending, String> {
    let pkce = Pkce::new();
    let state = login::new_state();
    let redirect_uri = redirect_uri.unwrap_or(&ctx.urls.redirect_uri).to_string();
    let url = login::authorize_url(
        ctx.kind,
        &Authorize {
            authorize_url: &ctx.urls.authorize_url,
            client_id: &ctx.endpoints.client_id,
            redirect_uri: &redirect_uri,
            challenge: &pkce.challenge,
            state: &state,
        },
    )?;
    Ok(Pending {
        kind: ctx.kind,
        state,
        pkce,
        redirect_uri,
        url,
        deadline: Instant::now() + timeout,
    })
}

/// Where a sign-in's account was written.
#[derive(Debug, Clone)]
pub struct Saved {
    pub file: String,
    pub email: Option<String>,
    pub project: Option<String>,
}

/// Options of finishing a sign-in.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    /// Gemini: the Google Cloud project to use (else discovered).
    pub project: Option<String>,
    /// The token file's name (else `<provider>-<email>.json`).
    pub name: Option<String>,
    /// Gemini: pause between polls of the onboarding operation (default 5 s).
    pub poll: Option<Duration>,
}

/// Finishes a PKCE sign-in from what the user pasted: checks the state (Claude's and Codex's
/// callbacks carry it and must match; Google's code page shows only the code), exchanges the
/// code, and saves the account. The pending sign-in is consumed either way.
pub async fn finish_pasted(
    ctx: &Ctx,
    pending: Pending,
    pasted: &Pasted,
    opts: &Finish,
) -> Result<Saved, String> {
    if Instant::now() > pending.deadline {
        return Err("this sign-in timed out: start again".into());
    }
    let required = ctx.kind != Kind::Gemini;
    login::verify_state(&pending.state, pasted, required)?;
    let granted = flow::exchange_code(
        &ctx.http,
        ctx.kind,
        &ctx.endpoints,
        &pasted.code,
        &pending.redirect_uri,
        &pending.pkce.verifier,
        Some(&pending.state),
    )
    .await?;
    save(ctx, &granted, opts).await
}

/// Finishes a Codex device sign-in: exchanges the approved code with the server's verifier.
pub async fn finish_device(
    ctx: &Ctx,
    grant: &login::DeviceGrant,
    opts: &Finish,
) -> Result<Saved, String> {
    let granted = flow::exchange_code(
        &ctx.http,
        ctx.kind,
        &ctx.endpoints,
        &grant.authorization_code,
        login::CODEX_DEVICE_REDIRECT,
        &grant.code_verifier,
        None,
    )
    .await?;
    save(ctx, &granted, opts).await
}

/// Writes the account's token file (Gemini: after finding its Code Assist project).
pub async fn save(ctx: &Ctx, granted: &Granted, opts: &Finish) -> Result<Saved, String> {
    let project = if ctx.kind == Kind::Gemini {
        Some(
            flow::code_assist_project(
                &ctx.http,
                &ctx.urls,
                &granted.access_token,
                opts.project.as_deref(),
                opts.poll.unwrap_or(Duration::from_secs(5)),
                Duration::from_secs(120),
            )
            .await?,
        )
    } else {
        None
    };
    let doc = login::token_file(ctx.kind, granted, project.as_deref(), chrono::Utc::now());
    let email = doc.email().map(String::from);
    if ctx.kind == Kind::Codex && doc.account_id().is_none() {
        return Err(
            "the id_token names no ChatGPT account (`chatgpt_account_id`): this account cannot use the Codex backend"
                .into(),
        );
    }
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => login::file_name(ctx.kind, email.as_deref()),
    };
    crate::auth_files::check_name(&name).map_err(|e| format!("file name `{name}`: {e}"))?;
    let bytes = doc.to_bytes();
    crate::auth_files::parse(&bytes).map_err(|e| format!("the new token file is unusable: {e}"))?;
    let path = crate::auth_files::path_of(&ctx.dir, &name);
    let write_path = path.clone();
    tokio::task::spawn_blocking(move || sluice_oauth::store::write_private(&write_path, &bytes))
        .await
        .map_err(|_| "writing the token file was interrupted".to_string())?
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Saved {
        file: name,
        email,
        project,
    })
}

/// Sign-ins started through the management API, by state: waiting for their callback, being
/// finished, or finished (kept a while for `get-auth-status`). A state is used once.
#[derive(Debug, Default)]
pub struct Logins {
    inner: std::sync::Mutex<std::collections::HashMap<String, Entry>>,
}

/// At most this many sign-ins are remembered (the oldest are forgotten first).
const MAX_LOGINS: usize = 256;
/// How long a finished sign-in's outcome stays readable.
const KEEP_OUTCOME: Duration = Duration::from_secs(10 * 60);

#[derive(Debug)]
struct Entry {
    kind: Kind,
    started: Instant,
    expires: Instant,
    phase: Phase,
}

#[derive(Debug)]
enum Phase {
    Waiting(Box<(Ctx, Pending)>),
    Working,
    Done(String),
    Failed(String),
}

/// Where a management-API sign-in stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStatus {
    Wait,
    Ok { file: String },
    Error(String),
}

impl Logins {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Entry>> {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        map.retain(|_, e| e.expires > now);
        map
    }

    /// Starts a PKCE sign-in; returns the authorize URL and its state.
    pub fn start(&self, ctx: Ctx, timeout: Duration) -> Result<(String, String), String> {
        let pending = begin(&ctx, None, timeout)?;
        let (url, state) = (pending.url.clone(), pending.state.clone());
        let mut map = self.map();
        while map.len() >= MAX_LOGINS {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.started)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        let now = Instant::now();
        map.insert(
            state.clone(),
            Entry {
                kind: ctx.kind,
                started: now,
                expires: pending.deadline,
                phase: Phase::Waiting(Box::new((ctx, pending))),
            },
        );
        Ok((url, state))
    }

    /// Takes the waiting sign-in of `state` (once) to finish it.
    pub fn take(&self, state: &str, kind: Kind) -> Result<(Ctx, Pending), String> {
        let mut map = self.map();
        let Some(entry) = map.get_mut(state) else {
            return Err("no sign-in is waiting with this state (unknown, expired or from another gateway): start again".into());
        };
        if entry.kind != kind {
            return Err(format!(
                "this state belongs to a {} sign-in, not {kind}",
                entry.kind
            ));
        }
        match std::mem::replace(&mut entry.phase, Phase::Working) {
            Phase::Waiting(boxed) => Ok(*boxed),
            other => {
                entry.phase = other;
                Err("this sign-in's callback was already received (a state is used once)".into())
            }
        }
    }

    /// Records the outcome of the sign-in of `state`.
    pub fn finish(&self, state: &str, outcome: Result<String, String>) {
        let mut map = self.map();
        if let Some(entry) = map.get_mut(state) {
            entry.expires = Instant::now() + KEEP_OUTCOME;
            entry.phase = match outcome {
                Ok(file) => Phase::Done(file),
                Err(e) => Phase::Failed(e),
            };
        }
    }

    /// Where the sign-in of `state` stands (`None`: unknown or forgotten).
    pub fn status(&self, state: &str) -> Option<LoginStatus> {
        let map = self.map();
        Some(match &map.get(state)?.phase {
            Phase::Waiting(_) | Phase::Working => LoginStatus::Wait,
            Phase::Done(file) => LoginStatus::Ok { file: file.clone() },
            Phase::Failed(e) => LoginStatus::Error(e.clone()),
        })
    }
}
