//! Serialized response shapes, with fields in the order OpenAI sends them.

use serde::Serialize;

use super::reply::{Reply, ToolCall, Usage};

/// OpenAI's `system_fingerprint`, fixed.
const FINGERPRINT: &str = "fp_mock";

/// What every response and chunk of one completion shares.
#[derive(Debug)]
pub(crate) struct Meta<'a> {
    /// `chatcmpl-…`.
    pub(crate) id: String,
    /// Unix seconds.
    pub(crate) created: u64,
    /// The requested model.
    pub(crate) model: &'a str,
}

/// A non-stream `chat.completion`.
#[derive(Serialize)]
pub(crate) struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<WireUsage>,
}

impl<'a> ChatCompletion<'a> {
    /// The whole reply in one body.
    pub(crate) fn new(meta: &'a Meta<'a>, reply: &'a Reply, usage: Usage) -> Self {
        let (content, tool_calls) = match reply {
            Reply::Text(text) => (Some(text.as_str()), None),
            Reply::ToolCall(call) => (None, Some([WireToolCall::new(call)])),
        };
        Self {
            id: &meta.id,
            object: "chat.completion",
            created: meta.created,
            model: meta.model,
            system_fingerprint: FINGERPRINT,
            choices: [Choice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content,
                    refusal: None,
                    tool_calls,
                },
                logprobs: None,
                finish_reason: reply.finish_reason(),
            }],
            usage: Some(usage.into()),
        }
    }

    /// Leaves `usage` out, as some OpenAI-compatible servers do.
    pub(crate) fn omit_usage(&mut self) {
        self.usage = None;
    }
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[WireToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

impl<'a> WireToolCall<'a> {
    fn new(call: &'a ToolCall) -> Self {
        Self {
            id: &call.id,
            kind: "function",
            function: FunctionCall {
                name: &call.name,
                arguments: &call.arguments,
            },
        }
    }
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// OpenAI's `usage` object.
#[derive(Serialize)]
pub(crate) struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptTokensDetails,
    completion_tokens_details: CompletionTokensDetails,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
}

impl From<Usage> for WireUsage {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt,
            completion_tokens: usage.completion,
            total_tokens: usage.prompt + usage.completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: usage.cached,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: 0,
            },
        }
    }
}

/// One `chat.completion.chunk`.
#[derive(Serialize)]
pub(crate) struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent unless `include_usage`; then `null` on every chunk but the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<WireUsage>>,
}

impl<'a> Chunk<'a> {
    /// A chunk with the given choices (one, or none for the usage chunk).
    pub(crate) fn new(
        meta: &'a Meta<'a>,
        choices: &'a [ChunkChoice<'a>],
        usage: Option<Option<WireUsage>>,
    ) -> Self {
        Self {
            id: &meta.id,
            object: "chat.completion.chunk",
            created: meta.created,
            model: meta.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage,
        }
    }
}

/// The single choice of a chunk.
#[derive(Serialize)]
pub(crate) struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

impl<'a> ChunkChoice<'a> {
    /// Choice 0 with this delta.
    pub(crate) fn new(delta: Delta<'a>, finish_reason: Option<&'static str>) -> Self {
        Self {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }
    }
}

/// The `delta` of a chunk choice.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Delta<'a> {
    /// First chunk: `{"role":"assistant","content":"","refusal":null}`.
    Role {
        /// Always `assistant`.
        role: &'static str,
        /// Always empty.
        content: &'static str,
        /// Always null.
        refusal: Option<()>,
    },
    /// A piece of text.
    Content {
        /// The piece.
        content: &'a str,
    },
    /// Opens the tool call: id, type, name and empty arguments.
    ToolCallStart {
        /// The one call.
        tool_calls: [ToolCallStart<'a>; 1],
    },
    /// A fragment of the arguments string.
    ToolCallArguments {
        /// The one call.
        tool_calls: [ToolCallFragment<'a>; 1],
    },
    /// `{}`, carried by the finish chunk.
    Empty {},
}

impl Delta<'_> {
    /// The opening delta.
    pub(crate) const ROLE: Self = Delta::Role {
        role: "assistant",
        content: "",
        refusal: None,
    };
}

/// `{"index":0,"id","type":"function","function":{"name","arguments":""}}`.
#[derive(Serialize)]
pub(crate) struct ToolCallStart<'a> {
    index: u32,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

impl<'a> ToolCallStart<'a> {
    /// Opens `call` with empty arguments.
    pub(crate) fn new(call: &'a ToolCall) -> Self {
        Self {
            index: 0,
            id: &call.id,
            kind: "function",
            function: FunctionCall {
                name: &call.name,
                arguments: "",
            },
        }
    }
}

/// `{"index":0,"function":{"arguments":"<fragment>"}}`.
#[derive(Serialize)]
pub(crate) struct ToolCallFragment<'a> {
    index: u32,
    function: ArgumentsFragment<'a>,
}

impl<'a> ToolCallFragment<'a> {
    /// One fragment of the arguments string.
    pub(crate) fn new(arguments: &'a str) -> Self {
        Self {
            index: 0,
            function: ArgumentsFragment { arguments },
        }
    }
}

#[derive(Serialize)]
struct ArgumentsFragment<'a> {
    arguments: &'a str,
}
