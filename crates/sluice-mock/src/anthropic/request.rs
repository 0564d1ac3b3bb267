//! The parts of a Messages (or count_tokens) request the mock looks at, validated as the real API
//! validates them, with its messages (`<field path>: <problem>`).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::error::AnthropicError;
use crate::assistant::{Conversation, Speaker, Tool, ToolChoice, Turn};

/// Smallest `thinking.budget_tokens` the API accepts.
const MIN_THINKING_BUDGET: i64 = 1024;

/// Which endpoint the body was sent to (count_tokens needs no `max_tokens`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens`.
    CountTokens,
}

/// A validated view into a request body.
#[derive(Debug)]
pub(crate) struct MessagesRequest<'a> {
    /// Requested model, echoed in the response.
    pub(crate) model: &'a str,
    messages: &'a [Value],
    system: Option<&'a Value>,
    tools: &'a [Value],
    tool_choice: Option<&'a Value>,
    /// `thinking.type` is `enabled` or `adaptive`.
    pub(crate) thinking: bool,
    /// `stream: true`.
    pub(crate) stream: bool,
}

impl<'a> MessagesRequest<'a> {
    /// Checks what the real API checks before generating anything.
    pub(crate) fn from_json(body: &'a Value, endpoint: Endpoint) -> Result<Self, AnthropicError> {
        let Value::Object(fields) = body else {
            return Err(invalid("Input should be a valid dictionary"));
        };
        let model = match present(fields, "model") {
            None => return Err(invalid("model: Field required")),
            Some(Value::String(model)) => model.as_str(),
            Some(_) => return Err(invalid("model: Input should be a valid string")),
        };
        if let Some(path) = crate::images::first_invalid(body) {
            return Err(invalid(format!("{path}: Invalid base64 data")));
        }
        let max_tokens = match endpoint {
            Endpoint::CountTokens => None,
            Endpoint::Messages => Some(max_tokens(present(fields, "max_tokens"))?),
        };
        let messages = match present(fields, "messages") {
            None => return Err(invalid("messages: Field required")),
            Some(Value::Array(messages)) if messages.is_empty() => {
                return Err(invalid("messages: at least one message is required"));
            }
            Some(Value::Array(messages)) => messages.as_slice(),
            Some(_) => return Err(invalid("messages: Input should be a valid list")),
        };
        for (i, message) in messages.iter().enumerate() {
            check_message(i, message)?;
        }
        check_tool_pairing(messages)?;
        let thinking = thinking(present(fields, "thinking"), max_tokens)?;
        Ok(Self {
            model,
            messages,
            system: present(fields, "system"),
            tools: present(fields, "tools")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice),
            tool_choice: present(fields, "tool_choice"),
            thinking,
            stream: present(fields, "stream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// The request as the fake assistant sees it.
    pub(crate) fn conversation(&self) -> Conversation<'a> {
        let mut turns = Vec::with_capacity(self.messages.len() + 1);
        match self.system {
            Some(Value::String(text)) => turns.push(Turn::new(Speaker::Other, [text.as_str()])),
            Some(Value::Array(blocks)) => turns.push(Turn::new(Speaker::Other, texts(blocks))),
            _ => {}
        }
        turns.extend(self.messages.iter().map(turn));
        let tools = self
            .tools
            .iter()
            // Server tools (`web_search_…`, `bash_…`) are run by Anthropic, never called.
            .filter(|tool| matches!(block_type(tool), None | Some("custom")))
            .filter_map(|tool| {
                Some(Tool {
                    name: tool.get("name")?.as_str()?,
                    parameters: tool.get("input_schema"),
                })
            })
            .collect();
        let tool_choice = match self.tool_choice.and_then(block_type) {
            Some("none") => ToolChoice::None,
            Some("tool") => self
                .tool_choice
                .and_then(|choice| choice.get("name"))
                .and_then(Value::as_str)
                .map_or(ToolChoice::Auto, ToolChoice::Named),
            _ => ToolChoice::Auto,
        };
        Conversation {
            turns,
            tools,
            tool_choice,
            ..Conversation::default()
        }
    }
}

fn invalid(message: impl Into<String>) -> AnthropicError {
    AnthropicError::invalid_request(message)
}

/// A field that is present and not `null`.
fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn max_tokens(value: Option<&Value>) -> Result<i64, AnthropicError> {
    let max_tokens = value
        .ok_or_else(|| invalid("max_tokens: Field required"))?
        .as_i64()
        .ok_or_else(|| invalid("max_tokens: Input should be a valid integer"))?;
    if max_tokens < 1 {
        return Err(invalid(
            "max_tokens: Input should be greater than or equal to 1",
        ));
    }
    Ok(max_tokens)
}

/// Whether thinking is on, after checking its configuration.
fn thinking(config: Option<&Value>, max_tokens: Option<i64>) -> Result<bool, AnthropicError> {
    let Some(config) = config else {
        return Ok(false);
    };
    match config.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = config
                .get("budget_tokens")
                .ok_or_else(|| invalid("thinking.enabled.budget_tokens: Field required"))?
                .as_i64()
                .ok_or_else(|| {
                    invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
                })?;
            if budget < MIN_THINKING_BUDGET {
                return Err(invalid(format!(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to \
                     {MIN_THINKING_BUDGET}"
                )));
            }
            if max_tokens.is_some_and(|max_tokens| budget >= max_tokens) {
                return Err(invalid(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult \
                     our documentation at https://docs.claude.com/en/docs/build-with-claude/\
                     extended-thinking#max-tokens-and-context-window-size",
                ));
            }
            Ok(true)
        }
        Some("adaptive") => Ok(true),
        Some("disabled") => Ok(false),
        Some(other) => Err(invalid(format!(
            "thinking: Input tag '{other}' found using 'type' does not match any of the \
             expected tags: 'enabled', 'disabled', 'adaptive'"
        ))),
        None => Err(invalid("thinking.type: Field required")),
    }
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

fn blocks(message: &Value) -> &[Value] {
    message
        .get("content")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// Role, content type, and each block's required fields.
fn check_message(i: usize, message: &Value) -> Result<(), AnthropicError> {
    match message.get("role") {
        None | Some(Value::Null) => {
            return Err(invalid(format!("messages.{i}.role: Field required")));
        }
        Some(Value::String(role)) if role == "user" || role == "assistant" => {}
        Some(_) => {
            return Err(invalid(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            )));
        }
    }
    match message.get("content") {
        None | Some(Value::Null) => Err(invalid(format!("messages.{i}.content: Field required"))),
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .try_for_each(|(j, block)| check_block(&format!("messages.{i}.content.{j}"), block)),
        Some(_) => Err(invalid(format!(
            "messages.{i}.content: Input should be a valid list"
        ))),
    }
}

fn check_block(at: &str, block: &Value) -> Result<(), AnthropicError> {
    let required = |kind: &str, field: &str| -> Result<&Value, AnthropicError> {
        block
            .get(field)
            .filter(|value| !value.is_null())
            .ok_or_else(|| invalid(format!("{at}.{kind}.{field}: Field required")))
    };
    match block_type(block) {
        Some("text") => {
            required("text", "text")?;
        }
        Some("tool_use") => {
            let id = required("tool_use", "id")?;
            if !id.as_str().is_some_and(is_tool_use_id) {
                return Err(invalid(format!(
                    "{at}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
                )));
            }
            required("tool_use", "name")?;
        }
        Some("tool_result") => {
            required("tool_result", "tool_use_id")?;
        }
        Some("thinking") => {
            required("thinking", "thinking")?;
            let signature = required("thinking", "signature")?;
            if signature.as_str().is_none_or(str::is_empty) {
                return Err(invalid(format!(
                    "{at}: Invalid `signature` in `thinking` block"
                )));
            }
        }
        Some(_) => {}
        None => return Err(invalid(format!("{at}.type: Field required"))),
    }
    Ok(())
}

/// `^[a-zA-Z0-9_-]+$`.
fn is_tool_use_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn ids_of<'a>(message: &'a Value, kind: &str, field: &str) -> Vec<&'a str> {
    blocks(message)
        .iter()
        .filter(|block| block_type(block) == Some(kind))
        .filter_map(|block| block.get(field).and_then(Value::as_str))
        .collect()
}

/// Every `tool_use` is answered by a `tool_result` in the very next message, and every
/// `tool_result` answers a `tool_use` of the message just before.
fn check_tool_pairing(messages: &[Value]) -> Result<(), AnthropicError> {
    for (i, message) in messages.iter().enumerate() {
        if role(message) == Some("user") {
            let offered = match i.checked_sub(1).map(|p| &messages[p]) {
                Some(previous) if role(previous) == Some("assistant") => {
                    ids_of(previous, "tool_use", "id")
                }
                _ => Vec::new(),
            };
            for (j, block) in blocks(message).iter().enumerate() {
                if block_type(block) != Some("tool_result") {
                    continue;
                }
                let id = block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !offered.contains(&id) {
                    return Err(invalid(format!(
                        "messages.{i}.content.{j}: unexpected `tool_use_id` found in \
                         `tool_result` blocks: {id}. Each `tool_result` block must have a \
                         corresponding `tool_use` block in the previous message."
                    )));
                }
            }
        }
        if role(message) == Some("assistant")
            && let Some(next) = messages.get(i + 1)
        {
            let answered = ids_of(next, "tool_result", "tool_use_id");
            let unanswered: Vec<&str> = ids_of(message, "tool_use", "id")
                .into_iter()
                .filter(|id| !answered.contains(id))
                .collect();
            if !unanswered.is_empty() {
                return Err(invalid(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks \
                     immediately after: {}. Each `tool_use` block must have a corresponding \
                     `tool_result` block in the next message.",
                    unanswered.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// The `text` of text blocks.
fn texts(blocks: &[Value]) -> impl Iterator<Item = &str> {
    blocks
        .iter()
        .filter(|block| block_type(block) == Some("text"))
        .filter_map(|block| block.get("text").and_then(Value::as_str))
}

/// A `tool_result`'s content: a string, or text blocks.
fn result_texts(result: &Value) -> Vec<&str> {
    match result.get("content") {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(blocks)) => texts(blocks).collect(),
        _ => Vec::new(),
    }
}

fn turn(message: &Value) -> Turn<'_> {
    let from_user = role(message) == Some("user");
    let speaker = if from_user {
        Speaker::User
    } else {
        Speaker::Other
    };
    match message.get("content") {
        Some(Value::String(text)) => Turn::new(speaker, [text.as_str()]),
        Some(Value::Array(blocks)) => {
            let results: Vec<&Value> = blocks
                .iter()
                .filter(|block| block_type(block) == Some("tool_result"))
                .collect();
            if from_user && !results.is_empty() {
                let texts = results
                    .into_iter()
                    .flat_map(result_texts)
                    .chain(texts(blocks))
                    .map(Cow::Borrowed)
                    .collect();
                Turn {
                    speaker: Speaker::ToolResult,
                    texts,
                }
            } else {
                Turn::new(speaker, texts(blocks))
            }
        }
        _ => Turn::new(speaker, []),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(body: Value) -> String {
        format!(
            "{:?}",
            MessagesRequest::from_json(&body, Endpoint::Messages).map(|_| ())
        )
    }

    #[test]
    fn required_fields_are_named_like_the_api_names_them() {
        let hi = json!([{"role": "user", "content": "hi"}]);
        assert!(error(json!({"max_tokens": 5, "messages": hi})).contains("model: Field required"));
        assert!(
            error(json!({"model": "m", "messages": hi})).contains("max_tokens: Field required")
        );
        assert!(
            error(json!({"model": "m", "max_tokens": 5, "messages": []}))
                .contains("messages: at least one message is required")
        );
        assert!(
            error(json!({"model": "m", "max_tokens": 5,
                "messages": [{"role": "system", "content": "x"}]}))
            .contains("messages.0.role: Input should be 'user' or 'assistant'")
        );
        // count_tokens needs no max_tokens.
        let body = json!({"model": "m", "messages": hi});
        assert!(MessagesRequest::from_json(&body, Endpoint::CountTokens).is_ok());
    }

    #[test]
    fn thinking_budget_bounds() {
        let body = |budget: i64, max: i64| {
            json!({"model": "m", "max_tokens": max, "messages": [{"role": "user", "content": "x"}],
                "thinking": {"type": "enabled", "budget_tokens": budget}})
        };
        assert!(error(body(1023, 4096)).contains("greater than or equal to 1024"));
        assert!(error(body(4096, 4096)).contains("`max_tokens` must be greater"));
        assert_eq!(error(body(1024, 4096)), "Ok(())");
    }

    #[test]
    fn an_unanswered_tool_use_is_rejected() {
        let body = json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
            {"role": "user", "content": "never mind"}
        ]});
        assert!(error(body).contains(
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately \
             after: toolu_1."
        ));
    }

    #[test]
    fn tool_results_become_a_tool_result_turn() {
        let body = json!({"model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "sys"}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "22C"}]}]}
            ],
            "tools": [{"type": "web_search_20250305", "name": "web_search"},
                      {"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "f"}
        });
        let request = MessagesRequest::from_json(&body, Endpoint::Messages);
        let Ok(request) = request else {
            unreachable!("valid request: {request:?}")
        };
        let conversation = request.conversation();
        assert_eq!(conversation.turns.len(), 4);
        assert_eq!(conversation.turns[3].speaker, Speaker::ToolResult);
        assert_eq!(conversation.turns[3].texts, ["22C"]);
        assert_eq!(conversation.tools.len(), 1);
        assert_eq!(conversation.tool_choice, ToolChoice::Named("f"));
    }
}
