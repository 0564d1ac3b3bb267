//! OpenAI Responses (`POST /v1/responses`): the adapter between its wire format and the
//! canonical form (see `docs/adapters.md` for the contract every adapter keeps).
//!
//! - [`decode_request`] / [`encode_response`] / [`StreamEncoder`] serve clients that speak
//!   Responses (the `openai` SDKs' `client.responses.*`, Codex, agents).
//! - [`encode_request`] / [`decode_response`] / [`StreamDecoder`] talk to upstreams that speak it.
//!
//! Shapes follow the official `openai` Python SDK's models (`types/responses/*`): every
//! `response.*` stream event carries `type` and a strictly increasing `sequence_number`, and
//! `response.completed` carries the full `Response` object — `get_final_response()` reads its
//! `output`, so it holds every item with its final text and arguments.
//!
//! Mapping decisions:
//! - Each canonical content block is one output item (text → `message`, tool call →
//!   `function_call`, thinking → `reasoning`); streamed and complete answers therefore have the
//!   same items with the same ids, which are derived from the response id and the item's position.
//! - Tool-call ids: the canonical `ToolCall.id` is the item's `call_id`. A Gemini thought
//!   signature rides inside the `call_id` given to clients ([`embed_thought_signature`](crate::canonical::embed_thought_signature)) and is
//!   split off again from `function_call` and `function_call_output` items clients send back.
//! - Reasoning items map to `Thinking` with `text` = the summary texts (joined by a blank line;
//!   the `reasoning_text` content when there is no summary) and `signature` = `encrypted_content`.
//!   Anthropic's `RedactedThinking` reaches Responses clients as a reasoning item whose
//!   `encrypted_content` is `sluice-redacted:<data>`, so it comes back intact for Anthropic.
//! - Requests sent upstream always say `store: false` (Sluice keeps no state with the provider)
//!   and ask for `include: ["reasoning.encrypted_content"]` when reasoning is on, so reasoning can
//!   be replayed statelessly; system blocks become leading `system` messages (one per block).
//! - Prompt caching: Anthropic's `cache_control` and Responses' `prompt_cache_breakpoint` both
//!   mark the end of a cacheable prefix. TTLs are minimums: `1h` ↔ `12h`; a breakpoint with any
//!   TTL reads as `1h`, one without as the default (`{"type":"ephemeral"}`).
//! - Function tools without `strict` are sent with `strict: false`: Responses defaults to `true`,
//!   which would reject the many schemas other dialects' clients write.
//! - Stop reasons: `incomplete_details.reason` `max_output_tokens` → `MaxTokens`, `content_filter`
//!   → `ContentFilter` (these win: a truncated call is not a finished one); else `function_call`
//!   items → `ToolUse`; else a `refusal` part → `ContentFilter`; else `EndTurn`. Encoding writes
//!   `MaxTokens` / `ContentFilter` as `status: "incomplete"` with that reason, all else `completed`.
//! - A stream from an upstream that ends without `response.completed`, `response.incomplete` or
//!   `response.failed` was cut short: [`StreamDecoder::finish`] reports it as an error.
//!
//! # Not carried
//! Into canonical (from a client's request):
//! - `previous_response_id` and `conversation`: server-side state that cannot be served
//!   statelessly across dialects; the request is decoded from its own `input` alone.
//! - `store`, `metadata`, `include`, `background`, `service_tier`, `truncation`,
//!   `prompt_cache_key`, `prompt`, `max_tool_calls`, `top_logprobs`, `text.verbosity`,
//!   `stream_options`.
//! - Non-function tools (`web_search`, `file_search`, `computer_use`, `mcp`, `custom`, …) and
//!   `tool_choice` naming one of them (the choice is dropped); `allowed_tools` becomes its `mode`
//!   (`auto` / `required`) without the allow-list.
//! - `input_file` and `input_audio` parts, `input_image` given only as a `file_id`, and
//!   `item_reference` and other non-message items (hosted tool calls and their outputs).
//! - The position of system/developer messages within `input` (they become the canonical
//!   system blocks, in order) and the boundaries between consecutive items of one role (they
//!   merge into one turn).
//! - Ids of input items (`id` of messages, reasoning and function calls), message `phase`,
//!   `status`, text annotations and logprobs; `json_schema.description`.
//! - `reasoning.summary`'s level (`auto`/`concise`/`detailed` all mean "include thoughts");
//!   effort `max`, which canonical lacks, becomes `xhigh`.
//! - `prompt_cache_breakpoint` on images (canonical images carry no cache marker), the exact
//!   breakpoint TTL (`30m` and `12h` both read as `1h`), `prompt_cache_options`,
//!   `prompt_cache_retention`.
//! - `detail: "auto"` on images (it is the default, so it decodes as no detail).
//!
//! Out of canonical (to an upstream or a client):
//! - `stop` sequences, `top_k`, `seed`: Responses has no such parameters.
//! - `cache_control` on assistant text (Responses has no breakpoint on `output_text`); other
//!   TTLs than `1h` (they ask for the request's default).
//! - Gemini thought signatures on text parts, and thought signatures on tool calls sent upstream
//!   (a Responses upstream is not Gemini; clients do get them, inside `call_id`).
//! - A reasoning `budget_tokens` (sent as the effort whose budget covers it) and
//!   `include_thoughts: false` (no `summary`).
//! - `Thinking` without a signature and `RedactedThinking` in requests sent upstream: OpenAI
//!   needs `encrypted_content` to replay reasoning statelessly and cannot read Anthropic's
//!   redacted data.
//! - Tool results' `is_error` and function name (`function_call_output` has neither); images in
//!   assistant turns.
//! - `tool_choice` and `parallel_tool_calls` when no tools are sent.
//! - Stop reasons `StopSequence` and `Other(_)` (both answer `status: "completed"`).
//! - The request's settings in the Response object (`tools`, `tool_choice`, `temperature`,
//!   `text`, …): the canonical `Response` does not hold them, so these fields show defaults.

mod request;
mod response;
mod stream;

pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{EncodeOptions, StreamDecoder, StreamEncoder};

use serde_json::{Map, Value, json};

use crate::canonical::{Part, StopReason, extract_thought_signature, mint_tool_id};
use crate::error::{ErrorBody, ErrorKind};
use crate::openai_common::client_tool_id;
use crate::usage::TokenUsage;

/// Prefix of `encrypted_content` that carries Anthropic redacted thinking through clients.
const REDACTED_MARK: &str = "sluice-redacted:";

/// A deterministic item id (`msg_…`, `fc_…`, `rs_…`, `resp_…`): a hash of the response id and
/// the item's position, so the streamed and the complete answer name items alike.
fn item_id(prefix: &str, seed: &str, position: usize) -> String {
    let minted = mint_tool_id(seed, position);
    let hash = minted.strip_prefix("call_").unwrap_or(&minted);
    format!("{prefix}_{hash}")
}

/// The `resp_…` id shown to clients for a canonical answer id.
fn response_id(id: &str, created: u64) -> String {
    if id.starts_with("resp_") {
        id.to_string()
    } else if id.is_empty() {
        item_id("resp", &created.to_string(), 0)
    } else {
        format!("resp_{id}")
    }
}

/// The `usage` object; `total_tokens` is input plus output.
fn usage_json(usage: &TokenUsage) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens.saturating_add(usage.output_tokens),
    })
}

/// Reads a `usage` object (`input_tokens` already includes cache reads and writes).
fn parse_usage(v: &Value) -> Option<TokenUsage> {
    let obj = v.as_object()?;
    let num = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let input_details = obj.get("input_tokens_details");
    let output_details = obj.get("output_tokens_details");
    Some(TokenUsage {
        input_tokens: num(obj.get("input_tokens")),
        output_tokens: num(obj.get("output_tokens")),
        cache_read_tokens: num(input_details.and_then(|d| d.get("cached_tokens"))),
        cache_write_tokens: num(input_details.and_then(|d| d.get("cache_write_tokens"))),
        reasoning_tokens: num(output_details.and_then(|d| d.get("reasoning_tokens"))),
    })
}

/// A text content part of an output message.
fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// The output item for one answer part (`None` for parts an answer cannot hold: tool results,
/// images). `position` is the item's index in `output`.
fn output_item(part: &Part, resp_id: &str, position: usize) -> Option<Value> {
    Some(match part {
        Part::Text { text, .. } => json!({
            "id": item_id("msg", resp_id, position),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [output_text(text)],
        }),
        Part::ToolCall {
            id,
            name,
            arguments,
            thought_signature,
        } => json!({
            "id": item_id("fc", resp_id, position),
            "type": "function_call",
            "status": "completed",
            "call_id": client_tool_id(id, thought_signature.as_deref()),
            "name": name,
            "arguments": arguments,
        }),
        Part::Thinking { text, signature } => {
            reasoning_item(resp_id, position, text, signature.clone())
        }
        Part::RedactedThinking { data } => reasoning_item(
            resp_id,
            position,
            "",
            Some(format!("{REDACTED_MARK}{data}")),
        ),
        Part::Image { .. } | Part::ToolResult { .. } => return None,
    })
}

fn reasoning_item(resp_id: &str, position: usize, text: &str, encrypted: Option<String>) -> Value {
    let mut item = Map::new();
    item.insert("id".into(), item_id("rs", resp_id, position).into());
    item.insert("type".into(), "reasoning".into());
    item.insert("summary".into(), summary_json(text));
    if let Some(enc) = encrypted {
        item.insert("encrypted_content".into(), enc.into());
    }
    Value::Object(item)
}

fn summary_json(text: &str) -> Value {
    if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    }
}

/// How an answer ended, as Responses says it: `status` and `incomplete_details.reason`.
fn status_of(stop: Option<&StopReason>) -> (&'static str, Option<&'static str>) {
    match stop {
        Some(StopReason::MaxTokens) => ("incomplete", Some("max_output_tokens")),
        Some(StopReason::ContentFilter) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// What names a Response object: its `resp_…` id, creation time and model.
struct Head<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
}

/// The Response object. Fields the Python SDK's model requires are always present; those that
/// echo the request show defaults (the canonical answer does not hold the request).
fn response_object(
    head: &Head<'_>,
    status: &str,
    output: Vec<Value>,
    usage: Option<&TokenUsage>,
    incomplete_reason: Option<&str>,
    error: Option<Value>,
) -> Value {
    json!({
        "id": head.id,
        "object": "response",
        "created_at": head.created,
        "status": status,
        "background": false,
        "error": error,
        "incomplete_details": incomplete_reason.map(|reason| json!({"reason": reason})),
        "instructions": null,
        "max_output_tokens": null,
        "metadata": {},
        "model": head.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": null,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(usage_json),
        "user": null,
    })
}

/// Parts of one output (or input) item; `saw_refusal` is set by a `refusal` part.
fn item_parts(item: &Value, saw_refusal: &mut bool) -> Vec<Part> {
    match item.get("type").and_then(Value::as_str) {
        Some("message") => {
            let Some(content) = item.get("content").and_then(Value::as_array) else {
                return match item.get("content").and_then(Value::as_str) {
                    Some(text) => vec![Part::text(text)],
                    None => Vec::new(),
                };
            };
            content
                .iter()
                .filter_map(|c| content_text(c, saw_refusal).map(Part::text))
                .collect()
        }
        Some("function_call") => function_call_part(item).into_iter().collect(),
        Some("reasoning") => reasoning_part(item).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The text of an `output_text` / `refusal` / `input_text` content part.
fn content_text<'a>(content: &'a Value, saw_refusal: &mut bool) -> Option<&'a str> {
    match content.get("type").and_then(Value::as_str) {
        Some("output_text" | "input_text" | "text") => content.get("text").and_then(Value::as_str),
        Some("refusal") => {
            *saw_refusal = true;
            content.get("refusal").and_then(Value::as_str)
        }
        _ => None,
    }
}

/// A `function_call` item as a canonical tool call (`None` without a `call_id` or `name`).
fn function_call_part(item: &Value) -> Option<Part> {
    let call_id = item.get("call_id").and_then(Value::as_str)?;
    let name = item.get("name").and_then(Value::as_str)?;
    let (id, thought_signature) = extract_thought_signature(call_id);
    Some(Part::ToolCall {
        id,
        name: name.to_string(),
        arguments: arguments_text(item.get("arguments")),
        thought_signature,
    })
}

/// Arguments as JSON text; sloppy clients send an object, which is serialised.
fn arguments_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A `reasoning` item as `Thinking` (or `RedactedThinking`); `None` when it holds nothing.
fn reasoning_part(item: &Value) -> Option<Part> {
    let encrypted = item
        .get("encrypted_content")
        .and_then(Value::as_str)
        .map(String::from);
    if let Some(data) = encrypted
        .as_deref()
        .and_then(|e| e.strip_prefix(REDACTED_MARK))
    {
        return Some(Part::RedactedThinking {
            data: data.to_string(),
        });
    }
    let text = reasoning_text(item);
    if text.is_empty() && encrypted.is_none() {
        return None;
    }
    Some(Part::Thinking {
        text,
        signature: encrypted,
    })
}

/// The summary texts joined by a blank line, or the `reasoning_text` content without a summary.
fn reasoning_text(item: &Value) -> String {
    let texts = |key: &str, kind: &str| -> Vec<&str> {
        item.get(key)
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Value::as_str) == Some(kind))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default()
    };
    let summary = texts("summary", "summary_text");
    if summary.is_empty() {
        texts("content", "reasoning_text").join("\n\n")
    } else {
        summary.join("\n\n")
    }
}

/// Why an answer ended, from a Response object (`saw_tool_call`/`saw_refusal` add what a
/// stream showed before the final object).
fn stop_reason(resp: &Value, saw_tool_call: bool, saw_refusal: bool) -> StopReason {
    let reason = resp
        .get("incomplete_details")
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str);
    let incomplete = resp.get("status").and_then(Value::as_str) == Some("incomplete");
    match reason {
        Some("max_output_tokens") => return StopReason::MaxTokens,
        Some("content_filter") => return StopReason::ContentFilter,
        Some(other) => return StopReason::Other(other.to_string()),
        None if incomplete => return StopReason::Other("incomplete".into()),
        None => {}
    }
    let output = resp.get("output").and_then(Value::as_array);
    let has_call = output.is_some_and(|items| {
        items
            .iter()
            .any(|i| i.get("type").and_then(Value::as_str) == Some("function_call"))
    });
    let mut refusal = saw_refusal;
    for item in output.into_iter().flatten() {
        item_parts(item, &mut refusal);
    }
    if has_call || saw_tool_call {
        StopReason::ToolUse
    } else if refusal {
        StopReason::ContentFilter
    } else {
        StopReason::EndTurn
    }
}

/// An upstream's `error` object (`{code, message, param?}`) as an error body.
fn upstream_error(err: &Value) -> ErrorBody {
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("The upstream failed to generate a response.");
    let code = err.get("code").and_then(Value::as_str);
    let kind = match code {
        Some("rate_limit_exceeded" | "insufficient_quota") => ErrorKind::RateLimited,
        Some("invalid_prompt" | "context_length_exceeded") => ErrorKind::InvalidRequest,
        Some(c) if c.starts_with("invalid_") || c.starts_with("image_") => {
            ErrorKind::InvalidRequest
        }
        _ => ErrorKind::Upstream,
    };
    let mut body = ErrorBody::new(kind, message);
    body.code = code.map(String::from);
    body.param = err.get("param").and_then(Value::as_str).map(String::from);
    body
}

/// A canonical error as the Response object's `error` (`code` from the SDK's closed set).
fn response_error(error: &ErrorBody) -> Value {
    let code = match error.kind {
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::InvalidRequest => "invalid_prompt",
        _ => "server_error",
    };
    json!({"code": code, "message": error.message})
}
