//! The parts of a `GenerateContentRequest` the mock looks at, validated as the real API validates
//! them. Field names are read in both spellings proto JSON accepts (`systemInstruction` and
//! `system_instruction`).

use std::borrow::Cow;

use serde_json::Value;

use super::error::GeminiError;
use crate::assistant::{Conversation, OutputFormat, Speaker, Tool, ToolChoice, Turn};

/// Whether function calls in the history must carry their thought signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signatures {
    /// `generateContent`, `streamGenerateContent`: like Gemini 3, reject unsigned calls.
    Required,
    /// `countTokens`: no generation, no check.
    Ignored,
}

/// A validated view into a request body.
#[derive(Debug)]
pub(crate) struct GenerateRequest<'a> {
    contents: &'a [Value],
    system: Option<&'a Value>,
    tools: &'a [Value],
    tool_config: Option<&'a Value>,
    generation_config: Option<&'a Value>,
}

impl<'a> GenerateRequest<'a> {
    /// Checks `contents` (present, roles, non-empty parts) and, when asked, that every
    /// function-call step of the model carries its `thoughtSignature`.
    pub(crate) fn from_json(body: &'a Value, signatures: Signatures) -> Result<Self, GeminiError> {
        if !body.is_object() {
            return Err(GeminiError::invalid_argument(
                "Invalid JSON payload received. Expected an object.",
            ));
        }
        let contents = match field(body, "contents", "contents") {
            None => &[][..],
            Some(Value::Array(contents)) => contents.as_slice(),
            Some(_) => {
                return Err(GeminiError::invalid_argument(
                    "Invalid JSON payload received. Invalid value at 'contents'.",
                ));
            }
        };
        if contents.is_empty() {
            return Err(GeminiError::invalid_argument(
                "* GenerateContentRequest.contents: contents is not specified\n",
            ));
        }
        for (i, content) in contents.iter().enumerate() {
            check_content(i, content)?;
        }
        if signatures == Signatures::Required {
            check_signatures(contents)?;
        }
        Ok(Self {
            contents,
            system: field(body, "systemInstruction", "system_instruction"),
            tools: field(body, "tools", "tools")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice),
            tool_config: field(body, "toolConfig", "tool_config"),
            generation_config: field(body, "generationConfig", "generation_config"),
        })
    }

    /// `generationConfig.thinkingConfig.includeThoughts: true`.
    pub(crate) fn include_thoughts(&self) -> bool {
        self.generation_config
            .and_then(|config| field(config, "thinkingConfig", "thinking_config"))
            .and_then(|thinking| field(thinking, "includeThoughts", "include_thoughts"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The request as the fake assistant sees it.
    pub(crate) fn conversation(&self) -> Conversation<'a> {
        let mut turns = Vec::with_capacity(self.contents.len() + 1);
        if let Some(system) = self.system {
            turns.push(Turn::new(Speaker::Other, texts(parts(system))));
        }
        turns.extend(self.contents.iter().map(turn));
        let tools = self
            .tools
            .iter()
            .filter_map(|tool| field(tool, "functionDeclarations", "function_declarations"))
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|declaration| {
                Some(Tool {
                    name: declaration.get("name")?.as_str()?,
                    parameters: field(
                        declaration,
                        "parametersJsonSchema",
                        "parameters_json_schema",
                    )
                    .or_else(|| declaration.get("parameters")),
                })
            })
            .collect();
        Conversation {
            turns,
            tools,
            tool_choice: self.tool_choice(),
            format: self.format(),
        }
    }

    fn tool_choice(&self) -> ToolChoice<'a> {
        let Some(config) = self
            .tool_config
            .and_then(|config| field(config, "functionCallingConfig", "function_calling_config"))
        else {
            return ToolChoice::Auto;
        };
        if field(config, "mode", "mode").and_then(Value::as_str) == Some("NONE") {
            return ToolChoice::None;
        }
        field(config, "allowedFunctionNames", "allowed_function_names")
            .and_then(Value::as_array)
            .and_then(|names| names.first())
            .and_then(Value::as_str)
            .map_or(ToolChoice::Auto, ToolChoice::Named)
    }

    fn format(&self) -> OutputFormat<'a> {
        let Some(config) = self.generation_config else {
            return OutputFormat::Text;
        };
        let json = field(config, "responseMimeType", "response_mime_type").and_then(Value::as_str)
            == Some("application/json");
        if !json {
            return OutputFormat::Text;
        }
        field(config, "responseJsonSchema", "response_json_schema")
            .or_else(|| field(config, "responseSchema", "response_schema"))
            .map_or(OutputFormat::JsonObject, OutputFormat::JsonSchema)
    }
}

/// `value[camel]`, else `value[snake]`, ignoring `null`s.
fn field<'a>(value: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    value
        .get(camel)
        .or_else(|| value.get(snake))
        .filter(|found| !found.is_null())
}

fn parts(content: &Value) -> &[Value] {
    content
        .get("parts")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

fn texts(parts: &[Value]) -> impl Iterator<Item = &str> {
    parts
        .iter()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
}

fn role(content: &Value) -> Option<&str> {
    content.get("role").and_then(Value::as_str)
}

fn function_call(part: &Value) -> Option<&Value> {
    field(part, "functionCall", "function_call")
}

fn check_content(i: usize, content: &Value) -> Result<(), GeminiError> {
    if !matches!(role(content), None | Some("user" | "model" | "")) {
        return Err(GeminiError::invalid_argument(
            "Please use a valid role: user, model.",
        ));
    }
    if parts(content).is_empty() {
        return Err(GeminiError::invalid_argument(format!(
            "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
        )));
    }
    Ok(())
}

/// Gemini 3 signs the first function call of every model step and rejects a history in which
/// that signature was not sent back. (Parallel calls after the first carry none, so only the
/// first call of each model turn is checked.)
fn check_signatures(contents: &[Value]) -> Result<(), GeminiError> {
    for (i, content) in contents.iter().enumerate() {
        if role(content) != Some("model") {
            continue;
        }
        let Some(first_call) = parts(content)
            .iter()
            .find(|part| function_call(part).is_some())
        else {
            continue;
        };
        let signed = field(first_call, "thoughtSignature", "thought_signature")
            .and_then(Value::as_str)
            .is_some_and(|signature| !signature.is_empty());
        if !signed {
            let name = function_call(first_call)
                .and_then(|call| call.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(GeminiError::invalid_argument(format!(
                "Function call is missing a thought_signature in functionCall parts. This is \
                 required for tools to work correctly, and missing thought_signature may lead \
                 to degraded model performance. Additional data, function call \
                 `default_api:{name}` , position {}. Please refer to \
                 https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                i + 1
            )));
        }
    }
    Ok(())
}

/// A function response as text: its `output`/`result`/`content` string, else its JSON.
fn response_text(part: &Value) -> Option<Cow<'_, str>> {
    let response = field(part, "functionResponse", "function_response")?.get("response")?;
    if let Value::Object(fields) = response {
        for key in ["output", "result", "content"] {
            if let Some(Value::String(text)) = fields.get(key) {
                return Some(Cow::Borrowed(text));
            }
        }
    }
    Some(match response {
        Value::String(text) => Cow::Borrowed(text),
        other => Cow::Owned(other.to_string()),
    })
}

fn turn(content: &Value) -> Turn<'_> {
    let parts = parts(content);
    if role(content) == Some("model") {
        return Turn::new(Speaker::Other, texts(parts));
    }
    let results: Vec<Cow<'_, str>> = parts.iter().filter_map(response_text).collect();
    if results.is_empty() {
        Turn::new(Speaker::User, texts(parts))
    } else {
        let texts = results
            .into_iter()
            .chain(texts(parts).map(Cow::Borrowed))
            .collect();
        Turn {
            speaker: Speaker::ToolResult,
            texts,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn both_field_spellings_are_read() {
        let body = json!({
            "system_instruction": {"parts": [{"text": "sys"}]},
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"function_declarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}],
            "tool_config": {"function_calling_config": {"mode": "ANY", "allowed_function_names": ["f"]}},
            "generation_config": {"response_mime_type": "application/json",
                "thinking_config": {"include_thoughts": true}}
        });
        let request = GenerateRequest::from_json(&body, Signatures::Required);
        let Ok(request) = request else {
            unreachable!("valid request: {request:?}")
        };
        assert!(request.include_thoughts());
        let conversation = request.conversation();
        assert_eq!(conversation.turns.len(), 2);
        assert_eq!(conversation.tools.len(), 1);
        assert_eq!(conversation.tool_choice, ToolChoice::Named("f"));
        assert!(matches!(conversation.format, OutputFormat::JsonObject));
    }

    #[test]
    fn function_responses_become_tool_results() {
        let body = json!({"contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2ln"}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"result": "sunny"}}}]}
        ]});
        let request = GenerateRequest::from_json(&body, Signatures::Required);
        let Ok(request) = request else {
            unreachable!("valid request: {request:?}")
        };
        let conversation = request.conversation();
        assert_eq!(conversation.turns[2].speaker, Speaker::ToolResult);
        assert_eq!(conversation.turns[2].texts, ["sunny"]);
    }

    #[test]
    fn only_the_first_call_of_a_step_needs_a_signature() {
        let parallel = json!({"contents": [
            {"role": "user", "parts": [{"text": "two things"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "b", "args": {}}}
            ]}
        ]});
        assert!(GenerateRequest::from_json(&parallel, Signatures::Required).is_ok());
        let unsigned = json!({"contents": [
            {"role": "model", "parts": [{"functionCall": {"name": "a", "args": {}}}]}
        ]});
        let error = format!(
            "{:?}",
            GenerateRequest::from_json(&unsigned, Signatures::Required)
        );
        assert!(error.contains("`default_api:a` , position 1"), "{error}");
        assert!(GenerateRequest::from_json(&unsigned, Signatures::Ignored).is_ok());
    }

    #[test]
    fn contents_are_required_and_roles_checked() {
        let error = |body: Value| {
            format!(
                "{:?}",
                GenerateRequest::from_json(&body, Signatures::Required).map(|_| ())
            )
        };
        assert!(error(json!({})).contains("contents is not specified"));
        assert!(error(json!({"contents": []})).contains("contents is not specified"));
        assert!(
            error(json!({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}))
                .contains("valid role")
        );
        assert!(
            error(json!({"contents": [{"role": "user", "parts": []}]}))
                .contains("contents[0].parts")
        );
    }
}
