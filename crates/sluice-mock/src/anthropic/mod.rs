//! Anthropic Messages: `POST /v1/messages` (JSON or SSE), `POST /v1/messages/count_tokens`, and
//! Anthropic's shape of `GET /v1/models` (which [`crate::models`] dispatches here when the
//! request carries `anthropic-version`).
//!
//! Every request goes: directives → `latency_ms` → auth (`x-api-key` or `Authorization: Bearer`)
//! → `anthropic-version` → injected `status` → validation → model check → reply. Every response
//! carries a `request-id` header.

pub(crate) mod bedrock;
mod error;
mod request;
mod stream;
mod wire;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use crate::directives::{self, Directives};
use crate::{AppState, MockConfig, assistant, ids, stream_body};
use error::{AnthropicError, REQUEST_ID_HEADER};
use request::{Endpoint, MessagesRequest};
use wire::{Model, ModelList, Reply, TokenCount};

/// The header every Anthropic SDK sends, and whose presence makes `/v1/models` Anthropic's.
pub(crate) const VERSION_HEADER: &str = "anthropic-version";

/// The Messages endpoints.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
}

async fn messages(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    with_request_id(create(&state, &headers, &body).await)
}

async fn count_tokens(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    with_request_id(count(&state, &headers, &body).await)
}

/// `GET /v1/models` in Anthropic's shape.
pub(crate) async fn list_models(state: &AppState, headers: &HeaderMap) -> Response {
    with_request_id(gate(state, headers, &[]).await.map(|_| {
        let ids = state.config.listed_models();
        let list = ModelList {
            first_id: ids.first().copied(),
            last_id: ids.last().copied(),
            data: ids.into_iter().map(Model::new).collect(),
            has_more: false,
        };
        Json(list).into_response()
    }))
}

/// `GET /v1/models/{id}` in Anthropic's shape.
pub(crate) async fn get_model(state: &AppState, headers: &HeaderMap, id: &str) -> Response {
    let result = match gate(state, headers, &[]).await {
        Err(error) => Err(error),
        Ok(_) if !state.config.serves(id) => Err(AnthropicError::not_found(format!("model: {id}"))),
        Ok(_) => Ok(Json(Model::new(id)).into_response()),
    };
    with_request_id(result)
}

/// Errors carry their own id (the same in body and header); successes get one here.
fn with_request_id(result: Result<Response, AnthropicError>) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if !response.headers().contains_key(REQUEST_ID_HEADER)
        && let Ok(value) = HeaderValue::from_str(&ids::anthropic_request_id())
    {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

async fn create(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, AnthropicError> {
    let directives = gate(state, headers, body).await?;
    let json = parse(body)?;
    let request = MessagesRequest::from_json(&json, Endpoint::Messages)?;
    if !state.config.serves(request.model) {
        return Err(AnthropicError::not_found(format!(
            "model: {}",
            request.model
        )));
    }
    let (answer, usage) = assistant::answer(&request.conversation(), &directives);
    let reply = Reply::new(answer, usage, request.thinking);
    if !request.stream {
        return Ok(Json(reply.message(request.model)).into_response());
    }
    let events = stream::events(&reply, request.model)
        .and_then(|events| {
            stream_body::fail_after(events, &directives, |_| {
                let error = serde_json::json!({"type": "error", "error": {
                    "type": "overloaded_error",
                    "message": stream_body::failure_message(&directives),
                }});
                crate::sse::named("error", &error)
            })
        })
        .map_err(AnthropicError::internal)?;
    let body = stream_body::body(events, &directives, state.recorder.stream_guard());
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

async fn count(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, AnthropicError> {
    let directives = gate(state, headers, body).await?;
    let json = parse(body)?;
    let request = MessagesRequest::from_json(&json, Endpoint::CountTokens)?;
    if !state.config.serves(request.model) {
        return Err(AnthropicError::not_found(format!(
            "model: {}",
            request.model
        )));
    }
    let input_tokens = assistant::prompt_tokens(&request.conversation(), &directives);
    Ok(Json(TokenCount { input_tokens }).into_response())
}

fn parse(body: &[u8]) -> Result<Value, AnthropicError> {
    serde_json::from_slice(body).map_err(|error| {
        AnthropicError::invalid_request(format!("The request body is not valid JSON: {error}"))
    })
}

/// Directives, latency, authentication, version header, injected status.
async fn gate(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Directives, AnthropicError> {
    let directives = directives::arrive(&state.faults, headers, body).await;
    authorize(&state.config, headers)?;
    if directives.reject_key {
        return Err(AnthropicError::invalid_api_key());
    }
    if state.oauth.refuses(headers) {
        return Err(AnthropicError::invalid_bearer_token());
    }
    check_version(headers)?;
    check_oauth_shape(headers, body)?;
    if let Some(status) = directives.status {
        return Err(AnthropicError::injected(status, directives.retry_after));
    }
    Ok(directives)
}

/// The Claude Code system line Claude's OAuth API requires first (research `oauth.md` §2.5).
pub const CLAUDE_CODE_SYSTEM: &str = "You are Claude Code, Anthropic's official CLI for Claude.";

/// A request with an OAuth access token (`sk-ant-oat…`, or one this fake's token endpoint
/// issued) must carry `anthropic-beta: …oauth-2025-04-20…`, and, unless the model is a Haiku,
/// Claude Code's system line as its first system block; otherwise Anthropic answers 400
/// `invalid_request_error` "Error" (anthropics/claude-code#40515).
fn check_oauth_shape(headers: &HeaderMap, body: &[u8]) -> Result<(), AnthropicError> {
    let oauth = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.starts_with("sk-ant-oat") || t.starts_with("oauth-claude-"));
    if !oauth {
        return Ok(());
    }
    let beta_ok = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim() == "oauth-2025-04-20");
    if !beta_ok {
        return Err(AnthropicError::invalid_request(
            "OAuth authentication is currently not supported.",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let haiku = value
        .get("model")
        .and_then(|m| m.as_str())
        .is_some_and(|m| m.contains("haiku"));
    let first = value
        .get("system")
        .and_then(|s| s.get(0))
        .and_then(|b| b.get("text"))
        .and_then(|t| t.as_str());
    if !haiku && first != Some(CLAUDE_CODE_SYSTEM) {
        return Err(AnthropicError::invalid_request("Error"));
    }
    Ok(())
}

fn authorize(config: &MockConfig, headers: &HeaderMap) -> Result<(), AnthropicError> {
    if !config.requires_key() {
        return Ok(());
    }
    let header = |name| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    if let Some(key) = header(axum::http::HeaderName::from_static("x-api-key")) {
        return if config.accepts_key(key) {
            Ok(())
        } else {
            Err(AnthropicError::invalid_api_key())
        };
    }
    match header(AUTHORIZATION).and_then(|value| value.strip_prefix("Bearer ")) {
        Some(token) if config.accepts_key(token.trim()) => Ok(()),
        Some(_) => Err(AnthropicError::invalid_bearer_token()),
        None => Err(AnthropicError::missing_api_key()),
    }
}

/// The header is required and must be one version date. New versions appear with new SDKs, so
/// any well-formed `YYYY-MM-DD` is accepted; like the real API, several values are read joined
/// (and so refused), which catches a gateway that duplicates the header.
fn check_version(headers: &HeaderMap) -> Result<(), AnthropicError> {
    let values: Vec<&str> = headers
        .get_all(VERSION_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    if values.is_empty() {
        return Err(AnthropicError::invalid_request(
            "anthropic-version: header is required",
        ));
    }
    let version = values.join(", ");
    if is_version_date(&version) {
        Ok(())
    } else {
        Err(AnthropicError::invalid_request(format!(
            "anthropic-version: \"{version}\" is not a valid version"
        )))
    }
}

/// `YYYY-MM-DD`.
fn is_version_date(version: &str) -> bool {
    version.len() == 10
        && version.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_single_dates() {
        for good in ["2023-06-01", "2026-10-21"] {
            assert!(is_version_date(good), "{good}");
        }
        for bad in [
            "2023-06-01, 2023-06-01",
            "latest",
            "2023-6-01",
            "2023/06/01",
            "",
        ] {
            assert!(!is_version_date(bad), "{bad}");
        }
    }
}
