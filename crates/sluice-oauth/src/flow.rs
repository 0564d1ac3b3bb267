//! The HTTP calls of a sign-in: exchanging an authorization code, Codex's device-code
//! endpoints, and Code Assist's project discovery (`loadCodeAssist`, `onboardUser` and its
//! long-running operation). Errors are words without tokens, codes or states.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::login::{self, DeviceCode, DeviceGrant, DevicePoll, PollStep, Setup};
use crate::provider::{Endpoints, Kind};
use crate::refresh::Granted;

/// How long one sign-in call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The sign-in endpoints of a provider (the token endpoint is in [`Endpoints`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUrls {
    pub authorize_url: String,
    /// The redirect URI registered for the client (Claude: the page showing `code#state`;
    /// Codex: the local callback; Gemini: the page showing the code).
    pub redirect_uri: String,
    /// Codex: where `/usercode` and `/token` of the device flow live.
    pub device_url: String,
    /// Codex: the page where the user enters the device code.
    pub verification_url: String,
    /// Gemini: Code Assist's API root (`…/v1internal`).
    pub code_assist_url: String,
}

impl LoginUrls {
    /// The provider's real endpoints.
    pub fn defaults(kind: Kind) -> Self {
        let (authorize, redirect) = match kind {
            Kind::Claude => (login::CLAUDE_AUTHORIZE_URL, login::CLAUDE_MANUAL_REDIRECT),
            Kind::Codex => (login::CODEX_AUTHORIZE_URL, login::CODEX_LOCAL_REDIRECT),
            Kind::Gemini | Kind::Qwen => (
                login::GOOGLE_AUTHORIZE_URL,
                login::GEMINI_USER_CODE_REDIRECT,
            ),
        };
        Self {
            authorize_url: authorize.into(),
            redirect_uri: redirect.into(),
            device_url: login::CODEX_DEVICE_URL.into(),
            verification_url: login::CODEX_VERIFICATION_URL.into(),
            code_assist_url: login::CODE_ASSIST_URL.into(),
        }
    }
}

/// Exchanges an authorization code (with its PKCE verifier) for tokens.
pub async fn exchange_code(
    http: &reqwest::Client,
    kind: Kind,
    endpoints: &Endpoints,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
    state: Option<&str>,
) -> Result<Granted, String> {
    let mut fields: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", endpoints.client_id.as_str()),
        ("code_verifier", verifier),
    ];
    if kind == Kind::Claude
        && let Some(state) = state
    {
        fields.push(("state", state));
    }
    if let Some(secret) = &endpoints.client_secret {
        fields.push(("client_secret", secret));
    }
    let request = http
        .post(&endpoints.token_url)
        .header(http::header::ACCEPT, "application/json")
        .timeout(CALL_TIMEOUT);
    // Claude's endpoint takes JSON only; OpenAI's and Google's a form (as codex-rs and CPA send).
    let request = if kind == Kind::Claude {
        let body: Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
            .collect();
        request.json(&body)
    } else {
        request.form(&fields)
    };
    let response = request
        .send()
        .await
        .map_err(|e| unreachable_words("the token endpoint", &e))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| unreachable_words("the token endpoint", &e))?;
    if !status.is_success() {
        let code = login::oauth_error_code(&body)
            .map(|c| format!(", {c}"))
            .unwrap_or_default();
        return Err(format!(
            "the token endpoint refused the authorization code (HTTP {}{code})",
            status.as_u16()
        ));
    }
    serde_json::from_slice::<Granted>(&body)
        .ok()
        .filter(|g| !g.access_token.trim().is_empty())
        .ok_or_else(|| "the token endpoint answered without an access_token".to_string())
}

fn unreachable_words(what: &str, e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("{what} did not answer in time")
    } else if e.is_connect() {
        format!("{what} could not be reached")
    } else {
        format!("the connection to {what} failed")
    }
}

/// Codex: asks for a device code.
pub async fn codex_user_code(
    http: &reqwest::Client,
    urls: &LoginUrls,
    client_id: &str,
) -> Result<DeviceCode, String> {
    let url = format!("{}/usercode", urls.device_url.trim_end_matches('/'));
    let response = http
        .post(url)
        .json(&serde_json::json!({"client_id": client_id}))
        .timeout(CALL_TIMEOUT)
        .send()
        .await
        .map_err(|e| unreachable_words("the device endpoint", &e))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(
            "device sign-in is not enabled for this client (HTTP 404): use `--browser`".into(),
        );
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| unreachable_words("the device endpoint", &e))?;
    if !status.is_success() {
        return Err(format!(
            "the device endpoint refused (HTTP {})",
            status.as_u16()
        ));
    }
    serde_json::from_slice::<DeviceCode>(&body)
        .map_err(|_| "the device endpoint answered without a user code".to_string())
}

/// Codex: polls until the user approved the device code (or it was refused or expired).
pub async fn codex_device_wait(
    http: &reqwest::Client,
    urls: &LoginUrls,
    code: &DeviceCode,
    timeout: Duration,
) -> Result<DeviceGrant, String> {
    let url = format!("{}/token", urls.device_url.trim_end_matches('/'));
    let mut poll = DevicePoll::new(
        code.interval.map(Duration::from_secs),
        timeout,
        Instant::now(),
    );
    loop {
        tokio::time::sleep(poll.interval()).await;
        let answer = http
            .post(&url)
            .json(&serde_json::json!({"device_auth_id": code.device_auth_id, "user_code": code.user_code}))
            .timeout(CALL_TIMEOUT)
            .send()
            .await;
        let (status, body) = match answer {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.bytes().await.unwrap_or_default())
            }
            // A dropped poll is retried at the next interval, inside the deadline.
            Err(_) => (403, Default::default()),
        };
        match poll.step(status, &body, Instant::now()) {
            PollStep::Wait(_) => continue,
            PollStep::Done(grant) => return Ok(grant),
            PollStep::Fail(reason) => return Err(reason),
        }
    }
}

/// Gemini: finds (or sets up) the account's Code Assist project. `poll` is the pause between
/// polls of the onboarding operation.
pub async fn code_assist_project(
    http: &reqwest::Client,
    urls: &LoginUrls,
    access_token: &str,
    requested: Option<&str>,
    poll: Duration,
    timeout: Duration,
) -> Result<String, String> {
    let base = urls.code_assist_url.trim_end_matches('/');
    let load = code_assist_call(
        http,
        &format!("{base}:loadCodeAssist"),
        access_token,
        Some(&login::load_body(requested)),
    )
    .await?;
    let tier = match login::code_assist_setup(&load, requested) {
        Setup::Ready(project) => return Ok(project),
        Setup::Ineligible(words) => {
            return Err(format!(
                "Google refused Code Assist for this account: {words}"
            ));
        }
        Setup::ProjectRequired => {
            return Err(
                "this account's Code Assist tier needs a Google Cloud project: pass --project <id>"
                    .into(),
            );
        }
        Setup::Onboard { tier } => tier,
    };
    let deadline = Instant::now() + timeout;
    let mut operation = code_assist_call(
        http,
        &format!("{base}:onboardUser"),
        access_token,
        Some(&login::onboard_body(&tier, requested)),
    )
    .await?;
    loop {
        if operation.get("done").and_then(Value::as_bool) == Some(true) {
            if let Some(error) = operation.get("error") {
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("no message");
                return Err(format!("Code Assist onboarding failed: {message}"));
            }
            return login::onboarded_project(&operation)
                .or_else(|| requested.map(String::from))
                .ok_or_else(|| {
                    "Code Assist onboarding finished without a project: pass --project <id>".into()
                });
        }
        if Instant::now() + poll > deadline {
            return Err("Code Assist onboarding did not finish in time".into());
        }
        tokio::time::sleep(poll).await;
        operation = match operation.get("name").and_then(Value::as_str) {
            Some(name) if is_operation_name(name) => {
                code_assist_call(http, &format!("{base}/{name}"), access_token, None).await?
            }
            // No operation to follow: ask again, as CPA's discovery does.
            _ => {
                code_assist_call(
                    http,
                    &format!("{base}:onboardUser"),
                    access_token,
                    Some(&login::onboard_body(&tier, requested)),
                )
                .await?
            }
        };
    }
}

fn is_operation_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
}

async fn code_assist_call(
    http: &reqwest::Client,
    url: &str,
    access_token: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let request = match body {
        Some(b) => http.post(url).json(b),
        None => http.get(url),
    };
    let response = request
        .bearer_auth(access_token)
        .timeout(CALL_TIMEOUT)
        .send()
        .await
        .map_err(|e| unreachable_words("Code Assist", &e))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| unreachable_words("Code Assist", &e))?;
    let value: Option<Value> = serde_json::from_slice(&bytes).ok();
    if !status.is_success() {
        let message = value
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(|m| format!(": {}", m.chars().take(300).collect::<String>()))
            .unwrap_or_default();
        return Err(format!(
            "Code Assist refused (HTTP {}){message}",
            status.as_u16()
        ));
    }
    value
        .filter(Value::is_object)
        .ok_or_else(|| "Code Assist answered without a JSON object".into())
}
