//! `GET /v1/models` and `/v1/models/{model}`: one path that three SDKs call. The request's
//! headers say which dialect is asking: `anthropic-version` → Anthropic's shape, a Gemini key
//! (`x-goog-api-key` or `?key=`) → Gemini's, anything else → OpenAI's (as before the other
//! dialects existed). `POST /v1/models/{model}:{method}` is Gemini's, under its `v1` prefix.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::errors::OpenAiError;
use crate::{AppState, anthropic, gemini, openai_chat};

/// Listed when no models are configured.
pub(crate) const DEFAULT: &str = "mock-model";

/// When every listed model was "created" (fixed, so listings are deterministic), Unix seconds.
pub(crate) const CREATED: u64 = 1_700_000_000;

/// [`CREATED`] in RFC 3339, as Anthropic writes dates.
pub(crate) const CREATED_RFC3339: &str = "2023-11-14T22:13:20Z";

/// The shared model routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/models", get(list)).route(
        "/v1/models/{model_action}",
        get(retrieve).post(gemini_action),
    )
}

/// Which SDK is asking.
enum Asker {
    OpenAi,
    Anthropic,
    Gemini,
}

fn asker(headers: &HeaderMap, query: Option<&str>) -> Asker {
    if headers.contains_key(anthropic::VERSION_HEADER) {
        Asker::Anthropic
    } else if gemini::carries_key(headers, query) {
        Asker::Gemini
    } else {
        Asker::OpenAi
    }
}

async fn list(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    match asker(&headers, query.as_deref()) {
        Asker::Anthropic => anthropic::list_models(&state, &headers).await,
        Asker::Gemini => gemini::list_models(&state, &headers, query.as_deref()).await,
        Asker::OpenAi => openai_chat::list_models(&state, &headers).await,
    }
}

async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match asker(&headers, query.as_deref()) {
        Asker::Anthropic => anthropic::get_model(&state, &headers, &model).await,
        Asker::Gemini => gemini::get_model(&state, &headers, query.as_deref(), &model).await,
        // The OpenAI fake has no retrieve-model endpoint.
        Asker::OpenAi => OpenAiError::invalid_url(&method, uri.path()).into_response(),
    }
}

async fn gemini_action(
    State(state): State<Arc<AppState>>,
    Path(model_action): Path<String>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    gemini::act(
        &state,
        &model_action,
        query.as_deref(),
        &uri,
        &headers,
        &body,
    )
    .await
}
