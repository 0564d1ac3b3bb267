//! Streams: an Anthropic upstream's SSE events → canonical events, and canonical events → the
//! SSE an Anthropic client (the official SDKs) expects.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{
    BlockStart, Delta, StopReason, StreamEvent, extract_thought_signature, merge_usage,
};
use crate::error::{ErrorBody, ErrorKind};
use crate::sse::SseEvent;
use crate::usage::TokenUsage;

use super::response::{
    RawUsage, client_stop_reason, client_tool_id, error_body, message_id,
    stop_reason_from_anthropic, uncached_input,
};

// ---------------------------------------------------------------------------------------------
// Decoding an upstream stream

/// An upstream event, by its `type`; unknown types and fields are ignored.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Incoming {
    MessageStart {
        message: IncomingMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: Value,
    },
    ContentBlockDelta {
        index: usize,
        delta: IncomingDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: IncomingStop,
        #[serde(default)]
        usage: Option<Value>,
    },
    MessageStop {},
    Error {
        #[serde(default)]
        error: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct IncomingMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum IncomingDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct IncomingStop {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Upstream side: an Anthropic SSE stream → canonical stream events. Block indices are
/// Anthropic's; blocks canonical does not carry (server tools and their results) are skipped.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    /// Usage as reported so far (`message_start`, then cumulative `message_delta`s).
    usage: RawUsage,
    /// Indices of skipped blocks, whose deltas and stop are dropped too.
    skipped: Vec<usize>,
    started: bool,
    /// `message_delta` seen: the answer is complete.
    ended: bool,
    /// `message_stop` or an error seen: nothing more is read.
    stopped: bool,
}

impl StreamDecoder {
    /// The canonical events for one upstream SSE event (`ping` yields none).
    pub fn push(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        if !event.has_data() || self.stopped {
            return Vec::new();
        }
        let incoming = match serde_json::from_slice::<Incoming>(&event.data) {
            Ok(incoming) => incoming,
            Err(_) if event.event.as_deref() == Some("error") => {
                self.stopped = true;
                let text = String::from_utf8_lossy(&event.data).into_owned();
                return vec![StreamEvent::Error {
                    error: ErrorBody::new(ErrorKind::Upstream, text),
                }];
            }
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        match incoming {
            Incoming::MessageStart { message } => {
                self.started = true;
                if let Some(usage) = &message.usage {
                    self.usage.merge(&RawUsage::read(usage));
                }
                out.push(StreamEvent::MessageStart {
                    id: message.id,
                    model: message.model,
                    usage: Some(self.usage.canonical()),
                });
            }
            Incoming::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(index, &content_block, &mut out),
            Incoming::ContentBlockDelta { index, delta } => {
                if self.skipped.contains(&index) {
                    return out;
                }
                let delta = match delta {
                    IncomingDelta::TextDelta { text } => Delta::Text(text),
                    IncomingDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                        Delta::ToolArguments(partial_json)
                    }
                    IncomingDelta::ThinkingDelta { thinking } => Delta::Thinking(thinking),
                    IncomingDelta::SignatureDelta { signature } => Delta::Signature(signature),
                    IncomingDelta::InputJsonDelta { .. } | IncomingDelta::Other => return out,
                };
                out.push(StreamEvent::Delta { index, delta });
            }
            Incoming::ContentBlockStop { index } => {
                if !self.skipped.contains(&index) {
                    out.push(StreamEvent::BlockStop { index });
                }
            }
            Incoming::MessageDelta { delta, usage } => {
                self.ended = true;
                if let Some(usage) = &usage {
                    self.usage.merge(&RawUsage::read(usage));
                }
                out.push(StreamEvent::MessageDelta {
                    stop_reason: delta.stop_reason.as_deref().map(stop_reason_from_anthropic),
                    usage: Some(self.usage.canonical()),
                });
            }
            Incoming::MessageStop {} => {
                self.stopped = true;
                out.push(StreamEvent::MessageStop);
            }
            Incoming::Error { error } => {
                self.stopped = true;
                out.push(StreamEvent::Error {
                    error: error_body(&error),
                });
            }
            Incoming::Other => {}
        }
        out
    }

    /// At end of stream. Anthropic closes its own streams, so this only covers a stream that
    /// stopped early: after `message_delta` the answer is whole and `MessageStop` is supplied;
    /// before it, the answer is cut short and an error says so.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        if self.stopped || !self.started {
            return Vec::new();
        }
        self.stopped = true;
        if self.ended {
            vec![StreamEvent::MessageStop]
        } else {
            vec![StreamEvent::Error {
                error: ErrorBody::new(
                    ErrorKind::Upstream,
                    "The upstream stream ended before the message was complete.",
                ),
            }]
        }
    }

    fn block_start(&mut self, index: usize, block: &Value, out: &mut Vec<StreamEvent>) {
        let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or_default();
        match text("type") {
            "text" => {
                out.push(StreamEvent::BlockStart {
                    index,
                    block: BlockStart::Text,
                });
                if !text("text").is_empty() {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::Text(text("text").to_string()),
                    });
                }
            }
            "thinking" => {
                out.push(StreamEvent::BlockStart {
                    index,
                    block: BlockStart::Thinking,
                });
                if !text("thinking").is_empty() {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::Thinking(text("thinking").to_string()),
                    });
                }
                if !text("signature").is_empty() {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::Signature(text("signature").to_string()),
                    });
                }
            }
            "redacted_thinking" => out.push(StreamEvent::BlockStart {
                index,
                block: BlockStart::RedactedThinking {
                    data: text("data").to_string(),
                },
            }),
            "tool_use" => {
                let (id, thought_signature) = extract_thought_signature(text("id"));
                out.push(StreamEvent::BlockStart {
                    index,
                    block: BlockStart::ToolCall {
                        id,
                        name: text("name").to_string(),
                        thought_signature,
                    },
                });
                if let Some(Value::Object(input)) = block.get("input")
                    && !input.is_empty()
                {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::ToolArguments(Value::Object(input.clone()).to_string()),
                    });
                }
            }
            _ => self.skipped.push(index),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding a stream for an Anthropic client

/// Options of the client-side stream encoder.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// The model name to show the client (the one it asked for); empty: the source's.
    pub model: String,
    /// Unix seconds; names the message when the source gave it no id.
    pub created: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Outgoing<'a> {
    MessageStart {
        message: OutgoingMessage<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: OutgoingBlock<'a>,
    },
    ContentBlockDelta {
        index: usize,
        delta: OutgoingDelta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: OutgoingStop,
        usage: OutgoingUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: OutgoingError<'a>,
    },
}

impl Outgoing<'_> {
    /// The SSE `event:` name, which is the payload's `type`.
    fn name(&self) -> &'static str {
        match self {
            Outgoing::MessageStart { .. } => "message_start",
            Outgoing::ContentBlockStart { .. } => "content_block_start",
            Outgoing::ContentBlockDelta { .. } => "content_block_delta",
            Outgoing::ContentBlockStop { .. } => "content_block_stop",
            Outgoing::MessageDelta { .. } => "message_delta",
            Outgoing::MessageStop => "message_stop",
            Outgoing::Ping => "ping",
            Outgoing::Error { .. } => "error",
        }
    }
}

/// The in-stream error (`ErrorBody::to_anthropic_json`, with `type` first like every event).
#[derive(Serialize)]
struct OutgoingError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct OutgoingMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: OutgoingUsage,
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutgoingBlock<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum OutgoingDelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
}

#[derive(Serialize)]
struct OutgoingStop {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct OutgoingUsage {
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_tokens_details: Option<ThinkingTokens>,
}

#[derive(Serialize)]
struct ThinkingTokens {
    thinking_tokens: u64,
}

impl OutgoingUsage {
    /// Every field, as `message_start` reports them.
    fn full(u: &TokenUsage) -> Self {
        OutgoingUsage {
            input_tokens: Some(uncached_input(u)),
            cache_creation_input_tokens: Some(u.cache_write_tokens),
            cache_read_input_tokens: Some(u.cache_read_tokens),
            output_tokens: u.output_tokens,
            output_tokens_details: None,
        }
    }

    /// `message_delta`: output always; input and cache counts once known (sources that report
    /// usage only at the end had `message_start` say 0, and the SDK takes these over).
    fn closing(u: &TokenUsage) -> Self {
        let known = u.input_tokens > 0;
        OutgoingUsage {
            input_tokens: known.then(|| uncached_input(u)),
            cache_creation_input_tokens: known.then_some(u.cache_write_tokens),
            cache_read_input_tokens: known.then_some(u.cache_read_tokens),
            output_tokens: u.output_tokens,
            output_tokens_details: (u.reasoning_tokens > 0).then_some(ThinkingTokens {
                thinking_tokens: u.reasoning_tokens,
            }),
        }
    }
}

/// The `content_block_start` of a text or thinking block.
fn blank(kind: Kind) -> OutgoingBlock<'static> {
    match kind {
        Kind::Thinking => OutgoingBlock::Thinking {
            thinking: "",
            signature: "",
        },
        _ => OutgoingBlock::Text { text: "" },
    }
}

fn write(out: &mut Vec<u8>, event: &Outgoing<'_>) {
    let mark = out.len();
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.name().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut *out, event).is_err() {
        out.truncate(mark);
        return;
    }
    out.extend_from_slice(b"\n\n");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    RedactedThinking,
    ToolUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Open,
    /// Closed by the encoder because another block began (the source sent no stop).
    AutoClosed,
    /// Closed by the source's `BlockStop`, or at the end of the message.
    Closed,
}

/// One Anthropic content block; its position in `slots` is its Anthropic index.
#[derive(Debug)]
struct Slot {
    /// The source's block index.
    source: usize,
    kind: Kind,
    state: SlotState,
}

/// Client side: canonical stream events → Anthropic SSE bytes.
///
/// Anthropic clients index the message's content by block `index` and expect one block open at
/// a time, so the encoder numbers blocks itself (0, 1, 2, … in the order they start) and closes
/// an open block when another begins. It tolerates sources that never send `BlockStart` (a text
/// or thinking block starts at its first delta), never send `BlockStop` (blocks close when the
/// next begins or the message ends) or report usage only after the stop reason (`message_delta`
/// waits for a `Usage` event or `MessageStop`). A late text or thinking delta for a block closed
/// that way continues in a new block; late tool arguments or signatures go to their block's
/// index, where the SDKs still accumulate them.
#[derive(Debug)]
pub struct StreamEncoder {
    options: EncodeOptions,
    started: bool,
    /// `message_stop` or an error was written: nothing more is.
    finished: bool,
    slots: Vec<Slot>,
    open: Option<usize>,
    usage: TokenUsage,
    /// A `Usage` event arrived on its own.
    usage_reported: bool,
    stop_reason: Option<StopReason>,
    /// `MessageDelta` arrived without usage: `message_delta` waits for it.
    delta_pending: bool,
    delta_sent: bool,
    called_tools: bool,
}

impl StreamEncoder {
    pub fn new(options: EncodeOptions) -> Self {
        StreamEncoder {
            options,
            started: false,
            finished: false,
            slots: Vec::new(),
            open: None,
            usage: TokenUsage::default(),
            usage_reported: false,
            stop_reason: None,
            delta_pending: false,
            delta_sent: false,
            called_tools: false,
        }
    }

    /// Appends the SSE bytes for one canonical event.
    pub fn push(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        match event {
            StreamEvent::MessageStart { id, model, usage } => {
                if let Some(u) = usage {
                    merge_usage(&mut self.usage, u);
                }
                self.start(id, model, out);
            }
            // Content after `message_delta` has no place in an Anthropic message.
            StreamEvent::BlockStart { .. } | StreamEvent::Delta { .. } if self.delta_sent => {}
            StreamEvent::BlockStart { index, block } => {
                self.start("", "", out);
                self.block_start(*index, block, out);
            }
            StreamEvent::Delta { index, delta } => {
                self.start("", "", out);
                self.delta(*index, delta, out);
            }
            StreamEvent::BlockStop { index } => self.block_stop(*index, out),
            StreamEvent::MessageDelta { stop_reason, usage } => {
                self.start("", "", out);
                self.close_open(out);
                if stop_reason.is_some() {
                    self.stop_reason = stop_reason.clone();
                }
                let carries_usage = usage.is_some_and(|u| u != TokenUsage::default());
                if let Some(u) = usage {
                    merge_usage(&mut self.usage, u);
                }
                if !self.delta_sent {
                    if carries_usage || self.usage_reported {
                        self.message_delta(out);
                    } else {
                        self.delta_pending = true;
                    }
                }
            }
            StreamEvent::Usage { usage } => {
                merge_usage(&mut self.usage, usage);
                self.usage_reported = true;
                if self.delta_pending {
                    self.message_delta(out);
                }
            }
            StreamEvent::MessageStop => {
                self.start("", "", out);
                self.close_open(out);
                if !self.delta_sent {
                    self.message_delta(out);
                }
                write(out, &Outgoing::MessageStop);
                self.finished = true;
            }
            StreamEvent::Ping => write(out, &Outgoing::Ping),
            StreamEvent::Error { error } => {
                let error = Outgoing::Error {
                    error: OutgoingError {
                        kind: error.kind.anthropic_type(),
                        message: &error.message,
                    },
                };
                write(out, &error);
                self.finished = true;
            }
        }
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = if id.is_empty() {
            message_id(&format!("sluice_{}", self.options.created))
        } else {
            message_id(id)
        };
        let model = if self.options.model.is_empty() {
            model
        } else {
            &self.options.model
        };
        let message = OutgoingMessage {
            id: &id,
            kind: "message",
            role: "assistant",
            model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: OutgoingUsage::full(&self.usage),
        };
        write(out, &Outgoing::MessageStart { message });
    }

    fn find(&self, source: usize) -> Option<usize> {
        self.slots.iter().rposition(|s| s.source == source)
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        self.close_open_as(SlotState::Closed, out);
    }

    fn close_open_as(&mut self, state: SlotState, out: &mut Vec<u8>) {
        if let Some(pos) = self.open.take() {
            write(out, &Outgoing::ContentBlockStop { index: pos });
            if let Some(slot) = self.slots.get_mut(pos) {
                slot.state = state;
            }
        }
    }

    /// Starts a new Anthropic block for source block `source`; returns its index.
    fn open_block(
        &mut self,
        source: usize,
        kind: Kind,
        head: OutgoingBlock<'_>,
        out: &mut Vec<u8>,
    ) -> usize {
        self.close_open_as(SlotState::AutoClosed, out);
        let index = self.slots.len();
        write(
            out,
            &Outgoing::ContentBlockStart {
                index,
                content_block: head,
            },
        );
        self.slots.push(Slot {
            source,
            kind,
            state: SlotState::Open,
        });
        self.open = Some(index);
        if kind == Kind::ToolUse {
            self.called_tools = true;
        }
        index
    }

    fn block_start(&mut self, source: usize, block: &BlockStart, out: &mut Vec<u8>) {
        let kind = match block {
            BlockStart::Text => Kind::Text,
            BlockStart::Thinking => Kind::Thinking,
            BlockStart::RedactedThinking { .. } => Kind::RedactedThinking,
            BlockStart::ToolCall { .. } => Kind::ToolUse,
        };
        // A repeated start of the block being written changes nothing.
        if let Some(pos) = self.find(source)
            && self.open == Some(pos)
            && self.slots.get(pos).is_some_and(|s| s.kind == kind)
        {
            return;
        }
        match block {
            BlockStart::Text | BlockStart::Thinking => {
                self.open_block(source, kind, blank(kind), out);
            }
            BlockStart::RedactedThinking { data } => {
                self.open_block(source, kind, OutgoingBlock::RedactedThinking { data }, out);
            }
            BlockStart::ToolCall {
                id,
                name,
                thought_signature,
            } => {
                let id = client_tool_id(id, thought_signature.as_deref());
                let head = OutgoingBlock::ToolUse {
                    id: &id,
                    name,
                    input: EmptyObject {},
                };
                self.open_block(source, kind, head, out);
            }
        }
    }

    fn delta(&mut self, source: usize, delta: &Delta, out: &mut Vec<u8>) {
        let (Delta::Text(s) | Delta::Thinking(s) | Delta::Signature(s) | Delta::ToolArguments(s)) =
            delta;
        if s.is_empty() {
            return;
        }
        let mut index = match self.find(source) {
            Some(pos) => pos,
            // No BlockStart: text and thinking can start here; a tool call cannot (no id, no
            // name) and a lone signature has nothing to sign.
            None => match delta {
                Delta::Text(_) => self.open_block(source, Kind::Text, blank(Kind::Text), out),
                Delta::Thinking(_) => {
                    self.open_block(source, Kind::Thinking, blank(Kind::Thinking), out)
                }
                Delta::Signature(_) | Delta::ToolArguments(_) => return,
            },
        };
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let kind = slot.kind;
        match (slot.state, kind, delta) {
            (SlotState::Closed, ..) => return,
            // Text or thinking after its block was closed for another: continue in a new block.
            (SlotState::AutoClosed, Kind::Text, Delta::Text(_))
            | (SlotState::AutoClosed, Kind::Thinking, Delta::Thinking(_)) => {
                index = self.open_block(source, kind, blank(kind), out);
            }
            _ => {}
        }
        let delta = match (kind, delta) {
            (Kind::Text, Delta::Text(text)) => OutgoingDelta::Text { text },
            (Kind::Thinking, Delta::Thinking(thinking)) => OutgoingDelta::Thinking { thinking },
            (Kind::Thinking, Delta::Signature(signature)) => OutgoingDelta::Signature { signature },
            (Kind::ToolUse, Delta::ToolArguments(partial_json)) => {
                OutgoingDelta::InputJson { partial_json }
            }
            // Gemini signatures of text parts and tool calls have no Anthropic spelling here.
            _ => return,
        };
        write(out, &Outgoing::ContentBlockDelta { index, delta });
    }

    fn block_stop(&mut self, source: usize, out: &mut Vec<u8>) {
        let Some(pos) = self.find(source) else {
            return;
        };
        if self.open == Some(pos) {
            self.close_open(out);
        } else if let Some(slot) = self.slots.get_mut(pos) {
            slot.state = SlotState::Closed;
        }
    }

    fn message_delta(&mut self, out: &mut Vec<u8>) {
        // Blocks may have begun while `message_delta` waited for usage.
        self.close_open(out);
        let event = Outgoing::MessageDelta {
            delta: OutgoingStop {
                stop_reason: client_stop_reason(self.stop_reason.as_ref(), self.called_tools),
                stop_sequence: None,
            },
            usage: OutgoingUsage::closing(&self.usage),
        };
        write(out, &event);
        self.delta_sent = true;
        self.delta_pending = false;
    }
}
