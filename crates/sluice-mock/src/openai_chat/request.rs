//! The parts of a Chat Completions request the mock looks at, validated as OpenAI validates them.

use serde_json::Value;

use crate::errors::{OpenAiError, json_type};

/// A validated view into a request body.
#[derive(Debug)]
pub(crate) struct ChatRequest<'a> {
    /// Requested model, echoed in the response.
    pub(crate) model: &'a str,
    /// The conversation, at least one message.
    pub(crate) messages: &'a [Value],
    /// Offered tools (possibly empty).
    pub(crate) tools: &'a [Value],
    /// `tool_choice`, if given.
    pub(crate) tool_choice: Option<&'a Value>,
    /// `stream: true`.
    pub(crate) stream: bool,
    /// `stream_options.include_usage: true`.
    pub(crate) include_usage: bool,
}

impl<'a> ChatRequest<'a> {
    /// Checks the required fields and their types.
    pub(crate) fn from_json(body: &'a Value) -> Result<Self, OpenAiError> {
        let Value::Object(fields) = body else {
            return Err(OpenAiError::invalid_json());
        };
        let model = match fields.get("model") {
            None | Some(Value::Null) => return Err(OpenAiError::missing_parameter("model")),
            Some(Value::String(model)) => model.as_str(),
            Some(other) => {
                return Err(OpenAiError::invalid_type(
                    "model",
                    "a string",
                    json_type(other),
                ));
            }
        };
        let messages = match fields.get("messages") {
            None | Some(Value::Null) => return Err(OpenAiError::missing_parameter("messages")),
            Some(Value::Array(messages)) if messages.is_empty() => {
                return Err(OpenAiError::empty_messages());
            }
            Some(Value::Array(messages)) => messages.as_slice(),
            Some(other) => {
                return Err(OpenAiError::invalid_type(
                    "messages",
                    "an array",
                    json_type(other),
                ));
            }
        };
        if let Some(path) = crate::images::first_invalid(body) {
            return Err(OpenAiError::invalid_image(&path));
        }
        let tools = fields
            .get("tools")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let include_usage = fields
            .get("stream_options")
            .and_then(|options| options.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Self {
            model,
            messages,
            tools,
            tool_choice: fields.get("tool_choice"),
            stream: fields
                .get("stream")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            include_usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn validation_names_the_offending_field() {
        let error = |body: Value| format!("{:?}", ChatRequest::from_json(&body).map(|_| ()));
        assert!(error(json!({"messages": [{"role": "user"}]})).contains("'model'"));
        assert!(
            error(json!({"model": "m", "messages": "hi"})).contains("Invalid type for 'messages'")
        );
        assert!(error(json!({"model": "m", "messages": []})).contains("empty_array"));
        assert!(error(json!([1])).contains("could not parse"));
    }

    #[test]
    fn stream_options_are_read() {
        let body = json!({"model": "m", "messages": [{}], "stream": true,
            "stream_options": {"include_usage": true}, "tools": [{}]});
        let request = ChatRequest::from_json(&body);
        assert!(matches!(
            request,
            Ok(ChatRequest {
                stream: true,
                include_usage: true,
                ..
            })
        ));
        assert!(matches!(ChatRequest::from_json(&body), Ok(r) if r.tools.len() == 1));
    }
}
