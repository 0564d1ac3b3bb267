//! The Responses API's response object and output items, with every field openai-python's
//! `Response` model reads.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Value, json};

use super::request::ResponsesRequest;
use crate::assistant::{self, Answer, Usage};
use crate::ids;

/// One reply in Responses' terms: an optional reasoning item, then a message or a function call.
#[derive(Debug)]
pub(crate) struct Reply {
    /// `resp_…`.
    pub(crate) id: String,
    created_at: u64,
    /// The reasoning item, when a summary was asked for.
    pub(crate) reasoning: Option<Reasoning>,
    /// The main output item.
    pub(crate) body: Body,
    usage: Usage,
    reasoning_tokens: u64,
}

/// A reasoning item.
#[derive(Debug)]
pub(crate) struct Reasoning {
    /// `rs_…`.
    pub(crate) id: String,
    /// The summary text.
    pub(crate) summary: String,
    encrypted_content: Option<String>,
}

/// The main output item.
#[derive(Debug)]
pub(crate) enum Body {
    /// A `message` with one `output_text` part.
    Message {
        /// `msg_…`.
        id: String,
        /// The text.
        text: String,
    },
    /// A `function_call`.
    Call {
        /// `fc_…`.
        id: String,
        /// `call_…`, what `function_call_output` answers.
        call_id: String,
        /// Function name.
        name: String,
        /// Arguments, serialized.
        arguments: String,
    },
}

/// How far an item has got: just opened in a stream, or complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// `response.output_item.added`: no content yet, `in_progress`.
    Added,
    /// Complete.
    Done,
}

/// The response's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// `response.created` / `response.in_progress`: no output, no usage yet.
    InProgress,
    /// Complete.
    Completed,
    /// `response.failed` mid-stream (`mock:fail_after`): no output, an `error`.
    Failed,
}

impl Reply {
    /// Shapes the assistant's answer, with a reasoning item first when a summary is asked for.
    pub(crate) fn new(answer: Answer, usage: Usage, summary: bool, encrypted: bool) -> Self {
        let reasoning = summary.then(|| Reasoning {
            id: ids::responses_id("rs"),
            summary: assistant::thought(&answer),
            encrypted_content: encrypted.then(ids::signature),
        });
        let reasoning_tokens = reasoning
            .as_ref()
            .map_or(0, |reasoning| assistant::tokens(&reasoning.summary));
        let body = match answer {
            Answer::Text(text) => Body::Message {
                id: ids::responses_id("msg"),
                text,
            },
            Answer::Call(call) => Body::Call {
                id: ids::responses_id("fc"),
                call_id: ids::tool_call_id(),
                arguments: call.arguments_json(),
                name: call.name,
            },
        };
        Self {
            id: ids::responses_id("resp"),
            created_at: ids::unix_now(),
            reasoning,
            body,
            usage,
            reasoning_tokens,
        }
    }

    /// The reasoning item at `stage`.
    pub(crate) fn reasoning_item(&self, stage: Stage) -> Option<OutputItem<'_>> {
        let reasoning = self.reasoning.as_ref()?;
        let summary = match stage {
            Stage::Added => Vec::new(),
            Stage::Done => vec![SummaryText::new(&reasoning.summary)],
        };
        Some(OutputItem::Reasoning {
            id: &reasoning.id,
            summary,
            encrypted_content: reasoning.encrypted_content.as_deref(),
        })
    }

    /// The message or function-call item at `stage`.
    pub(crate) fn body_item(&self, stage: Stage) -> OutputItem<'_> {
        let status = match stage {
            Stage::Added => "in_progress",
            Stage::Done => "completed",
        };
        match &self.body {
            Body::Message { id, text } => OutputItem::Message {
                id,
                status,
                role: "assistant",
                content: match stage {
                    Stage::Added => Vec::new(),
                    Stage::Done => vec![OutputText::new(text)],
                },
            },
            Body::Call {
                id,
                call_id,
                name,
                arguments,
            } => OutputItem::FunctionCall {
                id,
                call_id,
                name,
                arguments: match stage {
                    Stage::Added => "",
                    Stage::Done => arguments,
                },
                status,
            },
        }
    }

    /// The response object at `status`.
    pub(crate) fn response<'a>(
        &'a self,
        request: &ResponsesRequest<'a>,
        settings: &'a Settings<'a>,
        status: Status,
    ) -> ResponseObject<'a> {
        let (output, usage, completed_at) = match status {
            Status::InProgress | Status::Failed => (Vec::new(), None, None),
            Status::Completed => {
                let mut output: Vec<OutputItem<'_>> =
                    self.reasoning_item(Stage::Done).into_iter().collect();
                output.push(self.body_item(Stage::Done));
                (output, Some(self.wire_usage()), Some(ids::unix_now()))
            }
        };
        ResponseObject {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status: match status {
                Status::InProgress => "in_progress",
                Status::Completed => "completed",
                Status::Failed => "failed",
            },
            background: false,
            completed_at,
            error: matches!(status, Status::Failed).then_some(ResponseError {
                code: "server_error",
                message: crate::stream_body::FAILURE_MESSAGE,
            }),
            incomplete_details: None,
            model: request.model,
            output,
            usage,
            settings,
        }
    }

    fn wire_usage(&self) -> WireUsage {
        let output_tokens = self.usage.completion + self.reasoning_tokens;
        WireUsage {
            input_tokens: self.usage.prompt,
            input_tokens_details: InputTokensDetails {
                cache_write_tokens: 0,
                cached_tokens: self.usage.cached,
            },
            output_tokens,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: self.reasoning_tokens,
            },
            total_tokens: self.usage.prompt + output_tokens,
        }
    }
}

/// The request parameters a response echoes back, defaults filled in as OpenAI fills them.
#[derive(Serialize)]
pub(crate) struct Settings<'a> {
    instructions: Option<&'a Value>,
    max_output_tokens: Option<&'a Value>,
    max_tool_calls: Option<&'a Value>,
    parallel_tool_calls: Cow<'a, Value>,
    previous_response_id: Option<()>,
    prompt_cache_key: Option<&'a Value>,
    reasoning: ReasoningSettings<'a>,
    safety_identifier: Option<&'a Value>,
    service_tier: &'static str,
    store: Cow<'a, Value>,
    temperature: Cow<'a, Value>,
    text: Cow<'a, Value>,
    tool_choice: Cow<'a, Value>,
    tools: Cow<'a, Value>,
    top_logprobs: Cow<'a, Value>,
    top_p: Cow<'a, Value>,
    truncation: Cow<'a, Value>,
    user: Option<&'a Value>,
    metadata: Cow<'a, Value>,
}

#[derive(Serialize)]
struct ReasoningSettings<'a> {
    effort: Option<&'a Value>,
    summary: Option<&'a Value>,
}

impl<'a> Settings<'a> {
    /// What `request` asked for, with defaults.
    pub(crate) fn new(request: &ResponsesRequest<'a>) -> Self {
        let or = |name: &str, default: Value| {
            request
                .field(name)
                .map_or(Cow::Owned(default), Cow::Borrowed)
        };
        let reasoning = request.field("reasoning");
        Self {
            instructions: request.field("instructions"),
            max_output_tokens: request.field("max_output_tokens"),
            max_tool_calls: request.field("max_tool_calls"),
            parallel_tool_calls: or("parallel_tool_calls", json!(true)),
            previous_response_id: None,
            prompt_cache_key: request.field("prompt_cache_key"),
            reasoning: ReasoningSettings {
                effort: reasoning
                    .and_then(|r| r.get("effort"))
                    .filter(|v| !v.is_null()),
                summary: reasoning
                    .and_then(|r| r.get("summary"))
                    .filter(|v| !v.is_null()),
            },
            safety_identifier: request.field("safety_identifier"),
            service_tier: "default",
            store: or("store", json!(true)),
            temperature: or("temperature", json!(1.0)),
            text: or(
                "text",
                json!({"format": {"type": "text"}, "verbosity": "medium"}),
            ),
            tool_choice: or("tool_choice", json!("auto")),
            tools: or("tools", json!([])),
            top_logprobs: or("top_logprobs", json!(0)),
            top_p: or("top_p", json!(1.0)),
            truncation: or("truncation", json!("disabled")),
            user: request.field("user"),
            metadata: or("metadata", json!({})),
        }
    }
}

/// A failed response's `error`.
#[derive(Serialize)]
pub(crate) struct ResponseError {
    code: &'static str,
    message: &'static str,
}

/// A `response` object.
#[derive(Serialize)]
pub(crate) struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    background: bool,
    completed_at: Option<u64>,
    error: Option<ResponseError>,
    incomplete_details: Option<()>,
    model: &'a str,
    output: Vec<OutputItem<'a>>,
    usage: Option<WireUsage>,
    #[serde(flatten)]
    settings: &'a Settings<'a>,
}

/// An output item.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputItem<'a> {
    /// `{"type":"reasoning","id","summary",["encrypted_content"]}`.
    Reasoning {
        /// `rs_…`.
        id: &'a str,
        /// Summary parts.
        summary: Vec<SummaryText<'a>>,
        /// Present when `include` asked for it.
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<&'a str>,
    },
    /// `{"type":"message","id","status","role","content"}`.
    Message {
        /// `msg_…`.
        id: &'a str,
        /// `in_progress` or `completed`.
        status: &'static str,
        /// Always `assistant`.
        role: &'static str,
        /// Output text parts.
        content: Vec<OutputText<'a>>,
    },
    /// `{"type":"function_call","id","call_id","name","arguments","status"}`.
    FunctionCall {
        /// `fc_…`.
        id: &'a str,
        /// `call_…`.
        call_id: &'a str,
        /// Function name.
        name: &'a str,
        /// Serialized arguments.
        arguments: &'a str,
        /// `in_progress` or `completed`.
        status: &'static str,
    },
}

/// `{"type":"summary_text","text"}`.
#[derive(Serialize)]
pub(crate) struct SummaryText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> SummaryText<'a> {
    /// A summary part.
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            kind: "summary_text",
            text,
        }
    }
}

/// `{"type":"output_text","annotations":[],"logprobs":[],"text"}`.
#[derive(Serialize)]
pub(crate) struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    annotations: [(); 0],
    logprobs: [(); 0],
    text: &'a str,
}

impl<'a> OutputText<'a> {
    /// A text part.
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            kind: "output_text",
            annotations: [],
            logprobs: [],
            text,
        }
    }
}

#[derive(Serialize)]
struct WireUsage {
    input_tokens: u64,
    input_tokens_details: InputTokensDetails,
    output_tokens: u64,
    output_tokens_details: OutputTokensDetails,
    total_tokens: u64,
}

#[derive(Serialize)]
struct InputTokensDetails {
    cache_write_tokens: u64,
    cached_tokens: u64,
}

#[derive(Serialize)]
struct OutputTokensDetails {
    reasoning_tokens: u64,
}
