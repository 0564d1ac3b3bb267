//! Gemini's response shapes (camelCase, fields in the order the API sends them), and how a reply
//! is cut into stream chunks.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::assistant::{self, Answer, Usage};
use crate::ids;
use crate::sse::word_pieces;

/// Context window and output limit advertised for every listed model.
const INPUT_TOKEN_LIMIT: u64 = 1_048_576;
const OUTPUT_TOKEN_LIMIT: u64 = 65_536;

/// One reply in Gemini's terms: an optional thought part, then text or one signed function call.
#[derive(Debug)]
pub(crate) struct Reply {
    response_id: String,
    thought: Option<String>,
    body: Body,
    usage: Usage,
}

#[derive(Debug)]
enum Body {
    Text(String),
    Call {
        name: String,
        args: Map<String, Value>,
        /// Gemini 3 signs every function call it makes.
        signature: String,
    },
}

impl Reply {
    /// Shapes the assistant's answer, with a thought part first when thoughts are included.
    pub(crate) fn new(answer: Answer, usage: Usage, include_thoughts: bool) -> Self {
        let thought = include_thoughts.then(|| assistant::thought(&answer));
        let body = match answer {
            Answer::Text(text) => Body::Text(text),
            Answer::Call(call) => Body::Call {
                name: call.name,
                args: call.arguments,
                signature: ids::signature(),
            },
        };
        Self {
            response_id: ids::gemini_response_id(),
            thought,
            body,
            usage,
        }
    }

    /// The whole reply in one response.
    pub(crate) fn response<'a>(&'a self, model: &'a str) -> GenerateContentResponse<'a> {
        let mut parts = Vec::with_capacity(2);
        if let Some(thought) = &self.thought {
            parts.push(Part::Thought {
                text: thought,
                thought: true,
            });
        }
        parts.push(self.body_part(None));
        self.chunk(model, parts, Some(self.usage.completion), true)
    }

    /// The stream's chunks: the thought (if any), one chunk per word of text (or the whole
    /// function call), the last with `finishReason` and the final usage. Every chunk carries the
    /// usage so far, as the real API's do.
    pub(crate) fn chunks<'a>(&'a self, model: &'a str) -> Vec<GenerateContentResponse<'a>> {
        let mut chunks = Vec::new();
        if let Some(thought) = &self.thought {
            let part = Part::Thought {
                text: thought,
                thought: true,
            };
            chunks.push(self.chunk(model, vec![part], None, false));
        }
        match &self.body {
            Body::Text(text) => {
                let pieces = word_pieces(text);
                let mut words = 0;
                for (i, piece) in pieces.iter().enumerate() {
                    words += u64::from(!piece.trim().is_empty());
                    let last = i + 1 == pieces.len();
                    let part = self.body_part(Some(piece));
                    chunks.push(self.chunk(model, vec![part], Some(words), last));
                }
                if pieces.is_empty() {
                    chunks.push(self.chunk(model, vec![self.body_part(None)], Some(0), true));
                }
            }
            Body::Call { .. } => {
                let part = self.body_part(None);
                chunks.push(self.chunk(model, vec![part], Some(self.usage.completion), true));
            }
        }
        chunks
    }

    /// The text part (with `piece` instead of the whole text), or the function-call part.
    fn body_part<'a>(&'a self, piece: Option<&'a str>) -> Part<'a> {
        match &self.body {
            Body::Text(text) => Part::Text {
                text: piece.unwrap_or(text),
            },
            Body::Call {
                name,
                args,
                signature,
            } => Part::FunctionCall {
                function_call: FunctionCallBody { name, args },
                thought_signature: signature,
            },
        }
    }

    fn chunk<'a>(
        &'a self,
        model: &'a str,
        parts: Vec<Part<'a>>,
        candidates: Option<u64>,
        finished: bool,
    ) -> GenerateContentResponse<'a> {
        let thoughts = self
            .thought
            .as_deref()
            .map(assistant::tokens)
            .filter(|tokens| *tokens > 0);
        let prompt = self.usage.prompt;
        GenerateContentResponse {
            candidates: [Candidate {
                content: Content {
                    parts,
                    role: "model",
                },
                finish_reason: finished.then_some("STOP"),
                index: 0,
            }],
            usage_metadata: UsageMetadata {
                prompt_token_count: prompt,
                candidates_token_count: candidates,
                total_token_count: prompt + candidates.unwrap_or(0) + thoughts.unwrap_or(0),
                cached_content_token_count: Some(self.usage.cached).filter(|cached| *cached > 0),
                prompt_tokens_details: [ModalityTokenCount::text(prompt)],
                thoughts_token_count: thoughts,
            },
            model_version: model,
            response_id: &self.response_id,
        }
    }
}

/// A `GenerateContentResponse` (also each stream chunk).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse<'a> {
    candidates: [Candidate<'a>; 1],
    usage_metadata: UsageMetadata,
    model_version: &'a str,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: Vec<Part<'a>>,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Part<'a> {
    Thought {
        text: &'a str,
        thought: bool,
    },
    Text {
        text: &'a str,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: FunctionCallBody<'a>,
        #[serde(rename = "thoughtSignature")]
        thought_signature: &'a str,
    },
}

#[derive(Serialize)]
struct FunctionCallBody<'a> {
    name: &'a str,
    args: &'a Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u64>,
    total_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached_content_token_count: Option<u64>,
    prompt_tokens_details: [ModalityTokenCount; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    thoughts_token_count: Option<u64>,
}

/// `{"modality":"TEXT","tokenCount":N}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModalityTokenCount {
    modality: &'static str,
    token_count: u64,
}

impl ModalityTokenCount {
    /// Text tokens.
    pub(crate) fn text(token_count: u64) -> Self {
        Self {
            modality: "TEXT",
            token_count,
        }
    }
}

/// `:countTokens`' answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenCount {
    /// The prompt estimate.
    pub(crate) total_tokens: u64,
    /// The same, by modality.
    pub(crate) prompt_tokens_details: [ModalityTokenCount; 1],
}

/// `GET /v1beta/models`.
#[derive(Serialize)]
pub(crate) struct ModelList {
    /// The models.
    pub(crate) models: Vec<Model>,
}

/// One model resource.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Model {
    name: String,
    version: &'static str,
    display_name: String,
    description: &'static str,
    input_token_limit: u64,
    output_token_limit: u64,
    supported_generation_methods: [&'static str; 2],
    temperature: f64,
    top_p: f64,
    top_k: u32,
    max_temperature: f64,
    thinking: bool,
}

impl Model {
    /// The resource for model id `id` (`name` is `models/<id>`).
    pub(crate) fn new(id: &str) -> Self {
        Self {
            name: format!("models/{id}"),
            version: "001",
            display_name: id.to_owned(),
            description: "A fake model served by sluice-mock.",
            input_token_limit: INPUT_TOKEN_LIMIT,
            output_token_limit: OUTPUT_TOKEN_LIMIT,
            supported_generation_methods: ["generateContent", "countTokens"],
            temperature: 1.0,
            top_p: 0.95,
            top_k: 64,
            max_temperature: 2.0,
            thinking: true,
        }
    }
}
