//! Fake sign-in endpoints (research `oauth.md` §2.1, §2.6, §3.1, §3.2, §3.6, §5.1–5.3, §11.8),
//! strict about what the real ones demand:
//!
//! | endpoint | what it checks | answer |
//! |---|---|---|
//! | `GET /oauth/authorize` (Claude by its `client_id`) | `code=true`, `response_type=code`, the scope, S256 challenge, state, redirect URI | the manual page's `code#state` (text), or a 302 to a local callback |
//! | `GET /oauth/authorize` (Codex) | the same, with Codex's scope and flags | a 302 to the callback with `code` and `state` |
//! | `GET /o/oauth2/v2/auth` (Google) | `access_type=offline`, S256, state, the scopes | the authcode page's code (text), or a 302 |
//! | the token endpoints, `grant_type=authorization_code` | a code this fake issued, once; the same `client_id` and `redirect_uri`; `S256(code_verifier)` = the challenge; Claude: JSON and `state` | a token pair (Google's with an id_token naming the email) |
//! | `POST /api/accounts/deviceauth/usercode` | JSON, Codex's `client_id` | `{device_auth_id, user_code, interval}` (interval a string, as OpenAI's) |
//! | `POST /api/accounts/deviceauth/token` | the issued id and user code | the scripted answers ([`DeviceAnswer`]): 403 pending, then the code triple |
//! | `POST /v1internal:loadCodeAssist`, `:onboardUser`, `GET /v1internal/operations/{id}` | a Bearer token the Google fake issued; `metadata.pluginType = GEMINI` | per [`CodeAssistScript`] |
//!
//! Code Assist's generation endpoints (`:generateContent`, `:streamGenerateContent`,
//! `:countTokens`) are `gemini::code_assist`'s; they take the same Bearer tokens and the project
//! the script hands out.
//!
//! A denied authorization ([`OAuthFake::deny_authorize`]) redirects with `error=access_denied`.

use std::collections::{HashMap, VecDeque};
use std::sync::PoisonError;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::oauth::{
    CLAUDE_CLIENT_ID, CODEX_CLIENT_ID, GEMINI_CLIENT_ID, OAuthFake, Provider, fields, mint,
    oauth_error, text,
};

/// The redirect URI OpenAI binds device-flow codes to.
pub const CODEX_DEVICE_REDIRECT: &str = "https://auth.openai.com/deviceauth/callback";

/// One scripted answer of the device poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAnswer {
    /// 403: the user has not approved yet.
    Pending,
    /// Approved: the code triple.
    Approve,
    /// 400 `access_denied`.
    Deny,
    /// 400 `expired_token`.
    Expire,
}

/// What Code Assist says about the signed-in account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeAssistScript {
    /// Already onboarded to `standard-tier` with this project.
    Ready(String),
    /// Not onboarded: `onboardUser` returns an operation that stays pending for `pending` polls,
    /// then is done with this project.
    Onboard { pending: u32, project: String },
    /// Refused: `ineligibleTiers` with `UNSUPPORTED_CLIENT` for the free tier.
    Ineligible,
}

/// Google's words for the free tier's refusal (what the fake answers).
pub const INELIGIBLE_MESSAGE: &str = "Gemini Code Assist for individuals is no longer available to this client. Please migrate to the Antigravity suite.";

#[derive(Debug)]
struct Code {
    provider: Provider,
    challenge: String,
    redirect_uri: String,
}

#[derive(Debug)]
struct Operation {
    polls_left: u32,
    project: String,
}

/// The sign-in fakes' state.
#[derive(Debug)]
pub struct LoginState {
    codes: HashMap<String, Code>,
    device: VecDeque<DeviceAnswer>,
    device_interval: u64,
    device_disabled: bool,
    devices: HashMap<String, String>,
    code_assist: CodeAssistScript,
    operations: HashMap<String, Operation>,
    deny: bool,
    seq: u64,
    exchanges: u64,
    onboard_calls: u64,
}

impl Default for LoginState {
    fn default() -> Self {
        Self {
            codes: HashMap::new(),
            device: VecDeque::new(),
            device_interval: 5,
            device_disabled: false,
            devices: HashMap::new(),
            code_assist: CodeAssistScript::Ready("fake-project".into()),
            operations: HashMap::new(),
            deny: false,
            seq: 0,
            exchanges: 0,
            onboard_calls: 0,
        }
    }
}

impl OAuthFake {
    fn login_state(&self) -> std::sync::MutexGuard<'_, LoginState> {
        self.login.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The device poll's next answers (after them: approve).
    pub fn script_device(&self, answers: &[DeviceAnswer]) {
        self.login_state().device = answers.iter().copied().collect();
    }

    /// The poll interval the device endpoint announces, in seconds (default 5).
    pub fn set_device_interval(&self, secs: u64) {
        self.login_state().device_interval = secs;
    }

    /// Answer `usercode` with 404 (device sign-in not enabled).
    pub fn disable_device(&self, disabled: bool) {
        self.login_state().device_disabled = disabled;
    }

    /// What Code Assist answers.
    pub fn script_code_assist(&self, script: CodeAssistScript) {
        self.login_state().code_assist = script;
    }

    /// The authorize pages refuse (redirect with `error=access_denied`).
    pub fn deny_authorize(&self, deny: bool) {
        self.login_state().deny = deny;
    }

    /// Authorization codes exchanged successfully.
    pub fn exchanges(&self) -> u64 {
        self.login_state().exchanges
    }

    /// `onboardUser` calls plus operation polls.
    pub fn onboard_calls(&self) -> u64 {
        self.login_state().onboard_calls
    }

    /// Whether Code Assist knows `project`: the one the script hands out (set up, or at the end
    /// of onboarding).
    pub(crate) fn code_assist_project(&self, project: &str) -> bool {
        match &self.login_state().code_assist {
            CodeAssistScript::Ready(p) | CodeAssistScript::Onboard { project: p, .. } => {
                p == project
            }
            CodeAssistScript::Ineligible => false,
        }
    }
}

pub(crate) fn routes() -> Router<std::sync::Arc<AppState>> {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/o/oauth2/v2/auth", get(authorize))
        .route("/api/accounts/deviceauth/usercode", post(usercode))
        .route("/api/accounts/deviceauth/token", post(device_token))
        .route("/v1internal:loadCodeAssist", post(load_code_assist))
        .route("/v1internal:onboardUser", post(onboard_user))
        .route("/v1internal/operations/{id}", get(operation))
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn bad(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_string()).into_response()
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn local(uri: &str) -> bool {
    uri.starts_with("http://localhost:") || uri.starts_with("http://127.0.0.1:")
}

async fn authorize(
    State(state): State<std::sync::Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let provider = match get("client_id") {
        Some(CLAUDE_CLIENT_ID) => Provider::Claude,
        Some(CODEX_CLIENT_ID) => Provider::Codex,
        Some(GEMINI_CLIENT_ID) => Provider::Google,
        _ => return bad("unknown client_id"),
    };
    let (Some(challenge), Some(st), Some(redirect)) =
        (get("code_challenge"), get("state"), get("redirect_uri"))
    else {
        return bad("code_challenge, state and redirect_uri are required");
    };
    if get("response_type") != Some("code") || get("code_challenge_method") != Some("S256") {
        return bad("response_type=code and code_challenge_method=S256 are required");
    }
    let scope = get("scope").unwrap_or_default();
    let ok = match provider {
        Provider::Claude => get("code") == Some("true") && scope.contains("user:inference"),
        Provider::Codex => {
            scope.contains("offline_access") && get("codex_cli_simplified_flow") == Some("true")
        }
        Provider::Google => {
            get("access_type") == Some("offline") && scope.contains("auth/cloud-platform")
        }
    };
    if !ok {
        return bad("the provider's own parameters are missing (scope, flags)");
    }
    let mut login = state.oauth.login_state();
    if login.deny {
        return (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                format!(
                    "{redirect}?error=access_denied&error_description=The+user+denied+access&state={}",
                    encode(st)
                ),
            )],
        )
            .into_response();
    }
    login.seq += 1;
    let code = format!("fakecode{}x{:08x}", login.seq, rand_u32(login.seq));
    login.codes.insert(
        code.clone(),
        Code {
            provider,
            challenge: challenge.to_string(),
            redirect_uri: redirect.to_string(),
        },
    );
    if local(redirect) {
        return (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                format!("{redirect}?code={code}&state={}", encode(st)),
            )],
        )
            .into_response();
    }
    // The manual pages: Claude shows `code#state`, Google's authcode page the code alone.
    match provider {
        Provider::Claude => format!("{code}#{st}").into_response(),
        _ => code.into_response(),
    }
}

fn rand_u32(seed: u64) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ (seed as u32).wrapping_mul(2_654_435_761)
}

/// `grant_type=authorization_code` at a token endpoint.
pub(crate) fn exchange(fake: &OAuthFake, provider: Provider, map: &Map<String, Value>) -> Response {
    let (Some(code), Some(verifier), Some(redirect)) = (
        text(map, "code"),
        text(map, "code_verifier"),
        text(map, "redirect_uri"),
    ) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code, code_verifier and redirect_uri are required",
        );
    };
    if provider == Provider::Claude && text(map, "state").is_none() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "state is required",
        );
    }
    let mut login = fake.login_state();
    // Single use: the code is gone whatever the outcome.
    let Some(issued) = login.codes.remove(code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid authorization code",
        );
    };
    if issued.provider != provider
        || issued.redirect_uri != redirect
        || issued.challenge != s256(verifier)
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid code_verifier or redirect_uri",
        );
    }
    login.exchanges += 1;
    drop(login);
    let body = mint(&mut fake.lock(), provider, None);
    Json(body).into_response()
}

async fn usercode(
    State(state): State<std::sync::Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((true, map)) = fields(&headers, &body) else {
        return bad("JSON body expected");
    };
    if text(&map, "client_id") != Some(CODEX_CLIENT_ID) {
        return bad("unknown client_id");
    }
    let mut login = state.oauth.login_state();
    if login.device_disabled {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    login.seq += 1;
    let id = format!("deviceauth_{}", login.seq);
    let user_code = format!("FAKE-{:04}", login.seq % 10_000);
    login.devices.insert(id.clone(), user_code.clone());
    Json(json!({
        "device_auth_id": id,
        "user_code": user_code,
        "interval": login.device_interval.to_string(),
    }))
    .into_response()
}

async fn device_token(
    State(state): State<std::sync::Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((true, map)) = fields(&headers, &body) else {
        return bad("JSON body expected");
    };
    let mut login = state.oauth.login_state();
    let (Some(id), Some(user_code)) = (text(&map, "device_auth_id"), text(&map, "user_code"))
    else {
        return bad("device_auth_id and user_code are required");
    };
    if login.devices.get(id).map(String::as_str) != Some(user_code) {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    match login.device.pop_front().unwrap_or(DeviceAnswer::Approve) {
        DeviceAnswer::Pending => (
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"message": "Device authorization is pending", "code": "deviceauth_pending"}})),
        )
            .into_response(),
        DeviceAnswer::Deny => {
            login.devices.remove(id);
            oauth_error(StatusCode::BAD_REQUEST, "access_denied", "The user denied the request")
        }
        DeviceAnswer::Expire => {
            login.devices.remove(id);
            oauth_error(StatusCode::BAD_REQUEST, "expired_token", "The device code expired")
        }
        DeviceAnswer::Approve => {
            login.devices.remove(id);
            login.seq += 1;
            let verifier = format!("fake-device-verifier-{}-{:08x}", login.seq, rand_u32(login.seq));
            let challenge = s256(&verifier);
            let code = format!("fakedevicecode{}", login.seq);
            login.codes.insert(
                code.clone(),
                Code {
                    provider: Provider::Codex,
                    challenge: challenge.clone(),
                    redirect_uri: CODEX_DEVICE_REDIRECT.into(),
                },
            );
            Json(json!({"authorization_code": code, "code_challenge": challenge, "code_verifier": verifier}))
                .into_response()
        }
    }
}

/// A Code Assist call must carry a Bearer token the Google fake issued (and did not supersede).
pub(crate) fn google_bearer(fake: &OAuthFake, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let issued = fake
        .issued()
        .iter()
        .any(|i| i.provider == Provider::Google && i.access_token == token);
    if !issued || fake.refuses(headers) {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})),
            )
                .into_response(),
        ));
    }
    Ok(())
}

fn gemini_metadata(body: &Bytes) -> Result<Value, Box<Response>> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| Box::new(bad("JSON body expected")))?;
    if value
        .get("metadata")
        .and_then(|m| m.get("pluginType"))
        .and_then(Value::as_str)
        != Some("GEMINI")
    {
        return Err(Box::new(
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"code": 400, "message": "metadata.pluginType is required", "status": "INVALID_ARGUMENT"}})),
            )
                .into_response(),
        ));
    }
    Ok(value)
}

async fn load_code_assist(
    State(state): State<std::sync::Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = google_bearer(&state.oauth, &headers) {
        return *r;
    }
    if let Err(r) = gemini_metadata(&body) {
        return *r;
    }
    let script = state.oauth.login_state().code_assist.clone();
    match script {
        CodeAssistScript::Ready(project) => Json(json!({
            "currentTier": {"id": "standard-tier", "name": "Gemini Code Assist Standard", "hasOnboardedPreviously": true},
            "allowedTiers": [{"id": "standard-tier", "isDefault": true}],
            "cloudaicompanionProject": project,
        }))
        .into_response(),
        CodeAssistScript::Onboard { .. } => Json(json!({
            "allowedTiers": [
                {"id": "legacy-tier", "name": "Gemini Code Assist", "userDefinedCloudaicompanionProject": true},
                {"id": "standard-tier", "name": "Gemini Code Assist Standard", "isDefault": true, "userDefinedCloudaicompanionProject": true}
            ],
        }))
        .into_response(),
        CodeAssistScript::Ineligible => Json(json!({
            "allowedTiers": [],
            "ineligibleTiers": [{
                "reasonCode": "UNSUPPORTED_CLIENT",
                "reasonMessage": INELIGIBLE_MESSAGE,
                "tierId": "free-tier",
                "tierName": "Gemini Code Assist for individuals"
            }],
        }))
        .into_response(),
    }
}

async fn onboard_user(
    State(state): State<std::sync::Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = google_bearer(&state.oauth, &headers) {
        return *r;
    }
    let value = match gemini_metadata(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(tier) = value.get("tierId").and_then(Value::as_str) else {
        return bad("tierId is required");
    };
    let mut login = state.oauth.login_state();
    login.onboard_calls += 1;
    let CodeAssistScript::Onboard { pending, project } = login.code_assist.clone() else {
        return bad("this account needs no onboarding");
    };
    if tier != "standard-tier" {
        return bad("tierId must be one of allowedTiers");
    }
    login.seq += 1;
    let name = format!("operations/onboard-{}", login.seq);
    login.operations.insert(
        name.clone(),
        Operation {
            polls_left: pending,
            project,
        },
    );
    Json(json!({"name": name, "done": false})).into_response()
}

async fn operation(
    State(state): State<std::sync::Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = google_bearer(&state.oauth, &headers) {
        return *r;
    }
    let name = format!("operations/{id}");
    let mut login = state.oauth.login_state();
    login.onboard_calls += 1;
    let Some(op) = login.operations.get_mut(&name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": 404, "message": "operation not found", "status": "NOT_FOUND"}})),
        )
            .into_response();
    };
    if op.polls_left > 0 {
        op.polls_left -= 1;
        return Json(json!({"name": name, "done": false})).into_response();
    }
    Json(json!({
        "name": name,
        "done": true,
        "response": {
            "@type": "type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse",
            "cloudaicompanionProject": {"id": op.project, "name": op.project}
        }
    }))
    .into_response()
}
