//! Requests: a client's Responses request → canonical, and canonical → an upstream's request.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{function_call_part, reasoning_part, summary_json};
use crate::canonical::{
    Effort, ImageSource, Message, Part, Reasoning, Request, ResponseFormat, Role, SystemBlock,
    Tool, ToolChoice, extract_thought_signature,
};
use crate::error::{ErrorBody, ErrorKind};
use crate::openai_common::{invalid, missing};

/// Client side: a Responses request body → canonical. Errors name the field at fault
/// (`input[2].call_id`, `tools[0].name`, …).
pub fn decode_request(body: &[u8]) -> Result<Request, ErrorBody> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(ErrorBody::new(
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        ));
    };

    let model = match obj.get("model") {
        None | Some(Value::Null) => return Err(missing("model")),
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(Value::String(_)) => return Err(invalid("model", "a non-empty string")),
        Some(_) => return Err(invalid("model", "a string")),
    };

    let mut req = Request {
        model,
        ..Request::default()
    };
    if let Some(instructions) = opt_str(obj, "instructions", "instructions")? {
        req.system.push(SystemBlock::text(instructions));
    }
    match obj.get("input") {
        None | Some(Value::Null) => return Err(missing("input")),
        Some(Value::String(text)) => push_part(&mut req.messages, Role::User, Part::text(text)),
        Some(Value::Array(items)) => decode_input(items, &mut req)?,
        Some(_) => return Err(invalid("input", "a string or an array of input items")),
    }
    if req.messages.is_empty() {
        // Nothing left to answer (an empty list, or only items no other provider can read).
        return Err(ErrorBody::new(
            ErrorKind::InvalidRequest,
            "Invalid value for 'input': expected at least one user or assistant message, \
             function call or function call output.",
        )
        .with_param("input")
        .with_code("invalid_value"));
    }

    if let Some(tools) = obj.get("tools").filter(|t| !t.is_null()) {
        let tools = tools
            .as_array()
            .ok_or_else(|| invalid("tools", "an array"))?;
        for (i, tool) in tools.iter().enumerate() {
            if let Some(tool) = decode_tool(tool, i)? {
                req.tools.push(tool);
            }
        }
    }
    req.tool_choice = decode_tool_choice(obj.get("tool_choice"))?;
    req.parallel_tool_calls = opt_bool(obj, "parallel_tool_calls")?;
    req.max_tokens = opt_u64(obj, "max_output_tokens")?;
    req.temperature = opt_f64(obj, "temperature")?;
    req.top_p = opt_f64(obj, "top_p")?;
    req.reasoning = decode_reasoning(obj.get("reasoning"))?;
    req.response_format = decode_text_format(obj.get("text"))?;
    req.stream = opt_bool(obj, "stream")?.unwrap_or(false);
    req.user = match opt_str(obj, "user", "user")? {
        Some(user) => Some(user.to_string()),
        None => opt_str(obj, "safety_identifier", "safety_identifier")?.map(String::from),
    };
    Ok(req)
}

/// Walks the input items in order, merging runs of one role into one turn.
fn decode_input(items: &[Value], req: &mut Request) -> Result<(), ErrorBody> {
    // call_id → function name, so tool results carry the name (Gemini needs it).
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("input[{i}]");
        let Some(obj) = item.as_object() else {
            return Err(invalid(&path, "an object"));
        };
        let kind = obj.get("type").and_then(Value::as_str);
        match kind {
            None | Some("message") => decode_message(obj, &path, req)?,
            Some("function_call") => {
                require_str(obj, "call_id", &path)?;
                require_str(obj, "name", &path)?;
                if let Some(part) = function_call_part(item) {
                    if let Part::ToolCall { id, name, .. } = &part {
                        names.insert(id.clone(), name.clone());
                    }
                    push_part(&mut req.messages, Role::Assistant, part);
                }
            }
            Some("function_call_output") => {
                let call_id = require_str(obj, "call_id", &path)?;
                let (call_id, _) = extract_thought_signature(call_id);
                let content = decode_tool_output(obj.get("output"), &format!("{path}.output"))?;
                let name = names.get(&call_id).cloned();
                push_part(
                    &mut req.messages,
                    Role::User,
                    Part::ToolResult {
                        call_id,
                        name,
                        content,
                        is_error: false,
                    },
                );
            }
            Some("reasoning") => {
                if let Some(part) = reasoning_part(item) {
                    push_part(&mut req.messages, Role::Assistant, part);
                }
            }
            // item_reference, hosted tool calls and their outputs: nothing canonical can hold.
            Some(_) => {}
        }
    }
    Ok(())
}

fn decode_message(
    obj: &Map<String, Value>,
    path: &str,
    req: &mut Request,
) -> Result<(), ErrorBody> {
    let role_path = format!("{path}.role");
    let role = match obj.get("role") {
        None | Some(Value::Null) => return Err(missing(&role_path)),
        Some(Value::String(r)) => r.as_str(),
        Some(_) => return Err(invalid(&role_path, "a string")),
    };
    let content_path = format!("{path}.content");
    let role = match role {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" | "developer" => {
            let block = match obj.get("content") {
                Some(Value::String(s)) => SystemBlock::text(s),
                Some(Value::Array(parts)) => SystemBlock {
                    text: parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                    cache_control: parts
                        .iter()
                        .find_map(|p| cache_control_of(p.get("prompt_cache_breakpoint"))),
                },
                None | Some(Value::Null) => return Err(missing(&content_path)),
                Some(_) => return Err(invalid(&content_path, "a string or an array of parts")),
            };
            req.system.push(block);
            return Ok(());
        }
        other => {
            return Err(ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!(
                    "Invalid value for '{role_path}': '{other}'. Supported values are: 'user', \
                     'assistant', 'system' and 'developer'."
                ),
            )
            .with_param(role_path)
            .with_code("invalid_value"));
        }
    };
    match obj.get("content") {
        Some(Value::String(s)) => push_part(&mut req.messages, role, Part::text(s)),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                if let Some(part) = decode_content_part(part, &format!("{content_path}[{j}]"))? {
                    push_part(&mut req.messages, role, part);
                }
            }
        }
        None | Some(Value::Null) => return Err(missing(&content_path)),
        Some(_) => return Err(invalid(&content_path, "a string or an array of parts")),
    }
    Ok(())
}

/// One content part of a message or a tool output; `None` for kinds canonical cannot hold.
fn decode_content_part(part: &Value, path: &str) -> Result<Option<Part>, ErrorBody> {
    let Some(obj) = part.as_object() else {
        return Err(invalid(path, "an object"));
    };
    Ok(match obj.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text") => Some(Part::Text {
            text: require_str(obj, "text", path)?.to_string(),
            cache_control: cache_control_of(obj.get("prompt_cache_breakpoint")),
            thought_signature: None,
        }),
        Some("refusal") => Some(Part::text(require_str(obj, "refusal", path)?)),
        Some("input_image") => {
            let url = match obj.get("image_url") {
                Some(Value::String(url)) => url.as_str(),
                // `{image_url: {url}}`, the Chat Completions shape some clients reuse.
                Some(Value::Object(o)) => match o.get("url").and_then(Value::as_str) {
                    Some(url) => url,
                    None => return Err(invalid(&format!("{path}.image_url"), "a string")),
                },
                // Only a `file_id`: a file stored with OpenAI that no other provider can read.
                None | Some(Value::Null) => return Ok(None),
                Some(_) => return Err(invalid(&format!("{path}.image_url"), "a string")),
            };
            let detail = obj
                .get("detail")
                .and_then(Value::as_str)
                .filter(|d| *d != "auto")
                .map(String::from);
            Some(Part::Image {
                source: ImageSource::from_url(url),
                detail,
            })
        }
        _ => None,
    })
}

/// A `function_call_output`'s `output`: a string or a list of content parts.
fn decode_tool_output(output: Option<&Value>, path: &str) -> Result<Vec<Part>, ErrorBody> {
    Ok(match output {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![Part::text(s)],
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                if let Some(part) = decode_content_part(part, &format!("{path}[{j}]"))? {
                    out.push(part);
                }
            }
            out
        }
        // A JSON value where a string belongs: keep it as its text.
        Some(other) => vec![Part::text(other.to_string())],
    })
}

fn decode_tool(tool: &Value, i: usize) -> Result<Option<Tool>, ErrorBody> {
    let path = format!("tools[{i}]");
    let Some(obj) = tool.as_object() else {
        return Err(invalid(&path, "an object"));
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("function") => {}
        Some(_) => return Ok(None), // hosted tools: web_search, file_search, mcp, …
        None => return Err(missing(&format!("{path}.type"))),
    }
    let name = require_str(obj, "name", &path)?.to_string();
    let description =
        opt_str(obj, "description", &format!("{path}.description"))?.map(String::from);
    let parameters = match obj.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            return Err(invalid(
                &format!("{path}.parameters"),
                "a JSON Schema object",
            ));
        }
    };
    let strict = match obj.get("strict") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(invalid(&format!("{path}.strict"), "a boolean")),
    };
    Ok(Some(Tool {
        name,
        description,
        parameters,
        strict,
    }))
}

fn decode_tool_choice(v: Option<&Value>) -> Result<Option<ToolChoice>, ErrorBody> {
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => mode_choice(s),
        Some(Value::Object(obj)) => match obj.get("type").and_then(Value::as_str) {
            Some("function") => match obj.get("name") {
                Some(Value::String(name)) => Some(ToolChoice::Named(name.clone())),
                _ => return Err(missing("tool_choice.name")),
            },
            Some("allowed_tools") => obj
                .get("mode")
                .and_then(Value::as_str)
                .and_then(mode_choice),
            _ => None, // a hosted tool, whose tool is dropped too
        },
        Some(_) => return Err(invalid("tool_choice", "a string or an object")),
    })
}

fn mode_choice(mode: &str) -> Option<ToolChoice> {
    match mode {
        "auto" => Some(ToolChoice::Auto),
        "required" => Some(ToolChoice::Required),
        "none" => Some(ToolChoice::None),
        _ => None,
    }
}

fn decode_reasoning(v: Option<&Value>) -> Result<Option<Reasoning>, ErrorBody> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(obj)) => obj,
        Some(_) => return Err(invalid("reasoning", "an object")),
    };
    let effort = opt_str(obj, "effort", "reasoning.effort")?.and_then(|e| match e {
        // Above xhigh; canonical has no higher level.
        "max" => Some(Effort::Xhigh),
        e => Effort::parse(e),
    });
    let summary = ["summary", "generate_summary"]
        .iter()
        .any(|k| obj.get(*k).is_some_and(|s| !s.is_null()));
    if effort.is_none() && !summary {
        return Ok(None);
    }
    Ok(Some(Reasoning {
        effort,
        budget_tokens: None,
        include_thoughts: summary.then_some(true),
    }))
}

fn decode_text_format(v: Option<&Value>) -> Result<Option<ResponseFormat>, ErrorBody> {
    let Some(format) = v.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let Some(obj) = format.as_object() else {
        return Err(invalid("text.format", "an object"));
    };
    Ok(match obj.get("type").and_then(Value::as_str) {
        Some("text") => Some(ResponseFormat::Text),
        Some("json_object") => Some(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let schema = match obj.get("schema") {
                Some(s @ Value::Object(_)) => s.clone(),
                None | Some(Value::Null) => return Err(missing("text.format.schema")),
                Some(_) => return Err(invalid("text.format.schema", "a JSON Schema object")),
            };
            let name = opt_str(obj, "name", "text.format.name")?.unwrap_or("response");
            let strict = match obj.get("strict") {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            };
            Some(ResponseFormat::JsonSchema {
                name: name.to_string(),
                schema,
                strict,
            })
        }
        _ => None,
    })
}

/// A Responses `prompt_cache_breakpoint` as Anthropic's `cache_control`: both end a cacheable
/// prefix. TTLs are minimums, so any explicit one (`30m`, `12h`) reads as Anthropic's longest, `1h`.
fn cache_control_of(breakpoint: Option<&Value>) -> Option<Value> {
    let breakpoint = breakpoint.filter(|b| b.is_object())?;
    Some(match breakpoint.get("ttl") {
        Some(Value::String(_)) => json!({"type": "ephemeral", "ttl": "1h"}),
        _ => json!({"type": "ephemeral"}),
    })
}

/// `cache_control` as a `prompt_cache_breakpoint`; a `1h` minimum needs the `12h` option.
fn breakpoint_of(cache_control: &Value) -> Value {
    match cache_control.get("ttl").and_then(Value::as_str) {
        Some("1h") => json!({"mode": "explicit", "ttl": "12h"}),
        _ => json!({"mode": "explicit"}),
    }
}

/// An `input_text` part, with its cache breakpoint.
fn input_text(text: &str, cache_control: Option<&Value>) -> Value {
    let mut part = json!({"type": "input_text", "text": text});
    if let (Some(cc), Some(obj)) = (cache_control, part.as_object_mut()) {
        obj.insert("prompt_cache_breakpoint".into(), breakpoint_of(cc));
    }
    part
}

/// Appends a part to the last turn when it has this role, else opens a new turn.
fn push_part(messages: &mut Vec<Message>, role: Role, part: Part) {
    match messages.last_mut() {
        Some(last) if last.role == role => last.parts.push(part),
        _ => messages.push(Message {
            role,
            parts: vec![part],
        }),
    }
}

/// Upstream side: canonical → a Responses request body. Always `store: false`.
pub fn encode_request(req: &Request) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), req.model.clone().into());
    body.insert("input".into(), Value::Array(encode_input(req)));
    if !req.tools.is_empty() {
        let tools = req.tools.iter().map(encode_tool).collect();
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = &req.tool_choice {
            body.insert("tool_choice".into(), encode_tool_choice(choice));
        }
        if let Some(parallel) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), parallel.into());
        }
    }
    if let Some(max) = req.max_tokens {
        body.insert("max_output_tokens".into(), max.into());
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), p.into());
    }
    if let Some(reasoning) = &req.reasoning {
        let mut r = Map::new();
        if let Some(effort) = reasoning.effort() {
            r.insert("effort".into(), effort.as_str().into());
        }
        if reasoning.include_thoughts == Some(true) {
            r.insert("summary".into(), "auto".into());
        }
        if !r.is_empty() {
            body.insert("reasoning".into(), Value::Object(r));
            body.insert("include".into(), json!(["reasoning.encrypted_content"]));
        }
    }
    if let Some(format) = &req.response_format {
        let format = match format {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => {
                let mut f = json!({"type": "json_schema", "name": name, "schema": schema});
                if let (Some(strict), Some(obj)) = (strict, f.as_object_mut()) {
                    obj.insert("strict".into(), (*strict).into());
                }
                f
            }
        };
        body.insert("text".into(), json!({ "format": format }));
    }
    if req.stream {
        body.insert("stream".into(), true.into());
    }
    if let Some(user) = &req.user {
        body.insert("user".into(), user.clone().into());
    }
    body.insert("store".into(), false.into());
    Value::Object(body)
}

fn encode_input(req: &Request) -> Vec<Value> {
    let mut items: Vec<Value> = req
        .system
        .iter()
        .map(|s| {
            let content = match &s.cache_control {
                None => Value::String(s.text.clone()),
                Some(cc) => json!([input_text(&s.text, Some(cc))]),
            };
            json!({"type": "message", "role": "system", "content": content})
        })
        .collect();
    for message in &req.messages {
        // Text and images gather into one message item until a non-message item intervenes.
        let mut content: Vec<Value> = Vec::new();
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let flush = |content: &mut Vec<Value>, items: &mut Vec<Value>| {
            if !content.is_empty() {
                items.push(json!({
                    "type": "message",
                    "role": role,
                    "content": std::mem::take(content),
                }));
            }
        };
        for part in &message.parts {
            match part {
                Part::Text {
                    text,
                    cache_control,
                    ..
                } => content.push(match message.role {
                    Role::User => input_text(text, cache_control.as_ref()),
                    Role::Assistant => json!({"type": "output_text", "text": text}),
                }),
                Part::Image { source, detail } if message.role == Role::User => {
                    content.push(input_image(source, detail.as_deref()));
                }
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                    ..
                } => {
                    flush(&mut content, &mut items);
                    items.push(json!({
                        "type": "function_call",
                        "call_id": id,
                        "name": name,
                        "arguments": arguments,
                    }));
                }
                Part::ToolResult {
                    call_id,
                    content: output,
                    ..
                } => {
                    flush(&mut content, &mut items);
                    items.push(json!({
                        "type": "function_call_output",
                        "call_id": call_id,
                        "output": encode_tool_output(output),
                    }));
                }
                Part::Thinking {
                    text,
                    signature: Some(signature),
                } => {
                    flush(&mut content, &mut items);
                    items.push(json!({
                        "type": "reasoning",
                        "summary": summary_json(text),
                        "encrypted_content": signature,
                    }));
                }
                Part::Image { .. } | Part::Thinking { .. } | Part::RedactedThinking { .. } => {}
            }
        }
        flush(&mut content, &mut items);
    }
    items
}

fn input_image(source: &ImageSource, detail: Option<&str>) -> Value {
    json!({
        "type": "input_image",
        "image_url": source.to_url(),
        "detail": detail.unwrap_or("auto"),
    })
}

/// A lone text result is a plain string (what every Responses implementation accepts).
fn encode_tool_output(content: &[Part]) -> Value {
    match content {
        [] => Value::String(String::new()),
        [
            Part::Text {
                text,
                cache_control: None,
                ..
            },
        ] => Value::String(text.clone()),
        parts => Value::Array(
            parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text {
                        text,
                        cache_control,
                        ..
                    } => Some(input_text(text, cache_control.as_ref())),
                    Part::Image { source, detail } => Some(input_image(source, detail.as_deref())),
                    _ => None,
                })
                .collect(),
        ),
    }
}

fn encode_tool(tool: &Tool) -> Value {
    let mut t = Map::new();
    t.insert("type".into(), "function".into());
    t.insert("name".into(), tool.name.clone().into());
    if let Some(d) = &tool.description {
        t.insert("description".into(), d.clone().into());
    }
    let parameters = if tool.parameters.is_object() {
        tool.parameters.clone()
    } else {
        json!({"type": "object", "properties": {}})
    };
    t.insert("parameters".into(), parameters);
    // Responses treats a missing `strict` as true; canonical "unspecified" means the lenient mode.
    t.insert("strict".into(), tool.strict.unwrap_or(false).into());
    Value::Object(t)
}

fn encode_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => "auto".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::None => "none".into(),
        ToolChoice::Named(name) => json!({"type": "function", "name": name}),
    }
}

/// A required string field of the object at `path`.
fn require_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a str, ErrorBody> {
    let param = format!("{path}.{key}");
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(missing(&param)),
        Some(_) => Err(invalid(&param, "a string")),
    }
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<&'a str>, ErrorBody> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(param, "a string")),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ErrorBody> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid(key, "a boolean")),
    }
}

fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, ErrorBody> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(invalid(key, "a number")),
    }
}

fn opt_u64(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, ErrorBody> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(key, "a non-negative integer")),
    }
}
