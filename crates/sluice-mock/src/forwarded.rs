//! OpenAI-compatible endpoints a gateway forwards without translating, per their published
//! formats and strictly (an unknown field is the 400 OpenAI answers):
//!
//! - `POST /v1/moderations`: `model`, `input` (string, strings, or text / image_url parts);
//!   `results[]` with `flagged`, `categories`, `category_scores` (a text containing `attack`
//!   is flagged as violence).
//! - `POST /v1/audio/speech` (and Azure's `/openai/deployments/{d}/audio/speech`): `model`, `input` (≤ 4096 characters), `voice`, `instructions`,
//!   `response_format`, `speed`, `stream_format`; binary audio (`audio/mpeg` for mp3),
//!   deterministic bytes.
//! - `POST /v1/rerank` (the Jina / Cohere shape vLLM serves): `model`, `query`, `documents`,
//!   `top_n`, `return_documents`; `results[]` by relevance, `usage.total_tokens`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::errors::OpenAiError;
use crate::openai_gate::preflight;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/moderations", post(moderations))
        .route("/v1/audio/speech", post(speech))
        .route(
            "/openai/deployments/{deployment}/audio/speech",
            post(azure_speech),
        )
        .route("/v1/rerank", post(rerank))
}

/// The body as an object whose every key is one of `allowed`, after the shared checks.
async fn object(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    allowed: &[&str],
) -> Result<Map<String, Value>, OpenAiError> {
    preflight(state, headers, body).await?;
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(OpenAiError::invalid_json());
    };
    if let Some(key) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(OpenAiError::unrecognized_argument(key));
    }
    if let Some(model) = fields.get("model").and_then(Value::as_str)
        && !state.config.serves(model)
    {
        return Err(OpenAiError::model_not_found(model));
    }
    Ok(fields)
}

async fn moderations(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match object(&state, &headers, &body, &["model", "input"]).await {
        Ok(fields) => fields,
        Err(e) => return e.into_response(),
    };
    let texts: Vec<String> = match fields.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .or_else(|| i.get("text").and_then(Value::as_str))
                    .unwrap_or("")
                    .to_string()
            })
            .collect(),
        None => return OpenAiError::missing_parameter("input").into_response(),
        Some(_) => {
            return OpenAiError::invalid_value("input", "Invalid value for 'input'.")
                .into_response();
        }
    };
    let results: Vec<Value> = texts
        .iter()
        .map(|t| {
            let violent = t.to_lowercase().contains("attack");
            let score = if violent { 0.97 } else { 0.0001 };
            json!({
                "flagged": violent,
                "categories": {"harassment": false, "hate": false, "self-harm": false, "sexual": false, "violence": violent},
                "category_scores": {"harassment": 0.0001, "hate": 0.0001, "self-harm": 0.0001, "sexual": 0.0001, "violence": score},
                "category_applied_input_types": {"violence": ["text"]},
            })
        })
        .collect();
    let model = fields
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("omni-moderation-latest");
    Json(json!({"id": format!("modr-{}", crate::ids::request_id()), "model": model, "results": results}))
        .into_response()
}

async fn speech(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let allowed = [
        "model",
        "input",
        "voice",
        "instructions",
        "response_format",
        "speed",
        "stream_format",
    ];
    let fields = match object(&state, &headers, &body, &allowed).await {
        Ok(fields) => fields,
        Err(e) => return e.into_response(),
    };
    let input = match fields.get("input").and_then(Value::as_str) {
        Some(text) if !text.is_empty() && text.chars().count() <= 4096 => text,
        Some(_) => {
            return OpenAiError::invalid_value("input", "'input' must be 1 to 4096 characters.")
                .into_response();
        }
        None => return OpenAiError::missing_parameter("input").into_response(),
    };
    if fields.get("voice").and_then(Value::as_str).is_none() {
        return OpenAiError::missing_parameter("voice").into_response();
    }
    let format = fields
        .get("response_format")
        .and_then(Value::as_str)
        .unwrap_or("mp3");
    let content_type = match format {
        "mp3" => "audio/mpeg",
        "opus" => "audio/ogg",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        _ => {
            return OpenAiError::invalid_value(
                "response_format",
                "Invalid value for 'response_format'.",
            )
            .into_response();
        }
    };
    // Deterministic "audio": a header and a byte per input byte.
    let mut audio = b"ID3\x04\x00sluice-mock-audio".to_vec();
    audio.extend(input.bytes().map(|b| b.rotate_left(3)));
    ([(CONTENT_TYPE, content_type)], audio).into_response()
}

/// Azure OpenAI's speech: the deployment stands for the model.
async fn azure_speech(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(deployment): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers = match crate::openai_chat::azure_gate(&state, query.as_deref(), headers) {
        Ok(headers) => headers,
        Err(refused) => return *refused,
    };
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut fields)) => {
            fields.insert("model".into(), Value::String(deployment));
            Bytes::from(Value::Object(fields).to_string())
        }
        _ => body,
    };
    speech(State(state), headers, body).await
}

async fn rerank(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let allowed = ["model", "query", "documents", "top_n", "return_documents"];
    let fields = match object(&state, &headers, &body, &allowed).await {
        Ok(fields) => fields,
        Err(e) => return e.into_response(),
    };
    let Some(query) = fields.get("query").and_then(Value::as_str) else {
        return OpenAiError::missing_parameter("query").into_response();
    };
    let documents: Vec<String> = match fields.get("documents").and_then(Value::as_array) {
        Some(docs) if !docs.is_empty() => docs
            .iter()
            .map(|d| {
                d.as_str()
                    .or_else(|| d.get("text").and_then(Value::as_str))
                    .unwrap_or("")
                    .to_string()
            })
            .collect(),
        _ => return OpenAiError::missing_parameter("documents").into_response(),
    };
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    let mut scored: Vec<(usize, f64)> = documents
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let d = d.to_lowercase();
            let hits = words.iter().filter(|w| d.contains(w.as_str())).count();
            #[allow(clippy::cast_precision_loss)] // small counts
            let score = hits as f64 / words.len().max(1) as f64;
            (i, score)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let top = fields
        .get("top_n")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(scored.len());
    let with_docs = fields
        .get("return_documents")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let results: Vec<Value> = scored
        .iter()
        .take(top)
        .map(|(i, score)| {
            let mut r = json!({"index": i, "relevance_score": score});
            if with_docs {
                r["document"] = json!({"text": documents[*i]});
            }
            r
        })
        .collect();
    let tokens: usize = std::iter::once(query)
        .chain(documents.iter().map(String::as_str))
        .map(|t| t.split_whitespace().count().max(1))
        .sum();
    Json(json!({
        "id": format!("rerank-{}", crate::ids::request_id()),
        "model": fields.get("model").cloned().unwrap_or(Value::Null),
        "usage": {"total_tokens": tokens},
        "results": results,
    }))
    .into_response()
}
