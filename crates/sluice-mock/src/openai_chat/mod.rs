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
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
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

/// The Chat Completions endpoints (OpenAI's, and Azure OpenAI's on deployments).
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat_completions),
        )
}

/// Azure OpenAI: `POST /openai/deployments/{deployment}/chat/completions?api-version=…` with
/// the key in `api-key`. The deployment stands for the model (used when the body names none);
/// a missing `api-version` is a 400 and a wrong key a 401, as Azure answers them.
async fn azure_chat_completions(
    State(state): State<Arc<AppState>>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (headers, body) = match azure_json(&state, deployment, query.as_deref(), headers, body) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    complete(&state, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// An Azure OpenAI JSON request as OpenAI's: [`azure_gate`]'s checks, then the deployment as
/// the body's model when the body names none (Azure takes the model from the deployment).
pub(crate) fn azure_json(
    state: &AppState,
    deployment: String,
    query: Option<&str>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(HeaderMap, Bytes), Box<Response>> {
    let headers = azure_gate(state, query, headers)?;
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut fields)) if !fields.contains_key("model") => {
            fields.insert("model".into(), Value::String(deployment));
            Bytes::from(Value::Object(fields).to_string())
        }
        _ => body,
    };
    Ok((headers, body))
}

/// What every Azure OpenAI path checks first: `api-version` (400 without), the `api-key`
/// (401 when wrong). The headers come back with the key as OpenAI's Bearer, for the OpenAI
/// handler that serves the rest; `Err` is Azure's refusal.
pub(crate) fn azure_gate(
    state: &AppState,
    query: Option<&str>,
    headers: HeaderMap,
) -> Result<HeaderMap, Box<Response>> {
    let has_version = query.unwrap_or_default().split('&').any(|pair| {
        pair.strip_prefix("api-version=")
            .is_some_and(|v| !v.is_empty())
    });
    if !has_version {
        return Err(Box::new(azure_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )));
    }
    let key = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if state.config.requires_key() && !state.config.accepts_key(&key) {
        return Err(Box::new(azure_error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
        )));
    }
    // From here on it is OpenAI's API, with the deployment as the model.
    let mut headers = headers;
    headers.remove("api-key");
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {key}")) {
        headers.insert(axum::http::header::AUTHORIZATION, value);
    }
    Ok(headers)
}

fn azure_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
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
    let directives = preflight(state, headers, body).await?;
    let json: Value = serde_json::from_slice(body).map_err(|_| OpenAiError::invalid_json())?;
    let request = ChatRequest::from_json(&json)?;
    if !state.config.serves(request.model) {
        return Err(OpenAiError::model_not_found(request.model));
    }
    if crate::completions::is_completion_model(request.model) {
        return Err(OpenAiError::completion_model_on_chat());
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
    let events = stream::events(&meta, &reply, usage, include_usage)
        .and_then(|events| {
            stream_body::fail_after(events, &directives, |_| {
                // OpenAI reports a failure inside a stream as a chunk holding only `error`.
                let error = serde_json::json!({"error": {
                    "message": stream_body::failure_message(&directives),
                    "type": "server_error", "param": null, "code": null,
                }});
                crate::sse::data(&error, "\n\n")
            })
        })
        .map_err(OpenAiError::internal)?;
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
    if let Err(error) = preflight(state, headers, &[]).await {
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
