//! OpenAI Chat Completions: `POST /v1/chat/completions` (JSON or SSE) and `GET /v1/models`.
//!
//! Every request goes: directives → `latency_ms` → auth → injected `status` → validation →
//! model check → reply.

mod reply;
mod request;
mod stream;
mod wire;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::directives::{self, Directives};
use crate::errors::OpenAiError;
use crate::{AppState, MockConfig, ids, stream_body};
use request::ChatRequest;
use wire::{ChatCompletion, Meta};

/// Listed by `GET /v1/models` when no models are configured.
const DEFAULT_MODEL: &str = "mock-model";

/// `created` of every listed model (fixed, so listings are deterministic).
const MODEL_CREATED: u64 = 1_700_000_000;

/// The Chat Completions endpoints.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(list_models))
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    complete(&state, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OpenAiError> {
    let directives = preflight(&state.config, headers, body).await?;
    let json: Value = serde_json::from_slice(body).map_err(|_| OpenAiError::invalid_json())?;
    let request = ChatRequest::from_json(&json)?;
    if !serves(&state.config, request.model) {
        return Err(OpenAiError::model_not_found(request.model));
    }
    let (reply, usage) = reply::answer(&request, &directives);
    let meta = Meta {
        id: ids::completion_id(),
        created: ids::unix_now(),
        model: request.model,
    };
    if !request.stream {
        return Ok(Json(ChatCompletion::new(&meta, &reply, usage)).into_response());
    }
    let events = stream::events(&meta, &reply, usage, request.include_usage)
        .map_err(OpenAiError::internal)?;
    let body = stream_body::body(events, &directives, state.recorder.stream_guard());
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The steps every endpoint shares: read directives, wait, authenticate, inject a status.
async fn preflight(
    config: &MockConfig,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Directives, OpenAiError> {
    let header = headers
        .get(directives::HEADER)
        .and_then(|value| value.to_str().ok());
    let directives = Directives::parse(header, &String::from_utf8_lossy(body));
    if let Some(latency) = directives.latency {
        tokio::time::sleep(latency).await;
    }
    authorize(config, headers)?;
    if let Some(status) = directives.status {
        return Err(OpenAiError::injected(status, directives.retry_after));
    }
    Ok(directives)
}

fn authorize(config: &MockConfig, headers: &HeaderMap) -> Result<(), OpenAiError> {
    if config.api_keys.is_empty() {
        return Ok(());
    }
    let key = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .ok_or_else(OpenAiError::missing_api_key)?;
    if config.api_keys.iter().any(|accepted| accepted == key) {
        Ok(())
    } else {
        Err(OpenAiError::invalid_api_key(key))
    }
}

fn serves(config: &MockConfig, model: &str) -> bool {
    config.models.is_empty() || config.models.iter().any(|served| served == model)
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

async fn list_models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(error) = preflight(&state.config, &headers, &[]).await {
        return error.into_response();
    }
    let ids: Vec<&str> = if state.config.models.is_empty() {
        vec![DEFAULT_MODEL]
    } else {
        state.config.models.iter().map(String::as_str).collect()
    };
    let data = ids
        .into_iter()
        .map(|id| Model {
            id,
            object: "model",
            created: MODEL_CREATED,
            owned_by: "sluice-mock",
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
    .into_response()
}
