//! Requests: an Anthropic client's body → canonical, and canonical → an Anthropic upstream body.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::canonical::{
    Effort, ImageSource, Message, Part, Reasoning, Request, ResponseFormat, Role, SystemBlock,
    Tool, ToolChoice, arguments_object, effort_to_budget, extract_thought_signature,
    sanitize_tool_id,
};
use crate::error::{ErrorBody, ErrorKind};

/// `max_tokens` sent upstream when the canonical request has none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 8192;

/// The smallest thinking budget Anthropic accepts.
pub const MIN_THINKING_BUDGET: u64 = 1024;

/// Room left for the answer when `max_tokens` is derived from a thinking budget.
const ANSWER_ROOM: u64 = 4096;

/// Client side: an Anthropic `/v1/messages` body → canonical.
pub fn decode_request(body: &[u8]) -> Result<Request, ErrorBody> {
    decode(body, true)
}

/// Client side: an Anthropic `/v1/messages/count_tokens` body (a messages body without
/// `max_tokens`) → canonical.
pub fn count_tokens_request(body: &[u8]) -> Result<Request, ErrorBody> {
    decode(body, false)
}

/// The `/v1/messages/count_tokens` answer: `{"input_tokens":N}`.
pub fn count_tokens_response(input_tokens: u64) -> Value {
    json!({ "input_tokens": input_tokens })
}

// ---------------------------------------------------------------------------------------------
// Decoding

fn invalid(path: &str, what: &str) -> ErrorBody {
    ErrorBody::new(ErrorKind::InvalidRequest, format!("{path}: {what}")).with_param(path)
}

fn missing(path: &str) -> ErrorBody {
    invalid(path, "Field required")
}

/// A present, non-null field.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, ErrorBody> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| invalid(path, "Input should be a valid string")),
    }
}

fn req_str<'a>(obj: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, ErrorBody> {
    opt_str(obj, key, path)?.ok_or_else(|| missing(path))
}

fn opt_u64(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, ErrorBody> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(key, "Input should be a valid non-negative integer")),
    }
}

fn opt_f64(obj: &Map<String, Value>, key: &str) -> Result<Option<f64>, ErrorBody> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(key, "Input should be a valid number")),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, ErrorBody> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| invalid(path, "Input should be a valid boolean")),
    }
}

fn decode(body: &[u8], require_max_tokens: bool) -> Result<Request, ErrorBody> {
    let root: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("The request body is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(obj) = &root else {
        return Err(ErrorBody::new(
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        ));
    };

    let model = req_str(obj, "model", "model")?;
    if model.trim().is_empty() {
        return Err(invalid("model", "String should have at least 1 character"));
    }
    let max_tokens = opt_u64(obj, "max_tokens")?;
    if require_max_tokens && max_tokens.is_none() {
        return Err(missing("max_tokens"));
    }

    let messages = match field(obj, "messages") {
        None => return Err(missing("messages")),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(invalid("messages", "At least one message is required"));
        }
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("messages", "Input should be a valid list")),
    };
    let mut call_names = HashMap::new();
    let messages = messages
        .iter()
        .enumerate()
        .map(|(i, m)| decode_message(m, i, &mut call_names))
        .collect::<Result<Vec<_>, _>>()?;

    let mut req = Request {
        model: model.to_string(),
        system: decode_system(field(obj, "system"))?,
        messages,
        max_tokens,
        temperature: opt_f64(obj, "temperature")?,
        top_p: opt_f64(obj, "top_p")?,
        top_k: opt_u64(obj, "top_k")?,
        stream: opt_bool(obj, "stream", "stream")?.unwrap_or(false),
        ..Request::default()
    };

    if let Some(tools) = field(obj, "tools") {
        let Value::Array(tools) = tools else {
            return Err(invalid("tools", "Input should be a valid list"));
        };
        for (i, tool) in tools.iter().enumerate() {
            if let Some(tool) = decode_tool(tool, i)? {
                req.tools.push(tool);
            }
        }
    }
    if let Some(choice) = field(obj, "tool_choice") {
        let (choice, parallel) = decode_tool_choice(choice)?;
        req.tool_choice = choice;
        req.parallel_tool_calls = parallel;
    }

    match field(obj, "stop_sequences") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, s) in items.iter().enumerate() {
                let s = s.as_str().ok_or_else(|| {
                    invalid(
                        &format!("stop_sequences.{i}"),
                        "Input should be a valid string",
                    )
                })?;
                req.stop.push(s.to_string());
            }
        }
        Some(_) => return Err(invalid("stop_sequences", "Input should be a valid list")),
    }

    if let Some(meta) = field(obj, "metadata") {
        let Value::Object(meta) = meta else {
            return Err(invalid("metadata", "Input should be a valid dictionary"));
        };
        req.user = opt_str(meta, "user_id", "metadata.user_id")?.map(String::from);
    }

    req.reasoning = decode_thinking(field(obj, "thinking"))?;
    if let Some(Value::Object(config)) = field(obj, "output_config") {
        if let Some(effort) = config
            .get("effort")
            .and_then(Value::as_str)
            .and_then(parse_effort)
        {
            req.reasoning
                .get_or_insert(Reasoning {
                    effort: None,
                    budget_tokens: None,
                    include_thoughts: None,
                })
                .effort = Some(effort);
        }
        req.response_format = decode_output_format(config.get("format"));
    }
    // The structured-outputs beta spelled it as a top-level `output_format`.
    if req.response_format.is_none() {
        req.response_format = decode_output_format(obj.get("output_format"));
    }
    Ok(req)
}

fn parse_effort(s: &str) -> Option<Effort> {
    match s {
        "max" => Some(Effort::Xhigh),
        other => Effort::parse(other),
    }
}

fn decode_output_format(v: Option<&Value>) -> Option<ResponseFormat> {
    let v = v?;
    if v.get("type").and_then(Value::as_str) != Some("json_schema") {
        return None;
    }
    Some(ResponseFormat::JsonSchema {
        name: "response".to_string(),
        schema: v.get("schema").cloned().unwrap_or(Value::Null),
        strict: None,
    })
}

fn decode_system(v: Option<&Value>) -> Result<Vec<SystemBlock>, ErrorBody> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![SystemBlock::text(s)]),
        Some(Value::Array(blocks)) => {
            let mut out = Vec::with_capacity(blocks.len());
            for (i, block) in blocks.iter().enumerate() {
                let path = format!("system.{i}");
                let Value::Object(block) = block else {
                    return Err(invalid(&path, "Input should be a valid dictionary"));
                };
                if block.get("type").and_then(Value::as_str) != Some("text") {
                    continue;
                }
                out.push(SystemBlock {
                    text: req_str(block, "text", &format!("{path}.text"))?.to_string(),
                    cache_control: field(block, "cache_control").cloned(),
                });
            }
            Ok(out)
        }
        Some(_) => Err(invalid(
            "system",
            "Input should be a valid string or a list of text blocks",
        )),
    }
}

fn decode_message(
    v: &Value,
    i: usize,
    call_names: &mut HashMap<String, String>,
) -> Result<Message, ErrorBody> {
    let path = format!("messages.{i}");
    let Value::Object(obj) = v else {
        return Err(invalid(&path, "Input should be a valid dictionary"));
    };
    let role = match req_str(obj, "role", &format!("{path}.role"))? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        _ => {
            return Err(invalid(
                &format!("{path}.role"),
                "Input should be 'user' or 'assistant'",
            ));
        }
    };
    let content_path = format!("{path}.content");
    let parts = match field(obj, "content") {
        None => return Err(missing(&content_path)),
        Some(Value::String(s)) => vec![Part::text(s.clone())],
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                if let Some(part) = decode_block(block, &format!("{content_path}.{j}"), call_names)?
                {
                    parts.push(part);
                }
            }
            parts
        }
        Some(_) => {
            return Err(invalid(
                &content_path,
                "Input should be a valid string or a list of content blocks",
            ));
        }
    };
    Ok(Message { role, parts })
}

/// One content block of a message (request) or of a response. `None` for blocks canonical does
/// not carry. `call_names` collects tool-call names so tool results can name their function.
pub(super) fn decode_block(
    v: &Value,
    path: &str,
    call_names: &mut HashMap<String, String>,
) -> Result<Option<Part>, ErrorBody> {
    let Value::Object(obj) = v else {
        return Err(invalid(path, "Input should be a valid dictionary"));
    };
    let ty = req_str(obj, "type", &format!("{path}.type"))?;
    let part = match ty {
        "text" => Part::Text {
            text: req_str(obj, "text", &format!("{path}.text"))?.to_string(),
            cache_control: field(obj, "cache_control").cloned(),
            thought_signature: None,
        },
        "image" => match decode_image_source(field(obj, "source")) {
            Some(source) => Part::Image {
                source,
                detail: None,
            },
            None => return Ok(None),
        },
        "document" => match plain_text_document(obj) {
            Some(text) => Part::Text {
                text: text.to_string(),
                cache_control: field(obj, "cache_control").cloned(),
                thought_signature: None,
            },
            None => return Ok(None),
        },
        "tool_use" => {
            let id = req_str(obj, "id", &format!("{path}.id"))?;
            let name = req_str(obj, "name", &format!("{path}.name"))?.to_string();
            let arguments = match field(obj, "input") {
                None => "{}".to_string(),
                Some(input) => input.to_string(),
            };
            let (id, thought_signature) = extract_thought_signature(id);
            call_names.insert(id.clone(), name.clone());
            Part::ToolCall {
                id,
                name,
                arguments,
                thought_signature,
            }
        }
        "tool_result" => {
            let id = req_str(obj, "tool_use_id", &format!("{path}.tool_use_id"))?;
            let (call_id, _) = extract_thought_signature(id);
            let content_path = format!("{path}.content");
            let mut content = match field(obj, "content") {
                None => Vec::new(),
                Some(Value::String(s)) if s.is_empty() => Vec::new(),
                Some(Value::String(s)) => vec![Part::text(s.clone())],
                Some(Value::Array(blocks)) => {
                    let mut parts = Vec::with_capacity(blocks.len());
                    for (j, block) in blocks.iter().enumerate() {
                        // Only text and images can be a tool's output in canonical.
                        if let Some(p @ (Part::Text { .. } | Part::Image { .. })) =
                            decode_block(block, &format!("{content_path}.{j}"), call_names)?
                        {
                            parts.push(p);
                        }
                    }
                    parts
                }
                Some(_) => {
                    return Err(invalid(
                        &content_path,
                        "Input should be a valid string or a list of content blocks",
                    ));
                }
            };
            if let Some(cc) = field(obj, "cache_control")
                && let Some(Part::Text { cache_control, .. }) = content
                    .iter_mut()
                    .rev()
                    .find(|p| matches!(p, Part::Text { .. }))
            {
                *cache_control = Some(cc.clone());
            }
            Part::ToolResult {
                name: call_names.get(&call_id).cloned(),
                call_id,
                content,
                is_error: opt_bool(obj, "is_error", &format!("{path}.is_error"))?.unwrap_or(false),
            }
        }
        "thinking" => Part::Thinking {
            text: opt_str(obj, "thinking", &format!("{path}.thinking"))?
                .unwrap_or_default()
                .to_string(),
            signature: opt_str(obj, "signature", &format!("{path}.signature"))?
                .filter(|s| !s.is_empty())
                .map(String::from),
        },
        "redacted_thinking" => Part::RedactedThinking {
            data: req_str(obj, "data", &format!("{path}.data"))?.to_string(),
        },
        _ => return Ok(None),
    };
    Ok(Some(part))
}

fn decode_image_source(v: Option<&Value>) -> Option<ImageSource> {
    let src = v?.as_object()?;
    match src.get("type")?.as_str()? {
        "base64" => Some(ImageSource::Base64 {
            media_type: src.get("media_type")?.as_str()?.to_string(),
            data: src.get("data")?.as_str()?.to_string(),
        }),
        "url" => Some(ImageSource::Url {
            url: src.get("url")?.as_str()?.to_string(),
        }),
        _ => None,
    }
}

fn plain_text_document(obj: &Map<String, Value>) -> Option<&str> {
    let src = obj.get("source")?;
    if src.get("type")?.as_str()? != "text" {
        return None;
    }
    src.get("data")?.as_str()
}

fn decode_tool(v: &Value, i: usize) -> Result<Option<Tool>, ErrorBody> {
    let path = format!("tools.{i}");
    let Value::Object(obj) = v else {
        return Err(invalid(&path, "Input should be a valid dictionary"));
    };
    // Server tools (`web_search_20250305`, `bash_20250124`, …) have a dated type and no schema.
    if let Some(ty) = field(obj, "type").and_then(Value::as_str)
        && ty != "custom"
    {
        return Ok(None);
    }
    Ok(Some(Tool {
        name: req_str(obj, "name", &format!("{path}.name"))?.to_string(),
        description: opt_str(obj, "description", &format!("{path}.description"))?.map(String::from),
        parameters: field(obj, "input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        strict: opt_bool(obj, "strict", &format!("{path}.strict"))?,
    }))
}

fn decode_tool_choice(v: &Value) -> Result<(Option<ToolChoice>, Option<bool>), ErrorBody> {
    let Value::Object(obj) = v else {
        return Err(invalid("tool_choice", "Input should be a valid dictionary"));
    };
    let choice = match req_str(obj, "type", "tool_choice.type")? {
        "auto" => Some(ToolChoice::Auto),
        "any" => Some(ToolChoice::Required),
        "none" => Some(ToolChoice::None),
        "tool" => Some(ToolChoice::Named(
            req_str(obj, "name", "tool_choice.name")?.to_string(),
        )),
        _ => None,
    };
    let parallel = match opt_bool(
        obj,
        "disable_parallel_tool_use",
        "tool_choice.disable_parallel_tool_use",
    )? {
        Some(true) => Some(false),
        _ => None,
    };
    Ok((choice, parallel))
}

fn decode_thinking(v: Option<&Value>) -> Result<Option<Reasoning>, ErrorBody> {
    let Some(v) = v else { return Ok(None) };
    let Value::Object(obj) = v else {
        return Err(invalid("thinking", "Input should be a valid dictionary"));
    };
    let include_thoughts = match obj.get("display").and_then(Value::as_str) {
        Some("summarized") => Some(true),
        Some("omitted") => Some(false),
        _ => None,
    };
    let budget = match req_str(obj, "type", "thinking.type")? {
        "enabled" => {
            let budget = field(obj, "budget_tokens")
                .ok_or_else(|| missing("thinking.budget_tokens"))?
                .as_u64()
                .ok_or_else(|| {
                    invalid(
                        "thinking.budget_tokens",
                        "Input should be a valid non-negative integer",
                    )
                })?;
            i64::try_from(budget).unwrap_or(i64::MAX)
        }
        // Adaptive: the model decides how much to think (canonical "dynamic").
        "adaptive" => -1,
        "disabled" => 0,
        _ => return Ok(None),
    };
    Ok(Some(Reasoning {
        effort: None,
        budget_tokens: Some(budget),
        include_thoughts,
    }))
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Upstream side: canonical → an Anthropic `/v1/messages` body.
pub fn encode_request(req: &Request) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), Value::String(req.model.clone()));

    let mut messages = encode_messages(&req.messages);
    let has_tools = !req.tools.is_empty();
    let forced_tool = has_tools
        && matches!(
            req.tool_choice,
            Some(ToolChoice::Required | ToolChoice::Named(_))
        );
    let thinking = plan_thinking(req, forced_tool || tool_loop_lacks_thinking(&messages));
    let thinking_on = matches!(thinking, Thinking::Enabled { .. });
    if !thinking_on {
        strip_final_assistant_thinking(&mut messages);
    }
    trim_final_assistant(&mut messages);

    let max_tokens = match thinking {
        Thinking::Enabled { max_tokens, .. } => max_tokens,
        _ => req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
    };
    out.insert("max_tokens".into(), max_tokens.into());
    out.insert("messages".into(), Value::Array(messages));

    if let Some(system) = encode_system(&req.system) {
        out.insert("system".into(), system);
    }

    if has_tools {
        let tools = req.tools.iter().map(encode_tool).collect();
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = encode_tool_choice(req.tool_choice.as_ref(), req.parallel_tool_calls)
        {
            out.insert("tool_choice".into(), choice);
        }
    }

    match thinking {
        Thinking::Omit => {}
        Thinking::Disabled => {
            out.insert("thinking".into(), json!({"type": "disabled"}));
        }
        Thinking::Enabled { budget, .. } => {
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
    }

    if !req.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(req.stop));
    }
    let temperature = req
        .temperature
        .filter(|t| t.is_finite() && !thinking_on)
        .map(|t| t.clamp(0.0, 1.0));
    if let Some(t) = temperature {
        out.insert("temperature".into(), json!(t));
    }
    let top_p = req
        .top_p
        .filter(|p| p.is_finite() && temperature.is_none())
        .filter(|p| !thinking_on || (0.95..=1.0).contains(p));
    if let Some(p) = top_p {
        out.insert("top_p".into(), json!(p));
    }
    if let Some(k) = req.top_k.filter(|_| !thinking_on) {
        out.insert("top_k".into(), k.into());
    }
    if let Some(user) = &req.user {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if req.stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    Value::Object(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thinking {
    /// No `thinking` field: the model's default (off).
    Omit,
    Disabled,
    Enabled {
        budget: u64,
        max_tokens: u64,
    },
}

/// Turns canonical reasoning into Anthropic's budget, within Anthropic's rules: a budget of at
/// least 1024 and below `max_tokens`, no thinking when it would be refused (`refused`).
fn plan_thinking(req: &Request, refused: bool) -> Thinking {
    let Some(budget) = req.reasoning.as_ref().and_then(Reasoning::budget) else {
        return Thinking::Omit;
    };
    if budget == 0 {
        return Thinking::Disabled;
    }
    if refused {
        return Thinking::Omit;
    }
    let budget = if budget < 0 {
        effort_to_budget(Effort::Medium)
    } else {
        budget
    };
    let mut budget = u64::try_from(budget)
        .unwrap_or(MIN_THINKING_BUDGET)
        .max(MIN_THINKING_BUDGET);
    let max_tokens = match req.max_tokens {
        Some(max) => {
            if budget >= max {
                if max <= MIN_THINKING_BUDGET {
                    return Thinking::Omit;
                }
                // Half for thinking, half for the answer, within the client's cap.
                budget = (max / 2).max(MIN_THINKING_BUDGET);
            }
            max
        }
        None => DEFAULT_MAX_TOKENS.max(budget.saturating_add(ANSWER_ROOM)),
    };
    Thinking::Enabled { budget, max_tokens }
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

fn content_of(message: &Value) -> &[Value] {
    message
        .get("content")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn content_mut(message: &mut Value) -> Option<&mut Vec<Value>> {
    message.get_mut("content").and_then(Value::as_array_mut)
}

/// With thinking on, Anthropic requires every assistant turn of the current tool loop (after
/// the last user turn that is more than tool results) that calls tools to start with thinking.
/// History from other providers has none, so thinking must stay off for that request.
fn tool_loop_lacks_thinking(messages: &[Value]) -> bool {
    let loop_start = messages
        .iter()
        .rposition(|m| {
            m.get("role").and_then(Value::as_str) == Some("user")
                && content_of(m)
                    .iter()
                    .any(|b| block_type(b) != Some("tool_result"))
        })
        .map_or(0, |i| i + 1);
    messages[loop_start..]
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .any(|m| {
            let content = content_of(m);
            content.iter().any(|b| block_type(b) == Some("tool_use"))
                && !matches!(
                    content.first().and_then(block_type),
                    Some("thinking" | "redacted_thinking")
                )
        })
}

fn last_assistant(messages: &mut [Value]) -> Option<&mut Vec<Value>> {
    let last = messages.last_mut()?;
    if last.get("role").and_then(Value::as_str) != Some("assistant") {
        return None;
    }
    content_mut(last)
}

/// Anthropic refuses thinking blocks in a final (prefill) assistant turn when thinking is off.
fn strip_final_assistant_thinking(messages: &mut Vec<Value>) {
    if let Some(content) = last_assistant(messages) {
        content.retain(|b| !matches!(block_type(b), Some("thinking" | "redacted_thinking")));
        if content.is_empty() {
            messages.pop();
        }
    }
}

/// Anthropic refuses a final assistant turn that ends in whitespace.
fn trim_final_assistant(messages: &mut Vec<Value>) {
    let Some(content) = last_assistant(messages) else {
        return;
    };
    let Some(last) = content.last_mut() else {
        return;
    };
    if block_type(last) != Some("text") {
        return;
    }
    let trimmed = last
        .get("text")
        .and_then(Value::as_str)
        .map(|t| t.trim_end().to_string());
    match trimmed {
        Some(t) if t.is_empty() => {
            content.pop();
            if content.is_empty() {
                messages.pop();
            }
        }
        Some(t) => {
            if let Some(obj) = last.as_object_mut() {
                obj.insert("text".into(), Value::String(t));
            }
        }
        None => {}
    }
}

fn encode_system(system: &[SystemBlock]) -> Option<Value> {
    let blocks: Vec<&SystemBlock> = system
        .iter()
        .filter(|b| !b.text.trim().is_empty())
        .collect();
    match blocks.as_slice() {
        [] => None,
        [only] if only.cache_control.is_none() => Some(Value::String(only.text.clone())),
        many => Some(Value::Array(
            many.iter()
                .map(|b| text_block(&b.text, b.cache_control.as_ref()))
                .collect(),
        )),
    }
}

fn text_block(text: &str, cache_control: Option<&Value>) -> Value {
    let mut block = Map::new();
    block.insert("type".into(), "text".into());
    block.insert("text".into(), Value::String(text.to_string()));
    if let Some(cc) = cache_control {
        block.insert("cache_control".into(), cc.clone());
    }
    Value::Object(block)
}

pub(super) fn image_block(source: &ImageSource) -> Value {
    let source = match source {
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageSource::Url { url } => json!({"type": "url", "url": url}),
    };
    json!({"type": "image", "source": source})
}

/// Merges consecutive turns of one role (Anthropic would merge them anyway) and puts tool
/// results first in user turns, as Anthropic requires.
fn encode_messages(messages: &[Message]) -> Vec<Value> {
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::with_capacity(messages.len());
    for message in messages {
        let blocks: Vec<Value> = message
            .parts
            .iter()
            .filter_map(|p| encode_part(p, message.role))
            .collect();
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((role, content)) if *role == message.role => content.extend(blocks),
            _ => turns.push((message.role, blocks)),
        }
    }
    turns
        .into_iter()
        .map(|(role, mut content)| {
            if role == Role::User {
                // A stable sort: tool results first, everything else after, each in order.
                content.sort_by_key(|b| block_type(b) != Some("tool_result"));
            }
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": content})
        })
        .collect()
}

fn encode_part(part: &Part, role: Role) -> Option<Value> {
    match part {
        Part::Text {
            text,
            cache_control,
            ..
        } => (!text.trim().is_empty()).then(|| text_block(text, cache_control.as_ref())),
        Part::Image { source, .. } => Some(image_block(source)),
        Part::ToolCall {
            id,
            name,
            arguments,
            ..
        } => Some(json!({
            "type": "tool_use",
            "id": sanitize_tool_id(id),
            "name": name,
            "input": arguments_object(arguments),
        })),
        Part::ToolResult {
            call_id,
            content,
            is_error,
            ..
        } => {
            if role == Role::Assistant {
                return None;
            }
            let mut block = Map::new();
            block.insert("type".into(), "tool_result".into());
            block.insert("tool_use_id".into(), sanitize_tool_id(call_id).into());
            if let Some(content) = encode_tool_result_content(content) {
                block.insert("content".into(), content);
            }
            if *is_error {
                block.insert("is_error".into(), Value::Bool(true));
            }
            Some(Value::Object(block))
        }
        Part::Thinking {
            text,
            signature: Some(signature),
        } if !signature.is_empty() => Some(json!({
            "type": "thinking",
            "thinking": text,
            "signature": signature,
        })),
        Part::Thinking { .. } => None,
        Part::RedactedThinking { data } => Some(json!({"type": "redacted_thinking", "data": data})),
    }
}

/// A single plain text is sent as a string, anything else as blocks; nothing as no `content`.
fn encode_tool_result_content(content: &[Part]) -> Option<Value> {
    let blocks: Vec<Value> = content
        .iter()
        .filter_map(|p| match p {
            Part::Text {
                text,
                cache_control,
                ..
            } if !text.trim().is_empty() => Some(text_block(text, cache_control.as_ref())),
            Part::Image { source, .. } => Some(image_block(source)),
            _ => None,
        })
        .collect();
    match blocks.as_slice() {
        [] => None,
        [only] if block_type(only) == Some("text") && only.get("cache_control").is_none() => {
            only.get("text").cloned()
        }
        _ => Some(Value::Array(blocks)),
    }
}

fn encode_tool(tool: &Tool) -> Value {
    // Anthropic requires an object schema; tools without parameters get an empty one.
    let schema = match &tool.parameters {
        Value::Object(schema) => {
            let mut schema = schema.clone();
            schema
                .entry("type")
                .or_insert_with(|| Value::String("object".into()));
            schema
        }
        _ => {
            let mut schema = Map::new();
            schema.insert("type".into(), "object".into());
            schema.insert("properties".into(), Value::Object(Map::new()));
            schema
        }
    };
    let mut out = Map::new();
    out.insert("name".into(), Value::String(tool.name.clone()));
    if let Some(d) = &tool.description {
        out.insert("description".into(), Value::String(d.clone()));
    }
    out.insert("input_schema".into(), Value::Object(schema));
    Value::Object(out)
}

fn encode_tool_choice(choice: Option<&ToolChoice>, parallel: Option<bool>) -> Option<Value> {
    let disable_parallel = parallel == Some(false);
    let mut out = match choice {
        None if !disable_parallel => return None,
        None | Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Named(name)) => json!({"type": "tool", "name": name}),
        // `none` takes no parallelism flag.
        Some(ToolChoice::None) => return Some(json!({"type": "none"})),
    };
    if disable_parallel && let Some(obj) = out.as_object_mut() {
        obj.insert("disable_parallel_tool_use".into(), Value::Bool(true));
    }
    Some(out)
}
