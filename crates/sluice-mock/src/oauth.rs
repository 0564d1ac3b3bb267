//! Fake OAuth token endpoints of the subscription providers, strict about what the real ones
//! demand (research `oauth.md` §2.6, §3.6, §5.1) and **rotating**: a refresh token is single-use
//! (Claude, Codex), so a second use is refused the way each provider refuses it.
//!
//! | provider | endpoint | body | refusal of a used / revoked refresh token |
//! |---|---|---|---|
//! | Claude | `POST /v1/oauth/token` | JSON only (`415` otherwise); Claude Code's `client_id` | `400 {"error":"invalid_grant"}` (or `404`, a switch) |
//! | Codex | `POST /oauth/token` | JSON or form; Codex CLI's `client_id` | `401 {"error":{"code":"refresh_token_reused"}}` |
//! | Google (Gemini) | `POST /token` | form; Gemini CLI's `client_id` + `client_secret` | `400 {"error":"invalid_grant"}`; never rotates, never returns a refresh token |
//!
//! Any refresh token the fake has not seen is accepted once (tests seed accounts by writing token
//! files). Scripted faults ([`OAuthFake::push_fault`]) answer the next calls: 429 with
//! `Retry-After`, 500, an HTML 403 (Cloudflare), or a permanent refusal. [`OAuthFake::delay`]
//! holds the answer after the rotation happened (a client that gives up loses the new pair).
//!
//! Upstreams: a Bearer token the fake superseded by a refresh, one it revoked, one whose expiry
//! has passed on the fake's clock ([`OAuthFake::advance_clock`]), or one starting with
//! `expired-`, is refused with 401 by every dialect ([`OAuthFake::refuses`]); `reject_access`
//! refuses all.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::AppState;

pub const CLAUDE_CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";
pub const CODEX_CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// The ChatGPT account every Codex sign-in at this fake belongs to (its id_token's claim).
pub const CODEX_ACCOUNT_ID: &str = "chatgpt-acct-fake";
pub const GEMINI_CLIENT_ID: &str =
    "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com";
pub const GEMINI_CLIENT_SECRET: &str = "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";

/// A scripted answer for the next token call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFault {
    /// 429 with `Retry-After: secs`.
    RateLimited { retry_after: u64 },
    /// 500.
    ServerError,
    /// 403 with an HTML page, as Cloudflare's challenge.
    HtmlChallenge,
    /// The provider's permanent refusal with this OAuth error code (`invalid_grant`,
    /// `refresh_token_reused`, `refresh_token_expired`, `refresh_token_invalidated`).
    Refuse(String),
    /// 404, what Claude answered for a consumed refresh token.
    NotFound,
}

/// Which provider's endpoint answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Claude,
    Codex,
    Google,
}

/// A token pair the fake issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub provider: Provider,
    pub access_token: String,
    pub refresh_token: Option<String>,
}

/// The fakes' shared state.
#[derive(Debug, Default)]
pub struct OAuthFake {
    inner: Mutex<Inner>,
    calls: AtomicU64,
    reject_access: AtomicBool,
    pub(crate) login: Mutex<crate::oauth_login::LoginState>,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    faults: VecDeque<TokenFault>,
    consumed: HashSet<String>,
    revoked_access: HashSet<String>,
    /// The last access token issued for a refresh-token chain (keyed by the refresh token that
    /// will be presented next).
    chain_access: HashMap<String, String>,
    issued: Vec<Issued>,
    /// When each issued access token expires (unix seconds on the fake's clock).
    expiry: HashMap<String, i64>,
    /// Seconds the fake's clock runs ahead of the machine's.
    clock_offset: i64,
    expires_in: Option<i64>,
    omit_refresh_token: bool,
    delay: Option<Duration>,
    seq: u64,
}

impl OAuthFake {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers the next token call with `fault` (faults queue up).
    pub fn push_fault(&self, fault: TokenFault) {
        self.lock().faults.push_back(fault);
    }

    /// `expires_in` of issued tokens (default 8 h for Claude, 10 days Codex, 1 h Google).
    pub fn set_expires_in(&self, secs: i64) {
        self.lock().expires_in = Some(secs);
    }

    /// Answer refreshes without a `refresh_token` (the old one stays valid).
    pub fn omit_refresh_token(&self, omit: bool) {
        self.lock().omit_refresh_token = omit;
    }

    /// Hold each token answer this long after rotating.
    pub fn delay(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    /// Make the upstreams refuse every OAuth Bearer token.
    pub fn reject_access(&self, reject: bool) {
        self.reject_access.store(reject, Ordering::Relaxed);
    }

    /// Revoke a refresh token and the access token issued with it (as a provider does when a
    /// user signs out or changes the password).
    pub fn revoke(&self, refresh_token: &str) {
        let mut inner = self.lock();
        inner.consumed.insert(refresh_token.to_string());
        if let Some(access) = inner.chain_access.remove(refresh_token) {
            inner.revoked_access.insert(access);
        }
    }

    /// Moves the fake's clock forward: access tokens it issued that expire within `secs` are
    /// refused from now on, and new ones expire `expires_in` after the moved clock.
    pub fn advance_clock(&self, secs: i64) {
        self.lock().clock_offset += secs;
    }

    /// The ChatGPT account a Codex access token this fake issued belongs to.
    pub fn codex_account_of(&self, access_token: &str) -> Option<&'static str> {
        self.lock()
            .issued
            .iter()
            .any(|i| i.provider == Provider::Codex && i.access_token == access_token)
            .then_some(CODEX_ACCOUNT_ID)
    }

    /// Refresh-grant calls answered so far (faults and refusals included).
    pub fn token_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Every pair issued, oldest first.
    pub fn issued(&self) -> Vec<Issued> {
        self.lock().issued.clone()
    }

    /// Whether an upstream must refuse this Bearer token.
    pub fn refuses(&self, headers: &HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let inner = self.lock();
        let issued = inner.issued.iter().any(|i| i.access_token == token);
        let expired = inner
            .expiry
            .get(token)
            .is_some_and(|&exp| exp <= inner.now());
        (self.reject_access.load(Ordering::Relaxed) && (issued || token.starts_with("oauth-")))
            || token.starts_with("expired-")
            || expired
            || inner.revoked_access.contains(token)
    }
}

impl Inner {
    /// Unix seconds on the fake's clock.
    fn now(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        real + self.clock_offset
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/oauth/token", post(claude))
        .route("/oauth/token", post(codex))
        .route("/token", post(google))
        .merge(crate::oauth_login::routes())
}

/// A request body as fields: JSON object or form.
pub(crate) fn fields(headers: &HeaderMap, body: &Bytes) -> Option<(bool, Map<String, Value>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        let Value::Object(map) = serde_json::from_slice(body).ok()? else {
            return None;
        };
        return Some((true, map));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let map = url_form(body)?;
        return Some((false, map));
    }
    None
}

fn url_form(body: &[u8]) -> Option<Map<String, Value>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut map = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(decode(k)?, Value::String(decode(v)?));
    }
    Some(map)
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

pub(crate) fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn claude(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((true, map)) = fields(&headers, &body) else {
        return oauth_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "Content-Type must be application/json",
        );
    };
    if text(&map, "client_id") != Some(CLAUDE_CLIENT_ID) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client_id",
        );
    }
    token_grant(&state.oauth, Provider::Claude, &map).await
}

async fn codex(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((_, map)) = fields(&headers, &body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unreadable body",
        );
    };
    if text(&map, "client_id") != Some(CODEX_CLIENT_ID) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "unknown client_id",
        );
    }
    token_grant(&state.oauth, Provider::Codex, &map).await
}

async fn google(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((false, map)) = fields(&headers, &body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "form body expected",
        );
    };
    if text(&map, "client_id") != Some(GEMINI_CLIENT_ID)
        || text(&map, "client_secret") != Some(GEMINI_CLIENT_SECRET)
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    token_grant(&state.oauth, Provider::Google, &map).await
}

/// The provider's refusal of a refresh token.
fn refusal(provider: Provider, code: &str) -> Response {
    match provider {
        Provider::Codex => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": code, "message": "Your refresh token has already been used to generate a new access token. Please try signing in again.", "type": "invalid_request_error"}})),
        )
            .into_response(),
        Provider::Claude | Provider::Google => {
            oauth_error(StatusCode::BAD_REQUEST, code, "Refresh token not found or invalid")
        }
    }
}

async fn token_grant(fake: &OAuthFake, provider: Provider, map: &Map<String, Value>) -> Response {
    if text(map, "grant_type") == Some("authorization_code") {
        return crate::oauth_login::exchange(fake, provider, map);
    }
    refresh_grant(fake, provider, map).await
}

async fn refresh_grant(fake: &OAuthFake, provider: Provider, map: &Map<String, Value>) -> Response {
    if text(map, "grant_type") != Some("refresh_token") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only refresh_token is served here",
        );
    }
    let Some(presented) = text(map, "refresh_token").map(String::from) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token is required",
        );
    };
    fake.calls.fetch_add(1, Ordering::Relaxed);
    let (body, delay) = {
        let mut inner = fake.lock();
        if let Some(fault) = inner.faults.pop_front() {
            return match fault {
                TokenFault::RateLimited { retry_after } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, retry_after.to_string())],
                    Json(json!({"error": "rate_limit_exceeded"})),
                )
                    .into_response(),
                TokenFault::ServerError => {
                    oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "try again")
                }
                TokenFault::HtmlChallenge => (
                    StatusCode::FORBIDDEN,
                    [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>",
                )
                    .into_response(),
                TokenFault::Refuse(code) => refusal(provider, &code),
                TokenFault::NotFound => (
                    StatusCode::NOT_FOUND,
                    Json(json!({"type": "error", "error": {"type": "not_found_error", "message": "Not found"}})),
                )
                    .into_response(),
            };
        }
        if presented.starts_with("revoked") || inner.consumed.contains(&presented) {
            let code = match provider {
                Provider::Codex => "refresh_token_reused",
                _ => "invalid_grant",
            };
            return refusal(provider, code);
        }
        let body = mint(&mut inner, provider, Some(presented));
        (body, inner.delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    Json(body).into_response()
}

/// Issues a token pair for `provider`: after a refresh (`presented`: the refresh token used,
/// which a rotating provider consumes) or a code exchange (`None`: every provider issues a
/// refresh token then, Google included).
pub(crate) fn mint(inner: &mut Inner, provider: Provider, presented: Option<String>) -> Value {
    inner.seq += 1;
    let n = inner.seq;
    let prefix = match provider {
        Provider::Claude => "oauth-claude",
        Provider::Codex => "oauth-codex",
        Provider::Google => "oauth-google",
    };
    let expires_in = inner.expires_in.unwrap_or(match provider {
        Provider::Claude => 28_800,
        Provider::Codex => 864_000,
        Provider::Google => 3_599,
    });
    let now = inner.now();
    let access = match provider {
        Provider::Codex => jwt(&json!({"exp": now + expires_in, "n": n,
            "https://api.openai.com/auth": {"chatgpt_account_id": CODEX_ACCOUNT_ID}})),
        _ => format!("{prefix}-at-{n}"),
    };
    inner.expiry.insert(access.clone(), now + expires_in);
    let exchange = presented.is_none();
    let rotates = provider != Provider::Google;
    let new_refresh =
        (exchange || (rotates && !inner.omit_refresh_token)).then(|| format!("{prefix}-rt-{n}"));
    if let Some(presented) = &presented {
        if let Some(old_access) = inner.chain_access.remove(presented) {
            inner.revoked_access.insert(old_access);
        }
        if new_refresh.is_some() {
            inner.consumed.insert(presented.clone());
        }
    }
    if let Some(next) = new_refresh.clone().or(presented) {
        inner.chain_access.insert(next, access.clone());
    }
    inner.issued.push(Issued {
        provider,
        access_token: access.clone(),
        refresh_token: new_refresh.clone(),
    });
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
    });
    if let Some(r) = new_refresh {
        body["refresh_token"] = json!(r);
    }
    match provider {
        Provider::Claude => {
            body["scope"] = json!("user:profile user:inference");
            body["organization"] = json!({"uuid": "org-fake", "name": "Fake Org"});
            body["account"] =
                json!({"uuid": "acct-fake", "email_address": "claude-user@example.com"});
        }
        Provider::Codex => {
            body["id_token"] = json!(jwt(&json!({
                "email": "codex-user@example.com",
                "exp": now + expires_in,
                "https://api.openai.com/auth": {"chatgpt_account_id": CODEX_ACCOUNT_ID, "chatgpt_plan_type": "pro"}
            })));
        }
        Provider::Google => {
            body["scope"] = json!("https://www.googleapis.com/auth/cloud-platform");
            if exchange {
                body["id_token"] = json!(jwt(
                    &json!({"email": "gemini-user@example.com", "exp": now + expires_in})
                ));
            }
        }
    }
    body
}

/// An unsigned JWT, as the fake mints them.
pub fn jwt(claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}
