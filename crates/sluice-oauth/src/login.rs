//! The pure parts of signing an account in (research `oauth.md` §2.1, §3.1–3.3, §5.1, §5.3, §9.7):
//! PKCE, single-use `state`, the authorize URLs, reading what a user pastes back, the Codex
//! device-code polling state machine, the Code Assist set-up decision, and the token file a
//! grant becomes. The HTTP calls are in [`crate::flow`]; the CLI and the management API drive
//! them.

use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::file::TokenDoc;
use crate::provider::Kind;
use crate::refresh::Granted;

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(32) {
        let block: [u8; 32] = rand::random();
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    out
}

/// A PKCE pair (S256): the verifier stays here, the challenge goes into the authorize URL.
#[derive(Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pkce { .. }")
    }
}

impl Pkce {
    /// A fresh verifier: 64 random bytes, base64url without padding (86 characters, as codex-rs).
    pub fn new() -> Self {
        Self::from_verifier(b64url(&random_bytes::<64>()))
    }

    pub fn from_verifier(verifier: String) -> Self {
        let challenge = challenge_of(&verifier);
        Self {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Self::new()
    }
}

/// `b64url(SHA-256(verifier))`, the S256 challenge.
pub fn challenge_of(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

/// A single-use `state`: 32 random bytes, base64url.
pub fn new_state() -> String {
    b64url(&random_bytes::<32>())
}

/// Claude Code's scopes (Claude Code 2.1.88+).
pub const CLAUDE_SCOPE: &str =
    "user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload";
/// Codex CLI's scopes.
pub const CODEX_SCOPE: &str = "openid profile email offline_access";
/// Gemini CLI's scopes.
pub const GEMINI_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile";

/// Claude's authorize page.
pub const CLAUDE_AUTHORIZE_URL: &str = "https://claude.ai/oauth/authorize";
/// The page that shows Claude's `code#state` for pasting (headless sign-in).
pub const CLAUDE_MANUAL_REDIRECT: &str = "https://platform.claude.com/oauth/code/callback";
/// Claude Code's registered local callback.
pub const CLAUDE_LOCAL_REDIRECT: &str = "http://localhost:54545/callback";
/// OpenAI's authorize page.
pub const CODEX_AUTHORIZE_URL: &str = "https://auth.openai.com/oauth/authorize";
/// Codex CLI's registered local callback.
pub const CODEX_LOCAL_REDIRECT: &str = "http://localhost:1455/auth/callback";
/// Where Codex's device-code endpoints live (`/usercode`, `/token`).
pub const CODEX_DEVICE_URL: &str = "https://auth.openai.com/api/accounts/deviceauth";
/// The page where the user enters the device code.
pub const CODEX_VERIFICATION_URL: &str = "https://auth.openai.com/codex/device";
/// The redirect URI a device-flow authorization code is exchanged with (fixed by OpenAI).
pub const CODEX_DEVICE_REDIRECT: &str = "https://auth.openai.com/deviceauth/callback";
/// Google's authorize page.
pub const GOOGLE_AUTHORIZE_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// The page that shows Google's authorization code for pasting (Gemini CLI's `NO_BROWSER`).
pub const GEMINI_USER_CODE_REDIRECT: &str = "https://codeassist.google.com/authcode";
/// Gemini Code Assist's API root.
pub const CODE_ASSIST_URL: &str = "https://cloudcode-pa.googleapis.com/v1internal";

/// Everything an authorize URL needs.
#[derive(Debug, Clone)]
pub struct Authorize<'a> {
    pub authorize_url: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub challenge: &'a str,
    pub state: &'a str,
}

/// The authorize URL of `kind` with the provider's own parameters.
pub fn authorize_url(kind: Kind, a: &Authorize<'_>) -> Result<String, String> {
    let mut url = url::Url::parse(a.authorize_url)
        .map_err(|_| format!("`{}` is not a URL", a.authorize_url))?;
    {
        let mut q = url.query_pairs_mut();
        match kind {
            Kind::Claude => {
                q.append_pair("code", "true")
                    .append_pair("client_id", a.client_id)
                    .append_pair("response_type", "code")
                    .append_pair("redirect_uri", a.redirect_uri)
                    .append_pair("scope", CLAUDE_SCOPE);
            }
            Kind::Codex => {
                q.append_pair("response_type", "code")
                    .append_pair("client_id", a.client_id)
                    .append_pair("redirect_uri", a.redirect_uri)
                    .append_pair("scope", CODEX_SCOPE);
            }
            Kind::Gemini => {
                q.append_pair("response_type", "code")
                    .append_pair("client_id", a.client_id)
                    .append_pair("redirect_uri", a.redirect_uri)
                    .append_pair("access_type", "offline")
                    .append_pair("prompt", "consent")
                    .append_pair("scope", GEMINI_SCOPE);
            }
            Kind::Qwen => return Err("Qwen's OAuth sign-in was discontinued".into()),
        }
        q.append_pair("code_challenge", a.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", a.state);
        if kind == Kind::Codex {
            q.append_pair("id_token_add_organizations", "true")
                .append_pair("codex_cli_simplified_flow", "true")
                .append_pair("originator", "codex_cli_rs");
        }
    }
    Ok(url.into())
}

/// What the user pasted back: the authorization code and, when it came with one, the state.
#[derive(Clone, PartialEq, Eq)]
pub struct Pasted {
    pub code: String,
    pub state: Option<String>,
}

impl std::fmt::Debug for Pasted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pasted { .. }")
    }
}

/// Reads a pasted callback: a full redirect URL, `?code=…&state=…`, `code=…&state=…`, a
/// fragment, Claude's `code#state`, or a bare code. A callback carrying an OAuth `error` is
/// refused with the provider's description.
pub fn parse_pasted(input: &str) -> Result<Pasted, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("nothing was pasted".into());
    }
    let query = if let Ok(url) = url::Url::parse(input)
        && url.has_host()
    {
        let mut q = url.query().unwrap_or("").to_string();
        if let Some(fragment) = url.fragment()
            && fragment.contains('=')
        {
            q = format!("{q}&{fragment}");
        }
        Some(q)
    } else if input.contains('=') {
        Some(input.trim_start_matches(['?', '#']).replace('#', "&"))
    } else {
        None
    };
    let Some(query) = query else {
        // `code#state` (Claude's manual page) or a bare code.
        let (code, state) = match input.split_once('#') {
            Some((c, s)) => (c, Some(s)),
            None => (input, None),
        };
        let code = code.trim();
        if code.is_empty() || code.contains(char::is_whitespace) {
            return Err("that does not look like an authorization code".into());
        }
        return Ok(Pasted {
            code: code.to_string(),
            state: state
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        });
    };
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut description = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            "error_description" => description = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(error) = error {
        return Err(callback_error(&error, description.as_deref()));
    }
    let code = code
        .filter(|c| !c.trim().is_empty())
        .ok_or("the pasted callback has no `code`")?;
    // Claude's page may hand out `code#state` inside the URL's code parameter.
    let (code, state) = match (code.split_once('#'), state) {
        (Some((c, s)), None) => (c.to_string(), Some(s.to_string())),
        (_, state) => (code, state),
    };
    Ok(Pasted {
        code,
        state: state.filter(|s| !s.is_empty()),
    })
}

/// An OAuth callback error in words (the provider's words kept, secrets never echoed).
fn callback_error(error: &str, description: Option<&str>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect::<String>()
    };
    if description.is_some_and(|d| d.contains("missing_codex_entitlement")) {
        return "Codex is not enabled for your workspace (missing_codex_entitlement)".into();
    }
    match description {
        Some(d) => format!("the sign-in was refused: {} ({})", clean(d), clean(error)),
        None => format!("the sign-in was refused ({})", clean(error)),
    }
}

/// Checks the pasted state against the one this sign-in issued (constant time is not needed:
/// the state is single-use and compared once).
pub fn verify_state(expected: &str, pasted: &Pasted, required: bool) -> Result<(), String> {
    match pasted.state.as_deref() {
        Some(s) if s == expected => Ok(()),
        Some(_) => Err(
            "the state does not match this sign-in (a different or older sign-in's code?): start again"
                .into(),
        ),
        None if required => Err(
            "the pasted value has no state: paste the whole `code#state` or the full redirect URL"
                .into(),
        ),
        None => Ok(()),
    }
}

/// Codex's device code, as the server issued it.
#[derive(Clone, serde::Deserialize)]
pub struct DeviceCode {
    pub device_auth_id: String,
    #[serde(alias = "usercode")]
    pub user_code: String,
    /// Seconds between polls; a string in codex-rs's server, sometimes a number.
    #[serde(default, deserialize_with = "interval")]
    pub interval: Option<u64>,
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCode")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

fn interval<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

use serde::Deserialize;

/// What the device poll finally yields: an authorization code with the server's PKCE pair.
#[derive(Clone, serde::Deserialize)]
pub struct DeviceGrant {
    pub authorization_code: String,
    #[serde(default)]
    pub code_challenge: Option<String>,
    pub code_verifier: String,
}

impl std::fmt::Debug for DeviceGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceGrant { .. }")
    }
}

/// The device-code polling state machine (research §3.2, RFC 8628 §3.5 for `slow_down`).
#[derive(Debug, Clone)]
pub struct DevicePoll {
    interval: Duration,
    deadline: std::time::Instant,
}

/// What to do after one poll.
#[derive(Debug)]
pub enum PollStep {
    /// Not yet approved: poll again after this long.
    Wait(Duration),
    /// Approved.
    Done(DeviceGrant),
    /// Over: refused, expired or broken.
    Fail(String),
}

/// The longest poll interval honoured.
const MAX_INTERVAL: Duration = Duration::from_secs(60);

impl DevicePoll {
    /// Polls every `interval` (the server's, default 5 s) until `timeout` (15 min: the code's life).
    pub fn new(interval: Option<Duration>, timeout: Duration, now: std::time::Instant) -> Self {
        Self {
            interval: interval
                .unwrap_or(Duration::from_secs(5))
                .clamp(Duration::from_millis(100), MAX_INTERVAL),
            deadline: now + timeout,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Judges one poll answer. Codex answers 403 or 404 while the user has not approved;
    /// `authorization_pending` is the RFC's word for it; `slow_down` (or 429) adds 5 s to the
    /// interval; `access_denied` and `expired_token` end the sign-in.
    pub fn step(&mut self, status: u16, body: &[u8], now: std::time::Instant) -> PollStep {
        if (200..300).contains(&status) {
            return match serde_json::from_slice::<DeviceGrant>(body) {
                Ok(grant) if !grant.authorization_code.is_empty() => PollStep::Done(grant),
                _ => PollStep::Fail(
                    "the device endpoint answered without an authorization code".into(),
                ),
            };
        }
        let code = oauth_error_code(body);
        let wait = match (status, code.as_deref()) {
            (_, Some("access_denied" | "authorization_declined")) => {
                return PollStep::Fail("the sign-in was denied at the verification page".into());
            }
            (_, Some("expired_token" | "token_expired")) => {
                return PollStep::Fail(
                    "the device code expired before it was approved: run the command again".into(),
                );
            }
            (_, Some("slow_down")) | (429, _) => {
                self.interval = (self.interval + Duration::from_secs(5)).min(MAX_INTERVAL);
                true
            }
            (_, Some("authorization_pending")) | (403 | 404, _) => true,
            _ => false,
        };
        if !wait {
            return PollStep::Fail(format!(
                "the device endpoint failed (HTTP {status}{})",
                code.map(|c| format!(", {c}")).unwrap_or_default()
            ));
        }
        if now + self.interval > self.deadline {
            return PollStep::Fail(
                "the device code was not approved in time: run the command again".into(),
            );
        }
        PollStep::Wait(self.interval)
    }
}

/// An OAuth error code from `error` (string or `{code}`), plain words only.
pub fn oauth_error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let code = match value.get("error") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Object(o)) => o.get("code").and_then(Value::as_str),
        _ => None,
    }
    .or_else(|| value.get("code").and_then(Value::as_str))?;
    (code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)))
    .then(|| code.to_string())
}

/// What Code Assist's `loadCodeAssist` says about an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    /// Already set up: use this project.
    Ready(String),
    /// Not yet: onboard to this tier (with the user's project unless it is the free tier).
    Onboard { tier: String },
    /// Refused, in Google's own words.
    Ineligible(String),
    /// A tier that needs the user's own Google Cloud project, and none was given.
    ProjectRequired,
}

/// Decides the Code Assist set-up from a `loadCodeAssist` answer (GCLI `setup.ts`).
pub fn code_assist_setup(load: &Value, requested_project: Option<&str>) -> Setup {
    let project = load
        .get("cloudaicompanionProject")
        .and_then(|p| p.as_str().or_else(|| p.get("id").and_then(Value::as_str)))
        .filter(|p| !p.is_empty())
        .map(String::from)
        .or_else(|| requested_project.map(String::from));
    if load.get("currentTier").is_some_and(Value::is_object) {
        return match project {
            Some(p) => Setup::Ready(p),
            None => Setup::ProjectRequired,
        };
    }
    let default_tier = load
        .get("allowedTiers")
        .and_then(Value::as_array)
        .and_then(|tiers| {
            tiers
                .iter()
                .find(|t| t.get("isDefault").and_then(Value::as_bool) == Some(true))
        })
        .and_then(|t| t.get("id").and_then(Value::as_str))
        .map(String::from);
    match default_tier {
        Some(tier) => Setup::Onboard { tier },
        None => match ineligible_words(load) {
            Some(words) => Setup::Ineligible(words),
            None => Setup::Onboard {
                tier: "legacy-tier".into(),
            },
        },
    }
}

/// `ineligibleTiers[].reasonMessage` verbatim (with the reason code and any validation link).
pub fn ineligible_words(load: &Value) -> Option<String> {
    let tiers = load.get("ineligibleTiers")?.as_array()?;
    let words: Vec<String> = tiers
        .iter()
        .filter_map(|t| {
            let message = t.get("reasonMessage").and_then(Value::as_str)?;
            let mut line = message.to_string();
            if let Some(code) = t.get("reasonCode").and_then(Value::as_str) {
                line.push_str(&format!(" ({code}"));
                if let Some(tier) = t.get("tierId").and_then(Value::as_str) {
                    line.push_str(&format!(", tier {tier}"));
                }
                line.push(')');
            }
            if let Some(link) = t.get("validationUrl").and_then(Value::as_str) {
                line.push_str(&format!(" — {link}"));
            }
            Some(line)
        })
        .collect();
    (!words.is_empty()).then(|| words.join("; "))
}

/// The `onboardUser` body for `tier` (the free tier takes no project).
pub fn onboard_body(tier: &str, project: Option<&str>) -> Value {
    let mut body = json!({"tierId": tier, "metadata": code_assist_metadata(project)});
    if tier != "free-tier"
        && let Some(p) = project
    {
        body["cloudaicompanionProject"] = json!(p);
    }
    body
}

/// The `loadCodeAssist` body.
pub fn load_body(project: Option<&str>) -> Value {
    let mut body = json!({"metadata": code_assist_metadata(project)});
    if let Some(p) = project {
        body["cloudaicompanionProject"] = json!(p);
    }
    body
}

fn code_assist_metadata(project: Option<&str>) -> Value {
    let mut m = json!({"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"});
    if let Some(p) = project {
        m["duetProject"] = json!(p);
    }
    m
}

/// The project of a finished `onboardUser` operation.
pub fn onboarded_project(operation: &Value) -> Option<String> {
    let p = operation.get("response")?.get("cloudaicompanionProject")?;
    p.get("id")
        .and_then(Value::as_str)
        .or_else(|| p.as_str())
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// A fresh token file of `kind` from a code exchange's grant (and, for Gemini, the project).
pub fn token_file(
    kind: Kind,
    granted: &Granted,
    project: Option<&str>,
    now: DateTime<Utc>,
) -> TokenDoc {
    let mut map = Map::new();
    map.insert("type".into(), json!(kind.as_str()));
    if kind == Kind::Gemini {
        map.insert(
            "token".into(),
            json!({
                "token_type": "Bearer",
                "token_uri": crate::provider::GOOGLE_TOKEN_URL,
                "scopes": GEMINI_SCOPE.split(' ').collect::<Vec<_>>(),
            }),
        );
        if let Some(p) = project {
            map.insert("project_id".into(), json!(p));
        }
        if let Some(email) = granted
            .id_token
            .as_deref()
            .and_then(crate::jwt::claims)
            .and_then(|c| c.get("email").and_then(Value::as_str).map(String::from))
        {
            map.insert("email".into(), json!(email));
        }
    }
    let mut doc = TokenDoc::from_map(kind, map);
    doc.apply(granted, now);
    doc
}

/// A file name for a new account: `<kind>-<email>.json` (characters outside the allowed set
/// replaced), or `<kind>-<random>.json` without an email.
pub fn file_name(kind: Kind, email: Option<&str>) -> String {
    let stem: String = email
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-@+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let stem = stem.trim_matches('.').to_string();
    if stem.is_empty() {
        let tag: u32 = rand::random();
        format!("{kind}-{tag:08x}.json")
    } else {
        format!("{kind}-{stem}.json")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::time::Instant;

    #[test]
    fn pkce_and_state() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let p = Pkce::new();
        assert_eq!(p.verifier.len(), 86);
        assert_eq!(p.challenge, challenge_of(&p.verifier));
        assert_ne!(new_state(), new_state());
        assert_eq!(new_state().len(), 43);
        assert!(!format!("{p:?}").contains(&p.verifier));
    }

    #[test]
    fn authorize_urls() {
        let a = Authorize {
            authorize_url: CLAUDE_AUTHORIZE_URL,
            client_id: "cid",
            redirect_uri: CLAUDE_MANUAL_REDIRECT,
            challenge: "ch",
            state: "st",
        };
        let url = url::Url::parse(&authorize_url(Kind::Claude, &a).unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["code"], "true");
        assert_eq!(q["redirect_uri"], CLAUDE_MANUAL_REDIRECT);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], CLAUDE_SCOPE);
        assert_eq!(q["state"], "st");
        let codex = authorize_url(Kind::Codex, &a).unwrap();
        assert!(codex.contains("codex_cli_simplified_flow=true"));
        let gemini = authorize_url(Kind::Gemini, &a).unwrap();
        assert!(gemini.contains("access_type=offline"));
        assert!(authorize_url(Kind::Qwen, &a).is_err());
    }

    #[test]
    fn pasted_forms() {
        let p = |s: &str| parse_pasted(s).unwrap();
        assert_eq!(
            p("abc123#st789"),
            Pasted {
                code: "abc123".into(),
                state: Some("st789".into())
            }
        );
        assert_eq!(
            p("  http://localhost:1455/auth/callback?code=c1&state=s1 \n"),
            Pasted {
                code: "c1".into(),
                state: Some("s1".into())
            }
        );
        assert_eq!(p("?code=c2&state=s2").state.as_deref(), Some("s2"));
        assert_eq!(p("code=c3").code, "c3");
        assert_eq!(p("https://x.test/cb#code=c4&state=s4").code, "c4");
        assert_eq!(
            p("https://platform.claude.com/oauth/code/callback?code=c5%23s5").state,
            Some("s5".into())
        );
        assert_eq!(p("4/0Abc-def").state, None);
        let e = parse_pasted(
            "http://localhost/cb?error=access_denied&error_description=missing_codex_entitlement",
        )
        .unwrap_err();
        assert!(e.contains("not enabled"), "{e}");
        assert!(parse_pasted("").is_err());
        assert!(parse_pasted("two words").is_err());
        assert!(parse_pasted("https://x.test/cb?state=s").is_err());

        let ok = p("c#right");
        verify_state("right", &ok, true).unwrap();
        assert!(verify_state("other", &ok, true).is_err());
        assert!(verify_state("s", &p("bare"), true).is_err());
        verify_state("s", &p("bare"), false).unwrap();
    }

    #[test]
    fn device_polling() {
        let t0 = Instant::now();
        let mut poll = DevicePoll::new(Some(Duration::from_secs(5)), Duration::from_secs(900), t0);
        assert!(
            matches!(poll.step(403, b"", t0), PollStep::Wait(d) if d == Duration::from_secs(5))
        );
        assert!(matches!(poll.step(404, b"{}", t0), PollStep::Wait(_)));
        assert!(
            matches!(poll.step(400, br#"{"error":"slow_down"}"#, t0), PollStep::Wait(d) if d == Duration::from_secs(10))
        );
        assert!(matches!(
            poll.step(400, br#"{"error":"authorization_pending"}"#, t0),
            PollStep::Wait(_)
        ));
        assert!(matches!(
            poll.step(400, br#"{"error":"access_denied"}"#, t0),
            PollStep::Fail(_)
        ));
        assert!(matches!(
            poll.step(400, br#"{"error":"expired_token"}"#, t0),
            PollStep::Fail(e) if e.contains("expired")
        ));
        assert!(matches!(poll.step(500, b"", t0), PollStep::Fail(_)));
        assert!(matches!(
            poll.step(403, b"", t0 + Duration::from_secs(899)),
            PollStep::Fail(e) if e.contains("in time")
        ));
        match poll.step(
            200,
            br#"{"authorization_code":"ac","code_challenge":"c","code_verifier":"v"}"#,
            t0,
        ) {
            PollStep::Done(g) => assert_eq!(g.code_verifier, "v"),
            other => panic!("{other:?}"),
        }
        let code: DeviceCode =
            serde_json::from_str(r#"{"device_auth_id":"d","usercode":"ABCD-1234","interval":"3"}"#)
                .unwrap();
        assert_eq!(
            (code.user_code.as_str(), code.interval),
            ("ABCD-1234", Some(3))
        );
    }

    #[test]
    fn code_assist_decisions() {
        let ready =
            json!({"currentTier": {"id": "standard-tier"}, "cloudaicompanionProject": "proj-1"});
        assert_eq!(
            code_assist_setup(&ready, None),
            Setup::Ready("proj-1".into())
        );
        let onboard = json!({"allowedTiers": [{"id": "legacy-tier"}, {"id": "standard-tier", "isDefault": true}]});
        assert_eq!(
            code_assist_setup(&onboard, Some("p")),
            Setup::Onboard {
                tier: "standard-tier".into()
            }
        );
        let refused = json!({"ineligibleTiers": [{"reasonCode": "UNSUPPORTED_CLIENT", "reasonMessage": "Please migrate to the Antigravity suite.", "tierId": "free-tier"}]});
        match code_assist_setup(&refused, None) {
            Setup::Ineligible(words) => {
                assert!(words.starts_with("Please migrate to the Antigravity suite."));
                assert!(words.contains("UNSUPPORTED_CLIENT"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            code_assist_setup(&json!({"currentTier": {"id": "standard-tier"}}), None),
            Setup::ProjectRequired
        );
        assert!(
            onboard_body("free-tier", Some("p"))
                .get("cloudaicompanionProject")
                .is_none()
        );
        assert_eq!(
            onboard_body("standard-tier", Some("p"))["cloudaicompanionProject"],
            "p"
        );
        assert_eq!(
            onboarded_project(
                &json!({"done": true, "response": {"cloudaicompanionProject": {"id": "x"}}})
            ),
            Some("x".into())
        );
    }

    #[test]
    fn token_files_and_names() {
        let granted: Granted = serde_json::from_value(json!({
            "access_token": "a", "refresh_token": "r", "expires_in": 3600,
            "id_token": crate::jwt::unsigned(&json!({"email": "g@x.test"})),
        }))
        .unwrap();
        let now = Utc::now();
        let doc = token_file(Kind::Gemini, &granted, Some("proj"), now);
        let v: Value = serde_json::from_slice(&doc.to_bytes()).unwrap();
        assert_eq!(v["token"]["access_token"], "a");
        assert_eq!(v["token"]["refresh_token"], "r");
        assert_eq!(v["project_id"], "proj");
        assert_eq!(v["email"], "g@x.test");
        assert!(v["token"]["expiry"].is_string());
        let claude = token_file(Kind::Claude, &granted, None, now);
        assert_eq!(claude.access_token(), Some("a"));
        assert!(claude.expires_at_ms().is_some());
        assert_eq!(
            file_name(Kind::Codex, Some("me@x.test")),
            "codex-me@x.test.json"
        );
        assert_eq!(file_name(Kind::Claude, Some("a b/c")), "claude-a_b_c.json");
        assert!(file_name(Kind::Gemini, None).starts_with("gemini-"));
    }
}
