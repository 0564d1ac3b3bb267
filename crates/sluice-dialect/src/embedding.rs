//! Embeddings: one canonical request and response ([`EmbeddingRequest`], [`EmbeddingResponse`]),
//! and per wire shape ([`EmbeddingWire`]) a decoder into them and an encoder from them. A
//! client's request is decoded from its shape and encoded into the upstream's; the answer
//! travels back the same way. No pair of shapes has code of its own.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::error::{ErrorBody, ErrorKind};

/// The most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// One thing to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingInput {
    Text(String),
    /// Token ids (OpenAI's `input: [[1, 2, 3]]`): only OpenAI-shaped upstreams take them.
    Tokens(Vec<u32>),
}

/// How the client wants the vectors written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EncodingFormat {
    /// JSON numbers.
    #[default]
    Float,
    /// Base64 of the little-endian `f32`s (OpenAI's `encoding_format: "base64"`).
    Base64,
}

/// An embedding request in no particular shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddingRequest {
    pub model: String,
    pub inputs: Vec<EmbeddingInput>,
    /// Vector length asked for (`dimensions`, `outputDimensionality`).
    pub dimensions: Option<u32>,
    pub encoding: EncodingFormat,
    /// Gemini's `taskType` (`RETRIEVAL_QUERY`, …); Cohere's `input_type` is derived from it.
    pub task_type: Option<String>,
    /// Gemini's `title` (with `RETRIEVAL_DOCUMENT`).
    pub title: Option<String>,
    /// OpenAI's `user`.
    pub user: Option<String>,
}

impl EmbeddingRequest {
    /// The text of every input, for counting tokens locally (token-id inputs count as their
    /// length, see [`EmbeddingRequest::token_inputs`]).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().filter_map(|i| match i {
            EmbeddingInput::Text(t) => Some(t.as_str()),
            EmbeddingInput::Tokens(_) => None,
        })
    }

    /// How many tokens the token-id inputs hold.
    pub fn token_inputs(&self) -> u64 {
        self.inputs
            .iter()
            .map(|i| match i {
                EmbeddingInput::Tokens(t) => t.len() as u64,
                EmbeddingInput::Text(_) => 0,
            })
            .sum()
    }

    fn all_text(&self, shape: &str) -> Result<Vec<&str>, ErrorBody> {
        self.inputs
            .iter()
            .map(|i| match i {
                EmbeddingInput::Text(t) => Ok(t.as_str()),
                EmbeddingInput::Tokens(_) => Err(invalid(
                    format!(
                        "Token-id input cannot be sent to {shape}: it takes text. Send the text, or use a model served by an OpenAI-compatible provider."
                    ),
                    "input",
                )),
            })
            .collect()
    }
}

/// An embedding answer in no particular shape: one vector per input, in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddingResponse {
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
    /// Input tokens as the upstream reported them; `None` when it reports none (Gemini,
    /// Cohere on Bedrock), so the gateway counts them and marks the count estimated.
    pub input_tokens: Option<u64>,
}

/// The wire shapes embeddings travel in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbeddingWire {
    /// OpenAI's `POST /v1/embeddings` (also Azure OpenAI, DashScope's compatible mode).
    OpenAi,
    /// Gemini's `:embedContent`: one content, one vector.
    GeminiSingle,
    /// Gemini's `:batchEmbedContents`: `requests[]`, `embeddings[]`.
    GeminiBatch,
    /// Amazon Titan text embeddings on Bedrock: one `inputText` per call.
    BedrockTitan,
    /// Cohere embed models on Bedrock: `texts[]`.
    BedrockCohere,
}

impl EmbeddingWire {
    /// The shape a Bedrock embedding model speaks, by its id.
    pub fn for_bedrock_model(model: &str) -> Self {
        if model.contains("cohere.") {
            EmbeddingWire::BedrockCohere
        } else {
            EmbeddingWire::BedrockTitan
        }
    }

    fn name(self) -> &'static str {
        match self {
            EmbeddingWire::OpenAi => "an OpenAI-compatible upstream",
            EmbeddingWire::GeminiSingle | EmbeddingWire::GeminiBatch => "a Gemini upstream",
            EmbeddingWire::BedrockTitan => "an Amazon Titan model",
            EmbeddingWire::BedrockCohere => "a Cohere model on Bedrock",
        }
    }

    /// Client side: reads and validates a request. Gemini's shapes take the model from the
    /// URL (`path_model`).
    pub fn decode_request(
        self,
        body: &[u8],
        path_model: Option<&str>,
    ) -> Result<EmbeddingRequest, ErrorBody> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!("The request body is not valid JSON: {e}"),
            )
        })?;
        let Value::Object(object) = value else {
            return Err(invalid("The request body must be a JSON object.", ""));
        };
        let request = match self {
            EmbeddingWire::OpenAi => decode_openai(&object)?,
            EmbeddingWire::GeminiSingle => {
                let mut request = gemini_options(&object)?;
                request.inputs = vec![EmbeddingInput::Text(gemini_content(
                    object.get("content"),
                    "content",
                )?)];
                request.model = path_model.unwrap_or_default().to_string();
                request
            }
            EmbeddingWire::GeminiBatch => {
                let Some(Value::Array(requests)) = object.get("requests") else {
                    return Err(invalid(
                        "`requests` must be a list of embed requests.",
                        "requests",
                    ));
                };
                if requests.is_empty() {
                    return Err(invalid("`requests` must not be empty.", "requests"));
                }
                let mut request = EmbeddingRequest::default();
                for (i, item) in requests.iter().enumerate() {
                    let Value::Object(item) = item else {
                        return Err(invalid(
                            format!("`requests[{i}]` must be an object."),
                            "requests",
                        ));
                    };
                    if i == 0 {
                        request = gemini_options(item)?;
                    }
                    request.inputs.push(EmbeddingInput::Text(gemini_content(
                        item.get("content"),
                        &format!("requests[{i}].content"),
                    )?));
                }
                request.model = path_model.unwrap_or_default().to_string();
                request
            }
            EmbeddingWire::BedrockTitan | EmbeddingWire::BedrockCohere => {
                return Err(invalid(
                    "Bedrock's embedding shapes are upstream shapes only.",
                    "",
                ));
            }
        };
        if request.model.trim().is_empty() {
            return Err(invalid("`model` is required.", "model"));
        }
        if request.inputs.len() > MAX_INPUTS {
            return Err(invalid(
                format!("At most {MAX_INPUTS} inputs may be embedded in one request."),
                "input",
            ));
        }
        Ok(request)
    }

    /// Upstream side: the body for `request` (vectors are always asked for as floats; the
    /// gateway writes base64 itself).
    pub fn encode_request(self, request: &EmbeddingRequest) -> Result<Value, ErrorBody> {
        match self {
            EmbeddingWire::OpenAi => {
                let input = match request.inputs.as_slice() {
                    [EmbeddingInput::Text(t)] => json!(t),
                    [EmbeddingInput::Tokens(t)] => json!(t),
                    inputs => Value::Array(
                        inputs
                            .iter()
                            .map(|i| match i {
                                EmbeddingInput::Text(t) => json!(t),
                                EmbeddingInput::Tokens(t) => json!(t),
                            })
                            .collect(),
                    ),
                };
                let mut body = Map::new();
                body.insert("model".into(), json!(request.model));
                body.insert("input".into(), input);
                body.insert("encoding_format".into(), json!("float"));
                if let Some(d) = request.dimensions {
                    body.insert("dimensions".into(), json!(d));
                }
                if let Some(user) = &request.user {
                    body.insert("user".into(), json!(user));
                }
                Ok(Value::Object(body))
            }
            EmbeddingWire::GeminiSingle => {
                let texts = request.all_text(self.name())?;
                let [text] = texts.as_slice() else {
                    return Err(invalid(
                        "`:embedContent` embeds exactly one content.",
                        "input",
                    ));
                };
                Ok(Value::Object(gemini_item(request, text, false)))
            }
            EmbeddingWire::GeminiBatch => {
                let texts = request.all_text(self.name())?;
                let requests: Vec<Value> = texts
                    .iter()
                    .map(|t| Value::Object(gemini_item(request, t, true)))
                    .collect();
                Ok(json!({ "requests": requests }))
            }
            EmbeddingWire::BedrockTitan => {
                let texts = request.all_text(self.name())?;
                let [text] = texts.as_slice() else {
                    return Err(invalid(
                        format!(
                            "`{}` embeds one text per request, and this request has {}: send them one at a time.",
                            request.model,
                            texts.len()
                        ),
                        "input",
                    ));
                };
                let mut body = Map::new();
                body.insert("inputText".into(), json!(text));
                if let Some(d) = request.dimensions {
                    body.insert("dimensions".into(), json!(d));
                }
                Ok(Value::Object(body))
            }
            EmbeddingWire::BedrockCohere => {
                let texts = request.all_text(self.name())?;
                let input_type = match request.task_type.as_deref() {
                    Some("RETRIEVAL_QUERY" | "QUESTION_ANSWERING" | "FACT_VERIFICATION") => {
                        "search_query"
                    }
                    Some("CLASSIFICATION") => "classification",
                    Some("CLUSTERING") => "clustering",
                    _ => "search_document",
                };
                let mut body = Map::new();
                body.insert("texts".into(), json!(texts));
                body.insert("input_type".into(), json!(input_type));
                if let Some(d) = request.dimensions {
                    body.insert("output_dimension".into(), json!(d));
                }
                Ok(Value::Object(body))
            }
        }
    }

    /// Upstream side: reads an answer. `inputs` is how many vectors were asked for.
    pub fn decode_response(
        self,
        body: &[u8],
        inputs: usize,
    ) -> Result<EmbeddingResponse, ErrorBody> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| unreadable(format!("the answer is not JSON: {e}")))?;
        let response = match self {
            EmbeddingWire::OpenAi => {
                let data = value
                    .get("data")
                    .and_then(Value::as_array)
                    .ok_or_else(|| unreadable("the answer has no `data` list"))?;
                let mut indexed = Vec::with_capacity(data.len());
                for (i, item) in data.iter().enumerate() {
                    let index = item
                        .get("index")
                        .and_then(Value::as_u64)
                        .map_or(i, |n| usize::try_from(n).unwrap_or(i));
                    let vector = match item.get("embedding") {
                        Some(Value::String(b64)) => from_base64(b64)?,
                        Some(other) => floats(other)?,
                        None => return Err(unreadable("an item has no `embedding`")),
                    };
                    indexed.push((index, vector));
                }
                indexed.sort_by_key(|(i, _)| *i);
                EmbeddingResponse {
                    model: value
                        .get("model")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    vectors: indexed.into_iter().map(|(_, v)| v).collect(),
                    input_tokens: value
                        .pointer("/usage/prompt_tokens")
                        .and_then(Value::as_u64),
                }
            }
            EmbeddingWire::GeminiSingle => EmbeddingResponse {
                vectors: vec![floats(
                    value
                        .pointer("/embedding/values")
                        .ok_or_else(|| unreadable("the answer has no `embedding.values`"))?,
                )?],
                ..Default::default()
            },
            EmbeddingWire::GeminiBatch => {
                let embeddings = value
                    .get("embeddings")
                    .and_then(Value::as_array)
                    .ok_or_else(|| unreadable("the answer has no `embeddings` list"))?;
                EmbeddingResponse {
                    vectors: embeddings
                        .iter()
                        .map(|e| {
                            floats(
                                e.get("values")
                                    .ok_or_else(|| unreadable("an embedding has no `values`"))?,
                            )
                        })
                        .collect::<Result<_, _>>()?,
                    ..Default::default()
                }
            }
            EmbeddingWire::BedrockTitan => EmbeddingResponse {
                vectors: vec![floats(
                    value
                        .get("embedding")
                        .ok_or_else(|| unreadable("the answer has no `embedding`"))?,
                )?],
                input_tokens: value.get("inputTextTokenCount").and_then(Value::as_u64),
                ..Default::default()
            },
            EmbeddingWire::BedrockCohere => {
                // `embeddings` is a list, or by type (`{"float": [...]}`) when types were asked.
                let embeddings = match value.get("embeddings") {
                    Some(Value::Object(by_type)) => by_type.get("float"),
                    other => other,
                }
                .and_then(Value::as_array)
                .ok_or_else(|| unreadable("the answer has no `embeddings` list"))?;
                EmbeddingResponse {
                    vectors: embeddings.iter().map(floats).collect::<Result<_, _>>()?,
                    ..Default::default()
                }
            }
        };
        if response.vectors.len() != inputs {
            return Err(unreadable(format!(
                "{} vectors came back for {inputs} inputs",
                response.vectors.len()
            )));
        }
        Ok(response)
    }

    /// Client side: the answer for `request` (its model name and encoding).
    pub fn encode_response(
        self,
        response: &EmbeddingResponse,
        request: &EmbeddingRequest,
    ) -> Value {
        let values = |v: &[f32]| json!({ "values": v });
        match self {
            EmbeddingWire::GeminiSingle => {
                let first = response.vectors.first().map_or(&[][..], Vec::as_slice);
                json!({ "embedding": values(first) })
            }
            EmbeddingWire::GeminiBatch => {
                let embeddings: Vec<Value> = response.vectors.iter().map(|v| values(v)).collect();
                json!({ "embeddings": embeddings })
            }
            // Bedrock's shapes are never a client's; OpenAI's is the fallback.
            EmbeddingWire::OpenAi | EmbeddingWire::BedrockTitan | EmbeddingWire::BedrockCohere => {
                let data: Vec<Value> = response
                    .vectors
                    .iter()
                    .enumerate()
                    .map(|(index, v)| {
                        let embedding = match request.encoding {
                            EncodingFormat::Float => json!(v),
                            EncodingFormat::Base64 => json!(to_base64(v)),
                        };
                        json!({"object": "embedding", "index": index, "embedding": embedding})
                    })
                    .collect();
                let tokens = response.input_tokens.unwrap_or(0);
                json!({
                    "object": "list",
                    "data": data,
                    "model": request.model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                })
            }
        }
    }
}

/// OpenAI's base64 vector: the little-endian bytes of each `f32`.
pub fn to_base64(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|f| f.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

/// The inverse of [`to_base64`].
pub fn from_base64(text: &str) -> Result<Vec<f32>, ErrorBody> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| unreadable("a base64 embedding is not valid base64"))?;
    if bytes.len() % 4 != 0 {
        return Err(unreadable(
            "a base64 embedding is not a list of 32-bit floats",
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn decode_openai(object: &Map<String, Value>) -> Result<EmbeddingRequest, ErrorBody> {
    let model = match object.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => {
            return Err(invalid(
                "`model` is required and must be a string.",
                "model",
            ));
        }
    };
    let bad_input = || {
        invalid(
            "`input` must be a non-empty string, a list of non-empty strings, a list of token ids, or a list of lists of token ids.",
            "input",
        )
    };
    let token = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    let inputs = match object.get("input") {
        Some(Value::String(s)) if !s.is_empty() => vec![EmbeddingInput::Text(s.clone())],
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_number) {
                let ids = items.iter().map(token).collect::<Option<Vec<_>>>();
                vec![EmbeddingInput::Tokens(ids.ok_or_else(bad_input)?)]
            } else {
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) if !s.is_empty() => Ok(EmbeddingInput::Text(s.clone())),
                        Value::Array(ids) if !ids.is_empty() => ids
                            .iter()
                            .map(token)
                            .collect::<Option<Vec<_>>>()
                            .map(EmbeddingInput::Tokens)
                            .ok_or_else(bad_input),
                        _ => Err(bad_input()),
                    })
                    .collect::<Result<_, _>>()?
            }
        }
        _ => return Err(bad_input()),
    };
    let dimensions = match object.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid("`dimensions` must be a positive integer.", "dimensions"))?,
        ),
    };
    let encoding = match object.get("encoding_format") {
        None | Some(Value::Null) => EncodingFormat::Float,
        Some(Value::String(s)) if s == "float" => EncodingFormat::Float,
        Some(Value::String(s)) if s == "base64" => EncodingFormat::Base64,
        Some(_) => {
            return Err(invalid(
                "`encoding_format` must be `float` or `base64`.",
                "encoding_format",
            ));
        }
    };
    let user = match object.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => Some(u.clone()),
        Some(_) => return Err(invalid("`user` must be a string.", "user")),
    };
    Ok(EmbeddingRequest {
        model,
        inputs,
        dimensions,
        encoding,
        task_type: None,
        title: None,
        user,
    })
}

/// `taskType`, `title`, `outputDimensionality` of one Gemini embed request.
fn gemini_options(object: &Map<String, Value>) -> Result<EmbeddingRequest, ErrorBody> {
    let string = |key: &str| -> Result<Option<String>, ErrorBody> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!("`{key}` must be a string."), key)),
        }
    };
    let dimensions = match object.get("outputDimensionality") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    invalid(
                        "`outputDimensionality` must be a positive integer.",
                        "outputDimensionality",
                    )
                })?,
        ),
    };
    Ok(EmbeddingRequest {
        task_type: string("taskType")?,
        title: string("title")?,
        dimensions,
        ..Default::default()
    })
}

/// The text of a Gemini `Content` (its text parts, joined by newlines).
fn gemini_content(content: Option<&Value>, at: &str) -> Result<String, ErrorBody> {
    let parts = content
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("`{at}.parts` is required."), at))?;
    let mut texts = Vec::with_capacity(parts.len());
    for part in parts {
        match part.get("text").and_then(Value::as_str) {
            Some(text) => texts.push(text),
            None => {
                return Err(invalid(
                    format!("`{at}.parts` may hold only text parts for embedding."),
                    at,
                ));
            }
        }
    }
    let text = texts.join("\n");
    if text.is_empty() {
        return Err(invalid(format!("`{at}` has no text to embed."), at));
    }
    Ok(text)
}

/// One Gemini embed request (`requests[]` item, or the whole `:embedContent` body).
fn gemini_item(request: &EmbeddingRequest, text: &str, with_model: bool) -> Map<String, Value> {
    let mut item = Map::new();
    if with_model {
        let model = request
            .model
            .strip_prefix("models/")
            .unwrap_or(&request.model);
        item.insert("model".into(), json!(format!("models/{model}")));
    }
    item.insert("content".into(), json!({"parts": [{"text": text}]}));
    if let Some(task) = &request.task_type {
        item.insert("taskType".into(), json!(task));
    }
    if let Some(title) = &request.title {
        item.insert("title".into(), json!(title));
    }
    if let Some(d) = request.dimensions {
        item.insert("outputDimensionality".into(), json!(d));
    }
    item
}

fn floats(value: &Value) -> Result<Vec<f32>, ErrorBody> {
    let items = value
        .as_array()
        .ok_or_else(|| unreadable("an embedding is not a list of numbers"))?;
    items
        .iter()
        .map(|n| {
            #[allow(clippy::cast_possible_truncation)] // vectors are 32-bit floats on every wire
            n.as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| unreadable("an embedding is not a list of numbers"))
        })
        .collect()
}

fn invalid(message: impl Into<String>, param: &str) -> ErrorBody {
    let body = ErrorBody::new(ErrorKind::InvalidRequest, message);
    if param.is_empty() {
        body
    } else {
        body.with_param(param)
    }
}

fn unreadable(detail: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorKind::Upstream, detail)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn openai(body: Value) -> Result<EmbeddingRequest, ErrorBody> {
        EmbeddingWire::OpenAi.decode_request(body.to_string().as_bytes(), None)
    }

    #[test]
    fn openai_inputs_of_every_form() {
        let one = openai(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(one.inputs, [EmbeddingInput::Text("hi".into())]);
        let many = openai(json!({"model": "m", "input": ["a", "b"], "dimensions": 8})).unwrap();
        assert_eq!(many.inputs.len(), 2);
        assert_eq!(many.dimensions, Some(8));
        let ids = openai(json!({"model": "m", "input": [1, 2, 3]})).unwrap();
        assert_eq!(ids.inputs, [EmbeddingInput::Tokens(vec![1, 2, 3])]);
        let lists = openai(json!({"model": "m", "input": [[1], [2, 3]]})).unwrap();
        assert_eq!(lists.token_inputs(), 3);
        let b64 = openai(json!({"model": "m", "input": "x", "encoding_format": "base64"})).unwrap();
        assert_eq!(b64.encoding, EncodingFormat::Base64);
        for bad in [
            json!({"model": "m"}),
            json!({"model": "m", "input": ""}),
            json!({"model": "m", "input": []}),
            json!({"model": "m", "input": [1, "a"]}),
            json!({"model": "m", "input": "x", "encoding_format": "int8"}),
            json!({"model": "m", "input": "x", "dimensions": 0}),
            json!({"input": "x"}),
        ] {
            let err = openai(bad.clone()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidRequest, "{bad}");
        }
    }

    #[test]
    fn gemini_batch_to_openai_and_back() {
        let body = json!({"requests": [
            {"model": "models/e", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4, "taskType": "RETRIEVAL_QUERY"},
            {"model": "models/e", "content": {"parts": [{"text": "b"}, {"text": "c"}]}}
        ]});
        let request = EmbeddingWire::GeminiBatch
            .decode_request(body.to_string().as_bytes(), Some("e"))
            .unwrap();
        assert_eq!(request.model, "e");
        assert_eq!(
            request.inputs,
            [
                EmbeddingInput::Text("a".into()),
                EmbeddingInput::Text("b\nc".into())
            ]
        );
        let upstream = EmbeddingWire::OpenAi.encode_request(&request).unwrap();
        assert_eq!(
            upstream,
            json!({"model": "e", "input": ["a", "b\nc"], "encoding_format": "float", "dimensions": 4})
        );
        let answer = json!({"object": "list", "model": "e", "data": [
            {"object": "embedding", "index": 1, "embedding": [0.5, 0.25]},
            {"object": "embedding", "index": 0, "embedding": to_base64(&[1.0, -2.0])}
        ], "usage": {"prompt_tokens": 3, "total_tokens": 3}});
        let response = EmbeddingWire::OpenAi
            .decode_response(answer.to_string().as_bytes(), 2)
            .unwrap();
        assert_eq!(response.input_tokens, Some(3));
        assert_eq!(
            EmbeddingWire::GeminiBatch.encode_response(&response, &request),
            json!({"embeddings": [{"values": [1.0, -2.0]}, {"values": [0.5, 0.25]}]})
        );
    }

    #[test]
    fn openai_to_gemini_with_base64_written_by_the_gateway() {
        let request =
            openai(json!({"model": "g", "input": ["x", "y"], "encoding_format": "base64"}))
                .unwrap();
        let upstream = EmbeddingWire::GeminiBatch.encode_request(&request).unwrap();
        assert_eq!(upstream["requests"][1]["model"], "models/g");
        assert_eq!(upstream["requests"][1]["content"]["parts"][0]["text"], "y");
        let answer = json!({"embeddings": [{"values": [0.1]}, {"values": [0.2]}]});
        let response = EmbeddingWire::GeminiBatch
            .decode_response(answer.to_string().as_bytes(), 2)
            .unwrap();
        assert_eq!(response.input_tokens, None);
        let client = EmbeddingWire::OpenAi.encode_response(&response, &request);
        let b64 = client["data"][1]["embedding"].as_str().unwrap();
        assert_eq!(from_base64(b64).unwrap(), [0.2_f32]);
        assert_eq!(client["model"], "g");
    }

    #[test]
    fn bedrock_shapes() {
        let one = openai(
            json!({"model": "amazon.titan-embed-text-v2:0", "input": "x", "dimensions": 256}),
        )
        .unwrap();
        assert_eq!(
            EmbeddingWire::BedrockTitan.encode_request(&one).unwrap(),
            json!({"inputText": "x", "dimensions": 256})
        );
        let two =
            openai(json!({"model": "amazon.titan-embed-text-v2:0", "input": ["x", "y"]})).unwrap();
        assert!(EmbeddingWire::BedrockTitan.encode_request(&two).is_err());
        assert_eq!(
            EmbeddingWire::BedrockCohere.encode_request(&two).unwrap(),
            json!({"texts": ["x", "y"], "input_type": "search_document"})
        );
        let titan = EmbeddingWire::BedrockTitan
            .decode_response(br#"{"embedding": [0.5], "inputTextTokenCount": 2}"#, 1)
            .unwrap();
        assert_eq!(titan.input_tokens, Some(2));
        let cohere = EmbeddingWire::BedrockCohere
            .decode_response(br#"{"id": "1", "embeddings": {"float": [[1], [2]]}, "response_type": "embeddings_by_type"}"#, 2)
            .unwrap();
        assert_eq!(cohere.vectors, [vec![1.0], vec![2.0]]);
        let tokens = openai(json!({"model": "cohere.embed-english-v3", "input": [1, 2]})).unwrap();
        assert!(
            EmbeddingWire::BedrockCohere
                .encode_request(&tokens)
                .is_err()
        );
    }

    #[test]
    fn a_short_answer_is_refused() {
        let err = EmbeddingWire::GeminiBatch
            .decode_response(br#"{"embeddings": [{"values": [1]}]}"#, 2)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Upstream);
    }
}
