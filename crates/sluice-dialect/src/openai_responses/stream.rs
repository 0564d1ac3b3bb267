//! Streams: an upstream's Responses events → canonical ([`StreamDecoder`]), and canonical
//! events → a client's Responses events ([`StreamEncoder`]).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::response::{output_items, render};
use super::{
    Head, REDACTED_MARK, content_text, function_call_part, output_item, output_text, parse_usage,
    reasoning_item, reasoning_text, response_error, response_id, response_object, status_of,
    stop_reason, upstream_error,
};
use crate::canonical::{Accumulator, BlockStart, Delta, Part, StreamEvent, mint_tool_id};
use crate::error::{ErrorBody, ErrorKind};
use crate::openai_common::client_tool_id;
use crate::sse::SseEvent;

/// Upstream side: Responses stream events → canonical stream events.
///
/// Each output item becomes one canonical block (a message's content parts one block each);
/// `response.completed` / `response.incomplete` end the answer with its stop reason and usage.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    done: bool,
    next_block: usize,
    /// Output items by `output_index`.
    items: BTreeMap<u64, Item>,
    saw_tool_call: bool,
    saw_refusal: bool,
    /// The upstream response's id, model and `created_at`, and the `sequence_number` its next
    /// event would carry: what an error appended to a relayed stream must continue.
    response_id: String,
    model: String,
    created_at: u64,
    next_sequence: u64,
}

#[derive(Debug)]
enum Item {
    /// Text blocks by `content_index`.
    Message(BTreeMap<u64, Block>),
    FunctionCall(Block),
    Reasoning {
        block: Block,
        summary_index: Option<u64>,
        /// Anthropic redacted thinking carried by a Sluice client (see [`super::REDACTED_MARK`]).
        redacted: bool,
    },
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    index: usize,
    /// Whether any text or arguments went out (so `…done` events only fill what never came).
    filled: bool,
    open: bool,
}

impl StreamDecoder {
    /// Decodes one upstream event (unknown events and non-JSON data are skipped).
    pub fn push(&mut self, event: &SseEvent) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.done || !event.has_data() {
            return out;
        }
        let Ok(data) = serde_json::from_slice::<Value>(&event.data) else {
            return out;
        };
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or_default();
        let output_index = data
            .get("output_index")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let content_index = data
            .get("content_index")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or_default();
        if let Some(n) = data.get("sequence_number").and_then(Value::as_u64) {
            self.next_sequence = n.saturating_add(1);
        }
        if kind != "error" && kind != "response.failed" {
            self.start(data.get("response"), &mut out);
        }
        match kind {
            "response.output_item.added" => {
                if let Some(item) = data.get("item") {
                    self.item_added(output_index, item, &mut out);
                }
            }
            "response.content_part.added" => {
                let mut refusal = false;
                let part_text = data
                    .get("part")
                    .and_then(|p| content_text(p, &mut refusal))
                    .unwrap_or_default();
                self.saw_refusal |= refusal;
                self.text(output_index, content_index, part_text, &mut out);
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                self.saw_refusal |= kind == "response.refusal.delta";
                self.text(output_index, content_index, text("delta"), &mut out);
            }
            "response.output_text.done" => {
                self.fill_text(output_index, content_index, text("text"), &mut out)
            }
            "response.refusal.done" => {
                self.fill_text(output_index, content_index, text("refusal"), &mut out)
            }
            "response.content_part.done" => {
                let mut refusal = false;
                let part_text = data
                    .get("part")
                    .and_then(|p| content_text(p, &mut refusal))
                    .unwrap_or_default();
                self.fill_text(output_index, content_index, part_text, &mut out);
                if let Some(Item::Message(parts)) = self.items.get_mut(&output_index)
                    && let Some(block) = parts.get_mut(&content_index)
                {
                    close(block, &mut out);
                }
            }
            "response.function_call_arguments.delta" => {
                self.arguments(output_index, text("delta"), false, &mut out)
            }
            "response.function_call_arguments.done" => {
                self.arguments(output_index, text("arguments"), true, &mut out)
            }
            "response.reasoning_summary_part.added" => {
                let summary_index = data.get("summary_index").and_then(Value::as_u64);
                self.thinking(output_index, summary_index, "", &mut out);
            }
            "response.reasoning_summary_text.delta" => {
                let summary_index = data.get("summary_index").and_then(Value::as_u64);
                self.thinking(output_index, summary_index, text("delta"), &mut out);
            }
            "response.reasoning_text.delta" => {
                self.thinking(output_index, None, text("delta"), &mut out)
            }
            "response.output_item.done" => {
                if let Some(item) = data.get("item") {
                    self.item_done(output_index, item, &mut out);
                }
            }
            "response.completed" | "response.incomplete" => {
                let resp = data.get("response").cloned().unwrap_or(Value::Null);
                self.close_all(&mut out);
                out.push(StreamEvent::MessageDelta {
                    stop_reason: Some(stop_reason(&resp, self.saw_tool_call, self.saw_refusal)),
                    usage: resp.get("usage").and_then(parse_usage),
                });
                out.push(StreamEvent::MessageStop);
                self.done = true;
            }
            "response.failed" => {
                let error = match data.get("response").and_then(|r| r.get("error")) {
                    Some(err) if err.is_object() => upstream_error(err),
                    _ => ErrorBody::new(
                        ErrorKind::Upstream,
                        "The upstream failed to generate a response.",
                    ),
                };
                out.push(StreamEvent::Error { error });
                self.done = true;
            }
            "error" => {
                // `{type:"error",code,message,param}`; some servers nest it under `error`.
                let err = data.get("error").filter(|e| e.is_object()).unwrap_or(&data);
                out.push(StreamEvent::Error {
                    error: upstream_error(err),
                });
                self.done = true;
            }
            _ => {}
        }
        out
    }

    /// At end of stream: a stream that never said how it ended was cut short.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        vec![StreamEvent::Error {
            error: ErrorBody::new(
                ErrorKind::Upstream,
                "The upstream's stream ended before the response was complete.",
            ),
        }]
    }

    fn start(&mut self, resp: Option<&Value>, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let field = |key: &str| {
            resp.and_then(|r| r.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        self.response_id = field("id");
        self.model = field("model");
        self.created_at = resp
            .and_then(|r| r.get("created_at"))
            .and_then(Value::as_u64)
            .unwrap_or_default();
        out.push(StreamEvent::MessageStart {
            id: self.response_id.clone(),
            model: self.model.clone(),
            usage: resp.and_then(|r| r.get("usage")).and_then(parse_usage),
        });
    }

    /// For a stream relayed unchanged to a Responses client: an encoder whose events continue
    /// the upstream's response (its id, model and `created_at`, sequence numbers following
    /// on), so an error Sluice appends after a cut ends that response rather than starting a
    /// second one. `None` before the upstream named its response.
    pub fn continuation(&self, options: EncodeOptions) -> Option<StreamEncoder> {
        if self.response_id.is_empty() {
            return None;
        }
        let created = if self.created_at == 0 {
            options.created
        } else {
            self.created_at
        };
        let mut encoder = StreamEncoder::new(EncodeOptions { created, ..options });
        encoder.started = true;
        encoder.sequence = self.next_sequence;
        encoder.resp_id = self.response_id.clone();
        encoder.model = self.model.clone();
        encoder.acc.push(&StreamEvent::MessageStart {
            id: self.response_id.clone(),
            model: self.model.clone(),
            usage: None,
        });
        Some(encoder)
    }

    fn new_block(&mut self, block: BlockStart, out: &mut Vec<StreamEvent>) -> Block {
        let index = self.next_block;
        self.next_block += 1;
        out.push(StreamEvent::BlockStart { index, block });
        Block {
            index,
            filled: false,
            open: true,
        }
    }

    fn item_added(&mut self, output_index: u64, item: &Value, out: &mut Vec<StreamEvent>) {
        let state = match item.get("type").and_then(Value::as_str) {
            Some("message") => Item::Message(BTreeMap::new()),
            Some("function_call") => {
                let Some(Part::ToolCall {
                    id,
                    name,
                    arguments,
                    thought_signature,
                }) = function_call_part(item)
                else {
                    return;
                };
                self.saw_tool_call = true;
                let mut block = self.new_block(
                    BlockStart::ToolCall {
                        id,
                        name,
                        thought_signature,
                    },
                    out,
                );
                if !arguments.is_empty() {
                    block.send(Delta::ToolArguments(arguments), out);
                }
                Item::FunctionCall(block)
            }
            Some("reasoning") => {
                let redacted = item
                    .get("encrypted_content")
                    .and_then(Value::as_str)
                    .and_then(|e| e.strip_prefix(REDACTED_MARK));
                let block = match redacted {
                    Some(data) => BlockStart::RedactedThinking {
                        data: data.to_string(),
                    },
                    None => BlockStart::Thinking,
                };
                Item::Reasoning {
                    block: self.new_block(block, out),
                    summary_index: None,
                    redacted: redacted.is_some(),
                }
            }
            _ => Item::Other,
        };
        self.items.insert(output_index, state);
    }

    /// The block of a message's content part, if it has one yet (a message seen first here,
    /// without `output_item.added`, is registered).
    fn text_block(&mut self, output_index: u64, content_index: u64) -> Option<&mut Block> {
        let item = self
            .items
            .entry(output_index)
            .or_insert_with(|| Item::Message(BTreeMap::new()));
        match item {
            Item::Message(parts) => parts.get_mut(&content_index),
            _ => None,
        }
    }

    /// Opens the text block of a message's content part on first sight.
    fn open_text(&mut self, output_index: u64, content_index: u64, out: &mut Vec<StreamEvent>) {
        let is_new = matches!(self.items.get(&output_index), None | Some(Item::Message(_)))
            && self.text_block(output_index, content_index).is_none();
        if is_new {
            let block = self.new_block(BlockStart::Text, out);
            if let Some(Item::Message(parts)) = self.items.get_mut(&output_index) {
                parts.insert(content_index, block);
            }
        }
    }

    fn text(
        &mut self,
        output_index: u64,
        content_index: u64,
        text: &str,
        out: &mut Vec<StreamEvent>,
    ) {
        self.open_text(output_index, content_index, out);
        if let Some(block) = self.text_block(output_index, content_index)
            && block.open
            && !text.is_empty()
        {
            block.send(Delta::Text(text.to_string()), out);
        }
    }

    /// A `…done` event's full text, sent only when no delta carried any of it.
    fn fill_text(
        &mut self,
        output_index: u64,
        content_index: u64,
        text: &str,
        out: &mut Vec<StreamEvent>,
    ) {
        self.open_text(output_index, content_index, out);
        let filled = self
            .text_block(output_index, content_index)
            .is_none_or(|b| b.filled);
        if !filled {
            self.text(output_index, content_index, text, out);
        }
    }

    fn arguments(
        &mut self,
        output_index: u64,
        args: &str,
        whole: bool,
        out: &mut Vec<StreamEvent>,
    ) {
        if let Some(Item::FunctionCall(block)) = self.items.get_mut(&output_index)
            && block.open
            && !args.is_empty()
            && !(whole && block.filled)
        {
            block.send(Delta::ToolArguments(args.to_string()), out);
        }
    }

    /// Reasoning text; a new summary part is set off from the previous one by a blank line,
    /// as [`super::reasoning_text`] joins them in complete answers.
    fn thinking(
        &mut self,
        output_index: u64,
        part: Option<u64>,
        text: &str,
        out: &mut Vec<StreamEvent>,
    ) {
        let Some(Item::Reasoning {
            block,
            summary_index,
            redacted: false,
        }) = self.items.get_mut(&output_index)
        else {
            return;
        };
        if !block.open {
            return;
        }
        if let Some(part) = part
            && *summary_index != Some(part)
        {
            if summary_index.is_some() && block.filled {
                block.send(Delta::Thinking("\n\n".into()), out);
            }
            *summary_index = Some(part);
        }
        if !text.is_empty() {
            block.send(Delta::Thinking(text.to_string()), out);
        }
    }

    fn item_done(&mut self, output_index: u64, item: &Value, out: &mut Vec<StreamEvent>) {
        let kind = item.get("type").and_then(Value::as_str);
        let known = self.items.get(&output_index);
        let registered = match (kind, known) {
            (Some("message"), Some(Item::Message(_)))
            | (Some("function_call"), Some(Item::FunctionCall(_)))
            | (Some("reasoning"), Some(Item::Reasoning { .. })) => true,
            (_, Some(_)) => return, // not the item that was announced: ignore
            (_, None) => false,
        };
        match kind {
            Some("message") => {
                let content = item.get("content").and_then(Value::as_array);
                for (j, part) in content.into_iter().flatten().enumerate() {
                    let mut refusal = false;
                    if let Some(text) = content_text(part, &mut refusal) {
                        self.saw_refusal |= refusal;
                        self.fill_text(output_index, j as u64, text, out);
                    }
                }
                if let Some(Item::Message(parts)) = self.items.get_mut(&output_index) {
                    for block in parts.values_mut() {
                        close(block, out);
                    }
                }
            }
            Some("function_call") => {
                if !registered {
                    self.item_added(output_index, item, out);
                }
                let args = item
                    .get("arguments")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                self.arguments(output_index, args, true, out);
                if let Some(Item::FunctionCall(block)) = self.items.get_mut(&output_index) {
                    close(block, out);
                }
            }
            Some("reasoning") => {
                if !registered {
                    self.item_added(output_index, item, out);
                }
                if let Some(Item::Reasoning {
                    block, redacted, ..
                }) = self.items.get_mut(&output_index)
                {
                    if block.open && !*redacted {
                        let text = reasoning_text(item);
                        if !block.filled && !text.is_empty() {
                            out.push(StreamEvent::Delta {
                                index: block.index,
                                delta: Delta::Thinking(text),
                            });
                        }
                        if let Some(sig) = item.get("encrypted_content").and_then(Value::as_str) {
                            out.push(StreamEvent::Delta {
                                index: block.index,
                                delta: Delta::Signature(sig.to_string()),
                            });
                        }
                    }
                    close(block, out);
                }
            }
            _ => {}
        }
    }

    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        let mut open: Vec<&mut Block> = Vec::new();
        for item in self.items.values_mut() {
            match item {
                Item::Message(parts) => open.extend(parts.values_mut()),
                Item::FunctionCall(block) | Item::Reasoning { block, .. } => open.push(block),
                Item::Other => {}
            }
        }
        open.sort_by_key(|b| b.index);
        for block in open {
            close(block, out);
        }
    }
}

impl Block {
    /// Sends a delta into this block and notes that it carried something.
    fn send(&mut self, delta: Delta, out: &mut Vec<StreamEvent>) {
        self.filled = true;
        out.push(StreamEvent::Delta {
            index: self.index,
            delta,
        });
    }
}

fn close(block: &mut Block, out: &mut Vec<StreamEvent>) {
    if block.open {
        block.open = false;
        out.push(StreamEvent::BlockStop { index: block.index });
    }
}

/// How the client's stream is labelled.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// The model name to show the client (the one it asked for); empty: the upstream's.
    pub model: String,
    /// Unix seconds for `created_at` (and the response id when the source gives none).
    pub created: u64,
}

/// Client side: canonical stream events → Responses SSE bytes
/// (`event: <type>\ndata: {"type":<type>,"sequence_number":N,…}\n\n`).
///
/// Tolerates sources without block starts and stops (blocks open at their first delta and close
/// at `MessageDelta` / `MessageStop`) and usage that arrives after the stop reason: the final
/// `response.completed` (or `response.incomplete`) goes out at `MessageStop`, with the full
/// output and the best usage known.
#[derive(Debug)]
pub struct StreamEncoder {
    opts: EncodeOptions,
    sequence: u64,
    started: bool,
    done: bool,
    resp_id: String,
    model: String,
    acc: Accumulator,
    /// Items whose block has not stopped, in output order.
    open: Vec<OpenItem>,
    next_output: usize,
}

#[derive(Debug)]
struct OpenItem {
    /// The canonical block index.
    index: usize,
    output_index: usize,
    item_id: String,
    body: ItemBody,
}

#[derive(Debug)]
enum ItemBody {
    Text(String),
    ToolCall {
        id: String,
        name: String,
        arguments: String,
        thought_signature: Option<String>,
    },
    Thinking {
        text: String,
        signature: Option<String>,
        /// Whether `response.reasoning_summary_part.added` went out (at the first text).
        part_open: bool,
    },
    Redacted(String),
}

impl ItemBody {
    fn part(&self) -> Part {
        match self {
            ItemBody::Text(text) => Part::text(text.clone()),
            ItemBody::ToolCall {
                id,
                name,
                arguments,
                thought_signature,
            } => Part::ToolCall {
                id: id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
                thought_signature: thought_signature.clone(),
            },
            ItemBody::Thinking {
                text, signature, ..
            } => Part::Thinking {
                text: text.clone(),
                signature: signature.clone(),
            },
            ItemBody::Redacted(data) => Part::RedactedThinking { data: data.clone() },
        }
    }
}

impl StreamEncoder {
    pub fn new(options: EncodeOptions) -> Self {
        Self {
            opts: options,
            sequence: 0,
            started: false,
            done: false,
            resp_id: String::new(),
            model: String::new(),
            acc: Accumulator::default(),
            open: Vec::new(),
            next_output: 0,
        }
    }

    /// Appends the SSE bytes for one canonical event. Nothing follows the final event.
    pub fn push(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match event {
            StreamEvent::MessageStart { id, model, .. } => {
                self.acc.push(event);
                self.start(id, model, out);
            }
            StreamEvent::Ping => out.extend_from_slice(b": ping\n\n"),
            StreamEvent::BlockStart { index, block } => {
                self.start("", "", out);
                self.open_block(*index, block, out);
                self.acc.push(event);
            }
            StreamEvent::Delta { index, delta } => {
                self.start("", "", out);
                self.delta(*index, delta, out);
            }
            StreamEvent::BlockStop { index } => {
                if let Some(pos) = self.open.iter().position(|o| o.index == *index) {
                    let item = self.open.remove(pos);
                    self.close_item(item, out);
                }
            }
            StreamEvent::MessageDelta { .. } | StreamEvent::Usage { .. } => {
                self.start("", "", out);
                self.acc.push(event);
                if matches!(event, StreamEvent::MessageDelta { .. }) {
                    self.close_all(out);
                }
            }
            StreamEvent::MessageStop => {
                self.start("", "", out);
                self.close_all(out);
                self.complete(out);
            }
            StreamEvent::Error { error } => {
                self.start("", "", out);
                self.fail(error, out);
            }
        }
    }

    fn head(&self) -> Head<'_> {
        Head {
            id: &self.resp_id,
            created: self.opts.created,
            model: &self.model,
        }
    }

    /// `response.created` and `response.in_progress`, once, before anything else: the SDK's
    /// stream helper refuses any other first event.
    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if id.is_empty() && model.is_empty() {
            // No MessageStart: the accumulator still needs one to name the answer.
            self.acc.push(&StreamEvent::MessageStart {
                id: String::new(),
                model: String::new(),
                usage: None,
            });
        }
        self.resp_id = response_id(id, self.opts.created);
        self.model = if self.opts.model.is_empty() {
            model.to_string()
        } else {
            self.opts.model.clone()
        };
        let resp = response_object(&self.head(), "in_progress", Vec::new(), None, None, None);
        self.emit(out, "response.created", json!({"response": resp}));
        self.emit(out, "response.in_progress", json!({"response": resp}));
    }

    fn open_block(&mut self, index: usize, block: &BlockStart, out: &mut Vec<u8>) {
        // A source that reuses an index without stopping its block: close the old one first.
        if let Some(pos) = self.open.iter().position(|o| o.index == index) {
            let item = self.open.remove(pos);
            self.close_item(item, out);
        }
        let output_index = self.next_output;
        self.next_output += 1;
        let (prefix, body) = match block {
            BlockStart::Text => ("msg", ItemBody::Text(String::new())),
            BlockStart::Thinking => (
                "rs",
                ItemBody::Thinking {
                    text: String::new(),
                    signature: None,
                    part_open: false,
                },
            ),
            BlockStart::RedactedThinking { data } => ("rs", ItemBody::Redacted(data.clone())),
            BlockStart::ToolCall {
                id,
                name,
                thought_signature,
            } => (
                "fc",
                ItemBody::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                    thought_signature: thought_signature.clone(),
                },
            ),
        };
        let item_id = super::item_id(prefix, &self.resp_id, output_index);
        let added = match &body {
            ItemBody::Text(_) => json!({
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }),
            ItemBody::ToolCall {
                id,
                name,
                thought_signature,
                ..
            } => json!({
                "id": item_id,
                "type": "function_call",
                "status": "in_progress",
                "call_id": client_tool_id(id, thought_signature.as_deref()),
                "name": name,
                "arguments": "",
            }),
            ItemBody::Thinking { .. } => reasoning_item(&self.resp_id, output_index, "", None),
            ItemBody::Redacted(_) => {
                output_item(&body.part(), &self.resp_id, output_index).unwrap_or(Value::Null)
            }
        };
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": output_index, "item": added}),
        );
        if matches!(body, ItemBody::Text(_)) {
            self.emit(
                out,
                "response.content_part.added",
                json!({
                    "item_id": item_id,
                    "output_index": output_index,
                    "content_index": 0,
                    "part": output_text(""),
                }),
            );
        }
        self.open.push(OpenItem {
            index,
            output_index,
            item_id,
            body,
        });
    }

    fn delta(&mut self, index: usize, delta: &Delta, out: &mut Vec<u8>) {
        if !self.open.iter().any(|o| o.index == index) {
            // A source without block starts: the first delta opens the block.
            let block = match delta {
                Delta::Text(_) => BlockStart::Text,
                Delta::Thinking(_) => BlockStart::Thinking,
                Delta::ToolArguments(_) => BlockStart::ToolCall {
                    id: mint_tool_id(&self.resp_id, index),
                    name: String::new(),
                    thought_signature: None,
                },
                Delta::Signature(_) => return,
            };
            self.open_block(index, &block, out);
            self.acc.push(&StreamEvent::BlockStart { index, block });
        }
        self.acc.push(&StreamEvent::Delta {
            index,
            delta: delta.clone(),
        });
        let Some(pos) = self.open.iter().rposition(|o| o.index == index) else {
            return;
        };
        let mut events: Vec<(&'static str, Value)> = Vec::new();
        let open = &mut self.open[pos];
        let (item_id, output_index) = (open.item_id.clone(), open.output_index);
        match (&mut open.body, delta) {
            (ItemBody::Text(text), Delta::Text(t)) if !t.is_empty() => {
                text.push_str(t);
                events.push((
                    "response.output_text.delta",
                    json!({
                        "item_id": item_id,
                        "output_index": output_index,
                        "content_index": 0,
                        "delta": t,
                        "logprobs": [],
                    }),
                ));
            }
            (
                ItemBody::Thinking {
                    text, part_open, ..
                },
                Delta::Thinking(t),
            ) if !t.is_empty() => {
                if !*part_open {
                    *part_open = true;
                    events.push((
                        "response.reasoning_summary_part.added",
                        json!({
                            "item_id": item_id,
                            "output_index": output_index,
                            "summary_index": 0,
                            "part": {"type": "summary_text", "text": ""},
                        }),
                    ));
                }
                text.push_str(t);
                events.push((
                    "response.reasoning_summary_text.delta",
                    json!({
                        "item_id": item_id,
                        "output_index": output_index,
                        "summary_index": 0,
                        "delta": t,
                    }),
                ));
            }
            (ItemBody::Thinking { signature, .. }, Delta::Signature(s)) => {
                signature.get_or_insert_with(String::new).push_str(s);
            }
            (
                ItemBody::ToolCall {
                    thought_signature, ..
                },
                Delta::Signature(s),
            ) => *thought_signature = Some(s.clone()),
            (ItemBody::ToolCall { arguments, .. }, Delta::ToolArguments(a)) if !a.is_empty() => {
                arguments.push_str(a);
                events.push((
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": output_index, "delta": a}),
                ));
            }
            _ => {}
        }
        for (kind, fields) in events {
            self.emit(out, kind, fields);
        }
    }

    fn close_item(&mut self, item: OpenItem, out: &mut Vec<u8>) {
        let OpenItem {
            output_index,
            item_id,
            body,
            ..
        } = item;
        match &body {
            ItemBody::Text(text) => {
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({
                        "item_id": item_id,
                        "output_index": output_index,
                        "content_index": 0,
                        "text": text,
                        "logprobs": [],
                    }),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({
                        "item_id": item_id,
                        "output_index": output_index,
                        "content_index": 0,
                        "part": output_text(text),
                    }),
                );
            }
            ItemBody::ToolCall { arguments, .. } => self.emit(
                out,
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": output_index, "arguments": arguments}),
            ),
            ItemBody::Thinking {
                text,
                part_open: true,
                ..
            } => {
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({
                        "item_id": item_id,
                        "output_index": output_index,
                        "summary_index": 0,
                        "text": text,
                    }),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({
                        "item_id": item_id,
                        "output_index": output_index,
                        "summary_index": 0,
                        "part": {"type": "summary_text", "text": text},
                    }),
                );
            }
            ItemBody::Thinking { .. } | ItemBody::Redacted(_) => {}
        }
        let item = output_item(&body.part(), &self.resp_id, output_index).unwrap_or(Value::Null);
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": output_index, "item": item}),
        );
    }

    fn close_all(&mut self, out: &mut Vec<u8>) {
        for item in std::mem::take(&mut self.open) {
            self.close_item(item, out);
        }
    }

    /// `response.completed` (or `response.incomplete`) with the whole answer.
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.done = true;
        let resp = self.acc.response(self.opts.created);
        let (status, _) = status_of(resp.stop_reason.as_ref());
        let object = render(&self.head(), &resp);
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(out, kind, json!({"response": object}));
    }

    /// `error`, then `response.failed` with what was produced so far.
    fn fail(&mut self, error: &ErrorBody, out: &mut Vec<u8>) {
        self.done = true;
        let code = error
            .code
            .clone()
            .unwrap_or_else(|| error.kind.openai_type().to_string());
        self.emit(
            out,
            "error",
            json!({"code": code, "message": error.message, "param": error.param}),
        );
        let resp = self.acc.response(self.opts.created);
        let output = output_items(&self.resp_id, &resp.parts);
        let object = response_object(
            &self.head(),
            "failed",
            output,
            Some(&resp.usage),
            None,
            Some(response_error(error)),
        );
        self.emit(out, "response.failed", json!({"response": object}));
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, fields: Value) {
        let mut data = match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        data.insert("type".into(), kind.into());
        data.insert("sequence_number".into(), self.sequence.into());
        self.sequence += 1;
        out.extend_from_slice(&SseEvent::encode(
            Some(kind),
            &Value::Object(data).to_string(),
        ));
    }
}
