//! The ChatGPT Codex backend (`https://chatgpt.com/backend-api/codex`): OpenAI Responses as the
//! Codex CLI speaks it to ChatGPT accounts, strict about what the real backend refuses
//! (research `oauth.md` §3.5, §3.6):
//!
//! | request | answer |
//! |---|---|
//! | no Bearer, or one the OAuth fake superseded, revoked or saw expire ([`crate::oauth::OAuthFake::refuses`]) | `401 {"error":{"code":"token_expired"…}}` |
//! | no `chatgpt-account-id` | `400 {"detail":"Missing chatgpt-account-id header"}` |
//! | a `chatgpt-account-id` other than the token's account (the fake's own tokens, or a JWT's `https://api.openai.com/auth` claim) | `403 {"detail":…}` |
//! | `stream` not `true` | `400 {"detail":"Stream must be set to true"}` |
//! | `store` not `false` | `400 {"detail":"Store must be set to false"}` |
//! | no `instructions` | `400 {"detail":"Instructions are required"}` |
//! | `input` not a list | `400 {"detail":"Input must be a list"}` |
//! | `max_output_tokens`, `max_completion_tokens`, `temperature`, `top_p`, `truncation`, `user`, `previous_response_id`, `safety_identifier`, `prompt_cache_retention`, `stream_options` | `400 {"detail":"Unsupported parameter: …"}` |
//!
//! A request that passes is answered by the Responses fake (directives, faults, the stream).
//! The configured API keys play no part: the backend takes ChatGPT access tokens only.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;
use crate::openai_gate::preflight_oauth;

/// Parameters the backend refuses by name.
const UNSUPPORTED: &[&str] = &[
    "max_output_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "truncation",
    "user",
    "previous_response_id",
    "safety_identifier",
    "prompt_cache_retention",
    "stream_options",
];

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/backend-api/codex/responses", post(responses))
}

async fn responses(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = check(&state, &headers, &body) {
        return *refusal;
    }
    let directives = match preflight_oauth(&state, &headers, &body).await {
        Ok(directives) => directives,
        Err(error) => return error.into_response(),
    };
    crate::openai_responses::reply(&state, &body, directives)
        .unwrap_or_else(IntoResponse::into_response)
}

fn detail(status: StatusCode, message: &str) -> Box<Response> {
    Box::new((status, Json(json!({"detail": message}))).into_response())
}

fn check(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token.filter(|_| !state.oauth.refuses(headers)) else {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {
                "message": "Provided authentication token is expired. Please try signing in again.",
                "type": null, "code": "token_expired", "param": null}, "status": 401})),
            )
                .into_response(),
        ));
    };
    let Some(account) = headers
        .get("chatgpt-account-id")
        .and_then(|v| v.to_str().ok())
        .filter(|a| !a.is_empty())
    else {
        return Err(detail(
            StatusCode::BAD_REQUEST,
            "Missing chatgpt-account-id header",
        ));
    };
    let expected = state
        .oauth
        .codex_account_of(token)
        .map(String::from)
        .or_else(|| claimed_account(token));
    if expected.is_some_and(|expected| expected != account) {
        return Err(detail(
            StatusCode::FORBIDDEN,
            "The chatgpt-account-id does not match the token's account",
        ));
    }
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(detail(StatusCode::BAD_REQUEST, "Invalid JSON body"));
    };
    if fields.get("stream") != Some(&Value::Bool(true)) {
        return Err(detail(
            StatusCode::BAD_REQUEST,
            "Stream must be set to true",
        ));
    }
    if fields.get("store") != Some(&Value::Bool(false)) {
        return Err(detail(
            StatusCode::BAD_REQUEST,
            "Store must be set to false",
        ));
    }
    if !fields.get("instructions").is_some_and(Value::is_string) {
        return Err(detail(StatusCode::BAD_REQUEST, "Instructions are required"));
    }
    if !fields.get("input").is_some_and(Value::is_array) {
        return Err(detail(StatusCode::BAD_REQUEST, "Input must be a list"));
    }
    if let Some(name) = UNSUPPORTED.iter().find(|name| fields.contains_key(**name)) {
        return Err(detail(
            StatusCode::BAD_REQUEST,
            &format!("Unsupported parameter: {name}"),
        ));
    }
    Ok(())
}

/// The account a JWT access token names in its `https://api.openai.com/auth` claim.
fn claimed_account(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("https://api.openai.com/auth")?
        .get("chatgpt_account_id")?
        .as_str()
        .map(String::from)
}
