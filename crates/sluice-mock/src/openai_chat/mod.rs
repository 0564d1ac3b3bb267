//! OpenAI Chat Completions: `POST /v1/chat/completions` (JSON or SSE), and the OpenAI shape of
//! `GET /v1/models` (which [`crate::models`] dispatches here).
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
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::errors::OpenAiError;
use crate::openai_gate::preflight;
use crate::{AppState, ids, models, stream_body};
use request::ChatRequest;
use wire::{ChatCompletion, Meta};

/// The Chat Completions endpoints.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/chat/completions", post(chat_completions))
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
    if !state.config.serves(request.model) {
        return Err(OpenAiError::model_not_found(request.model));
    }
    let (reply, usage) = reply::answer(&request, &directives);
    let meta = Meta {
        id: ids::completion_id(),
        created: ids::unix_now(),
        model: request.model,
    };
    if !request.stream {
        let mut completion = ChatCompletion::new(&meta, &reply, usage);
        if directives.omit_usage {
            completion.omit_usage();
        }
        return Ok(Json(completion).into_response());
    }
    let include_usage = request.include_usage && !directives.omit_usage;
    let events =
        stream::events(&meta, &reply, usage, include_usage).map_err(OpenAiError::internal)?;
    let body = stream_body::body(events, &directives, state.recorder.stream_guard());
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
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

/// `GET /v1/models` in OpenAI's shape.
pub(crate) async fn list_models(state: &AppState, headers: &HeaderMap) -> Response {
    if let Err(error) = preflight(&state.config, headers, &[]).await {
        return error.into_response();
    }
    let data = state
        .config
        .listed_models()
        .into_iter()
        .map(|id| Model {
            id,
            object: "model",
            created: models::CREATED,
            owned_by: "sluice-mock",
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
    .into_response()
}
