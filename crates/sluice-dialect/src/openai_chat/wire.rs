//! Pieces of the Chat Completions wire format shared by requests, responses and streams.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::canonical::{Part, StopReason};
use crate::error::{ErrorBody, ErrorKind};
use crate::usage::TokenUsage;

/// `finish_reason` → canonical. Unknown reasons are kept by name. OpenAI ends a refusal with
/// `stop`; canonically it is a refusal (Anthropic's `refusal`).
pub(super) fn finished(finish_reason: &str, refused: bool) -> StopReason {
    match finish_reason {
        "stop" if refused => StopReason::ContentFilter,
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_string()),
    }
}

/// Canonical → `finish_reason`. OpenAI clients loop on `tool_calls`, so an answer that called
/// tools says so even when the source dialect reported a plain end of turn (Gemini does).
pub(super) fn finish_reason(reason: Option<&StopReason>, called_tools: bool) -> &'static str {
    match reason {
        Some(StopReason::MaxTokens) => "length",
        Some(StopReason::ToolUse) => "tool_calls",
        Some(StopReason::ContentFilter) => "content_filter",
        Some(StopReason::EndTurn | StopReason::StopSequence | StopReason::Other(_)) | None => {
            if called_tools {
                "tool_calls"
            } else {
                "stop"
            }
        }
    }
}

/// The `usage` object clients get.
#[derive(Debug, Serialize)]
pub(super) struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptTokensDetails,
    completion_tokens_details: CompletionTokensDetails,
}

#[derive(Debug, Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

#[derive(Debug, Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
}

impl From<&TokenUsage> for WireUsage {
    /// Canonical input already counts cache reads and writes, as `prompt_tokens` does.
    fn from(u: &TokenUsage) -> Self {
        WireUsage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total(),
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cache_read_tokens,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
        }
    }
}

/// Reads an upstream `usage` object leniently (missing or odd fields count as zero).
/// DeepSeek reports cache hits as `prompt_cache_hit_tokens` instead of `cached_tokens`.
pub(super) fn usage_from_json(usage: &Value) -> TokenUsage {
    let num = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let cached = usage
        .pointer("/prompt_tokens_details/cached_tokens")
        .and_then(Value::as_u64)
        .or_else(|| usage.get("prompt_cache_hit_tokens").and_then(Value::as_u64))
        .unwrap_or(0);
    TokenUsage {
        input_tokens: num(usage.get("prompt_tokens")),
        output_tokens: num(usage.get("completion_tokens")),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
        reasoning_tokens: num(usage.pointer("/completion_tokens_details/reasoning_tokens")),
    }
}

/// The completion id clients see: `chatcmpl-` + the source's id.
pub(super) fn completion_id(id: &str) -> String {
    if id.starts_with("chatcmpl-") {
        id.to_string()
    } else if id.is_empty() {
        "chatcmpl-sluice".to_string()
    } else {
        format!("chatcmpl-{id}")
    }
}

/// The `assistant` message for canonical parts: the text parts joined as `content` (`null` when
/// the turn only calls tools), thinking as `reasoning_content`, and the calls as `tool_calls`
/// with the ids `call_id` gives them. Images, redacted thinking and tool results have no place
/// in it.
pub(super) fn assistant_message(
    parts: &[Part],
    call_id: impl Fn(&str, Option<&str>) -> String,
) -> Map<String, Value> {
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    for part in parts {
        match part {
            Part::Text { text: t, .. } => text.get_or_insert_with(String::new).push_str(t),
            Part::Thinking { text: t, .. } => reasoning.get_or_insert_with(String::new).push_str(t),
            Part::ToolCall {
                id,
                name,
                arguments,
                thought_signature,
            } => tool_calls.push(json!({
                "id": call_id(id, thought_signature.as_deref()),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            })),
            _ => {}
        }
    }
    let content = match text {
        Some(text) => json!(text),
        None if !tool_calls.is_empty() => Value::Null,
        // An assistant message needs content or tool calls.
        None => json!(""),
    };
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), content);
    if let Some(reasoning) = reasoning {
        // DeepSeek requires it back on tool-call turns; servers that do not know it ignore it.
        message.insert("reasoning_content".into(), json!(reasoning));
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    message
}

/// The `error` member an upstream sent in a 200 body or a stream chunk, as an [`ErrorBody`].
pub(super) fn upstream_error(body: &[u8], error: &Value) -> ErrorBody {
    if let Some(parsed) = ErrorBody::parse_any(502, body) {
        return parsed;
    }
    let message = error
        .as_str()
        .unwrap_or("The upstream reported an error without a message.");
    ErrorBody::new(ErrorKind::Upstream, message)
}

/// An upstream body that is not the JSON it should be.
pub(super) fn malformed(what: &str, detail: impl std::fmt::Display) -> ErrorBody {
    ErrorBody::new(
        ErrorKind::Upstream,
        format!("The upstream sent a malformed {what}: {detail}"),
    )
}
