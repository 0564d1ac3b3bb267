//! Anthropic's response shapes, fields in the order the API sends them.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::assistant::{self, Answer, Usage};
use crate::ids;

/// Context window and `max_tokens` ceiling advertised for every listed model.
const MAX_INPUT_TOKENS: u64 = 200_000;
const MAX_OUTPUT_TOKENS: u64 = 64_000;

/// One reply in Anthropic's terms: the optional thinking block, then text or one `tool_use`.
#[derive(Debug)]
pub(crate) struct Reply {
    /// `msg_01…`.
    pub(crate) id: String,
    /// The thinking block, when thinking is on.
    pub(crate) thinking: Option<Thinking>,
    /// What follows the thinking.
    pub(crate) body: Body,
    usage: Usage,
    thinking_tokens: u64,
}

/// A thinking block's text and signature.
#[derive(Debug)]
pub(crate) struct Thinking {
    /// The visible reasoning.
    pub(crate) text: String,
    /// Opaque, base64; clients must send it back with the block.
    pub(crate) signature: String,
}

/// The main content block.
#[derive(Debug)]
pub(crate) enum Body {
    /// A `text` block; `stop_reason: "end_turn"`.
    Text(String),
    /// A `tool_use` block; `stop_reason: "tool_use"`.
    ToolUse {
        /// `toolu_01…`.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments object.
        input: Map<String, Value>,
    },
}

impl Reply {
    /// Shapes the assistant's answer, with a thinking block first when `thinking` is on.
    pub(crate) fn new(answer: Answer, usage: Usage, thinking: bool) -> Self {
        let thinking = thinking.then(|| Thinking {
            text: assistant::thought(&answer),
            signature: ids::signature(),
        });
        let thinking_tokens = thinking
            .as_ref()
            .map_or(0, |thinking| assistant::tokens(&thinking.text));
        let body = match answer {
            Answer::Text(text) => Body::Text(text),
            Answer::Call(call) => Body::ToolUse {
                id: ids::anthropic_tool_use_id(),
                name: call.name,
                input: call.arguments,
            },
        };
        Self {
            id: ids::anthropic_message_id(),
            thinking,
            body,
            usage,
            thinking_tokens,
        }
    }

    /// `end_turn` or `tool_use`.
    pub(crate) fn stop_reason(&self) -> &'static str {
        match self.body {
            Body::Text(_) => "end_turn",
            Body::ToolUse { .. } => "tool_use",
        }
    }

    /// Output tokens, thinking included (Anthropic bills thinking as output).
    pub(crate) fn output_tokens(&self) -> u64 {
        self.usage.completion + self.thinking_tokens
    }

    /// The complete message.
    pub(crate) fn message<'a>(&'a self, model: &'a str) -> Message<'a> {
        let mut content = Vec::with_capacity(2);
        if let Some(thinking) = &self.thinking {
            content.push(Block::Thinking {
                thinking: &thinking.text,
                signature: &thinking.signature,
            });
        }
        content.push(match &self.body {
            Body::Text(text) => Block::Text { text },
            Body::ToolUse { id, name, input } => Block::ToolUse { id, name, input },
        });
        Message {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model,
            content,
            stop_reason: Some(self.stop_reason()),
            stop_sequence: None,
            usage: self.usage(self.output_tokens()),
        }
    }

    /// The message as `message_start` carries it: no content, no stop reason, one output token.
    pub(crate) fn started<'a>(&'a self, model: &'a str) -> Message<'a> {
        Message {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: self.usage(1),
        }
    }

    /// The cumulative usage `message_delta` carries.
    pub(crate) fn final_usage(&self) -> DeltaUsage {
        let usage = self.usage(self.output_tokens());
        DeltaUsage {
            input_tokens: usage.input_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            output_tokens: usage.output_tokens,
        }
    }

    fn usage(&self, output_tokens: u64) -> WireUsage {
        WireUsage {
            // Anthropic's input_tokens exclude cache reads; the three add up to the prompt.
            input_tokens: self.usage.prompt - self.usage.cached,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: self.usage.cached,
            cache_creation: CacheCreation {
                ephemeral_5m_input_tokens: 0,
                ephemeral_1h_input_tokens: 0,
            },
            output_tokens,
            service_tier: "standard",
        }
    }
}

/// A `message` object.
#[derive(Serialize)]
pub(crate) struct Message<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<()>,
    usage: WireUsage,
}

/// A content block.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    /// `{"type":"thinking","thinking","signature"}`.
    Thinking {
        /// The reasoning text.
        thinking: &'a str,
        /// Its signature.
        signature: &'a str,
    },
    /// `{"type":"text","text"}`.
    Text {
        /// The text.
        text: &'a str,
    },
    /// `{"type":"tool_use","id","name","input"}`.
    ToolUse {
        /// `toolu_…`.
        id: &'a str,
        /// Tool name.
        name: &'a str,
        /// Arguments object.
        input: &'a Map<String, Value>,
    },
}

#[derive(Serialize)]
struct WireUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: CacheCreation,
    output_tokens: u64,
    service_tier: &'static str,
}

#[derive(Serialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

/// `message_delta`'s cumulative usage.
#[derive(Serialize)]
pub(crate) struct DeltaUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

/// `POST /v1/messages/count_tokens`'s answer.
#[derive(Serialize)]
pub(crate) struct TokenCount {
    /// The prompt estimate.
    pub(crate) input_tokens: u64,
}

/// `GET /v1/models`.
#[derive(Serialize)]
pub(crate) struct ModelList<'a> {
    /// The models.
    pub(crate) data: Vec<Model<'a>>,
    /// Always false: one page.
    pub(crate) has_more: bool,
    /// First id listed.
    pub(crate) first_id: Option<&'a str>,
    /// Last id listed.
    pub(crate) last_id: Option<&'a str>,
}

/// One model object.
#[derive(Serialize)]
pub(crate) struct Model<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    display_name: String,
    created_at: &'static str,
    lifecycle: &'static str,
    deprecated_at: Option<()>,
    retires_at: Option<()>,
    max_input_tokens: u64,
    max_tokens: u64,
}

impl<'a> Model<'a> {
    /// `claude-sonnet-4-5` → display name `Claude Sonnet 4 5`.
    pub(crate) fn new(id: &'a str) -> Self {
        let display_name = id
            .split(['-', '_'])
            .filter(|word| !word.is_empty())
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_uppercase().chain(chars).collect::<String>()
                })
            })
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            kind: "model",
            id,
            display_name,
            created_at: crate::models::CREATED_RFC3339,
            lifecycle: "active",
            deprecated_at: None,
            retires_at: None,
            max_input_tokens: MAX_INPUT_TOKENS,
            max_tokens: MAX_OUTPUT_TOKENS,
        }
    }
}
