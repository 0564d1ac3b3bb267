//! `streamGenerateContent?alt=sse` streams ↔ canonical [`StreamEvent`]s.
//!
//! Gemini streams have no blocks and no closing event: every `data:` chunk is a whole
//! `GenerateContentResponse` holding the new parts, and the last one carries `finishReason` and
//! `usageMetadata`. The decoder synthesises block starts and stops; the encoder drops them.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::parts::{PartEncoding, encode_part};
use super::response::{
    finish_reason_for, first_candidate, model_version, prompt_blocked, response_id,
    stop_reason_from, usage_from, usage_metadata,
};
use super::{EncodeOptions, field, field_str, google_error};
use crate::canonical::{
    BlockStart, Delta, Part, StopReason, StreamEvent, merge_usage, mint_tool_id,
};
use crate::error::{ErrorBody, ErrorKind};
use crate::sse::SseEvent;
use crate::usage::TokenUsage;

/// Upstream side: Gemini SSE events → canonical stream events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    response_id: String,
    next_index: usize,
    /// The text or thinking block receiving parts, if one is open.
    open: Option<OpenBlock>,
    /// Function calls so far (their position mints their ids).
    calls: usize,
    /// The latest `usageMetadata`.
    usage: Option<TokenUsage>,
    /// `MessageDelta` was sent.
    finished: bool,
    /// `MessageStop` was sent; later chunks are ignored.
    stopped: bool,
}

#[derive(Debug)]
struct OpenBlock {
    index: usize,
    thinking: bool,
}

impl StreamDecoder {
    /// The canonical events for one SSE event.
    pub fn push(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        // Gemini ends streams without a terminator; an OpenAI-style `[DONE]` is not an error.
        if !event.has_data() || self.stopped || &event.data[..] == b"[DONE]" {
            return out;
        }
        let chunk: Value = match serde_json::from_slice(&event.data) {
            Ok(v) => v,
            Err(e) => {
                out.push(StreamEvent::Error {
                    error: ErrorBody::new(
                        ErrorKind::Upstream,
                        format!("Gemini sent a stream event that is not JSON: {e}"),
                    ),
                });
                return out;
            }
        };
        let Some(obj) = chunk.as_object() else {
            return out;
        };
        if let Some(err) = field(obj, "error") {
            out.push(StreamEvent::Error {
                error: google_error(err),
            });
            return out;
        }
        let usage = field(obj, "usageMetadata").map(usage_from);
        if usage.is_some() {
            self.usage = usage;
        }
        if !self.started {
            self.started = true;
            self.response_id = response_id(obj, &event.data);
            out.push(StreamEvent::MessageStart {
                id: self.response_id.clone(),
                model: field_str(obj, "modelVersion")
                    .unwrap_or_default()
                    .to_string(),
                usage,
            });
        }
        if self.finished {
            // Usage reported after the finish reason: pass it on and end.
            if let Some(usage) = usage {
                out.push(StreamEvent::Usage { usage });
                self.stop(&mut out);
            }
            return out;
        }
        let stop_reason = match first_candidate(obj) {
            Some(candidate) => {
                if let Some(parts) = candidate
                    .get("content")
                    .and_then(Value::as_object)
                    .and_then(|c| field(c, "parts"))
                    .and_then(Value::as_array)
                {
                    for part in parts.iter().filter_map(Value::as_object) {
                        self.part(part, &mut out);
                    }
                }
                field_str(candidate, "finishReason").map(|r| stop_reason_from(r, self.calls > 0))
            }
            None if prompt_blocked(obj) => Some(StopReason::ContentFilter),
            None => None,
        };
        if let Some(stop_reason) = stop_reason {
            self.close(&mut out);
            self.finished = true;
            out.push(StreamEvent::MessageDelta {
                stop_reason: Some(stop_reason),
                usage: self.usage,
            });
            if usage.is_some() {
                self.stop(&mut out);
            }
        }
        out
    }

    /// At end of stream: closes what is open and ends the message (with no stop reason when
    /// Gemini never sent one, i.e. the stream was cut short).
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if !self.started || self.stopped {
            return out;
        }
        self.close(&mut out);
        if !self.finished {
            self.finished = true;
            out.push(StreamEvent::MessageDelta {
                stop_reason: None,
                usage: self.usage,
            });
        }
        self.stop(&mut out);
        out
    }

    fn part(&mut self, part: &Map<String, Value>, out: &mut Vec<StreamEvent>) {
        let signature = field_str(part, "thoughtSignature")
            .filter(|s| !s.is_empty())
            .map(String::from);
        if let Some(call) = field(part, "functionCall").and_then(Value::as_object) {
            self.close(out);
            let id = match field_str(call, "id").filter(|id| !id.is_empty()) {
                Some(id) => id.to_string(),
                None => mint_tool_id(&self.response_id, self.calls),
            };
            self.calls += 1;
            let index = self.take_index();
            out.push(StreamEvent::BlockStart {
                index,
                block: BlockStart::ToolCall {
                    id,
                    name: field_str(call, "name").unwrap_or_default().to_string(),
                    thought_signature: signature
                        .or_else(|| field_str(call, "thoughtSignature").map(String::from)),
                },
            });
            out.push(StreamEvent::Delta {
                index,
                delta: Delta::ToolArguments(
                    field(call, "args").map_or_else(|| "{}".to_string(), Value::to_string),
                ),
            });
            out.push(StreamEvent::BlockStop { index });
            return;
        }
        let text = field_str(part, "text").filter(|t| !t.is_empty());
        if text.is_none() && signature.is_none() {
            // Empty text, images, executable code…: nothing a canonical block holds.
            return;
        }
        let thinking = field(part, "thought").and_then(Value::as_bool) == Some(true);
        let index = match &self.open {
            Some(open) if open.thinking == thinking => open.index,
            _ => {
                self.close(out);
                let index = self.take_index();
                out.push(StreamEvent::BlockStart {
                    index,
                    block: if thinking {
                        BlockStart::Thinking
                    } else {
                        BlockStart::Text
                    },
                });
                self.open = Some(OpenBlock { index, thinking });
                index
            }
        };
        if let Some(text) = text {
            out.push(StreamEvent::Delta {
                index,
                delta: if thinking {
                    Delta::Thinking(text.to_string())
                } else {
                    Delta::Text(text.to_string())
                },
            });
        }
        if let Some(signature) = signature {
            out.push(StreamEvent::Delta {
                index,
                delta: Delta::Signature(signature),
            });
            // A signature ends its run, as the non-stream decoder splits parts.
            self.close(out);
        }
    }

    fn take_index(&mut self) -> usize {
        self.next_index += 1;
        self.next_index - 1
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(open) = self.open.take() {
            out.push(StreamEvent::BlockStop { index: open.index });
        }
    }

    fn stop(&mut self, out: &mut Vec<StreamEvent>) {
        self.stopped = true;
        out.push(StreamEvent::MessageStop);
    }
}

/// Client side: canonical stream events → Gemini SSE (`data: {GenerateContentResponse}`).
#[derive(Debug)]
pub struct StreamEncoder {
    options: EncodeOptions,
    response_id: String,
    /// The model named at `MessageStart` (used when the options name none).
    model: String,
    blocks: Vec<(usize, Block)>,
    stop_reason: Option<StopReason>,
    usage: TokenUsage,
    /// The answer is over (`MessageDelta`); the last chunk waits for usage or `MessageStop`.
    ending: bool,
    /// The last chunk (or an error) was written.
    done: bool,
}

#[derive(Debug)]
enum Block {
    Text,
    Thinking,
    /// Redacted thinking: nothing a Gemini client can use.
    Ignored,
    /// Function calls are sent whole: arguments are collected until the block stops.
    ToolCall {
        id: String,
        name: String,
        thought_signature: Option<String>,
        arguments: String,
    },
}

impl StreamEncoder {
    pub fn new(options: EncodeOptions) -> Self {
        Self {
            options,
            response_id: String::new(),
            model: String::new(),
            blocks: Vec::new(),
            stop_reason: None,
            usage: TokenUsage::default(),
            ending: false,
            done: false,
        }
    }

    /// Appends the SSE bytes for one canonical event (often none).
    pub fn push(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match event {
            StreamEvent::MessageStart { id, model, usage } => {
                self.response_id.clone_from(id);
                self.model.clone_from(model);
                if let Some(usage) = usage {
                    merge_usage(&mut self.usage, usage);
                }
            }
            StreamEvent::BlockStart { index, block } => {
                let block = match block {
                    BlockStart::Text => Block::Text,
                    BlockStart::Thinking => Block::Thinking,
                    BlockStart::RedactedThinking { .. } => Block::Ignored,
                    BlockStart::ToolCall {
                        id,
                        name,
                        thought_signature,
                    } => Block::ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        thought_signature: thought_signature.clone(),
                        arguments: String::new(),
                    },
                };
                self.blocks.push((*index, block));
            }
            StreamEvent::Delta { index, delta } => self.delta(*index, delta, out),
            StreamEvent::BlockStop { index } => {
                if let Some(at) = self.blocks.iter().rposition(|(i, _)| i == index) {
                    let (_, block) = self.blocks.remove(at);
                    self.write_call(block, out);
                }
            }
            StreamEvent::MessageDelta { stop_reason, usage } => {
                if stop_reason.is_some() {
                    self.stop_reason.clone_from(stop_reason);
                }
                self.ending = true;
                if let Some(usage) = usage {
                    merge_usage(&mut self.usage, usage);
                    self.end(out);
                }
            }
            StreamEvent::Usage { usage } => {
                merge_usage(&mut self.usage, usage);
                if self.ending {
                    self.end(out);
                }
            }
            StreamEvent::MessageStop => self.end(out),
            StreamEvent::Ping => {}
            StreamEvent::Error { error } => {
                // The HTTP status was sent long ago; `code` and `status` name the kind.
                write_event(out, &error.to_gemini_json(error.kind.gemini_http_status()));
                self.done = true;
            }
        }
    }

    fn delta(&mut self, index: usize, delta: &Delta, out: &mut Vec<u8>) {
        let Some((_, block)) = self.blocks.iter_mut().rev().find(|(i, _)| *i == index) else {
            return;
        };
        let part = match (block, delta) {
            (Block::Text, Delta::Text(text)) if !text.is_empty() => json!({ "text": text }),
            (Block::Thinking, Delta::Thinking(text)) if !text.is_empty() => {
                json!({ "text": text, "thought": true })
            }
            (Block::Text, Delta::Signature(sig)) => json!({ "text": "", "thoughtSignature": sig }),
            (Block::Thinking, Delta::Signature(sig)) => {
                json!({ "text": "", "thought": true, "thoughtSignature": sig })
            }
            (Block::ToolCall { arguments, .. }, Delta::ToolArguments(fragment)) => {
                arguments.push_str(fragment);
                return;
            }
            (
                Block::ToolCall {
                    thought_signature, ..
                },
                Delta::Signature(sig),
            ) => {
                *thought_signature = Some(sig.clone());
                return;
            }
            _ => return,
        };
        self.write_chunk(content(vec![part]), None, out);
    }

    /// Writes a finished function call as one part.
    fn write_call(&self, block: Block, out: &mut Vec<u8>) {
        let Block::ToolCall {
            id,
            name,
            thought_signature,
            arguments,
        } = block
        else {
            return;
        };
        let call = Part::ToolCall {
            id,
            name,
            arguments,
            thought_signature,
        };
        let names = HashMap::new();
        let how = PartEncoding {
            ids: true,
            thinking: true,
            names: &names,
        };
        let mut parts = Vec::with_capacity(1);
        encode_part(&call, &how, &mut parts);
        self.write_chunk(content(parts), None, out);
    }

    /// The last chunk: calls still open, then the finish reason and usage.
    fn end(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        for (_, block) in std::mem::take(&mut self.blocks) {
            self.write_call(block, out);
        }
        // Clients that read `parts[0].text` of every chunk find an empty string, not nothing.
        let mut candidate = content(vec![json!({ "text": "" })]);
        if let Some(reason) = &self.stop_reason {
            candidate["finishReason"] = json!(finish_reason_for(reason));
        }
        self.write_chunk(candidate, Some(usage_metadata(&self.usage)), out);
        self.done = true;
    }

    fn write_chunk(&self, candidate: Value, usage: Option<Value>, out: &mut Vec<u8>) {
        let model = if self.options.model.is_empty() {
            &self.model
        } else {
            &self.options.model
        };
        let mut chunk = json!({
            "candidates": [candidate],
            "modelVersion": model_version(model),
            "responseId": self.response_id,
        });
        if let Some(usage) = usage {
            chunk["usageMetadata"] = usage;
        }
        write_event(out, &chunk.to_string());
    }
}

fn content(parts: Vec<Value>) -> Value {
    json!({ "content": { "role": "model", "parts": parts }, "index": 0 })
}

/// One SSE event; serialized JSON has no raw newlines, so one `data:` line suffices.
fn write_event(out: &mut Vec<u8>, data: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}
