//! What the fake assistant answers, whatever the dialect: deterministic text, or one call to an
//! offered function, plus deterministic token estimates.
//!
//! Each dialect reduces its request to a [`Conversation`] (who said what, which functions are
//! offered, what output format is asked for) and renders the [`Answer`] in its own wire shape, so
//! every fake replies alike and a gateway's translation can be checked against any of them.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use crate::directives::Directives;

/// Characters of user text (or tool result) echoed back.
const ECHO_CHARS: usize = 200;

/// Completion tokens reported for a function call.
pub(crate) const TOOL_CALL_TOKENS: u64 = 12;

/// How deep structured output is synthesised into nested object schemas.
const SCHEMA_DEPTH: usize = 8;

/// Who spoke a turn, as far as the reply is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Speaker {
    /// The user (a tool call may answer it).
    User,
    /// Results of earlier function calls (Chat's `tool` role, Anthropic's `tool_result` blocks,
    /// Gemini's `functionResponse` parts, Responses' `function_call_output` items).
    ToolResult,
    /// Anyone else: system instructions, the assistant's own earlier turns.
    Other,
}

/// One turn: who spoke, and the texts said (counted for the prompt-token estimate).
#[derive(Debug)]
pub(crate) struct Turn<'a> {
    /// Who spoke.
    pub(crate) speaker: Speaker,
    /// The text pieces, in order.
    pub(crate) texts: Vec<Cow<'a, str>>,
}

impl<'a> Turn<'a> {
    /// A turn of borrowed texts.
    pub(crate) fn new(speaker: Speaker, texts: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            speaker,
            texts: texts.into_iter().map(Cow::Borrowed).collect(),
        }
    }

    fn text(&self) -> String {
        self.texts.join(" ")
    }
}

/// A function the assistant may call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tool<'a> {
    /// The function's name.
    pub(crate) name: &'a str,
    /// Its JSON Schema (or Gemini's OpenAPI subset), if given.
    pub(crate) parameters: Option<&'a Value>,
}

/// Whether and which function the assistant must call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ToolChoice<'a> {
    /// Call the first offered function (the fake always calls when it may).
    #[default]
    Auto,
    /// Never call.
    None,
    /// Call this function.
    Named(&'a str),
}

/// The output format asked for.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum OutputFormat<'a> {
    /// Free text.
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching this schema.
    JsonSchema(&'a Value),
}

/// A request reduced to what decides the reply.
#[derive(Debug, Default)]
pub(crate) struct Conversation<'a> {
    /// Every turn, system instructions included, oldest first.
    pub(crate) turns: Vec<Turn<'a>>,
    /// Offered functions, in order.
    pub(crate) tools: Vec<Tool<'a>>,
    /// Tool choice.
    pub(crate) tool_choice: ToolChoice<'a>,
    /// Requested output format.
    pub(crate) format: OutputFormat<'a>,
}

/// The assistant's answer, before any dialect's wire shape.
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// Text.
    Text(String),
    /// One function call.
    Call(FunctionCall),
}

/// A function call the assistant makes; ids are the dialect's business.
#[derive(Debug, PartialEq)]
pub(crate) struct FunctionCall {
    /// Function name.
    pub(crate) name: String,
    /// Arguments, a JSON object.
    pub(crate) arguments: Map<String, Value>,
}

impl FunctionCall {
    /// The arguments serialized, as OpenAI dialects carry them.
    pub(crate) fn arguments_json(&self) -> String {
        Value::Object(self.arguments.clone()).to_string()
    }
}

/// Token counts, deterministic estimates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Prompt tokens, including the cached ones.
    pub(crate) prompt: u64,
    /// Completion tokens (reasoning not included).
    pub(crate) completion: u64,
    /// Cached prompt tokens (`mock:cached=N`).
    pub(crate) cached: u64,
}

/// Decides the answer and its usage.
pub(crate) fn answer(conversation: &Conversation<'_>, directives: &Directives) -> (Answer, Usage) {
    let answer = function_call(conversation).map_or_else(
        || Answer::Text(text_answer(conversation, directives)),
        Answer::Call,
    );
    let completion = match &answer {
        Answer::Text(text) => tokens(text),
        Answer::Call(_) => TOOL_CALL_TOKENS,
    };
    let cached = directives.cached.unwrap_or(0);
    let usage = Usage {
        prompt: prompt_tokens(conversation, directives),
        completion,
        cached,
    };
    (answer, usage)
}

/// The prompt-token estimate: a quarter of the characters of every text, at least 1, and never
/// fewer than the cached tokens (which are part of the prompt).
pub(crate) fn prompt_tokens(conversation: &Conversation<'_>, directives: &Directives) -> u64 {
    let chars: usize = conversation
        .turns
        .iter()
        .flat_map(|turn| &turn.texts)
        .map(|text| text.chars().count())
        .sum();
    (chars.div_ceil(4) as u64)
        .max(1)
        .max(directives.cached.unwrap_or(0))
}

/// Tokens of generated text: one per whitespace-separated word.
pub(crate) fn tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The reasoning the fake "did" before answering, for dialects that show thinking.
pub(crate) fn thought(answer: &Answer) -> String {
    match answer {
        Answer::Text(_) => {
            "The user wrote to me, so I will reply with a short greeting.".to_owned()
        }
        Answer::Call(call) => format!(
            "The user needs {} to answer this, so I will call it.",
            call.name
        ),
    }
}

fn first_chars(text: &str, n: usize) -> &str {
    text.char_indices()
        .nth(n)
        .map_or(text, |(at, _)| &text[..at])
}

fn text_answer(conversation: &Conversation<'_>, directives: &Directives) -> String {
    if let Some(words) = directives.words {
        return numbered_words(words);
    }
    match conversation.format {
        OutputFormat::JsonObject => return "{}".to_owned(),
        OutputFormat::JsonSchema(schema) => return fake_instance(schema).to_string(),
        OutputFormat::Text => {}
    }
    match conversation.turns.last() {
        Some(last) if last.speaker == Speaker::ToolResult => format!(
            "Tool result received: {}",
            first_chars(&last.text(), ECHO_CHARS)
        ),
        _ => {
            let said = conversation
                .turns
                .iter()
                .rev()
                .find(|turn| turn.speaker == Speaker::User)
                .map(Turn::text)
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

/// A call to the named (or first) function, when functions are offered to a user turn.
fn function_call(conversation: &Conversation<'_>) -> Option<FunctionCall> {
    let last_is_user = conversation
        .turns
        .last()
        .is_some_and(|turn| turn.speaker == Speaker::User);
    if conversation.tools.is_empty()
        || !last_is_user
        || conversation.tool_choice == ToolChoice::None
    {
        return None;
    }
    let (name, parameters) = match conversation.tool_choice {
        ToolChoice::Named(name) => (
            name,
            conversation
                .tools
                .iter()
                .find(|tool| tool.name == name)
                .and_then(|tool| tool.parameters),
        ),
        _ => {
            let first = conversation.tools.first()?;
            (first.name, first.parameters)
        }
    };
    Some(FunctionCall {
        name: name.to_owned(),
        arguments: fake_arguments(parameters),
    })
}

/// An object with every required property set to a plausible value of its schema type (nested
/// objects stay empty).
fn fake_arguments(parameters: Option<&Value>) -> Map<String, Value> {
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
        arguments.insert(name.to_owned(), fake_value(name, schema, 0));
    }
    arguments
}

/// A JSON value matching a structured-output schema: objects get their required properties (all
/// properties when none are marked required), recursively.
fn fake_instance(schema: &Value) -> Value {
    let value = fake_value("", Some(schema), SCHEMA_DEPTH);
    if value.is_object() {
        value
    } else {
        // A schema without a type still describes an object.
        fake_object(schema, SCHEMA_DEPTH)
    }
}

fn fake_object(schema: &Value, depth: usize) -> Value {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return json!({});
    };
    let required: Vec<&str> = match schema.get("required").and_then(Value::as_array) {
        Some(required) => required.iter().filter_map(Value::as_str).collect(),
        None => properties.keys().map(String::as_str).collect(),
    };
    let mut object = Map::new();
    for name in required {
        let value = fake_value(name, properties.get(name), depth.saturating_sub(1));
        object.insert(name.to_owned(), value);
    }
    Value::Object(object)
}

/// A plausible value of `schema`'s type; `depth` > 0 fills nested objects.
fn fake_value(name: &str, schema: Option<&Value>, depth: usize) -> Value {
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
            .find(|kind| !kind.eq_ignore_ascii_case("null"))
            .unwrap_or("null"),
        _ => "string",
    };
    // Gemini's OpenAPI-subset schemas spell types in capitals (`OBJECT`, `STRING`).
    match kind.to_ascii_lowercase().as_str() {
        "number" | "integer" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => match schema {
            Some(schema) if depth > 0 => fake_object(schema, depth),
            _ => json!({}),
        },
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

    fn user(text: &str) -> Turn<'_> {
        Turn::new(Speaker::User, [text])
    }

    #[test]
    fn echoes_the_last_user_turn_and_counts_every_text() {
        let conversation = Conversation {
            turns: vec![
                Turn::new(Speaker::Other, ["be brief"]),
                user("first"),
                Turn::new(Speaker::Other, ["an answer"]),
                Turn::new(Speaker::User, ["hi", "there"]),
            ],
            ..Conversation::default()
        };
        let (answer, usage) = answer(&conversation, &Directives::default());
        assert_eq!(
            answer,
            Answer::Text("Hello from sluice-mock! You said: hi there".into())
        );
        // 8 + 5 + 9 + 2 + 5 = 29 characters -> 8 tokens.
        assert_eq!(usage.prompt, 8);
        assert_eq!(usage.completion, 7);
    }

    #[test]
    fn tool_results_are_acknowledged_and_never_answered_with_a_call() {
        let conversation = Conversation {
            turns: vec![user("weather?"), Turn::new(Speaker::ToolResult, ["sunny"])],
            tools: vec![Tool {
                name: "get_weather",
                parameters: None,
            }],
            ..Conversation::default()
        };
        assert_eq!(
            answer(&conversation, &Directives::default()).0,
            Answer::Text("Tool result received: sunny".into())
        );
    }

    #[test]
    fn named_choice_wins_and_none_disables_calls() {
        let schema = json!({"type": "OBJECT", "properties": {"city": {"type": "STRING"},
            "n": {"type": "INTEGER"}}, "required": ["city", "n"]});
        let mut conversation = Conversation {
            turns: vec![user("go")],
            tools: vec![
                Tool {
                    name: "first",
                    parameters: None,
                },
                Tool {
                    name: "second",
                    parameters: Some(&schema),
                },
            ],
            tool_choice: ToolChoice::Named("second"),
            ..Conversation::default()
        };
        let (Answer::Call(call), usage) = answer(&conversation, &Directives::default()) else {
            unreachable!("a call was expected")
        };
        assert_eq!(call.name, "second");
        assert_eq!(call.arguments_json(), r#"{"city":"Paris","n":1}"#);
        assert_eq!(usage.completion, TOOL_CALL_TOKENS);

        conversation.tool_choice = ToolChoice::Auto;
        let (Answer::Call(call), _) = answer(&conversation, &Directives::default()) else {
            unreachable!("a call was expected")
        };
        assert_eq!(call.name, "first");

        conversation.tool_choice = ToolChoice::None;
        assert!(matches!(
            answer(&conversation, &Directives::default()).0,
            Answer::Text(_)
        ));
    }

    #[test]
    fn structured_output_follows_the_schema_unless_words_are_asked_for() {
        let schema = json!({"type": "object", "properties": {
            "city": {"type": "string"},
            "when": {"type": "object", "properties": {"day": {"type": "integer"}}},
            "tags": {"type": "array"},
            "optional": {"type": "boolean"}
        }, "required": ["city", "when", "tags"]});
        let conversation = Conversation {
            turns: vec![user("json please")],
            format: OutputFormat::JsonSchema(&schema),
            ..Conversation::default()
        };
        let (Answer::Text(text), _) = answer(&conversation, &Directives::default()) else {
            unreachable!("no tools offered")
        };
        let value: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(
            value,
            json!({"city": "Paris", "when": {"day": 1}, "tags": []})
        );

        let words = Directives {
            words: Some(2),
            ..Directives::default()
        };
        assert_eq!(
            answer(&conversation, &words).0,
            Answer::Text("w1 w2".into())
        );
    }

    #[test]
    fn cached_tokens_raise_the_prompt_estimate() {
        let conversation = Conversation {
            turns: vec![user("x")],
            ..Conversation::default()
        };
        let directives = Directives {
            cached: Some(40),
            ..Directives::default()
        };
        let (_, usage) = answer(&conversation, &directives);
        assert_eq!((usage.prompt, usage.cached), (40, 40));
    }
}
