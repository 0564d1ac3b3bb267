//! The parts of a Responses request the mock looks at, validated as OpenAI validates them.

use std::borrow::Cow;
use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::assistant::{Conversation, OutputFormat, Speaker, Tool, ToolChoice, Turn};
use crate::errors::{OpenAiError, json_type};

/// A validated view into a request body.
#[derive(Debug)]
pub(crate) struct ResponsesRequest<'a> {
    /// Requested model, echoed in the response.
    pub(crate) model: &'a str,
    /// Every field, for the response to echo.
    pub(crate) fields: &'a Map<String, Value>,
    input: Input<'a>,
    /// `stream: true`.
    pub(crate) stream: bool,
}

#[derive(Debug)]
enum Input<'a> {
    Text(&'a str),
    Items(&'a [Value]),
}

impl<'a> ResponsesRequest<'a> {
    /// Checks the required fields, and what the mock cannot honour: a `previous_response_id`
    /// (it stores no responses) and a `function_call_output` without its `function_call`.
    pub(crate) fn from_json(body: &'a Value) -> Result<Self, OpenAiError> {
        let Value::Object(fields) = body else {
            return Err(OpenAiError::invalid_json());
        };
        let model = match present(fields, "model") {
            None => return Err(OpenAiError::missing_parameter("model")),
            Some(Value::String(model)) => model.as_str(),
            Some(other) => {
                return Err(OpenAiError::invalid_type(
                    "model",
                    "a string",
                    json_type(other),
                ));
            }
        };
        if let Some(path) = crate::images::first_invalid(body) {
            return Err(OpenAiError::invalid_image(&path));
        }
        if let Some(id) = present(fields, "previous_response_id").and_then(Value::as_str) {
            return Err(OpenAiError::previous_response_not_found(id));
        }
        let input = match present(fields, "input") {
            None => return Err(OpenAiError::missing_parameter("input")),
            Some(Value::String(text)) => Input::Text(text),
            Some(Value::Array(items)) => Input::Items(items),
            Some(other) => {
                return Err(OpenAiError::invalid_type(
                    "input",
                    "a string or an array",
                    json_type(other),
                ));
            }
        };
        if let Input::Items(items) = input {
            check_call_outputs(items)?;
        }
        Ok(Self {
            model,
            fields,
            input,
            stream: present(fields, "stream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// A request field that is present and not `null`.
    pub(crate) fn field(&self, name: &str) -> Option<&'a Value> {
        present(self.fields, name)
    }

    /// `reasoning.summary` asks for a summary (and `reasoning.effort` is not `none`).
    pub(crate) fn wants_reasoning_summary(&self) -> bool {
        let Some(reasoning) = self.field("reasoning") else {
            return false;
        };
        let summary = reasoning
            .get("summary")
            .or_else(|| reasoning.get("generate_summary"))
            .and_then(Value::as_str);
        let effort = reasoning.get("effort").and_then(Value::as_str);
        matches!(summary, Some("auto" | "concise" | "detailed")) && effort != Some("none")
    }

    /// `include` asks for `reasoning.encrypted_content`.
    pub(crate) fn wants_encrypted_reasoning(&self) -> bool {
        self.field("include")
            .and_then(Value::as_array)
            .is_some_and(|include| {
                include
                    .iter()
                    .any(|item| item.as_str() == Some("reasoning.encrypted_content"))
            })
    }

    /// The request as the fake assistant sees it.
    pub(crate) fn conversation(&self) -> Conversation<'a> {
        let mut turns = Vec::new();
        if let Some(Value::String(instructions)) = self.field("instructions") {
            turns.push(Turn::new(Speaker::Other, [instructions.as_str()]));
        }
        match self.input {
            Input::Text(text) => turns.push(Turn::new(Speaker::User, [text])),
            Input::Items(items) => turns.extend(items.iter().map(turn)),
        }
        let tools = self
            .field("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("function"))
            .filter_map(|tool| {
                Some(Tool {
                    name: tool.get("name")?.as_str()?,
                    parameters: tool.get("parameters"),
                })
            })
            .collect();
        let tool_choice = match self.field("tool_choice") {
            Some(Value::String(choice)) if choice == "none" => ToolChoice::None,
            Some(choice) if choice.get("type").and_then(Value::as_str) == Some("function") => {
                choice
                    .get("name")
                    .and_then(Value::as_str)
                    .map_or(ToolChoice::Auto, ToolChoice::Named)
            }
            _ => ToolChoice::Auto,
        };
        let format = self
            .field("text")
            .and_then(|text| text.get("format"))
            .map_or(OutputFormat::Text, |format| {
                match format.get("type").and_then(Value::as_str) {
                    Some("json_schema") => format
                        .get("schema")
                        .map_or(OutputFormat::JsonObject, OutputFormat::JsonSchema),
                    Some("json_object") => OutputFormat::JsonObject,
                    _ => OutputFormat::Text,
                }
            });
        Conversation {
            turns,
            tools,
            tool_choice,
            format,
        }
    }
}

fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn item_type(item: &Value) -> Option<&str> {
    match item.get("type").and_then(Value::as_str) {
        // An easy input message: `{role, content}` without a type.
        None if item.get("role").is_some() => Some("message"),
        kind => kind,
    }
}

/// Every `function_call_output` answers a `function_call` of the same input.
fn check_call_outputs(items: &[Value]) -> Result<(), OpenAiError> {
    let calls: HashSet<&str> = items
        .iter()
        .filter(|item| item_type(item) == Some("function_call"))
        .filter_map(|item| item.get("call_id").and_then(Value::as_str))
        .collect();
    for item in items {
        if item_type(item) != Some("function_call_output") {
            continue;
        }
        let call_id = item
            .get("call_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !calls.contains(call_id) {
            return Err(OpenAiError::orphan_function_call_output(call_id));
        }
    }
    Ok(())
}

/// A content string, or the `text` of its parts (`input_text`, `output_text`).
fn texts(content: Option<&Value>) -> Vec<&str> {
    match content {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

fn turn(item: &Value) -> Turn<'_> {
    match item_type(item) {
        Some("message") => {
            let speaker = match item.get("role").and_then(Value::as_str) {
                Some("user") => Speaker::User,
                _ => Speaker::Other,
            };
            Turn::new(speaker, texts(item.get("content")))
        }
        Some("function_call_output") => Turn {
            speaker: Speaker::ToolResult,
            texts: texts(item.get("output"))
                .into_iter()
                .map(Cow::Borrowed)
                .collect(),
        },
        _ => Turn::new(Speaker::Other, []),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(body: Value) -> String {
        format!("{:?}", ResponsesRequest::from_json(&body).map(|_| ()))
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(error(json!({"input": "hi"})).contains("'model'"));
        assert!(error(json!({"model": "m"})).contains("'input'"));
        assert!(error(json!({"model": "m", "input": 3})).contains("Invalid type for 'input'"));
        assert!(
            error(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}))
                .contains("previous_response_not_found")
        );
        assert!(
            error(json!({"model": "m", "input": [
                {"type": "function_call_output", "call_id": "call_x", "output": "1"}
            ]}))
            .contains("No tool call found for function call output with call_id call_x")
        );
    }

    #[test]
    fn items_become_turns() {
        let body = json!({"model": "m", "instructions": "be brief", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
        ], "reasoning": {"effort": "low", "summary": "auto"},
           "include": ["reasoning.encrypted_content"]});
        let request = ResponsesRequest::from_json(&body);
        let Ok(request) = request else {
            unreachable!("valid request: {request:?}")
        };
        assert!(request.wants_reasoning_summary() && request.wants_encrypted_reasoning());
        let conversation = request.conversation();
        let speakers: Vec<Speaker> = conversation.turns.iter().map(|t| t.speaker).collect();
        assert_eq!(
            speakers,
            [
                Speaker::Other,
                Speaker::User,
                Speaker::Other,
                Speaker::ToolResult
            ]
        );
    }
}
