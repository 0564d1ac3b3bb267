//! `generateContent` and `:countTokens` request bodies ↔ canonical [`Request`]s.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::parts::{CallLedger, PartEncoding, decode_parts, encode_part};
use super::{field, field_str, invalid};
use crate::canonical::{
    Effort, Message, Part, Reasoning, Request, ResponseFormat, Role, SystemBlock, Tool, ToolChoice,
    effort_to_budget,
};
use crate::error::{ErrorBody, ErrorKind};

/// The name given to a JSON-schema response format read from Gemini, which has none.
const SCHEMA_NAME: &str = "response";

/// Client side: a `generateContent` body → canonical. The model and the stream flag come from
/// the URL: `model` stays empty and `stream` false for the gateway to set.
pub fn decode_request(body: &[u8]) -> Result<Request, ErrorBody> {
    let value = parse_body(body)?;
    decode_request_value(&value, "")
}

/// Client side: a `:countTokens` body (`{contents}` or `{generateContentRequest:{…}}`) →
/// canonical, to count with the upstream's own tokenizer or an estimate.
pub fn count_tokens_request(body: &[u8]) -> Result<Request, ErrorBody> {
    let value = parse_body(body)?;
    let inner = value
        .as_object()
        .and_then(|obj| field(obj, "generateContentRequest"));
    match inner {
        Some(inner) => decode_request_value(inner, "generateContentRequest."),
        None => decode_request_value(&value, ""),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, ErrorBody> {
    serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })
}

/// `prefix` names where the request object sits, for error params.
fn decode_request_value(value: &Value, prefix: &str) -> Result<Request, ErrorBody> {
    let Some(obj) = value.as_object() else {
        return Err(ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("The request body{} must be a JSON object.", at(prefix)),
        ));
    };
    let mut req = Request {
        system: decode_system(obj, prefix)?,
        messages: decode_contents(obj, prefix)?,
        tools: decode_tools(obj, prefix)?,
        ..Request::default()
    };
    req.tool_choice = decode_tool_choice(obj, prefix)?;
    if let Some(config) = field(obj, "generationConfig") {
        decode_generation_config(config, &format!("{prefix}generationConfig"), &mut req)?;
    }
    Ok(req)
}

fn at(prefix: &str) -> String {
    match prefix.strip_suffix('.') {
        Some(p) => format!(" `{p}`"),
        None => String::new(),
    }
}

fn decode_contents(obj: &Map<String, Value>, prefix: &str) -> Result<Vec<Message>, ErrorBody> {
    let param = format!("{prefix}contents");
    let contents = match field(obj, "contents") {
        None => return Err(invalid(&param, format!("`{param}` is required."))),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => {
            return Err(invalid(
                &param,
                format!("`{param}` must be a non-empty array of contents."),
            ));
        }
    };
    // Ids for history calls stay the same as the conversation grows: they depend on the call's
    // position only.
    let mut ledger = CallLedger::new("contents");
    let mut messages = Vec::with_capacity(contents.len());
    for (i, content) in contents.iter().enumerate() {
        let path = format!("{param}[{i}]");
        let Some(content) = content.as_object() else {
            return Err(invalid(&path, format!("`{path}` must be an object.")));
        };
        let role = match field_str(content, "role") {
            None | Some("user" | "function" | "tool") => Role::User,
            Some("model") => Role::Assistant,
            Some(other) => {
                return Err(invalid(
                    &format!("{path}.role"),
                    format!(
                        "`{path}.role` must be \"user\" or \"model\", not {other:?}; put system instructions in `systemInstruction`."
                    ),
                ));
            }
        };
        let parts = match field(content, "parts") {
            None => &[][..],
            Some(Value::Array(parts)) => parts.as_slice(),
            Some(_) => {
                return Err(invalid(
                    &format!("{path}.parts"),
                    format!("`{path}.parts` must be an array."),
                ));
            }
        };
        let parts = decode_parts(parts, &format!("{path}.parts"), &mut ledger, false)?;
        if !parts.is_empty() {
            messages.push(Message { role, parts });
        }
    }
    Ok(messages)
}

fn decode_system(obj: &Map<String, Value>, prefix: &str) -> Result<Vec<SystemBlock>, ErrorBody> {
    let param = format!("{prefix}systemInstruction");
    let parts = match field(obj, "systemInstruction") {
        None => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(vec![SystemBlock::text(text)]),
        Some(Value::Object(content)) => match field(content, "parts") {
            None => return Ok(Vec::new()),
            Some(Value::Array(parts)) => parts,
            Some(_) => {
                return Err(invalid(
                    &format!("{param}.parts"),
                    format!("`{param}.parts` must be an array."),
                ));
            }
        },
        Some(_) => {
            return Err(invalid(
                &param,
                format!(
                    "`{param}` must be a content object like {{\"parts\":[{{\"text\":\"…\"}}]}}."
                ),
            ));
        }
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let path = format!("{param}.parts[{j}]");
        match part.as_object().and_then(|p| field(p, "text")) {
            Some(Value::String(text)) => blocks.push(SystemBlock::text(text)),
            _ => {
                return Err(invalid(
                    &path,
                    format!("`{path}` must be a text part; system instructions take text only."),
                ));
            }
        }
    }
    Ok(blocks)
}

fn decode_tools(obj: &Map<String, Value>, prefix: &str) -> Result<Vec<Tool>, ErrorBody> {
    let param = format!("{prefix}tools");
    let tools = match field(obj, "tools") {
        None => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(invalid(&param, format!("`{param}` must be an array."))),
    };
    let mut out = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("{param}[{i}]");
        let Some(tool) = tool.as_object() else {
            return Err(invalid(&path, format!("`{path}` must be an object.")));
        };
        // Built-in tools (googleSearch, codeExecution, …) have no canonical form.
        let declarations = match field(tool, "functionDeclarations") {
            None => continue,
            Some(Value::Array(d)) => d,
            Some(_) => {
                return Err(invalid(
                    &format!("{path}.functionDeclarations"),
                    format!("`{path}.functionDeclarations` must be an array."),
                ));
            }
        };
        for (j, declaration) in declarations.iter().enumerate() {
            let path = format!("{path}.functionDeclarations[{j}]");
            let Some(declaration) = declaration.as_object() else {
                return Err(invalid(&path, format!("`{path}` must be an object.")));
            };
            let name = match field_str(declaration, "name") {
                Some(name) if !name.is_empty() => name,
                _ => {
                    return Err(invalid(
                        &format!("{path}.name"),
                        format!("`{path}.name` is required."),
                    ));
                }
            };
            let parameters = match (
                field(declaration, "parametersJsonSchema"),
                field(declaration, "parameters"),
            ) {
                (Some(schema), _) => schema.clone(),
                (None, Some(openapi)) => openapi_to_json_schema(openapi),
                (None, None) => json!({ "type": "object", "properties": {} }),
            };
            out.push(Tool {
                name: name.to_string(),
                description: field_str(declaration, "description").map(String::from),
                parameters,
                strict: None,
            });
        }
    }
    Ok(out)
}

fn decode_tool_choice(
    obj: &Map<String, Value>,
    prefix: &str,
) -> Result<Option<ToolChoice>, ErrorBody> {
    let Some(config) = field(obj, "toolConfig")
        .and_then(Value::as_object)
        .and_then(|c| field(c, "functionCallingConfig"))
    else {
        return Ok(None);
    };
    let path = format!("{prefix}toolConfig.functionCallingConfig");
    let Some(config) = config.as_object() else {
        return Err(invalid(&path, format!("`{path}` must be an object.")));
    };
    let names: Vec<&str> = field(config, "allowedFunctionNames")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mode = field_str(config, "mode").map(str::to_ascii_uppercase);
    Ok(match mode.as_deref() {
        Some("ANY") => match names.as_slice() {
            [one] => Some(ToolChoice::Named((*one).to_string())),
            _ => Some(ToolChoice::Required),
        },
        Some("NONE") => Some(ToolChoice::None),
        Some("AUTO" | "VALIDATED") => Some(ToolChoice::Auto),
        _ => None,
    })
}

fn decode_generation_config(
    config: &Value,
    param: &str,
    req: &mut Request,
) -> Result<(), ErrorBody> {
    let Some(config) = config.as_object() else {
        return Err(invalid(param, format!("`{param}` must be an object.")));
    };
    let number = |key: &str| -> Result<Option<f64>, ErrorBody> {
        match field(config, key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                invalid(
                    &format!("{param}.{key}"),
                    format!("`{param}.{key}` must be a number."),
                )
            }),
        }
    };
    let count = |key: &str| -> Result<Option<u64>, ErrorBody> {
        match number(key)? {
            None => Ok(None),
            Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(Some(whole_u64(n))),
            Some(_) => Err(invalid(
                &format!("{param}.{key}"),
                format!("`{param}.{key}` must be a non-negative integer."),
            )),
        }
    };
    req.temperature = number("temperature")?;
    req.top_p = number("topP")?;
    req.top_k = count("topK")?;
    req.max_tokens = count("maxOutputTokens")?;
    req.seed = field(config, "seed").and_then(Value::as_i64);
    req.stop = match field(config, "stopSequences") {
        None => Vec::new(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| s.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                invalid(
                    &format!("{param}.stopSequences"),
                    format!("`{param}.stopSequences` must be an array of strings."),
                )
            })?,
        Some(_) => {
            return Err(invalid(
                &format!("{param}.stopSequences"),
                format!("`{param}.stopSequences` must be an array of strings."),
            ));
        }
    };
    let schema = match (
        field(config, "responseJsonSchema"),
        field(config, "responseSchema"),
    ) {
        (Some(schema), _) => Some(schema.clone()),
        (None, Some(openapi)) => Some(openapi_to_json_schema(openapi)),
        (None, None) => None,
    };
    req.response_format = match field_str(config, "responseMimeType") {
        Some("application/json") => Some(match schema {
            Some(schema) => ResponseFormat::JsonSchema {
                name: SCHEMA_NAME.to_string(),
                schema,
                strict: None,
            },
            None => ResponseFormat::JsonObject,
        }),
        Some("text/plain") => Some(ResponseFormat::Text),
        _ => None,
    };
    if let Some(thinking) = field(config, "thinkingConfig").and_then(Value::as_object) {
        let reasoning = Reasoning {
            effort: field_str(thinking, "thinkingLevel").and_then(effort_from_level),
            budget_tokens: field(thinking, "thinkingBudget").and_then(Value::as_i64),
            include_thoughts: field(thinking, "includeThoughts").and_then(Value::as_bool),
        };
        if reasoning.effort.is_some()
            || reasoning.budget_tokens.is_some()
            || reasoning.include_thoughts.is_some()
        {
            req.reasoning = Some(reasoning);
        }
    }
    Ok(())
}

/// `n` as a count; callers checked it is a non-negative whole number. Absurd sizes saturate.
fn whole_u64(n: f64) -> u64 {
    if n >= u64::MAX as f64 {
        u64::MAX
    } else {
        n as u64
    }
}

fn effort_from_level(level: &str) -> Option<Effort> {
    match level.to_ascii_lowercase().as_str() {
        "minimal" => Some(Effort::Minimal),
        "low" => Some(Effort::Low),
        "medium" => Some(Effort::Medium),
        "high" => Some(Effort::High),
        _ => None,
    }
}

fn level_from_effort(effort: Effort) -> &'static str {
    match effort {
        Effort::None | Effort::Minimal => "MINIMAL",
        Effort::Low => "LOW",
        Effort::Medium => "MEDIUM",
        Effort::High | Effort::Xhigh => "HIGH",
    }
}

/// Gemini 3 and later take `thinkingLevel`; earlier models reject it and take `thinkingBudget`
/// (which Gemini 3 still accepts), so unknown names get a budget.
fn takes_thinking_level(model: &str) -> bool {
    let name = model.strip_prefix("models/").unwrap_or(model);
    let Some(version) = name.strip_prefix("gemini-") else {
        return false;
    };
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    major.parse::<u32>().is_ok_and(|m| m >= 3)
}

/// Gemini's `Schema` (an OpenAPI 3.0 subset: upper-case `type`, `nullable`) as JSON Schema.
fn openapi_to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(obj) => {
            let nullable = obj.get("nullable").and_then(Value::as_bool) == Some(true);
            let mut out = Map::with_capacity(obj.len());
            for (key, value) in obj {
                let converted = match key.as_str() {
                    "nullable" | "propertyOrdering" => continue,
                    "type" => match value.as_str() {
                        Some(t) if nullable => json!([t.to_ascii_lowercase(), "null"]),
                        Some(t) => json!(t.to_ascii_lowercase()),
                        None => value.clone(),
                    },
                    // In JSON Schema an enum must list null for null to be valid.
                    "enum" if nullable => match value.as_array() {
                        Some(values) if !values.contains(&Value::Null) => {
                            let mut values = values.clone();
                            values.push(Value::Null);
                            Value::Array(values)
                        }
                        _ => value.clone(),
                    },
                    "properties" | "$defs" | "definitions" => match value.as_object() {
                        Some(props) => Value::Object(
                            props
                                .iter()
                                .map(|(k, v)| (k.clone(), openapi_to_json_schema(v)))
                                .collect(),
                        ),
                        None => value.clone(),
                    },
                    "items" | "additionalProperties" | "not" => openapi_to_json_schema(value),
                    "anyOf" | "oneOf" | "allOf" | "prefixItems" => match value.as_array() {
                        Some(items) => items.iter().map(openapi_to_json_schema).collect(),
                        None => value.clone(),
                    },
                    _ => value.clone(),
                };
                out.insert(key.clone(), converted);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Upstream side: canonical → a `generateContent` body (the model goes in the URL).
pub fn encode_request(req: &Request) -> Value {
    let mut body = Map::new();
    let names: HashMap<String, String> = req
        .messages
        .iter()
        .flat_map(|m| &m.parts)
        .filter_map(|p| match p {
            Part::ToolCall { id, name, .. } => Some((id.clone(), name.clone())),
            _ => None,
        })
        .collect();
    let how = PartEncoding {
        ids: false,
        thinking: false,
        names: &names,
    };
    let contents: Vec<Value> = req
        .messages
        .iter()
        .filter_map(|m| {
            let mut parts = Vec::with_capacity(m.parts.len());
            for p in &m.parts {
                encode_part(p, &how, &mut parts);
            }
            if m.role == Role::Assistant && takes_thinking_level(&req.model) {
                sign_unsigned_calls(&mut parts);
            }
            // Gemini rejects a content without parts (e.g. a turn that held only thinking).
            (!parts.is_empty()).then(|| {
                let role = match m.role {
                    Role::User => "user",
                    Role::Assistant => "model",
                };
                json!({ "role": role, "parts": parts })
            })
        })
        .collect();
    body.insert("contents".into(), Value::Array(contents));
    if !req.system.is_empty() {
        let parts: Vec<Value> = req
            .system
            .iter()
            .map(|b| json!({ "text": b.text }))
            .collect();
        body.insert("systemInstruction".into(), json!({ "parts": parts }));
    }
    if !req.tools.is_empty() {
        let declarations: Vec<Value> = req.tools.iter().map(encode_tool).collect();
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(choice) = &req.tool_choice {
            let config = match choice {
                ToolChoice::Auto => json!({ "mode": "AUTO" }),
                ToolChoice::Required => json!({ "mode": "ANY" }),
                ToolChoice::None => json!({ "mode": "NONE" }),
                ToolChoice::Named(name) => {
                    json!({ "mode": "ANY", "allowedFunctionNames": [name] })
                }
            };
            body.insert(
                "toolConfig".into(),
                json!({ "functionCallingConfig": config }),
            );
        }
    }
    let config = encode_generation_config(req);
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Value::Object(body)
}

/// Gemini 3 rejects function-call history whose first call in a step has no
/// `thoughtSignature`. Calls made by another model (or whose signature a client dropped) have
/// none; Google documents this value for them, which skips the check.
const SKIP_SIGNATURE_CHECK: &str = "skip_thought_signature_validator";

/// Marks the first function call of a model turn whose calls carry no signature at all (when
/// Gemini made parallel calls, only the first carries one).
fn sign_unsigned_calls(parts: &mut [Value]) {
    let mut calls = parts.iter_mut().filter(|p| p.get("functionCall").is_some());
    let Some(first) = calls.next() else {
        return;
    };
    let signed = first.get("thoughtSignature").is_some()
        || calls.any(|p| p.get("thoughtSignature").is_some());
    if !signed {
        first["thoughtSignature"] = json!(SKIP_SIGNATURE_CHECK);
    }
}

fn encode_tool(tool: &Tool) -> Value {
    let mut declaration = json!({ "name": tool.name });
    if let Some(description) = &tool.description {
        declaration["description"] = json!(description);
    }
    // `parametersJsonSchema` takes full JSON Schema; `parameters` only an OpenAPI subset.
    if !tool.parameters.is_null() {
        declaration["parametersJsonSchema"] = tool.parameters.clone();
    }
    declaration
}

fn encode_generation_config(req: &Request) -> Map<String, Value> {
    let mut config = Map::new();
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(k) = req.top_k {
        config.insert("topK".into(), json!(k));
    }
    if let Some(max) = req.max_tokens {
        config.insert("maxOutputTokens".into(), json!(max));
    }
    if !req.stop.is_empty() {
        config.insert("stopSequences".into(), json!(req.stop));
    }
    if let Some(seed) = req.seed {
        config.insert("seed".into(), json!(seed));
    }
    match &req.response_format {
        None => {}
        Some(ResponseFormat::Text) => {
            config.insert("responseMimeType".into(), json!("text/plain"));
        }
        Some(ResponseFormat::JsonObject) => {
            config.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            config.insert("responseMimeType".into(), json!("application/json"));
            config.insert("responseJsonSchema".into(), schema.clone());
        }
    }
    if let Some(reasoning) = &req.reasoning {
        let mut thinking = Map::new();
        match (reasoning.budget_tokens, reasoning.effort) {
            (Some(budget), _) => {
                thinking.insert("thinkingBudget".into(), json!(budget));
            }
            (None, Some(effort)) if takes_thinking_level(&req.model) => {
                thinking.insert("thinkingLevel".into(), json!(level_from_effort(effort)));
            }
            (None, Some(effort)) => {
                thinking.insert("thinkingBudget".into(), json!(effort_to_budget(effort)));
            }
            (None, None) => {}
        }
        if let Some(include) = reasoning.include_thoughts {
            thinking.insert("includeThoughts".into(), json!(include));
        }
        if !thinking.is_empty() {
            config.insert("thinkingConfig".into(), Value::Object(thinking));
        }
    }
    config
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn thinking_levels_only_for_gemini_3_and_later() {
        assert!(takes_thinking_level("gemini-3-pro-preview"));
        assert!(takes_thinking_level("models/gemini-3.1-flash"));
        assert!(takes_thinking_level("gemini-10-ultra"));
        assert!(!takes_thinking_level("gemini-2.5-flash"));
        assert!(!takes_thinking_level("gemini-flash-latest"));
        assert!(!takes_thinking_level(""));
    }

    #[test]
    fn openapi_schemas_become_json_schema() {
        let openapi = json!({
            "type": "OBJECT",
            "properties": {
                "name": {"type": "STRING", "nullable": true, "enum": ["a"]},
                "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}}
            },
            "propertyOrdering": ["name", "tags"],
            "required": ["name"]
        });
        assert_eq!(
            openapi_to_json_schema(&openapi),
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": ["string", "null"], "enum": ["a", null]},
                    "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}
                },
                "required": ["name"]
            })
        );
    }

    #[test]
    fn count_tokens_reads_both_shapes() {
        let plain = count_tokens_request(br#"{"contents":[{"parts":[{"text":"hi"}]}]}"#).unwrap();
        assert_eq!(plain.messages.len(), 1);
        let wrapped = count_tokens_request(
            br#"{"generateContentRequest":{"model":"models/x","contents":[{"role":"user","parts":[{"text":"hi"}]}],"systemInstruction":{"parts":[{"text":"be brief"}]}}}"#,
        )
        .unwrap();
        assert_eq!(wrapped.messages, plain.messages);
        assert_eq!(wrapped.system.len(), 1);
        let err = count_tokens_request(br#"{"generateContentRequest":{}}"#).unwrap_err();
        assert_eq!(
            err.param.as_deref(),
            Some("generateContentRequest.contents")
        );
    }
}
