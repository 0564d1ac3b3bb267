//! What the fake assistant answers: deterministic text or one tool call, and the token counts.

use serde_json::{Map, Value, json};

use super::request::ChatRequest;
use crate::directives::Directives;
use crate::ids;

/// Characters of user text echoed back.
const ECHO_CHARS: usize = 200;

/// Completion tokens reported for a tool call.
const TOOL_CALL_TOKENS: u64 = 12;

/// The assistant's answer.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// Plain text, `finish_reason: "stop"`.
    Text(String),
    /// One function call, `finish_reason: "tool_calls"`.
    ToolCall(ToolCall),
}

/// A function call the fake assistant makes.
#[derive(Debug, PartialEq)]
pub(crate) struct ToolCall {
    /// `call_` + 24 alphanumerics.
    pub(crate) id: String,
    /// Function name.
    pub(crate) name: String,
    /// JSON object, serialized.
    pub(crate) arguments: String,
}

/// Token counts, deterministic estimates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Prompt tokens, including the cached ones.
    pub(crate) prompt: u64,
    /// Completion tokens.
    pub(crate) completion: u64,
    /// Cached prompt tokens (`mock:cached=N`).
    pub(crate) cached: u64,
}

impl Reply {
    /// OpenAI's `finish_reason` for this reply.
    pub(crate) fn finish_reason(&self) -> &'static str {
        match self {
            Reply::Text(_) => "stop",
            Reply::ToolCall(_) => "tool_calls",
        }
    }
}

/// Decides the reply and its usage for a request.
pub(crate) fn answer(request: &ChatRequest<'_>, directives: &Directives) -> (Reply, Usage) {
    let reply = tool_call(request).map_or_else(
        || Reply::Text(text_reply(request.messages, directives)),
        Reply::ToolCall,
    );
    let prompt_chars: usize = request
        .messages
        .iter()
        .flat_map(|message| text_parts(message.get("content")))
        .map(|text| text.chars().count())
        .sum();
    let cached = directives.cached.unwrap_or(0);
    let completion = match &reply {
        Reply::Text(text) => text.split_whitespace().count() as u64,
        Reply::ToolCall(_) => TOOL_CALL_TOKENS,
    };
    let usage = Usage {
        // Prompt tokens include the cached ones, so never report fewer.
        prompt: (prompt_chars.div_ceil(4) as u64).max(1).max(cached),
        completion,
        cached,
    };
    (reply, usage)
}

fn role(message: &Value) -> Option<&str> {
    message.get("role").and_then(Value::as_str)
}

/// The text of a message's `content`: a string, or the `text` of its parts.
fn text_parts(content: Option<&Value>) -> Vec<&str> {
    match content {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

fn message_text(message: &Value) -> String {
    text_parts(message.get("content")).join(" ")
}

fn first_chars(text: &str, n: usize) -> &str {
    text.char_indices()
        .nth(n)
        .map_or(text, |(at, _)| &text[..at])
}

fn text_reply(messages: &[Value], directives: &Directives) -> String {
    if let Some(words) = directives.words {
        return numbered_words(words);
    }
    match messages.last() {
        Some(last) if role(last) == Some("tool") => format!(
            "Tool result received: {}",
            first_chars(&message_text(last), ECHO_CHARS)
        ),
        _ => {
            let said = messages
                .iter()
                .rev()
                .find(|message| role(message) == Some("user"))
                .map(message_text)
                .unwrap_or_default();
            format!(
                "Hello from sluice-mock! You said: {}",
                first_chars(&said, ECHO_CHARS)
            )
        }
    }
}

/// `w1 w2 … wN`.
fn numbered_words(n: usize) -> String {
    let mut text = String::with_capacity(n * 7);
    for i in 1..=n {
        if i > 1 {
            text.push(' ');
        }
        text.push('w');
        text.push_str(&i.to_string());
    }
    text
}

/// A call to the named (or first) tool, when tools are offered to a user turn.
fn tool_call(request: &ChatRequest<'_>) -> Option<ToolCall> {
    let last_is_user = request.messages.last().and_then(role) == Some("user");
    let tool_choice = request.tool_choice;
    if request.tools.is_empty()
        || !last_is_user
        || tool_choice.and_then(Value::as_str) == Some("none")
    {
        return None;
    }
    let functions = request.tools.iter().filter_map(|tool| tool.get("function"));
    let named = tool_choice
        .and_then(|choice| choice.get("function"))
        .and_then(|function| function.get("name"))
        .and_then(Value::as_str);
    let (name, function) = match named {
        Some(name) => (
            name,
            functions
                .clone()
                .find(|function| function_name(function) == Some(name)),
        ),
        None => {
            let function = functions
                .clone()
                .find(|function| function_name(function).is_some())?;
            (function_name(function)?, Some(function))
        }
    };
    Some(ToolCall {
        id: ids::tool_call_id(),
        name: name.to_owned(),
        arguments: fake_arguments(function.and_then(|function| function.get("parameters"))),
    })
}

fn function_name(function: &Value) -> Option<&str> {
    function.get("name").and_then(Value::as_str)
}

/// A JSON object with every required property set to a plausible value of its schema type.
fn fake_arguments(parameters: Option<&Value>) -> String {
    let properties = parameters.and_then(|schema| schema.get("properties"));
    let required = parameters
        .and_then(|schema| schema.get("required"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    let mut arguments = Map::new();
    for name in required {
        let schema = properties.and_then(|properties| properties.get(name));
        arguments.insert(name.to_owned(), fake_value(name, schema));
    }
    Value::Object(arguments).to_string()
}

fn fake_value(name: &str, schema: Option<&Value>) -> Value {
    if let Some(first) = schema
        .and_then(|schema| schema.get("enum"))
        .and_then(Value::as_array)
        .and_then(|values| values.first())
    {
        return first.clone();
    }
    let kind = match schema.and_then(|schema| schema.get("type")) {
        Some(Value::String(kind)) => kind.as_str(),
        // `["string", "null"]`: the first non-null type.
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null")
            .unwrap_or("null"),
        _ => "string",
    };
    match kind {
        "number" | "integer" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => json!({}),
        "null" => Value::Null,
        _ => {
            let lower = name.to_ascii_lowercase();
            if lower.contains("location") || lower.contains("city") {
                json!("Paris")
            } else {
                json!("test")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_for(body: Value, directives: &Directives) -> (Reply, Usage) {
        let request = ChatRequest::from_json(&body);
        assert!(request.is_ok(), "{request:?}");
        let Ok(request) = request else {
            return (
                Reply::Text(String::new()),
                Usage {
                    prompt: 0,
                    completion: 0,
                    cached: 0,
                },
            );
        };
        answer(&request, directives)
    }

    #[test]
    fn echoes_the_last_user_text_parts() {
        let body = json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}, {"type": "text", "text": "there"}]}
        ]});
        let (reply, usage) = answer_for(body, &Directives::default());
        assert_eq!(
            reply,
            Reply::Text("Hello from sluice-mock! You said: hi there".into())
        );
        // "be brief" + "hi" + "there" = 15 chars -> 4 tokens.
        assert_eq!(
            usage,
            Usage {
                prompt: 4,
                completion: 7,
                cached: 0
            }
        );
    }

    #[test]
    fn echo_is_cut_at_200_characters() {
        let long = "é".repeat(300);
        let body = json!({"model": "m", "messages": [{"role": "user", "content": long}]});
        let (Reply::Text(text), _) = answer_for(body, &Directives::default()) else {
            unreachable!("no tools offered")
        };
        assert_eq!(text.chars().filter(|c| *c == 'é').count(), 200);
    }

    #[test]
    fn words_and_cached_directives_shape_the_reply() {
        let directives = Directives {
            words: Some(3),
            cached: Some(50),
            ..Directives::default()
        };
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let (reply, usage) = answer_for(body, &directives);
        assert_eq!(reply, Reply::Text("w1 w2 w3".into()));
        assert_eq!(
            usage,
            Usage {
                prompt: 50,
                completion: 3,
                cached: 50
            }
        );
    }

    #[test]
    fn named_tool_gets_typed_required_arguments() {
        let body = json!({"model": "m",
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": [
                {"type": "function", "function": {"name": "first", "parameters": {}}},
                {"type": "function", "function": {"name": "get_weather", "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                        "days": {"type": "integer"}, "detailed": {"type": "boolean"},
                        "tags": {"type": "array"}, "extra": {"type": "object"}, "note": {"type": ["string", "null"]},
                        "optional": {"type": "string"}
                    },
                    "required": ["location", "unit", "days", "detailed", "tags", "extra", "note"]
                }}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        });
        let (Reply::ToolCall(call), usage) = answer_for(body, &Directives::default()) else {
            unreachable!("a tool call was expected")
        };
        assert_eq!(call.name, "get_weather");
        let arguments: Value = serde_json::from_str(&call.arguments).unwrap_or_default();
        assert_eq!(
            arguments,
            json!({"location": "Paris", "unit": "celsius", "days": 1,
            "detailed": true, "tags": [], "extra": {}, "note": "test"})
        );
        assert_eq!(usage.completion, TOOL_CALL_TOKENS);
    }

    #[test]
    fn tool_choice_none_and_tool_results_give_text() {
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let none = json!({"model": "m", "tools": tools, "tool_choice": "none",
            "messages": [{"role": "user", "content": "hi"}]});
        assert!(matches!(
            answer_for(none, &Directives::default()).0,
            Reply::Text(_)
        ));
        let result = json!({"model": "m", "tools": tools, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": []},
            {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees"}
        ]});
        assert_eq!(
            answer_for(result, &Directives::default()).0,
            Reply::Text("Tool result received: 22 degrees".into())
        );
    }
}
