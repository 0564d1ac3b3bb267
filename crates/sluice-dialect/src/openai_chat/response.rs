//! Complete (non-stream) answers: an upstream's `chat.completion` → canonical, and canonical →
//! the `chat.completion` a client expects.

use serde_json::{Value, json};

use super::wire::{
    WireUsage, assistant_message, completion_id, finish_reason, finished, malformed,
    upstream_error, usage_from_json,
};
use crate::canonical::{Part, Response, extract_thought_signature, mint_tool_id};
use crate::error::ErrorBody;
use crate::openai_common::client_tool_id;

/// Upstream side: a `chat.completion` body → canonical. Only choice 0 is read.
pub fn decode_response(body: &[u8]) -> Result<Response, ErrorBody> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed("response", e))?;
    if let Some(error) = value.get("error").filter(|e| !e.is_null()) {
        return Err(upstream_error(body, error));
    }
    let Some(choices) = value.get("choices").and_then(Value::as_array) else {
        return Err(malformed("response", "it has no `choices`"));
    };
    let id = value.get("id").and_then(Value::as_str).unwrap_or_default();
    let choice = choices
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0);
    let message = choice.and_then(|c| c.get("message"));
    let parts = message.map(|m| message_parts(m, id)).unwrap_or_default();
    let refused = message
        .and_then(|m| m.get("refusal"))
        .and_then(Value::as_str)
        .is_some_and(|r| !r.is_empty());
    Ok(Response {
        id: id.to_string(),
        model: value
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        parts,
        stop_reason: choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .map(|reason| finished(reason, refused)),
        usage: value.get("usage").map(usage_from_json).unwrap_or_default(),
        created: value.get("created").and_then(Value::as_u64).unwrap_or(0),
    })
}

/// An assistant message's reasoning, text (a refusal counts as text) and tool calls, in that order.
fn message_parts(message: &Value, response_id: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let reasoning = ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|key| message.get(key).and_then(Value::as_str))
        .filter(|r| !r.is_empty());
    if let Some(text) = reasoning {
        parts.push(Part::Thinking {
            text: text.to_string(),
            signature: None,
        });
    }
    match message.get("content") {
        Some(Value::String(text)) if !text.is_empty() => parts.push(Part::text(text.clone())),
        Some(Value::Array(items)) => parts.extend(
            items
                .iter()
                .filter(|item| item.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|item| item.get("text").and_then(Value::as_str))
                .map(Part::text),
        ),
        _ => {}
    }
    if let Some(refusal) = message
        .get("refusal")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        parts.push(Part::text(refusal));
    }
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (position, call) in calls.iter().enumerate() {
        if call
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "function")
        {
            continue;
        }
        let raw_id = call.get("id").and_then(Value::as_str).unwrap_or_default();
        let (id, thought_signature) = if raw_id.is_empty() {
            (mint_tool_id(response_id, position), None)
        } else {
            extract_thought_signature(raw_id)
        };
        let function = call.get("function");
        parts.push(Part::ToolCall {
            id,
            name: function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            arguments: match function.and_then(|f| f.get("arguments")) {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            },
            thought_signature,
        });
    }
    parts
}

/// Client side: canonical → the `chat.completion` body.
pub fn encode_response(resp: &Response) -> Value {
    let mut message = assistant_message(&resp.parts, client_tool_id);
    message.insert("refusal".into(), Value::Null);
    let called_tools = message.contains_key("tool_calls");
    json!({
        "id": completion_id(&resp.id),
        "object": "chat.completion",
        "created": resp.created,
        "model": resp.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(resp.stop_reason.as_ref(), called_tools),
        }],
        "usage": WireUsage::from(&resp.usage),
    })
}
