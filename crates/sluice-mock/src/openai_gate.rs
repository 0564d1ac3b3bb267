//! What both OpenAI dialects (Chat Completions and Responses) do before reading the body:
//! directives and `latency_ms`, `Authorization: Bearer` authentication, an injected status.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::directives::{self, Directives};
use crate::errors::OpenAiError;
use crate::{AppState, MockConfig};

/// Runs the shared steps; `Err` is the response to send instead.
pub(crate) async fn preflight(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Directives, OpenAiError> {
    let directives = directives::arrive(&state.faults, headers, body).await;
    authorize(&state.config, headers)?;
    checked(state, headers, directives)
}

/// [`preflight`] for upstreams that take OAuth access tokens, never the configured API keys
/// (the ChatGPT Codex backend): the same steps without the key check.
pub(crate) async fn preflight_oauth(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Directives, OpenAiError> {
    let directives = directives::arrive(&state.faults, headers, body).await;
    checked(state, headers, directives)
}

fn checked(
    state: &AppState,
    headers: &HeaderMap,
    directives: Directives,
) -> Result<Directives, OpenAiError> {
    if directives.reject_key {
        let sent = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        return Err(OpenAiError::invalid_api_key(sent.trim()));
    }
    if directives.qwen_free_tier_ended {
        return Err(OpenAiError::qwen_free_tier_ended());
    }
    if state.oauth.refuses(headers) {
        return Err(OpenAiError::invalid_api_key("expired"));
    }
    if let Some(status) = directives.status {
        return Err(OpenAiError::injected(status, directives.retry_after));
    }
    Ok(directives)
}

fn authorize(config: &MockConfig, headers: &HeaderMap) -> Result<(), OpenAiError> {
    if !config.requires_key() {
        return Ok(());
    }
    let key = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .ok_or_else(OpenAiError::missing_api_key)?;
    if config.accepts_key(key) {
        Ok(())
    } else {
        Err(OpenAiError::invalid_api_key(key))
    }
}
