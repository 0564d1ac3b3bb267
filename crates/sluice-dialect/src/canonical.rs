//! The canonical form: one model of a chat exchange that every dialect converts to and from.
//!
//! Each dialect has one adapter (`openai_chat`, `openai_responses`, `anthropic`, `gemini`) with
//! the same shape: decode/encode requests, decode/encode responses, a stream decoder (dialect
//! events → [`StreamEvent`]s) and a stream encoder ([`StreamEvent`]s → dialect bytes), and error
//! rendering. N dialects need N adapters, not N × N translators.
//!
//! The canonical form is a superset: it keeps everything at least one dialect can express that
//! matters for another (thinking signatures, cache control, tool-call ids). What a target cannot
//! express is dropped by that target's encoder, deliberately, and listed in ARCHITECTURE.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::usage::TokenUsage;

/// A chat request in canonical form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Request {
    pub model: String,
    /// System and developer instructions, in order.
    pub system: Vec<SystemBlock>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` forbids several tool calls in one turn.
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub response_format: Option<ResponseFormat>,
    pub reasoning: Option<Reasoning>,
    pub stream: bool,
    /// An end-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    pub seed: Option<i64>,
}

/// One system/developer instruction block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemBlock {
    pub text: String,
    /// Anthropic prompt-caching marker, kept verbatim (`{"type":"ephemeral","ttl":"1h"}`).
    pub cache_control: Option<Value>,
}

impl SystemBlock {
    /// A block without a cache marker.
    pub(crate) fn text(text: impl Into<String>) -> SystemBlock {
        SystemBlock {
            text: text.into(),
            cache_control: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One turn. Tool results travel in user turns (as Anthropic and Gemini do); adapters for
/// dialects with a separate tool role split them out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// A piece of content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
        /// Gemini thought signature attached to a text part.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thought_signature: Option<String>,
    },
    Image {
        source: ImageSource,
        /// OpenAI's `detail` (`auto|low|high`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    ToolCall {
        id: String,
        name: String,
        /// The arguments as JSON text (OpenAI's form); adapters parse it where a dialect wants
        /// an object. Invalid JSON is sent as `{}` to such dialects.
        arguments: String,
        /// Gemini thought signature of this call; must go back to Gemini with the history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thought_signature: Option<String>,
    },
    ToolResult {
        call_id: String,
        /// The function's name, when the dialect carries it (Gemini requires it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Text and images returned by the tool.
        content: Vec<Part>,
        #[serde(default)]
        is_error: bool,
    },
    Thinking {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Anthropic's encrypted thinking; only Anthropic can read it back.
    RedactedThinking { data: String },
}

impl Part {
    pub fn text(text: impl Into<String>) -> Part {
        Part::Text {
            text: text.into(),
            cache_control: None,
            thought_signature: None,
        }
    }
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    Url { url: String },
    Base64 { media_type: String, data: String },
}

impl ImageSource {
    /// Parses a `data:<media>;base64,<data>` URL, else treats the string as a plain URL.
    pub fn from_url(url: &str) -> ImageSource {
        if let Some(rest) = url.strip_prefix("data:")
            && let Some((meta, data)) = rest.split_once(',')
            && let Some(media_type) = meta.strip_suffix(";base64")
        {
            return ImageSource::Base64 {
                media_type: media_type.to_string(),
                data: data.to_string(),
            };
        }
        ImageSource::Url {
            url: url.to_string(),
        }
    }

    /// As a URL, with base64 data as a `data:` URL.
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Url { url } => url.clone(),
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }
}

/// Base64 data in the standard alphabet with padding, which OpenAI's and Anthropic's decoders
/// require. Google's SDKs encode bytes as URL-safe base64 (`-`, `_`, often unpadded) and Gemini
/// accepts both, so data from a Gemini client is re-encoded when it is not already standard.
/// `None` when the data is not base64 at all.
pub fn standard_base64(data: &str) -> Option<std::borrow::Cow<'_, str>> {
    use base64::Engine as _;
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    let url_safe = data.bytes().any(|b| b == b'-' || b == b'_');
    let whitespace = data.bytes().any(|b| b.is_ascii_whitespace());
    if !url_safe && !whitespace && data.len().is_multiple_of(4) {
        return Some(std::borrow::Cow::Borrowed(data));
    }
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = if url_safe {
        URL_SAFE.decode(&compact)
    } else {
        STANDARD.decode(&compact)
    }
    .ok()?;
    Some(std::borrow::Cow::Owned(
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    /// The model must call some tool.
    Required,
    None,
    /// The model must call this tool.
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        strict: Option<bool>,
    },
}

/// Reasoning / extended thinking. Dialects speak either an effort level or a token budget;
/// [`effort_to_budget`] and [`budget_to_effort`] convert between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reasoning {
    pub effort: Option<Effort>,
    /// Token budget: 0 = off, -1 = dynamic (Gemini).
    pub budget_tokens: Option<i64>,
    /// Return thought summaries/content to the client.
    pub include_thoughts: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    None,
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
}

impl Effort {
    pub fn as_str(self) -> &'static str {
        match self {
            Effort::None => "none",
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Xhigh => "xhigh",
        }
    }

    pub fn parse(s: &str) -> Option<Effort> {
        Some(match s {
            "none" => Effort::None,
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" => Effort::High,
            "xhigh" => Effort::Xhigh,
            _ => return None,
        })
    }
}

/// minimal 512, low 1024, medium 8192, high 24576, xhigh 32768; none 0.
pub fn effort_to_budget(effort: Effort) -> i64 {
    match effort {
        Effort::None => 0,
        Effort::Minimal => 512,
        Effort::Low => 1024,
        Effort::Medium => 8192,
        Effort::High => 24576,
        Effort::Xhigh => 32768,
    }
}

/// The smallest effort whose budget covers `budget`; 0 → none, -1 (dynamic) → medium.
pub fn budget_to_effort(budget: i64) -> Effort {
    match budget {
        i64::MIN..=-1 => Effort::Medium,
        0 => Effort::None,
        1..=512 => Effort::Minimal,
        513..=1024 => Effort::Low,
        1025..=8192 => Effort::Medium,
        8193..=24576 => Effort::High,
        _ => Effort::Xhigh,
    }
}

impl Reasoning {
    /// The budget, from the explicit budget or the effort.
    pub fn budget(&self) -> Option<i64> {
        self.budget_tokens
            .or_else(|| self.effort.map(effort_to_budget))
    }

    /// The effort, from the explicit effort or the budget.
    pub fn effort(&self) -> Option<Effort> {
        self.effort
            .or_else(|| self.budget_tokens.map(budget_to_effort))
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Natural end (`stop`, `end_turn`, `STOP`).
    EndTurn,
    /// A stop sequence matched.
    StopSequence,
    /// Output token limit (`length`, `max_tokens`, `MAX_TOKENS`).
    MaxTokens,
    /// The model called tools.
    ToolUse,
    /// Refused or filtered (`content_filter`, `refusal`, `SAFETY`…).
    ContentFilter,
    /// Anthropic `pause_turn` and other reasons without an equivalent, kept by name.
    Other(String),
}

/// A complete (non-stream) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: String,
    pub model: String,
    pub parts: Vec<Part>,
    pub stop_reason: Option<StopReason>,
    pub usage: TokenUsage,
    /// Unix seconds.
    pub created: u64,
}

/// One step of a streamed answer. Content arrives in blocks (as Anthropic streams it): a block
/// starts, receives deltas, stops. Decoders of dialects without explicit blocks synthesise the
/// starts and stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        id: String,
        model: String,
        usage: Option<TokenUsage>,
    },
    BlockStart {
        index: usize,
        block: BlockStart,
    },
    Delta {
        index: usize,
        delta: Delta,
    },
    BlockStop {
        index: usize,
    },
    /// The answer is over: why, and the final usage when known.
    MessageDelta {
        stop_reason: Option<StopReason>,
        usage: Option<TokenUsage>,
    },
    /// Usage reported on its own (OpenAI's trailing usage chunk).
    Usage {
        usage: TokenUsage,
    },
    MessageStop,
    Ping,
    Error {
        error: crate::error::ErrorBody,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockStart {
    Text,
    Thinking,
    RedactedThinking {
        data: String,
    },
    ToolCall {
        id: String,
        name: String,
        thought_signature: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Delta {
    Text(String),
    Thinking(String),
    /// A thinking block's signature (or a Gemini thought signature for the block).
    Signature(String),
    /// A fragment of a tool call's JSON arguments.
    ToolArguments(String),
}

/// Folds stream events into a complete [`Response`] (Responses' `response.completed` needs the
/// full output; tests compare streamed and non-streamed answers with it).
#[derive(Debug, Default, Clone)]
pub struct Accumulator {
    pub id: String,
    pub model: String,
    blocks: Vec<(usize, Part)>,
    pub stop_reason: Option<StopReason>,
    pub usage: TokenUsage,
}

impl Accumulator {
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::MessageStart { id, model, usage } => {
                self.id = id.clone();
                self.model = model.clone();
                if let Some(u) = usage {
                    merge_usage(&mut self.usage, u);
                }
            }
            StreamEvent::BlockStart { index, block } => {
                let part = match block {
                    BlockStart::Text => Part::text(""),
                    BlockStart::Thinking => Part::Thinking {
                        text: String::new(),
                        signature: None,
                    },
                    BlockStart::RedactedThinking { data } => {
                        Part::RedactedThinking { data: data.clone() }
                    }
                    BlockStart::ToolCall {
                        id,
                        name,
                        thought_signature,
                    } => Part::ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                        thought_signature: thought_signature.clone(),
                    },
                };
                self.blocks.push((*index, part));
            }
            StreamEvent::Delta { index, delta } => {
                if !self.blocks.iter().any(|(i, _)| i == index) {
                    // Sources without explicit block starts: the first delta opens the block.
                    let opened = match delta {
                        Delta::Text(_) => Part::text(""),
                        Delta::Thinking(_) | Delta::Signature(_) => Part::Thinking {
                            text: String::new(),
                            signature: None,
                        },
                        Delta::ToolArguments(_) => return, // a call without a start has no name
                    };
                    self.blocks.push((*index, opened));
                }
                let Some((_, part)) = self.blocks.iter_mut().rev().find(|(i, _)| i == index) else {
                    return;
                };
                match (part, delta) {
                    (Part::Text { text, .. }, Delta::Text(t)) => text.push_str(t),
                    (
                        Part::Text {
                            thought_signature, ..
                        },
                        Delta::Signature(s),
                    ) => *thought_signature = Some(s.clone()),
                    (Part::Thinking { text, .. }, Delta::Thinking(t)) => text.push_str(t),
                    (Part::Thinking { signature, .. }, Delta::Signature(s)) => {
                        signature.get_or_insert_with(String::new).push_str(s)
                    }
                    (Part::ToolCall { arguments, .. }, Delta::ToolArguments(a)) => {
                        arguments.push_str(a)
                    }
                    (
                        Part::ToolCall {
                            thought_signature, ..
                        },
                        Delta::Signature(s),
                    ) => *thought_signature = Some(s.clone()),
                    _ => {}
                }
            }
            StreamEvent::MessageDelta { stop_reason, usage } => {
                if stop_reason.is_some() {
                    self.stop_reason = stop_reason.clone();
                }
                if let Some(u) = usage {
                    merge_usage(&mut self.usage, u);
                }
            }
            StreamEvent::Usage { usage } => merge_usage(&mut self.usage, usage),
            StreamEvent::BlockStop { .. }
            | StreamEvent::MessageStop
            | StreamEvent::Ping
            | StreamEvent::Error { .. } => {}
        }
    }

    /// The answer so far.
    pub fn response(&self, created: u64) -> Response {
        Response {
            id: self.id.clone(),
            model: self.model.clone(),
            parts: self.blocks.iter().map(|(_, p)| p.clone()).collect(),
            stop_reason: self.stop_reason.clone(),
            usage: self.usage,
            created,
        }
    }
}

/// Later reports win field by field where they are non-zero (streams report input usage at the
/// start and output usage at the end).
pub fn merge_usage(into: &mut TokenUsage, from: &TokenUsage) {
    let pick = |a: &mut u64, b: u64| {
        if b > 0 {
            *a = b;
        }
    };
    pick(&mut into.input_tokens, from.input_tokens);
    pick(&mut into.output_tokens, from.output_tokens);
    pick(&mut into.cache_read_tokens, from.cache_read_tokens);
    pick(&mut into.cache_write_tokens, from.cache_write_tokens);
    pick(&mut into.reasoning_tokens, from.reasoning_tokens);
}

/// Tool-call ids: Anthropic accepts only `^[a-zA-Z0-9_-]+$`. Any other character becomes `_`;
/// the same id always maps to the same result, so a call and its result stay paired.
pub fn sanitize_tool_id(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "call_0".to_string()
    } else {
        clean
    }
}

/// Separator between a tool-call id and the Gemini thought signature carried inside it.
const SIGNATURE_MARK: &str = "__ts__";

/// Gemini thought signatures must come back with the function-call history, but OpenAI and
/// Anthropic clients only send back what they were given. Sluice carries the signature inside
/// the tool-call id they echo: `<id>__ts__<signature as base64url>` (ids stay within
/// `[a-zA-Z0-9_-]`).
pub fn embed_thought_signature(id: &str, signature: &str) -> String {
    let url_safe: String = signature
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    format!("{id}{SIGNATURE_MARK}{url_safe}")
}

/// Splits an id made by [`embed_thought_signature`] back into the id and the signature.
pub fn extract_thought_signature(id: &str) -> (String, Option<String>) {
    let Some((base, sig)) = id.split_once(SIGNATURE_MARK) else {
        return (id.to_string(), None);
    };
    let mut standard: String = sig
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !standard.len().is_multiple_of(4) {
        standard.push('=');
    }
    (base.to_string(), Some(standard))
}

/// A tool result's content for dialects whose tool results carry only text: its text parts,
/// one per line (images and anything else are left out).
pub(crate) fn tool_result_text(content: &[Part]) -> String {
    content
        .iter()
        .filter_map(|p| match p {
            Part::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses tool arguments for dialects that want an object; invalid or non-object JSON becomes `{}`.
pub fn arguments_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Default::default()),
    }
}

/// A deterministic id for dialects that have none (Gemini function calls): `call_` + a short
/// hash of the response id and position.
pub fn mint_tool_id(response_id: &str, position: usize) -> String {
    // FNV-1a: stable across runs and platforms, no dependency.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in response_id.bytes().chain(position.to_le_bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("call_{hash:016x}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn effort_budget_table() {
        let table = [
            (Effort::Minimal, 512),
            (Effort::Low, 1024),
            (Effort::Medium, 8192),
            (Effort::High, 24576),
            (Effort::Xhigh, 32768),
        ];
        for (effort, budget) in table {
            assert_eq!(effort_to_budget(effort), budget);
            assert_eq!(budget_to_effort(budget), effort);
        }
        assert_eq!(budget_to_effort(0), Effort::None);
        assert_eq!(budget_to_effort(-1), Effort::Medium);
        assert_eq!(budget_to_effort(2000), Effort::Medium);
        assert_eq!(budget_to_effort(100_000), Effort::Xhigh);
    }

    #[test]
    fn data_urls() {
        let src = ImageSource::from_url("data:image/png;base64,iVBORw0KGgo=");
        assert_eq!(
            src,
            ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            }
        );
        assert_eq!(src.to_url(), "data:image/png;base64,iVBORw0KGgo=");
        assert_eq!(
            ImageSource::from_url("https://x/y.png"),
            ImageSource::Url {
                url: "https://x/y.png".into()
            }
        );
    }

    #[test]
    fn url_safe_base64_becomes_standard() {
        // 0xfb 0xff 0xbf encodes as `+/+/` in the standard alphabet and `-_-_` URL-safe.
        assert_eq!(standard_base64("-_-_").unwrap(), "+/+/");
        assert_eq!(standard_base64("-_8").unwrap(), "+/8=");
        assert_eq!(standard_base64("iVBORw0KGgo").unwrap(), "iVBORw0KGgo=");
        assert_eq!(standard_base64("iVBO\nRw0KGgo=").unwrap(), "iVBORw0KGgo=");
        assert!(matches!(
            standard_base64("iVBORw0KGgo=").unwrap(),
            std::borrow::Cow::Borrowed("iVBORw0KGgo=")
        ));
        assert_eq!(standard_base64("not base64!"), None);
        assert_eq!(standard_base64("a-b+"), None);
    }

    #[test]
    fn tool_ids() {
        assert_eq!(sanitize_tool_id("call.abc:1"), "call_abc_1");
        assert_eq!(sanitize_tool_id("toolu_01-AB"), "toolu_01-AB");
        assert_eq!(mint_tool_id("resp", 0), mint_tool_id("resp", 0));
        assert_ne!(mint_tool_id("resp", 0), mint_tool_id("resp", 1));
        assert!(mint_tool_id("r", 3).starts_with("call_"));
    }

    proptest! {
        #[test]
        fn thought_signatures_survive_the_id_round_trip(
            id in "[a-zA-Z0-9_-]{1,20}",
            sig in "[A-Za-z0-9+/]{0,60}",
        ) {
            // A real base64 string: pad to a multiple of four.
            let mut sig = sig;
            while !sig.len().is_multiple_of(4) { sig.push('='); }
            prop_assume!(!id.contains(SIGNATURE_MARK));
            let carried = embed_thought_signature(&id, &sig);
            prop_assert_eq!(sanitize_tool_id(&carried), carried.clone());
            let (back, got) = extract_thought_signature(&carried);
            prop_assert_eq!(back, id);
            prop_assert_eq!(got, Some(sig));
        }

        #[test]
        fn sanitized_ids_are_anthropic_safe(id in ".{0,40}") {
            let clean = sanitize_tool_id(&id);
            prop_assert!(!clean.is_empty());
            prop_assert!(clean.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        }
    }

    #[test]
    fn accumulator_builds_the_full_answer() {
        let mut acc = Accumulator::default();
        let events = [
            StreamEvent::MessageStart {
                id: "m1".into(),
                model: "x".into(),
                usage: Some(TokenUsage {
                    input_tokens: 5,
                    ..Default::default()
                }),
            },
            StreamEvent::BlockStart {
                index: 0,
                block: BlockStart::Thinking,
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Thinking("hmm".into()),
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Signature("sig".into()),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                block: BlockStart::Text,
            },
            StreamEvent::Delta {
                index: 1,
                delta: Delta::Text("Hel".into()),
            },
            StreamEvent::Delta {
                index: 1,
                delta: Delta::Text("lo".into()),
            },
            StreamEvent::BlockStart {
                index: 2,
                block: BlockStart::ToolCall {
                    id: "c1".into(),
                    name: "f".into(),
                    thought_signature: None,
                },
            },
            StreamEvent::Delta {
                index: 2,
                delta: Delta::ToolArguments("{\"a\":".into()),
            },
            StreamEvent::Delta {
                index: 2,
                delta: Delta::ToolArguments("1}".into()),
            },
            StreamEvent::MessageDelta {
                stop_reason: Some(StopReason::ToolUse),
                usage: Some(TokenUsage {
                    output_tokens: 9,
                    ..Default::default()
                }),
            },
            StreamEvent::MessageStop,
        ];
        for e in &events {
            acc.push(e);
        }
        let r = acc.response(7);
        let mut implicit = Accumulator::default();
        implicit.push(&StreamEvent::Delta {
            index: 4,
            delta: Delta::Text("no start".into()),
        });
        assert_eq!(implicit.response(0).parts, vec![Part::text("no start")]);
        assert_eq!(
            r.parts,
            vec![
                Part::Thinking {
                    text: "hmm".into(),
                    signature: Some("sig".into())
                },
                Part::text("Hello"),
                Part::ToolCall {
                    id: "c1".into(),
                    name: "f".into(),
                    arguments: "{\"a\":1}".into(),
                    thought_signature: None
                },
            ]
        );
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (5, 9));
    }
}
