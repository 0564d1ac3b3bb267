//! Embeddings, per each provider's published format, strictly (a field the provider does not
//! take is its 400):
//!
//! - OpenAI `POST /v1/embeddings` (and Azure's `/openai/deployments/{d}/embeddings`):
//!   `model`, `input` (string, strings, token ids, lists of token ids), `encoding_format`
//!   (`float` | `base64`), `dimensions`, `user`; `usage.prompt_tokens`.
//! - Gemini `:embedContent` (`content`, `taskType`, `title`, `outputDimensionality`, `model`)
//!   and `:batchEmbedContents` (`requests[]`, each naming the URL's model); no usage.
//! - Bedrock `amazon.titan-embed-*` (`inputText`, `dimensions` 256/512/1024, `normalize`,
//!   `embeddingTypes`; `inputTextTokenCount`) and `cohere.embed-*` (`texts` ≤ 96,
//!   `input_type` required, `truncate`, `embedding_types`; no usage).
//!
//! Vectors are deterministic: the same text gives the same unit vector, so a test can compare
//! what two paths returned.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::errors::OpenAiError;
use crate::openai_gate::preflight;

/// Vector length when a request does not choose one.
pub(crate) const DEFAULT_DIMENSIONS: usize = 16;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/embeddings", post(openai))
        .route("/openai/deployments/{deployment}/embeddings", post(azure))
}

async fn openai(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    embed_openai(&state, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn azure(
    State(state): State<Arc<AppState>>,
    Path(deployment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request =
        crate::openai_chat::azure_json(&state, deployment, query.as_deref(), headers, body);
    let (headers, body) = match request {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    embed_openai(&state, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn embed_openai(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OpenAiError> {
    preflight(state, headers, body).await?;
    let json: Value = serde_json::from_slice(body).map_err(|_| OpenAiError::invalid_json())?;
    let Value::Object(fields) = json else {
        return Err(OpenAiError::invalid_json());
    };
    for key in fields.keys() {
        if !["model", "input", "encoding_format", "dimensions", "user"].contains(&key.as_str()) {
            return Err(OpenAiError::unrecognized_argument(key));
        }
    }
    let model = match fields.get("model") {
        Some(Value::String(m)) => m.as_str(),
        Some(other) => {
            return Err(OpenAiError::invalid_type(
                "model",
                "a string",
                crate::errors::json_type(other),
            ));
        }
        None => return Err(OpenAiError::missing_parameter("model")),
    };
    let invalid_input = || {
        OpenAiError::invalid_value(
            "input",
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        )
    };
    let token_list = |v: &Value| {
        v.as_array()
            .filter(|ids| !ids.is_empty() && ids.iter().all(Value::is_u64))
            .map(Vec::len)
    };
    // Each input as (text to vectorise, tokens it counts as).
    let inputs: Vec<(String, u64)> = match fields.get("input") {
        None => return Err(OpenAiError::missing_parameter("input")),
        Some(Value::String(s)) if !s.is_empty() => vec![(s.clone(), words(s))],
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= 2048 => {
            if items.iter().all(Value::is_u64) {
                vec![(Value::Array(items.clone()).to_string(), items.len() as u64)]
            } else {
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) if !s.is_empty() => Ok((s.clone(), words(s))),
                        Value::Array(_) => token_list(item)
                            .map(|n| (item.to_string(), n as u64))
                            .ok_or_else(invalid_input),
                        _ => Err(invalid_input()),
                    })
                    .collect::<Result<_, _>>()?
            }
        }
        Some(_) => return Err(invalid_input()),
    };
    let base64 = match fields.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "float" => false,
        Some(Value::String(s)) if s == "base64" => true,
        Some(_) => {
            return Err(OpenAiError::invalid_value(
                "encoding_format",
                "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
            ));
        }
    };
    let dimensions = match fields.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => v
            .as_u64()
            .filter(|d| (1..=3072).contains(d))
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| {
                OpenAiError::invalid_value(
                    "dimensions",
                    "Invalid value for 'dimensions': expected an integer between 1 and 3072.",
                )
            })?,
    };
    if !state.config.serves(model) {
        return Err(OpenAiError::model_not_found(model));
    }
    let tokens: u64 = inputs.iter().map(|(_, n)| n).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, (text, _))| {
            let v = vector(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

/// Gemini's `:embedContent` (`batch: false`) and `:batchEmbedContents`; `Err` is the
/// `INVALID_ARGUMENT` message.
pub(crate) fn gemini(model: &str, body: &Value, batch: bool) -> Result<Value, String> {
    let Value::Object(fields) = body else {
        return Err("Invalid JSON payload received. Expected an object.".into());
    };
    if !batch {
        let dims = gemini_request(fields, None)?;
        let text = gemini_text(fields.get("content"))?;
        return Ok(json!({"embedding": {"values": vector(&text, dims)}}));
    }
    for key in fields.keys() {
        if key != "requests" {
            return Err(unknown_name(key));
        }
    }
    let Some(Value::Array(requests)) = fields.get("requests") else {
        return Err("* BatchEmbedContentsRequest.requests: requests is required".into());
    };
    if requests.is_empty() || requests.len() > 100 {
        return Err(
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch".into(),
        );
    }
    let mut embeddings = Vec::with_capacity(requests.len());
    for request in requests {
        let Value::Object(item) = request else {
            return Err("Invalid JSON payload received. Expected an object.".into());
        };
        let dims = gemini_request(item, Some(model))?;
        let text = gemini_text(item.get("content"))?;
        embeddings.push(json!({"values": vector(&text, dims)}));
    }
    Ok(json!({"embeddings": embeddings}))
}

/// Checks one Gemini embed request's fields; returns its vector length.
fn gemini_request(fields: &Map<String, Value>, batch_model: Option<&str>) -> Result<usize, String> {
    for key in fields.keys() {
        if ![
            "model",
            "content",
            "taskType",
            "title",
            "outputDimensionality",
        ]
        .contains(&key.as_str())
        {
            return Err(unknown_name(key));
        }
    }
    if let Some(model) = batch_model {
        let named = fields.get("model").and_then(Value::as_str).unwrap_or("");
        if named != format!("models/{model}") {
            return Err(format!(
                "* BatchEmbedContentsRequest.requests[].model: Model names in the batch must match the model in the URL (models/{model}), got `{named}`"
            ));
        }
    }
    let task = fields.get("taskType").and_then(Value::as_str);
    if let Some(task) = task
        && ![
            "TASK_TYPE_UNSPECIFIED",
            "RETRIEVAL_QUERY",
            "RETRIEVAL_DOCUMENT",
            "SEMANTIC_SIMILARITY",
            "CLASSIFICATION",
            "CLUSTERING",
            "QUESTION_ANSWERING",
            "FACT_VERIFICATION",
            "CODE_RETRIEVAL_QUERY",
        ]
        .contains(&task)
    {
        return Err(format!(
            "Invalid value at 'task_type' (type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), \"{task}\""
        ));
    }
    if fields.contains_key("title") && task != Some("RETRIEVAL_DOCUMENT") {
        return Err("Title is only applicable when task type is RETRIEVAL_DOCUMENT.".into());
    }
    match fields.get("outputDimensionality") {
        None => Ok(DEFAULT_DIMENSIONS),
        Some(v) => v
            .as_u64()
            .filter(|d| (1..=3072).contains(d))
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| "outputDimensionality must be between 1 and 3072.".into()),
    }
}

fn gemini_text(content: Option<&Value>) -> Result<String, String> {
    let parts = content
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or("* EmbedContentRequest.content: contents is not specified")?;
    let mut text = String::new();
    for part in parts {
        let Some(t) = part.get("text").and_then(Value::as_str) else {
            return Err(
                "* EmbedContentRequest.content.parts: only text parts are supported for this model"
                    .into(),
            );
        };
        text.push_str(t);
    }
    Ok(text)
}

fn unknown_name(key: &str) -> String {
    format!("Invalid JSON payload received. Unknown name \"{key}\": Cannot find field.")
}

/// Bedrock's embedding models; `Err` is the `ValidationException` message.
pub(crate) fn bedrock(model: &str, body: &Value) -> Result<Value, String> {
    let Value::Object(fields) = body else {
        return Err("Malformed input request: #: expected an object".into());
    };
    let extraneous = |allowed: &[&str]| {
        fields
            .keys()
            .find(|k| !allowed.contains(&k.as_str()))
            .map(|k| {
                format!(
                    "Malformed input request: #: extraneous key [{k}] is not permitted, please reformat your input and try again."
                )
            })
    };
    if model.starts_with("cohere.embed") {
        if let Some(e) = extraneous(&[
            "texts",
            "images",
            "input_type",
            "truncate",
            "embedding_types",
            "output_dimension",
        ]) {
            return Err(e);
        }
        let texts = fields
            .get("texts")
            .and_then(Value::as_array)
            .filter(|t| !t.is_empty() && t.len() <= 96 && t.iter().all(Value::is_string))
            .ok_or("Malformed input request: #/texts: expected 1 to 96 strings")?;
        match fields.get("input_type").and_then(Value::as_str) {
            Some("search_document" | "search_query" | "classification" | "clustering") => {}
            _ => {
                return Err("Malformed input request: #: required key [input_type] not found or not one of search_document, search_query, classification, clustering".into());
            }
        }
        let vectors: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| vector(t.as_str().unwrap_or_default(), DEFAULT_DIMENSIONS))
            .collect();
        return Ok(json!({
            "id": crate::ids::request_id(),
            "embeddings": vectors,
            "response_type": "embeddings_floats",
            "texts": texts,
        }));
    }
    if let Some(e) = extraneous(&["inputText", "dimensions", "normalize", "embeddingTypes"]) {
        return Err(e);
    }
    let text = fields
        .get("inputText")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("Malformed input request: #: required key [inputText] not found")?;
    let dims = match fields.get("dimensions") {
        None => 1024,
        Some(d) => match d.as_u64() {
            Some(n @ (256 | 512 | 1024)) => usize::try_from(n).unwrap_or(1024),
            _ => {
                return Err(
                    "Malformed input request: #/dimensions: 256, 512 or 1024 expected".into(),
                );
            }
        },
    };
    let v = vector(text, dims);
    Ok(json!({
        "embedding": v,
        "embeddingsByType": {"float": v},
        "inputTextTokenCount": words(text),
    }))
}

/// Whether a Bedrock model id is an embedding model the fake serves.
pub(crate) fn is_bedrock_embedding(model: &str) -> bool {
    model.starts_with("amazon.titan-embed") || model.starts_with("cohere.embed")
}

/// The mock's token count: one per whitespace-separated word, at least one.
fn words(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

/// A deterministic unit vector for `text`.
pub(crate) fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    // FNV-1a seeds an xorshift generator.
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1;
    let raw: Vec<f64> = (0..dimensions)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            #[allow(clippy::cast_precision_loss)] // a pseudo-random fraction
            let fraction = (state >> 11) as f64 / (1_u64 << 53) as f64;
            fraction * 2.0 - 1.0
        })
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    #[allow(clippy::cast_possible_truncation)] // vectors are 32-bit floats
    raw.iter().map(|x| (x / norm) as f32).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn vectors_are_deterministic_unit_vectors() {
        let a = vector("hello", 8);
        assert_eq!(a, vector("hello", 8));
        assert_ne!(a, vector("hellp", 8));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn gemini_batch_requires_the_url_model() {
        let body =
            json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]});
        assert!(gemini("e", &body, true).unwrap_err().contains("must match"));
        let body =
            json!({"requests": [{"model": "models/e", "content": {"parts": [{"text": "x"}]}}]});
        assert_eq!(
            gemini("e", &body, true).unwrap()["embeddings"][0]["values"]
                .as_array()
                .map(Vec::len),
            Some(DEFAULT_DIMENSIONS)
        );
        let bad = json!({"content": {"parts": [{"text": "x"}]}, "dimensions": 3});
        assert!(
            gemini("e", &bad, false)
                .unwrap_err()
                .contains("Unknown name")
        );
    }

    #[test]
    fn bedrock_shapes_are_strict() {
        assert!(
            bedrock(
                "amazon.titan-embed-text-v2:0",
                &json!({"inputText": "x", "texts": []})
            )
            .is_err()
        );
        let titan = bedrock(
            "amazon.titan-embed-text-v2:0",
            &json!({"inputText": "a b", "dimensions": 256}),
        )
        .unwrap();
        assert_eq!(titan["inputTextTokenCount"], 2);
        assert_eq!(titan["embedding"].as_array().map(Vec::len), Some(256));
        assert!(bedrock("cohere.embed-english-v3", &json!({"texts": ["x"]})).is_err());
        let cohere = bedrock(
            "cohere.embed-english-v3",
            &json!({"texts": ["x", "y"], "input_type": "search_query"}),
        )
        .unwrap();
        assert_eq!(cohere["embeddings"].as_array().map(Vec::len), Some(2));
    }
}
