//! Streams: an upstream's `chat.completion.chunk` events → canonical stream events, and
//! canonical stream events → the chunks an OpenAI client reads.

use serde::Serialize;
use serde_json::Value;

use super::passthrough::stream_error_event;
use super::wire::{
    WireUsage, completion_id, finish_reason, finished, malformed, upstream_error, usage_from_json,
};
use crate::canonical::{
    BlockStart, Delta, StopReason, StreamEvent, extract_thought_signature, merge_usage,
    mint_tool_id,
};
use crate::error::{ErrorBody, ErrorKind};
use crate::openai_common::client_tool_id;
use crate::sse::SseEvent;
use crate::usage::TokenUsage;

/// Upstream side: Chat Completions chunks → canonical events. Chunks carry no blocks, so the
/// decoder opens one whenever the kind of content changes (reasoning, text, each tool call) and
/// closes it when the next opens or the choice finishes. Only choice 0 is read.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    id: String,
    /// The block receiving deltas now.
    open: Option<OpenBlock>,
    /// The canonical index the next block gets.
    next_index: usize,
    /// OpenAI's tool-call index → the canonical block index of that call.
    tool_blocks: Vec<(u64, usize)>,
    /// A `refusal` streamed (OpenAI then finishes with a plain `stop`).
    refused: bool,
    /// A `finish_reason` arrived.
    finished: bool,
    /// `MessageStop` or `Error` went out; nothing follows them.
    ended: bool,
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    index: usize,
    kind: ContentKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentKind {
    Text,
    Thinking,
    /// A tool call, by OpenAI's tool-call index.
    ToolCall(u64),
}

impl StreamDecoder {
    /// The canonical events for one SSE event.
    pub fn push(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.ended || !event.has_data() {
            return out;
        }
        let data = event.data.trim_ascii();
        if data == b"[DONE]" {
            self.close(&mut out);
            out.push(StreamEvent::MessageStop);
            self.ended = true;
            return out;
        }
        let chunk: Value = match serde_json::from_slice(data) {
            Ok(chunk) => chunk,
            Err(e) => return self.fail(malformed("stream chunk", e)),
        };
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            return self.fail(upstream_error(data, error));
        }
        if !self.started {
            self.started = true;
            self.id = string_at(&chunk, "id").to_string();
            out.push(StreamEvent::MessageStart {
                id: self.id.clone(),
                model: string_at(&chunk, "model").to_string(),
                usage: None,
            });
        }
        let mut usage = chunk
            .get("usage")
            .filter(|u| !u.is_null())
            .map(usage_from_json);
        let choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for choice in choices
            .iter()
            .filter(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            if let Some(delta) = choice.get("delta") {
                self.delta(delta, &mut out);
            }
            let reason = choice.get("finish_reason").and_then(Value::as_str);
            if let (Some(reason), false) = (reason, self.finished) {
                self.close(&mut out);
                self.finished = true;
                out.push(StreamEvent::MessageDelta {
                    stop_reason: Some(finished(reason, self.refused)),
                    // Some servers (DeepSeek) put the usage on the finishing chunk.
                    usage: usage.take(),
                });
            }
        }
        if let Some(usage) = usage {
            out.push(StreamEvent::Usage { usage });
        }
        out
    }

    /// At end of stream. A stream that finished but never sent `[DONE]` is closed; one that
    /// stopped before its `finish_reason` was cut short, which the client must hear about.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        if !self.finished {
            return self.fail(ErrorBody::new(
                ErrorKind::Upstream,
                "The upstream stream ended before the answer was complete.",
            ));
        }
        self.close(&mut out);
        out.push(StreamEvent::MessageStop);
        self.ended = true;
        out
    }

    fn delta(&mut self, delta: &Value, out: &mut Vec<StreamEvent>) {
        let text = |key: &str| {
            delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        if let Some(t) = text("reasoning_content").or_else(|| text("reasoning")) {
            let index = self.ensure(ContentKind::Thinking, BlockStart::Thinking, out);
            out.push(StreamEvent::Delta {
                index,
                delta: Delta::Thinking(t.to_string()),
            });
        }
        // The first chunk's `content: ""` opens nothing; a refusal streams as text.
        self.refused |= text("refusal").is_some();
        for t in [text("content"), text("refusal")].into_iter().flatten() {
            let index = self.ensure(ContentKind::Text, BlockStart::Text, out);
            out.push(StreamEvent::Delta {
                index,
                delta: Delta::Text(t.to_string()),
            });
        }
        let calls = delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (position, call) in calls.iter().enumerate() {
            // Servers that send whole calls in one chunk sometimes leave out `index`.
            let key = call
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64);
            let known = self.tool_blocks.iter().find(|(k, _)| *k == key);
            // Arguments of an earlier call arriving after a later one started go to the
            // earlier call's (closed) block; OpenAI itself never interleaves.
            let index = match known {
                Some(&(_, index)) => index,
                None => {
                    let raw_id = string_at(call, "id");
                    let (id, thought_signature) = if raw_id.is_empty() {
                        (mint_tool_id(&self.id, self.tool_blocks.len()), None)
                    } else {
                        extract_thought_signature(raw_id)
                    };
                    let name = call
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let index = self.open_block(
                        ContentKind::ToolCall(key),
                        BlockStart::ToolCall {
                            id,
                            name,
                            thought_signature,
                        },
                        out,
                    );
                    self.tool_blocks.push((key, index));
                    index
                }
            };
            let arguments = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty());
            if let Some(arguments) = arguments {
                out.push(StreamEvent::Delta {
                    index,
                    delta: Delta::ToolArguments(arguments.to_string()),
                });
            }
        }
    }

    /// The open block of this kind, or a new one.
    fn ensure(
        &mut self,
        kind: ContentKind,
        start: BlockStart,
        out: &mut Vec<StreamEvent>,
    ) -> usize {
        match self.open {
            Some(open) if open.kind == kind => open.index,
            _ => self.open_block(kind, start, out),
        }
    }

    fn open_block(
        &mut self,
        kind: ContentKind,
        start: BlockStart,
        out: &mut Vec<StreamEvent>,
    ) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(StreamEvent::BlockStart {
            index,
            block: start,
        });
        self.open = Some(OpenBlock { index, kind });
        index
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(open) = self.open.take() {
            out.push(StreamEvent::BlockStop { index: open.index });
        }
    }

    fn fail(&mut self, error: ErrorBody) -> Vec<StreamEvent> {
        self.ended = true;
        vec![StreamEvent::Error { error }]
    }
}

fn string_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// How the client-side stream is rendered.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// The model name to show the client (the one it asked for); empty: the stream's own.
    pub model: String,
    /// The client asked for `stream_options.include_usage`.
    pub include_usage: bool,
    /// Unix seconds for `created`.
    pub created: u64,
}

/// Client side: canonical events → `chat.completion.chunk` SSE bytes.
#[derive(Debug)]
pub struct StreamEncoder {
    options: EncodeOptions,
    id: String,
    model: String,
    /// The role chunk went out.
    started: bool,
    /// The chunk with the `finish_reason` went out.
    finished: bool,
    /// `[DONE]` or an error went out; nothing follows them.
    ended: bool,
    /// Canonical block index → what it carries.
    blocks: Vec<(usize, BlockKind)>,
    /// Tool calls so far; OpenAI numbers them 0, 1, 2… whatever the block indices.
    tool_calls: usize,
    usage: TokenUsage,
}

#[derive(Debug, Clone, Copy)]
enum BlockKind {
    Text,
    Thinking,
    /// A tool call, by its OpenAI index.
    ToolCall(usize),
    /// Redacted thinking: nothing a Chat client can read.
    Hidden,
}

impl StreamEncoder {
    /// An encoder for one response stream.
    pub fn new(options: EncodeOptions) -> Self {
        StreamEncoder {
            model: options.model.clone(),
            options,
            id: completion_id(""),
            started: false,
            finished: false,
            ended: false,
            blocks: Vec::new(),
            tool_calls: 0,
            usage: TokenUsage::default(),
        }
    }

    /// Appends the SSE bytes for one canonical event.
    pub fn push(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::MessageStart { id, model, usage } => {
                if !self.started {
                    self.id = completion_id(id);
                    if self.model.is_empty() {
                        self.model = model.clone();
                    }
                }
                if let Some(usage) = usage {
                    merge_usage(&mut self.usage, usage);
                }
                self.start(out);
            }
            StreamEvent::BlockStart { index, block } => {
                let kind = match block {
                    BlockStart::Text => BlockKind::Text,
                    BlockStart::Thinking => BlockKind::Thinking,
                    BlockStart::RedactedThinking { .. } => BlockKind::Hidden,
                    BlockStart::ToolCall {
                        id,
                        name,
                        thought_signature,
                    } => {
                        let id = client_tool_id(id, thought_signature.as_deref());
                        self.start_tool_call(*index, &id, name, out);
                        return;
                    }
                };
                self.register(*index, kind, out);
            }
            StreamEvent::Delta { index, delta } => self.delta(*index, delta, out),
            StreamEvent::MessageDelta { stop_reason, usage } => {
                if let Some(usage) = usage {
                    merge_usage(&mut self.usage, usage);
                }
                self.finish(stop_reason.as_ref(), out);
            }
            StreamEvent::Usage { usage } => merge_usage(&mut self.usage, usage),
            StreamEvent::MessageStop => {
                self.finish(None, out);
                if self.options.include_usage {
                    let usage = WireUsage::from(&self.usage);
                    self.write(&[], Some(usage), out);
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.ended = true;
            }
            StreamEvent::Error { error } => {
                out.extend_from_slice(stream_error_event(error).as_bytes());
                self.ended = true;
            }
            StreamEvent::BlockStop { .. } | StreamEvent::Ping => {}
        }
    }

    fn delta(&mut self, index: usize, delta: &Delta, out: &mut Vec<u8>) {
        let kind = match self.kind(index) {
            Some(kind) => kind,
            // A source without block starts: the first delta of an index opens its block.
            None => match delta {
                Delta::Text(_) => self.register(index, BlockKind::Text, out),
                Delta::Thinking(_) => self.register(index, BlockKind::Thinking, out),
                Delta::ToolArguments(_) => {
                    let id = mint_tool_id(&self.id, self.tool_calls);
                    self.start_tool_call(index, &id, "", out)
                }
                Delta::Signature(_) => return,
            },
        };
        let chunk = match (kind, delta) {
            (BlockKind::Text, Delta::Text(t)) if !t.is_empty() => ChunkDelta {
                content: Some(t),
                ..ChunkDelta::default()
            },
            (BlockKind::Thinking, Delta::Thinking(t)) if !t.is_empty() => ChunkDelta {
                reasoning_content: Some(t),
                ..ChunkDelta::default()
            },
            (BlockKind::ToolCall(k), Delta::ToolArguments(a)) if !a.is_empty() => ChunkDelta {
                tool_calls: vec![ToolCallDelta {
                    index: k,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments: a,
                    },
                }],
                ..ChunkDelta::default()
            },
            // Signatures, and deltas that do not fit their block.
            _ => return,
        };
        self.write_delta(chunk, None, out);
    }

    fn kind(&self, index: usize) -> Option<BlockKind> {
        self.blocks
            .iter()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, kind)| *kind)
    }

    fn register(&mut self, index: usize, kind: BlockKind, out: &mut Vec<u8>) -> BlockKind {
        self.start(out);
        self.blocks.push((index, kind));
        kind
    }

    fn start_tool_call(
        &mut self,
        index: usize,
        id: &str,
        name: &str,
        out: &mut Vec<u8>,
    ) -> BlockKind {
        let k = self.tool_calls;
        self.tool_calls += 1;
        let kind = self.register(index, BlockKind::ToolCall(k), out);
        let chunk = ChunkDelta {
            tool_calls: vec![ToolCallDelta {
                index: k,
                id: Some(id),
                kind: Some("function"),
                function: FunctionDelta {
                    name: Some(name),
                    arguments: "",
                },
            }],
            ..ChunkDelta::default()
        };
        self.write_delta(chunk, None, out);
        kind
    }

    /// The role chunk, once, before anything else.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let chunk = ChunkDelta {
            role: Some("assistant"),
            content: Some(""),
            ..ChunkDelta::default()
        };
        self.write_delta(chunk, None, out);
    }

    /// The chunk with the `finish_reason`, once.
    fn finish(&mut self, reason: Option<&StopReason>, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.finished = true;
        let reason = finish_reason(reason, self.tool_calls > 0);
        self.write_delta(ChunkDelta::default(), Some(reason), out);
    }

    fn write_delta(
        &self,
        delta: ChunkDelta<'_>,
        finish_reason: Option<&'static str>,
        out: &mut Vec<u8>,
    ) {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        self.write(&[choice], None, out);
    }

    fn write(&self, choices: &[ChunkChoice<'_>], usage: Option<WireUsage>, out: &mut Vec<u8>) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.options.created,
            model: &self.model,
            system_fingerprint: None,
            choices,
            // With `include_usage` every chunk says `"usage": null` but the usage chunk.
            usage: self.options.include_usage.then_some(usage),
        };
        // Serialising these plain structs cannot fail.
        if let Ok(json) = serde_json::to_vec(&chunk) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&json);
            out.extend_from_slice(b"\n\n");
        }
    }
}

/// One `chat.completion.chunk`.
#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: Option<&'a str>,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<WireUsage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: ChunkDelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct ChunkDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallDelta<'a>>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}
