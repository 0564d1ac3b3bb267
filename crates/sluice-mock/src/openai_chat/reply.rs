//! Chat Completions' side of the fake assistant: the request as a [`Conversation`], and the
//! answer as Chat shapes it (a tool call carries a `call_…` id and serialized arguments).

use serde_json::Value;
#[cfg(test)]
use serde_json::json;

use super::request::ChatRequest;
#[cfg(test)]
use crate::assistant::TOOL_CALL_TOKENS;
pub(crate) use crate::assistant::Usage;
use crate::assistant::{self, Answer, Conversation, Speaker, Tool, ToolChoice, Turn};
use crate::directives::Directives;
use crate::ids;

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
    let (answer, usage) = assistant::answer(&conversation(request), directives);
    let reply = match answer {
        Answer::Text(text) => Reply::Text(text),
        Answer::Call(call) => Reply::ToolCall(ToolCall {
            id: ids::tool_call_id(),
            arguments: call.arguments_json(),
            name: call.name,
        }),
    };
    (reply, usage)
}

fn conversation<'a>(request: &ChatRequest<'a>) -> Conversation<'a> {
    let turns = request
        .messages
        .iter()
        .map(|message| {
            let speaker = match message.get("role").and_then(Value::as_str) {
                Some("user") => Speaker::User,
                Some("tool") => Speaker::ToolResult,
                _ => Speaker::Other,
            };
            Turn::new(speaker, text_parts(message.get("content")))
        })
        .collect();
    let tools = request
        .tools
        .iter()
        .filter_map(|tool| tool.get("function"))
        .filter_map(|function| {
            Some(Tool {
                name: function.get("name")?.as_str()?,
                parameters: function.get("parameters"),
            })
        })
        .collect();
    let tool_choice = match request.tool_choice {
        Some(Value::String(choice)) if choice == "none" => ToolChoice::None,
        Some(choice) => choice
            .get("function")
            .and_then(|function| function.get("name"))
            .and_then(Value::as_str)
            .map_or(ToolChoice::Auto, ToolChoice::Named),
        None => ToolChoice::Auto,
    };
    Conversation {
        turns,
        tools,
        tool_choice,
        ..Conversation::default()
    }
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
