//! Token counts the gateway makes itself.
//!
//! - When an upstream reports no usage (some OpenAI-compatible servers ignore
//!   `stream_options.include_usage`), the record's tokens are counted locally and the record is
//!   marked `estimated`: with OpenAI's tokenizer (`tiktoken-rs`, `o200k_base` or `cl100k_base`
//!   as the model calls for) for OpenAI-family models, and as one token per four characters
//!   (rounded up) for every other model, whose tokenizers are not public.
//! - Before a request under a monthly quota runs, its cost is reserved from an estimate: the
//!   request body's bytes / 4 as input tokens plus the output cap the upstream will enforce —
//!   read from the body the first candidate upstream will receive, after translation, so a
//!   field the upstream ignores cannot shrink it — or [`DEFAULT_OUTPUT_RESERVATION`] tokens.

use serde::Deserialize;
use sluice_dialect::canonical::{Part, Request, Response};
use sluice_dialect::{Dialect, TokenUsage};

/// Output tokens reserved for a request that sets no output cap.
pub const DEFAULT_OUTPUT_RESERVATION: u64 = 1024;

/// Most text kept for counting a reply that reported no usage.
pub const MAX_REPLY_TEXT: usize = 1 << 20;

/// Whether a model uses one of OpenAI's public tokenizers.
fn tokenizer_for(model: &str) -> Option<&'static tiktoken_rs::CoreBPE> {
    use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};
    let model = model.rsplit_once(',').map_or(model, |(_, m)| m.trim());
    let tokenizer = get_tokenizer(model).or_else(|| {
        let openai = ["gpt-", "o1", "o3", "o4", "chatgpt-", "codex-"]
            .iter()
            .any(|p| model.starts_with(p));
        openai.then_some(Tokenizer::O200kBase)
    })?;
    Some(match tokenizer {
        Tokenizer::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        Tokenizer::P50kBase => tiktoken_rs::p50k_base_singleton(),
        Tokenizer::P50kEdit => tiktoken_rs::p50k_edit_singleton(),
        Tokenizer::R50kBase | Tokenizer::Gpt2 => tiktoken_rs::r50k_base_singleton(),
        Tokenizer::O200kHarmony => tiktoken_rs::o200k_harmony_singleton(),
        _ => tiktoken_rs::o200k_base_singleton(),
    })
}

/// Tokens in `text` for `model`: exact for OpenAI-family models, ⌈chars / 4⌉ otherwise.
pub fn count_tokens(model: &str, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match tokenizer_for(model) {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        None => text.chars().count().div_ceil(4) as u64,
    }
}

fn push_part_text(part: &Part, out: &mut String) {
    match part {
        Part::Text { text, .. } | Part::Thinking { text, .. } => {
            out.push_str(text);
            out.push('\n');
        }
        Part::ToolCall {
            name, arguments, ..
        } => {
            out.push_str(name);
            out.push(' ');
            out.push_str(arguments);
            out.push('\n');
        }
        Part::ToolResult { content, .. } => {
            for p in content {
                push_part_text(p, out);
            }
        }
        _ => {}
    }
}

/// Every text of a request (instructions, turns, tool calls and results, tool definitions).
pub fn request_text(request: &Request) -> String {
    let mut out = String::new();
    for block in &request.system {
        out.push_str(&block.text);
        out.push('\n');
    }
    for message in &request.messages {
        for part in &message.parts {
            push_part_text(part, &mut out);
        }
    }
    for tool in &request.tools {
        if let Ok(json) = serde_json::to_string(tool) {
            out.push_str(&json);
        }
    }
    out
}

/// Every text of a complete answer.
pub fn response_text(response: &Response) -> String {
    let mut out = String::new();
    for part in &response.parts {
        push_part_text(part, &mut out);
    }
    out
}

/// Usage counted locally for a request (`body` in the client's `dialect`) and its reply text.
pub fn local_usage(model: &str, dialect: Dialect, body: &[u8], reply: &str) -> TokenUsage {
    let input = match dialect.decode_request(body) {
        Ok(request) => count_tokens(model, &request_text(&request)),
        Err(_) => (body.len() as u64).div_ceil(4),
    };
    TokenUsage {
        input_tokens: input,
        output_tokens: count_tokens(model, reply),
        ..Default::default()
    }
}

/// (input, output) tokens to reserve quota for before a request runs: the client's body bytes
/// / 4, and `output_cap`, the output limit the upstream will enforce (read from the body it
/// will receive, after translation), or [`DEFAULT_OUTPUT_RESERVATION`] without one.
pub fn reservation_tokens(body: &[u8], output_cap: Option<u64>) -> (u64, u64) {
    (
        (body.len() as u64).div_ceil(4),
        output_cap.unwrap_or(DEFAULT_OUTPUT_RESERVATION),
    )
}

/// The text of an OpenAI Chat stream chunk's deltas (`choices[].delta.content`, reasoning and
/// tool-call arguments), for counting a stream that reported no usage.
pub fn chat_chunk_text(data: &[u8], out: &mut String) {
    #[derive(Deserialize)]
    struct Function<'a> {
        #[serde(borrow)]
        arguments: Option<std::borrow::Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct ToolCall<'a> {
        #[serde(borrow)]
        function: Option<Function<'a>>,
    }
    #[derive(Deserialize)]
    struct Delta<'a> {
        #[serde(borrow)]
        content: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        reasoning_content: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        tool_calls: Vec<ToolCall<'a>>,
    }
    #[derive(Deserialize)]
    struct Choice<'a> {
        #[serde(borrow)]
        delta: Option<Delta<'a>>,
    }
    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow, default)]
        choices: Vec<Choice<'a>>,
    }
    let Ok(chunk) = serde_json::from_slice::<Chunk<'_>>(data) else {
        return;
    };
    for delta in chunk.choices.into_iter().filter_map(|c| c.delta) {
        let texts = delta
            .content
            .into_iter()
            .chain(delta.reasoning_content)
            .chain(
                delta
                    .tool_calls
                    .into_iter()
                    .filter_map(|t| t.function.and_then(|f| f.arguments)),
            );
        for text in texts {
            if out.len() + text.len() <= MAX_REPLY_TEXT {
                out.push_str(&text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn openai_models_use_tiktoken_others_a_quarter_of_the_characters() {
        // "Hello world" is two tokens in o200k_base.
        assert_eq!(count_tokens("gpt-4o-mini", "Hello world"), 2);
        assert_eq!(count_tokens("claude-sonnet-4", "Hello world"), 3);
        assert_eq!(count_tokens("anything", ""), 0);
    }

    #[test]
    fn reservation_reads_the_output_cap_the_upstream_enforces() {
        let body = br#"{"model":"m","max_tokens":50,"messages":[]}"#;
        let cap = Dialect::OpenAiChat.output_cap(body);
        assert_eq!(reservation_tokens(body, cap).1, 50);
        let both = br#"{"model":"m","max_completion_tokens":1,"max_tokens":900,"messages":[]}"#;
        assert_eq!(Dialect::OpenAiChat.output_cap(both), Some(900));
        let gemini = br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"max_tokens":1,"generationConfig":{"maxOutputTokens":7}}"#;
        assert_eq!(Dialect::Gemini.output_cap(gemini), Some(7));
        assert_eq!(
            reservation_tokens(b"{}", None).1,
            DEFAULT_OUTPUT_RESERVATION
        );
    }

    #[test]
    fn chat_chunks_yield_their_text() {
        let mut out = String::new();
        chat_chunk_text(
            br#"{"choices":[{"index":0,"delta":{"content":"Hel\"lo"}}]}"#,
            &mut out,
        );
        chat_chunk_text(
            br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            &mut out,
        );
        assert_eq!(out, "Hel\"lo{}");
    }
}
