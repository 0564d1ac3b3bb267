//! Complete (non-stream) answers, stop reasons and usage.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::canonical::{Part, Response, StopReason, embed_thought_signature, sanitize_tool_id};
use crate::error::{ErrorBody, ErrorKind};
use crate::usage::TokenUsage;

use super::request::decode_block;

/// Anthropic's `stop_reason` for a canonical one. Reasons Anthropic does not define become
/// `end_turn`, so strict clients never see an unknown value.
pub fn stop_reason_to_anthropic(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::EndTurn => "end_turn",
        StopReason::StopSequence => "stop_sequence",
        StopReason::MaxTokens => "max_tokens",
        StopReason::ToolUse => "tool_use",
        StopReason::ContentFilter => "refusal",
        StopReason::Other(other) => match other.as_str() {
            "pause_turn" => "pause_turn",
            "model_context_window_exceeded" => "model_context_window_exceeded",
            _ => "end_turn",
        },
    }
}

/// The canonical reason for an Anthropic `stop_reason`.
pub fn stop_reason_from_anthropic(reason: &str) -> StopReason {
    match reason {
        "end_turn" => StopReason::EndTurn,
        "stop_sequence" => StopReason::StopSequence,
        "max_tokens" => StopReason::MaxTokens,
        // The context window, not max_tokens, cut the answer: a length stop all the same.
        "model_context_window_exceeded" => StopReason::MaxTokens,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_string()),
    }
}

/// The stop reason to show an Anthropic client: other dialects (Gemini) end a turn that called
/// tools with a plain stop, but Anthropic clients loop on `tool_use`.
pub(super) fn client_stop_reason(reason: Option<&StopReason>, called_tools: bool) -> &'static str {
    match reason {
        None | Some(StopReason::EndTurn) if called_tools => "tool_use",
        None => "end_turn",
        Some(reason) => stop_reason_to_anthropic(reason),
    }
}

/// Reads Anthropic's `usage` object.
pub fn usage_from_anthropic(usage: &Value) -> TokenUsage {
    RawUsage::read(usage).canonical()
}

/// Anthropic's `usage` object for canonical usage.
pub fn usage_to_anthropic(usage: &TokenUsage) -> Value {
    let mut out = Map::new();
    out.insert("input_tokens".into(), uncached_input(usage).into());
    out.insert(
        "cache_creation_input_tokens".into(),
        usage.cache_write_tokens.into(),
    );
    out.insert(
        "cache_read_input_tokens".into(),
        usage.cache_read_tokens.into(),
    );
    out.insert("output_tokens".into(), usage.output_tokens.into());
    if usage.reasoning_tokens > 0 {
        out.insert(
            "output_tokens_details".into(),
            json!({"thinking_tokens": usage.reasoning_tokens}),
        );
    }
    Value::Object(out)
}

/// Anthropic's `input_tokens`: the prompt tokens that neither read nor filled the cache.
pub(super) fn uncached_input(usage: &TokenUsage) -> u64 {
    usage
        .input_tokens
        .saturating_sub(usage.cache_read_tokens)
        .saturating_sub(usage.cache_write_tokens)
}

/// Anthropic's usage fields as reported, each possibly absent (stream events report some).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RawUsage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_creation: Option<u64>,
    pub cache_read: Option<u64>,
    pub thinking: Option<u64>,
}

impl RawUsage {
    /// The fields an Anthropic `usage` object reports (absent or null: `None`).
    pub fn read(usage: &Value) -> RawUsage {
        let get = |key: &str| usage.get(key).and_then(Value::as_u64);
        RawUsage {
            input: get("input_tokens"),
            output: get("output_tokens"),
            cache_creation: get("cache_creation_input_tokens"),
            cache_read: get("cache_read_input_tokens"),
            thinking: usage
                .get("output_tokens_details")
                .and_then(|d| d.get("thinking_tokens"))
                .and_then(Value::as_u64),
        }
    }

    /// Later reports win field by field (`message_delta` usage is cumulative).
    pub fn merge(&mut self, later: &RawUsage) {
        let pick = |a: &mut Option<u64>, b: Option<u64>| {
            if b.is_some() {
                *a = b;
            }
        };
        pick(&mut self.input, later.input);
        pick(&mut self.output, later.output);
        pick(&mut self.cache_creation, later.cache_creation);
        pick(&mut self.cache_read, later.cache_read);
        pick(&mut self.thinking, later.thinking);
    }

    pub fn canonical(&self) -> TokenUsage {
        let cache_write = self.cache_creation.unwrap_or(0);
        let cache_read = self.cache_read.unwrap_or(0);
        TokenUsage {
            input_tokens: self
                .input
                .unwrap_or(0)
                .saturating_add(cache_write)
                .saturating_add(cache_read),
            output_tokens: self.output.unwrap_or(0),
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            reasoning_tokens: self.thinking.unwrap_or(0),
        }
    }
}

/// The error kind an Anthropic `error.type` names.
pub(super) fn error_kind(ty: &str) -> ErrorKind {
    match ty {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" | "billing_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" => ErrorKind::RateLimited,
        "overloaded_error" => ErrorKind::Overloaded,
        "timeout_error" => ErrorKind::Timeout,
        _ => ErrorKind::Upstream,
    }
}

/// An Anthropic `{"type":"error","error":{"type","message"}}` body (or its inner object).
pub(super) fn error_body(v: &Value) -> ErrorBody {
    let err = v.get("error").unwrap_or(v);
    let ty = err
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("api_error");
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("The upstream reported an error without a message.");
    ErrorBody::new(error_kind(ty), message).with_code(ty)
}

/// Upstream side: an Anthropic message body → canonical. An error body becomes `Err`.
pub fn decode_response(body: &[u8]) -> Result<Response, ErrorBody> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::Upstream,
            format!("The upstream answer is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = &v else {
        return Err(ErrorBody::new(
            ErrorKind::Upstream,
            "The upstream answer is not a JSON object.",
        ));
    };
    if obj.get("type").and_then(Value::as_str) == Some("error") {
        return Err(error_body(&v));
    }
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut names = HashMap::new();
    // An answer is read leniently: a block we cannot read is skipped, not fatal.
    let parts = obj
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| decode_block(b, "content", &mut names).ok().flatten())
                .collect()
        })
        .unwrap_or_default();
    Ok(Response {
        id: text("id"),
        model: text("model"),
        parts,
        stop_reason: obj
            .get("stop_reason")
            .and_then(Value::as_str)
            .map(stop_reason_from_anthropic),
        usage: obj
            .get("usage")
            .map(usage_from_anthropic)
            .unwrap_or_default(),
        created: 0,
    })
}

/// Anthropic message ids start with `msg_`; clients may rely on it.
pub(super) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_string()
    } else if id.is_empty() {
        "msg_sluice".to_string()
    } else {
        format!("msg_{}", sanitize_tool_id(id))
    }
}

/// The id an Anthropic client sees for a tool call, carrying a Gemini thought signature.
pub(super) fn client_tool_id(id: &str, thought_signature: Option<&str>) -> String {
    let id = sanitize_tool_id(id);
    match thought_signature {
        Some(sig) if !sig.is_empty() => embed_thought_signature(&id, sig),
        _ => id,
    }
}

/// Client side: canonical → the Anthropic message a client expects.
pub fn encode_response(resp: &Response) -> Value {
    let mut called_tools = false;
    let content: Vec<Value> = resp
        .parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text, .. } => Some(json!({"type": "text", "text": text})),
            Part::ToolCall {
                id,
                name,
                arguments,
                thought_signature,
            } => {
                called_tools = true;
                Some(json!({
                    "type": "tool_use",
                    "id": client_tool_id(id, thought_signature.as_deref()),
                    "name": name,
                    "input": crate::canonical::arguments_object(arguments),
                }))
            }
            Part::Thinking { text, signature } => Some(json!({
                "type": "thinking",
                "thinking": text,
                "signature": signature.as_deref().unwrap_or_default(),
            })),
            Part::RedactedThinking { data } => {
                Some(json!({"type": "redacted_thinking", "data": data}))
            }
            Part::Image { .. } | Part::ToolResult { .. } => None,
        })
        .collect();
    json!({
        "id": message_id(&resp.id),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": client_stop_reason(resp.stop_reason.as_ref(), called_tools),
        "stop_sequence": Value::Null,
        "usage": usage_to_anthropic(&resp.usage),
    })
}
