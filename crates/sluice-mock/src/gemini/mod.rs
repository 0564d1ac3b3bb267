//! Gemini (`generativelanguage`): `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent` (`?alt=sse` → SSE, else one JSON array), `:countTokens`, and
//! `GET /v1beta/models[/{model}]`; the same under `/v1/` (through [`crate::models`], which owns
//! that prefix's shared `/v1/models` paths).
//!
//! Every request goes: directives → `latency_ms` → auth (`x-goog-api-key` or `?key=`) →
//! injected `status` → validation (including Gemini 3's thought-signature check) → model check →
//! reply.

mod code_assist;
mod error;
mod request;
mod wire;

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use crate::directives::{self, Directives};
use crate::{AppState, MockConfig, assistant, sse, stream_body};
use error::GeminiError;
use request::{GenerateRequest, Signatures};
use wire::{ModalityTokenCount, Model, ModelList, Reply, TokenCount};

const KEY_HEADER: &str = "x-goog-api-key";

/// The `/v1beta` endpoints, and Code Assist's `/v1internal` ones ([`code_assist`]).
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1beta/models", get(list))
        .route("/v1beta/models/{model_action}", get(retrieve).post(action))
        .merge(code_assist::routes())
}

/// Whether the request carries a Gemini key (header or query), i.e. comes from a Gemini client.
pub(crate) fn carries_key(headers: &HeaderMap, query: Option<&str>) -> bool {
    headers.contains_key(KEY_HEADER) || query_param(query, "key").is_some()
}

async fn list(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    list_models(&state, &headers, query.as_deref()).await
}

async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    get_model(&state, &headers, query.as_deref(), &model).await
}

async fn action(
    State(state): State<Arc<AppState>>,
    Path(model_action): Path<String>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    act(
        &state,
        &model_action,
        query.as_deref(),
        &uri,
        &headers,
        &body,
    )
    .await
}

/// `GET …/models` in Gemini's shape.
pub(crate) async fn list_models(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response {
    match gate(state, headers, query, &[]).await {
        Err(error) => error.into_response(),
        Ok(_) => {
            let models = state.config.listed_models().into_iter().map(Model::new);
            Json(ModelList {
                models: models.collect(),
            })
            .into_response()
        }
    }
}

/// `GET …/models/{model}` in Gemini's shape.
pub(crate) async fn get_model(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    model: &str,
) -> Response {
    match gate(state, headers, query, &[]).await {
        Err(error) => error.into_response(),
        Ok(_) if !state.config.serves(model) => {
            GeminiError::not_found(format!("models/{model} is not found")).into_response()
        }
        Ok(_) => Json(Model::new(model)).into_response(),
    }
}

/// `POST …/models/{model}:{method}`.
pub(crate) async fn act(
    state: &AppState,
    model_action: &str,
    query: Option<&str>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let version = if uri.path().starts_with("/v1beta/") {
        "v1beta"
    } else {
        "v1"
    };
    let result = match gate(state, headers, query, body).await {
        Err(error) => Err(error),
        Ok(directives) => {
            let call = Call {
                state,
                directives,
                version,
                trace_id: None,
            };
            match model_action.rsplit_once(':') {
                Some((model, "generateContent")) => call.generate(model, body, Mode::Once),
                Some((model, "streamGenerateContent")) => {
                    let sse = query_param(query, "alt").as_deref() == Some("sse");
                    call.generate(model, body, Mode::Stream { sse })
                }
                Some((model, "countTokens")) => call.count(model, body),
                Some((model, action @ ("embedContent" | "batchEmbedContents"))) => {
                    call.embed(model, body, action == "batchEmbedContents")
                }
                _ => Err(GeminiError::not_found(format!(
                    "Method not found: {}",
                    uri.path()
                ))),
            }
        }
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// How a generation is sent back.
#[derive(Clone, Copy)]
enum Mode {
    /// `:generateContent`: one JSON response.
    Once,
    /// `:streamGenerateContent`: SSE with `alt=sse`, else one JSON array sent in pieces.
    Stream { sse: bool },
}

/// One authenticated generation or count request.
struct Call<'s> {
    state: &'s AppState,
    directives: Directives,
    version: &'static str,
    /// Code Assist: every answer is wrapped as `{"response": …, "traceId": …}`.
    trace_id: Option<String>,
}

/// A Code Assist answer: the Gemini answer inside `response`.
#[derive(serde::Serialize)]
struct Wrapped<'a, T> {
    response: &'a T,
    #[serde(rename = "traceId")]
    trace_id: &'a str,
}

/// An answer, plain (Gemini) or wrapped (Code Assist).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Enveloped<'a, T> {
    Plain(&'a T),
    Wrapped(Wrapped<'a, T>),
}

impl Call<'_> {
    fn generate(&self, model: &str, body: &[u8], mode: Mode) -> Result<Response, GeminiError> {
        self.generate_json(model, &parse(body)?, mode)
    }

    /// `answer` as this call sends it: wrapped when the call is Code Assist's.
    fn envelope<'a, T>(&'a self, answer: &'a T) -> Enveloped<'a, T> {
        match &self.trace_id {
            None => Enveloped::Plain(answer),
            Some(trace_id) => Enveloped::Wrapped(Wrapped {
                response: answer,
                trace_id,
            }),
        }
    }

    fn generate_json(
        &self,
        model: &str,
        json: &Value,
        mode: Mode,
    ) -> Result<Response, GeminiError> {
        let request = GenerateRequest::from_json(json, Signatures::Required)?;
        self.check_model(model, "generateContent")?;
        let (answer, usage) = assistant::answer(&request.conversation(), &self.directives);
        let reply = Reply::new(answer, usage, request.include_thoughts());
        let Mode::Stream { sse } = mode else {
            let whole = reply.response(model);
            return Ok(Json(self.envelope(&whole)).into_response());
        };
        let chunks = reply.chunks(model);
        let chunks: Vec<_> = chunks.iter().map(|c| self.envelope(c)).collect();
        let events = if sse {
            chunks
                .iter()
                .map(|chunk| sse::data(chunk, "\r\n\r\n"))
                .collect::<serde_json::Result<Vec<_>>>()
                .and_then(|events| {
                    stream_body::fail_after(events, &self.directives, |_| {
                        let error = serde_json::json!({"error": {
                            "code": 500, "message": stream_body::failure_message(&self.directives),
                            "status": "INTERNAL",
                        }});
                        sse::data(&error, "\r\n\r\n")
                    })
                })
        } else {
            json_array_pieces(&chunks)
        }
        .map_err(GeminiError::internal)?;
        let guard = self.state.recorder.stream_guard();
        let mut response = stream_body::body(events, &self.directives, guard).into_response();
        let content_type = if sse {
            "text/event-stream"
        } else {
            "application/json; charset=UTF-8"
        };
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(response)
    }

    fn count(&self, model: &str, body: &[u8]) -> Result<Response, GeminiError> {
        let json = parse(body)?;
        // Either `{contents}` or `{generateContentRequest: {contents, systemInstruction, …}}`.
        let inner = json
            .get("generateContentRequest")
            .or_else(|| json.get("generate_content_request"))
            .unwrap_or(&json);
        self.count_json(model, inner)
    }

    fn count_json(&self, model: &str, inner: &Value) -> Result<Response, GeminiError> {
        let request = GenerateRequest::from_json(inner, Signatures::Ignored)?;
        self.check_model(model, "countTokens")?;
        let total_tokens = assistant::prompt_tokens(&request.conversation(), &self.directives);
        Ok(Json(TokenCount {
            total_tokens,
            prompt_tokens_details: [ModalityTokenCount::text(total_tokens)],
        })
        .into_response())
    }

    fn embed(&self, model: &str, body: &[u8], batch: bool) -> Result<Response, GeminiError> {
        let json = parse(body)?;
        let method = if batch {
            "batchEmbedContents"
        } else {
            "embedContent"
        };
        self.check_model(model, method)?;
        crate::embeddings::gemini(model, &json, batch)
            .map(|answer| Json(answer).into_response())
            .map_err(GeminiError::invalid_argument)
    }

    fn check_model(&self, model: &str, method: &str) -> Result<(), GeminiError> {
        if self.state.config.serves(model) {
            return Ok(());
        }
        Err(GeminiError::not_found(format!(
            "models/{model} is not found for API version {}, or is not supported for {method}. \
             Call ListModels to see the list of available models and their supported methods.",
            self.version
        )))
    }
}

/// A stream without `alt=sse`: one JSON array, each element its own body chunk.
fn json_array_pieces(chunks: &[impl serde::Serialize]) -> serde_json::Result<Vec<Bytes>> {
    let mut pieces = Vec::with_capacity(chunks.len() + 1);
    for (i, chunk) in chunks.iter().enumerate() {
        let mut piece = if i == 0 {
            b"[".to_vec()
        } else {
            b",\r\n".to_vec()
        };
        serde_json::to_writer(&mut piece, chunk)?;
        pieces.push(Bytes::from(piece));
    }
    pieces.push(Bytes::from_static(b"]"));
    Ok(pieces)
}

fn parse(body: &[u8]) -> Result<Value, GeminiError> {
    serde_json::from_slice(body).map_err(|error| {
        GeminiError::invalid_argument(format!("Invalid JSON payload received. {error}"))
    })
}

/// Directives, latency, authentication, injected status.
async fn gate(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Directives, GeminiError> {
    let directives = directives::arrive(&state.faults, headers, body).await;
    authorize(&state.config, headers, query)?;
    if directives.reject_key {
        return Err(GeminiError::invalid_api_key());
    }
    if state.oauth.refuses(headers) {
        return Err(GeminiError::unauthenticated());
    }
    if let Some(status) = directives.status {
        return Err(GeminiError::injected(status, directives.retry_after));
    }
    Ok(directives)
}

fn authorize(
    config: &MockConfig,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(), GeminiError> {
    if !config.requires_key() {
        return Ok(());
    }
    let key = headers
        .get(KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(Cow::Borrowed)
        .or_else(|| query_param(query, "key"))
        .filter(|key| !key.is_empty())
        .ok_or_else(GeminiError::missing_api_key)?;
    if config.accepts_key(&key) {
        Ok(())
    } else {
        Err(GeminiError::invalid_api_key())
    }
}

/// The (percent-decoded) value of query parameter `name`.
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<Cow<'q, str>> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}

fn percent_decode(value: &str) -> Cow<'_, str> {
    if !value.contains(['%', '+']) {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = value
                    .get(i + 1..i + 3)
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                if let Some(byte) = hex {
                    out.push(byte);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_and_decoded() {
        let query = Some("alt=sse&key=AIza%2Bkey%3D&flag");
        assert_eq!(query_param(query, "alt").as_deref(), Some("sse"));
        assert_eq!(query_param(query, "key").as_deref(), Some("AIza+key="));
        assert_eq!(query_param(query, "flag").as_deref(), Some(""));
        assert_eq!(query_param(query, "missing"), None);
        assert_eq!(query_param(None, "key"), None);
        assert_eq!(percent_decode("a+b%zz"), "a b%zz");
    }
}
