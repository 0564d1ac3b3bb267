//! Requests: a client's Chat Completions body → canonical, and canonical → the body an
//! OpenAI-compatible upstream receives.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::wire::assistant_message;
use crate::canonical::{
    Effort, ImageSource, Message, Part, Reasoning, Request, ResponseFormat, Role, SystemBlock,
    Tool, ToolChoice, extract_thought_signature, tool_result_text,
};
use crate::error::{ErrorBody, ErrorKind};
use crate::openai_common::{invalid, missing};

/// Client side: a Chat Completions request body → canonical.
///
/// Validation errors name the field at fault in `param` (`messages[2].tool_call_id`).
pub fn decode_request(body: &[u8]) -> Result<Request, ErrorBody> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    let Value::Object(map) = &value else {
        return Err(ErrorBody::new(
            ErrorKind::InvalidRequest,
            "The request body must be a JSON object.",
        ));
    };
    let root = Obj {
        map,
        path: String::new(),
    };

    let model = root.required_str("model")?;
    if model.trim().is_empty() {
        return Err(invalid("model", "a non-empty string"));
    }
    let messages = root.array("messages")?.ok_or_else(|| missing("messages"))?;
    if messages.is_empty() {
        return Err(invalid("messages", "a non-empty array"));
    }
    let mut conversation = Conversation::default();
    for (i, message) in messages.iter().enumerate() {
        conversation.push(&Obj::new(message, format!("messages[{i}]"))?)?;
    }

    Ok(Request {
        model: model.to_string(),
        system: conversation.system,
        messages: conversation.messages,
        tools: decode_tools(&root)?,
        tool_choice: decode_tool_choice(&root)?,
        parallel_tool_calls: root.bool("parallel_tool_calls")?,
        // `max_tokens` is the deprecated spelling; the newer field wins when both are sent.
        max_tokens: match root.u64("max_completion_tokens")? {
            Some(n) => Some(n),
            None => root.u64("max_tokens")?,
        },
        temperature: root.f64("temperature")?,
        top_p: root.f64("top_p")?,
        // Not OpenAI's, but vLLM, SGLang and others accept it (`-1`, "off", reads as absent).
        top_k: root.get("top_k").and_then(Value::as_u64),
        stop: decode_stop(&root)?,
        response_format: decode_response_format(&root)?,
        reasoning: root
            .str("reasoning_effort")?
            .and_then(Effort::parse)
            .map(|effort| Reasoning {
                effort: Some(effort),
                budget_tokens: None,
                include_thoughts: None,
            }),
        stream: root.bool("stream")?.unwrap_or(false),
        user: match root.str("user")? {
            Some(user) => Some(user.to_string()),
            None => root.str("safety_identifier")?.map(str::to_string),
        },
        seed: root.i64("seed")?,
    })
}

/// The turns read so far. Chat Completions sends tool results as separate `tool` messages;
/// canonical carries them in one user turn.
#[derive(Default)]
struct Conversation {
    system: Vec<SystemBlock>,
    messages: Vec<Message>,
    /// Tool-call id (as the client echoes it) → function name, for the results that follow.
    call_names: HashMap<String, String>,
    /// The last turn was opened by `tool` messages: more results, and the user text that
    /// follows them, belong to it.
    tool_turn_open: bool,
}

impl Conversation {
    fn push(&mut self, message: &Obj<'_>) -> Result<(), ErrorBody> {
        match message.required_str("role")? {
            "system" | "developer" => {
                for text in texts(message, "content")? {
                    self.system.push(SystemBlock::text(text));
                }
            }
            "user" => {
                let parts = user_parts(message)?;
                match self.messages.last_mut() {
                    Some(last) if self.tool_turn_open => last.parts.extend(parts),
                    _ => self.messages.push(Message {
                        role: Role::User,
                        parts,
                    }),
                }
                self.tool_turn_open = false;
            }
            "assistant" => {
                let parts = self.assistant_parts(message)?;
                self.messages.push(Message {
                    role: Role::Assistant,
                    parts,
                });
                self.tool_turn_open = false;
            }
            "tool" => {
                let result = self.tool_result(message)?;
                match self.messages.last_mut() {
                    Some(last) if self.tool_turn_open => last.parts.push(result),
                    _ => {
                        self.messages.push(Message {
                            role: Role::User,
                            parts: vec![result],
                        });
                        self.tool_turn_open = true;
                    }
                }
            }
            // The legacy `function` role and roles this gateway does not know.
            _ => {}
        }
        Ok(())
    }

    fn assistant_parts(&mut self, message: &Obj<'_>) -> Result<Vec<Part>, ErrorBody> {
        let mut parts = Vec::new();
        // DeepSeek and vLLM say `reasoning_content`; OpenRouter and newer vLLM say `reasoning`.
        let reasoning = ["reasoning_content", "reasoning"]
            .iter()
            .find_map(|key| message.get(key).and_then(Value::as_str));
        if let Some(text) = reasoning {
            parts.push(Part::Thinking {
                text: text.to_string(),
                signature: None,
            });
        }
        // Clients often send `content: ""` next to tool calls: that is no text at all.
        parts.extend(
            texts(message, "content")?
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(Part::text),
        );
        for (j, call) in message
            .array("tool_calls")?
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let call = Obj::new(call, format!("{}.tool_calls[{j}]", message.path))?;
            if call.str("type")?.is_some_and(|t| t != "function") {
                continue;
            }
            let raw_id = call.required_str("id")?;
            let function = call
                .object("function")?
                .ok_or_else(|| missing(&call.field("function")))?;
            let name = function.required_str("name")?;
            let arguments = match function.get("arguments") {
                None => "{}".to_string(),
                Some(Value::String(s)) => s.clone(),
                // Some clients send the arguments as an object.
                Some(other) => other.to_string(),
            };
            let (id, thought_signature) = extract_thought_signature(raw_id);
            self.call_names.insert(raw_id.to_string(), name.to_string());
            self.call_names.insert(id.clone(), name.to_string());
            parts.push(Part::ToolCall {
                id,
                name: name.to_string(),
                arguments,
                thought_signature,
            });
        }
        Ok(parts)
    }

    fn tool_result(&self, message: &Obj<'_>) -> Result<Part, ErrorBody> {
        let raw_id = message.required_str("tool_call_id")?;
        if message.get("content").is_none() {
            return Err(missing(&message.field("content")));
        }
        let content = texts(message, "content")?
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(Part::text)
            .collect();
        let (call_id, _) = extract_thought_signature(raw_id);
        Ok(Part::ToolResult {
            name: self.call_names.get(raw_id).cloned(),
            call_id,
            content,
            is_error: false,
        })
    }
}

/// A user message's content: a string or text/image parts. Audio and file parts are dropped.
fn user_parts(message: &Obj<'_>) -> Result<Vec<Part>, ErrorBody> {
    let path = message.field("content");
    let items = match message.get("content") {
        None => return Err(missing(&path)),
        Some(Value::String(s)) => return Ok(vec![Part::text(s.clone())]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid(&path, "a string or an array of content parts")),
    };
    let mut parts = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let item = Obj::new(item, format!("{path}[{j}]"))?;
        match item.str("type")? {
            Some("text") => parts.push(Part::text(item.required_str("text")?)),
            Some("image_url") => {
                let (url, detail) = match item.get("image_url") {
                    // Some clients send the URL bare.
                    Some(Value::String(url)) => (url.as_str(), None),
                    Some(image) => {
                        let image = Obj::new(image, item.field("image_url"))?;
                        (image.required_str("url")?, image.str("detail")?)
                    }
                    None => return Err(missing(&item.field("image_url"))),
                };
                parts.push(Part::Image {
                    source: ImageSource::from_url(url),
                    detail: detail.map(str::to_string),
                });
            }
            // `input_audio`, `file` and parts from the future.
            _ => {}
        }
    }
    Ok(parts)
}

/// The texts of a `content` that is a string or an array of parts (`text` and `refusal` parts;
/// others are skipped). Absent or `null` content has none.
fn texts(message: &Obj<'_>, key: &str) -> Result<Vec<String>, ErrorBody> {
    let path = message.field(key);
    match message.get(key) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (j, item) in items.iter().enumerate() {
                let item = Obj::new(item, format!("{path}[{j}]"))?;
                match item.str("type")? {
                    Some("text") => out.push(item.required_str("text")?.to_string()),
                    Some("refusal") => out.push(item.required_str("refusal")?.to_string()),
                    _ => {}
                }
            }
            Ok(out)
        }
        Some(_) => Err(invalid(&path, "a string or an array of content parts")),
    }
}

fn decode_tools(root: &Obj<'_>) -> Result<Vec<Tool>, ErrorBody> {
    let mut tools = Vec::new();
    for (j, tool) in root.array("tools")?.unwrap_or_default().iter().enumerate() {
        let tool = Obj::new(tool, format!("tools[{j}]"))?;
        // Custom (free-text) tools and hosted tools have no canonical form.
        if tool.str("type")?.is_some_and(|t| t != "function") {
            continue;
        }
        let function = tool
            .object("function")?
            .ok_or_else(|| missing(&tool.field("function")))?;
        tools.push(Tool {
            name: function.required_str("name")?.to_string(),
            description: function.str("description")?.map(str::to_string),
            parameters: function
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: function.bool("strict")?,
        });
    }
    Ok(tools)
}

fn decode_tool_choice(root: &Obj<'_>) -> Result<Option<ToolChoice>, ErrorBody> {
    Ok(match root.get("tool_choice") {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(ToolChoice::Auto),
            "required" => Some(ToolChoice::Required),
            "none" => Some(ToolChoice::None),
            _ => None,
        },
        Some(choice @ Value::Object(_)) => {
            let choice = Obj::new(choice, "tool_choice".to_string())?;
            match choice.str("type")? {
                Some("function") => {
                    let function = choice
                        .object("function")?
                        .ok_or_else(|| missing("tool_choice.function"))?;
                    Some(ToolChoice::Named(
                        function.required_str("name")?.to_string(),
                    ))
                }
                // `allowed_tools`, `custom` and later additions.
                _ => None,
            }
        }
        Some(_) => return Err(invalid("tool_choice", "a string or an object")),
    })
}

fn decode_stop(root: &Obj<'_>) -> Result<Vec<String>, ErrorBody> {
    match root.get("stop") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid("stop", "a string or an array of strings"))
            })
            .collect(),
        Some(_) => Err(invalid("stop", "a string or an array of strings")),
    }
}

fn decode_response_format(root: &Obj<'_>) -> Result<Option<ResponseFormat>, ErrorBody> {
    let Some(format) = root.object("response_format")? else {
        return Ok(None);
    };
    Ok(match format.required_str("type")? {
        "text" => Some(ResponseFormat::Text),
        "json_object" => Some(ResponseFormat::JsonObject),
        "json_schema" => {
            let spec = format
                .object("json_schema")?
                .ok_or_else(|| missing("response_format.json_schema"))?;
            Some(ResponseFormat::JsonSchema {
                name: spec.str("name")?.unwrap_or("response").to_string(),
                schema: spec
                    .get("schema")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new())),
                strict: spec.bool("strict")?,
            })
        }
        _ => None,
    })
}

/// Upstream side: canonical → the Chat Completions body for an OpenAI-compatible upstream.
pub fn encode_request(req: &Request) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), Value::Array(encode_messages(req)));
    // OpenAI rejects `tool_choice` and `parallel_tool_calls` without tools.
    if !req.tools.is_empty() {
        body.insert(
            "tools".into(),
            req.tools.iter().map(encode_tool).collect::<Vec<_>>().into(),
        );
        if let Some(choice) = &req.tool_choice {
            body.insert("tool_choice".into(), encode_tool_choice(choice));
        }
        if let Some(parallel) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(parallel));
        }
    }
    // `max_completion_tokens` is OpenAI's newer name, but vLLM, Ollama, DeepSeek and most other
    // compatible servers only know `max_tokens`, which OpenAI still accepts.
    if let Some(max) = req.max_tokens {
        body.insert("max_tokens".into(), json!(max));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    if let Some(format) = &req.response_format {
        body.insert("response_format".into(), encode_response_format(format));
    }
    if let Some(effort) = req.reasoning.as_ref().and_then(Reasoning::effort) {
        body.insert("reasoning_effort".into(), json!(effort.as_str()));
    }
    if let Some(user) = &req.user {
        body.insert("user".into(), json!(user));
    }
    if let Some(seed) = req.seed {
        body.insert("seed".into(), json!(seed));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
        // The gateway accounts every request, so it always asks for the usage chunk.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

fn encode_messages(req: &Request) -> Vec<Value> {
    let mut out = Vec::with_capacity(req.messages.len() + 1);
    // One system message: the chat templates of many open models accept only one, first.
    if !req.system.is_empty() {
        let text = req
            .system
            .iter()
            .map(|block| block.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
        out.push(json!({"role": "system", "content": text}));
    }
    for message in &req.messages {
        match message.role {
            Role::User => encode_user(&message.parts, &mut out),
            Role::Assistant => out.push(encode_assistant(&message.parts)),
        }
    }
    out
}

/// A user turn: its tool results become `tool` messages (they must directly follow the
/// assistant's calls), then the rest one `user` message.
fn encode_user(parts: &[Part], out: &mut Vec<Value>) {
    let mut had_results = false;
    for part in parts {
        if let Part::ToolResult {
            call_id, content, ..
        } = part
        {
            had_results = true;
            let text = tool_result_text(content);
            out.push(json!({"role": "tool", "tool_call_id": call_id, "content": text}));
        }
    }
    let content: Vec<Value> = parts
        .iter()
        .filter_map(|part| match part {
            Part::Text { text, .. } => Some(json!({"type": "text", "text": text})),
            Part::Image { source, detail } => {
                let mut image = json!({"url": source.to_url()});
                if let (Some(detail), Value::Object(map)) = (detail, &mut image) {
                    map.insert("detail".into(), json!(detail));
                }
                Some(json!({"type": "image_url", "image_url": image}))
            }
            _ => None,
        })
        .collect();
    let content = match content.as_slice() {
        [] if had_results => return,
        [] => json!(""),
        [single] if single["type"] == "text" => single["text"].clone(),
        _ => Value::Array(content),
    };
    out.push(json!({"role": "user", "content": content}));
}

/// Tool-call ids go upstream as they are: thought signatures are not sent to the upstream
/// that made the call.
fn encode_assistant(parts: &[Part]) -> Value {
    Value::Object(assistant_message(parts, |id, _| id.to_string()))
}

fn encode_tool(tool: &Tool) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), json!(tool.name));
    if let Some(description) = &tool.description {
        function.insert("description".into(), json!(description));
    }
    if !tool.parameters.is_null() {
        function.insert("parameters".into(), tool.parameters.clone());
    }
    if let Some(strict) = tool.strict {
        function.insert("strict".into(), json!(strict));
    }
    json!({"type": "function", "function": function})
}

fn encode_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::Required => json!("required"),
        ToolChoice::None => json!("none"),
        ToolChoice::Named(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

fn encode_response_format(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
        } => {
            let mut spec = json!({"name": name, "schema": schema});
            if let (Some(strict), Value::Object(map)) = (strict, &mut spec) {
                map.insert("strict".into(), json!(strict));
            }
            json!({"type": "json_schema", "json_schema": spec})
        }
    }
}

/// A JSON object of the request being read, and where it sits (for error messages).
struct Obj<'a> {
    map: &'a Map<String, Value>,
    /// `messages[2]`; empty for the body itself.
    path: String,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: String) -> Result<Self, ErrorBody> {
        match value {
            Value::Object(map) => Ok(Obj { map, path }),
            _ => Err(invalid(&path, "an object")),
        }
    }

    /// The path of a member, for `param`.
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// A member; `null` reads as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, ErrorBody> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(&self.field(key), "a string")),
        }
    }

    fn required_str(&self, key: &str) -> Result<&'a str, ErrorBody> {
        self.str(key)?.ok_or_else(|| missing(&self.field(key)))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ErrorBody> {
        self.typed(key, "a boolean", Value::as_bool)
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, ErrorBody> {
        self.typed(key, "a non-negative integer", Value::as_u64)
    }

    fn i64(&self, key: &str) -> Result<Option<i64>, ErrorBody> {
        self.typed(key, "an integer", Value::as_i64)
    }

    fn f64(&self, key: &str) -> Result<Option<f64>, ErrorBody> {
        self.typed(key, "a number", Value::as_f64)
    }

    fn array(&self, key: &str) -> Result<Option<&'a [Value]>, ErrorBody> {
        self.typed(key, "an array", |v| v.as_array().map(Vec::as_slice))
    }

    fn object(&self, key: &str) -> Result<Option<Obj<'a>>, ErrorBody> {
        self.get(key)
            .map(|v| Obj::new(v, self.field(key)))
            .transpose()
    }

    fn typed<T>(
        &self,
        key: &str,
        expected: &str,
        read: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, ErrorBody> {
        self.get(key)
            .map(|v| read(v).ok_or_else(|| invalid(&self.field(key), expected)))
            .transpose()
    }
}
