//! Gemini Code Assist (`cloudcode-pa`, `v1internal`; research `oauth.md` §5.2): the API Gemini
//! CLI's Google accounts are served by, strict about what the real one demands.
//!
//! | endpoint | request | answer |
//! |---|---|---|
//! | `POST /v1internal:generateContent` | `{model, project, user_prompt_id?, request: {contents, …}}` | `{response: {candidates, usageMetadata, …}, traceId}` |
//! | `POST /v1internal:streamGenerateContent?alt=sse` | the same | SSE, each event `{response: chunk, traceId}` (without `alt=sse`: one JSON array) |
//! | `POST /v1internal:countTokens` | `{request: {model: "models/<m>", contents}}` (no project) | `{totalTokens}` |
//!
//! Refused, as Google refuses them: a Bearer token the Google fake did not issue, or one it
//! superseded (401 `UNAUTHENTICATED`); a body that is not wrapped (a Gemini API body sent as it
//! is: 400, "Unknown name"); a generation without `model` or `project` (400), or for a project
//! the account does not have (403 `PERMISSION_DENIED`). Directives (`mock:status=…`, …) work as
//! on the Gemini API.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

use super::{Call, GeminiError, Mode, parse, query_param};
use crate::directives::{self, Directives};
use crate::{AppState, ids};

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1internal:generateContent", post(generate))
        .route("/v1internal:streamGenerateContent", post(stream))
        .route("/v1internal:countTokens", post(count))
}

async fn generate(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(&state, &headers, &body, |call, json| {
        let (model, request) = generation(&state, json)?;
        call.generate_json(&model, request, Mode::Once)
    })
    .await
}

async fn stream(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sse = query_param(query.as_deref(), "alt").as_deref() == Some("sse");
    answer(&state, &headers, &body, |call, json| {
        let (model, request) = generation(&state, json)?;
        call.generate_json(&model, request, Mode::Stream { sse })
    })
    .await
}

async fn count(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(&state, &headers, &body, |call, json| {
        let request = wrapped_request(json)?;
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| GeminiError::invalid_argument("request.model is required"))?;
        let model = model.strip_prefix("models/").ok_or_else(|| {
            GeminiError::invalid_argument(format!(
                "request.model must name a model as `models/<id>`, not `{model}`"
            ))
        })?;
        call.count_json(model, request)
    })
    .await
}

/// Gate (directives, Bearer, injected status), parse, then `serve`.
async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    serve: impl FnOnce(&Call<'_>, &Value) -> Result<Response, GeminiError>,
) -> Response {
    let directives = match gate(state, headers, body).await {
        Ok(directives) => directives,
        Err(refusal) => return refusal,
    };
    let call = Call {
        state,
        directives,
        version: "v1internal",
        trace_id: Some(ids::gemini_response_id()),
    };
    parse(body)
        .and_then(|json| serve(&call, &json))
        .unwrap_or_else(IntoResponse::into_response)
}

async fn gate(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Directives, Response> {
    let directives = directives::arrive(&state.faults, headers, body).await;
    crate::oauth_login::google_bearer(&state.oauth, headers).map_err(|refusal| *refusal)?;
    if let Some(status) = directives.status {
        return Err(GeminiError::injected(status, directives.retry_after).into_response());
    }
    Ok(directives)
}

/// The inner request of a wrapped body; a Gemini API body sent unwrapped is refused the way
/// Google refuses unknown fields.
fn wrapped_request(json: &Value) -> Result<&Value, GeminiError> {
    let object = json
        .as_object()
        .ok_or_else(|| GeminiError::invalid_argument("Invalid JSON payload received."))?;
    for unwrapped in ["contents", "generationConfig", "systemInstruction", "tools"] {
        if object.contains_key(unwrapped) {
            return Err(GeminiError::invalid_argument(format!(
                "Invalid JSON payload received. Unknown name \"{unwrapped}\": Cannot find field."
            )));
        }
    }
    match object.get("request") {
        Some(request @ Value::Object(_)) => Ok(request),
        _ => Err(GeminiError::invalid_argument(
            "Invalid JSON payload received. `request` is required and must be an object.",
        )),
    }
}

/// A generation's model and inner request, after checking its project.
fn generation<'j>(state: &AppState, json: &'j Value) -> Result<(String, &'j Value), GeminiError> {
    let request = wrapped_request(json)?;
    let model = json
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| GeminiError::invalid_argument("model is required"))?;
    let project = json
        .get("project")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            GeminiError::invalid_argument(
                "Invalid project resource name: the request names no `project`.",
            )
        })?;
    if !state.oauth.code_assist_project(project) {
        return Err(GeminiError::permission_denied(format!(
            "Permission 'cloudaicompanion.companions.generateChat' denied on resource \
             '//cloudaicompanion.googleapis.com/projects/{project}/locations/global' (or it may not exist)."
        )));
    }
    Ok((model.to_string(), request))
}
