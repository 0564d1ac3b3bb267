//! OpenAI Responses: `POST /v1/responses` (JSON or SSE), with OpenAI's Bearer auth and error
//! shapes (shared with Chat Completions through [`crate::openai_gate`] and [`crate::errors`]).
//!
//! Every request goes: directives → `latency_ms` → auth → injected `status` → validation →
//! model check → reply. The mock stores no responses, so `previous_response_id` is refused.

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
use serde_json::Value;

use crate::errors::OpenAiError;
use crate::openai_gate::preflight;
use crate::{AppState, assistant, stream_body};
use request::ResponsesRequest;
use wire::{Reply, Settings, Status};

/// The Responses endpoint.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/responses", post(responses))
}

async fn responses(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(&state, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn create(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OpenAiError> {
    let directives = preflight(state, headers, body).await?;
    reply(state, body, directives)
}

/// Answers a request that passed the gate: validation, model check, the reply (JSON or SSE).
pub(crate) fn reply(
    state: &AppState,
    body: &[u8],
    directives: crate::directives::Directives,
) -> Result<Response, OpenAiError> {
    let json: Value = serde_json::from_slice(body).map_err(|_| OpenAiError::invalid_json())?;
    let request = ResponsesRequest::from_json(&json)?;
    if !state.config.serves(request.model) {
        return Err(OpenAiError::model_not_found(request.model));
    }
    let (answer, usage) = assistant::answer(&request.conversation(), &directives);
    let reply = Reply::new(
        answer,
        usage,
        request.wants_reasoning_summary(),
        request.wants_encrypted_reasoning(),
    );
    let settings = Settings::new(&request);
    if !request.stream {
        let response = reply.response(&request, &settings, Status::Completed);
        return Ok(Json(response).into_response());
    }
    let events = stream::events(&reply, &request, &settings)
        .and_then(|events| {
            stream_body::fail_after(events, &directives, |sent| {
                let failed = reply.response(&request, &settings, Status::Failed);
                stream::failed_event(sent, &failed)
            })
        })
        .map_err(OpenAiError::internal)?;
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
