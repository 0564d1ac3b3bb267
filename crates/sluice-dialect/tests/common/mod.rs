//! Helpers the adapters' integration tests share: the corpus under `tests/corpus`, SSE
//! transcripts through decoders and encoders, folding canonical streams, answers as canonical
//! event sequences, and proptest strategies for pieces of the canonical form.
//!
//! Snapshot assertions stay in the test files: insta names a snapshot after the module that
//! asserts it.
#![allow(dead_code)] // each test binary uses its own share

use std::ops::Range;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;
use sluice_dialect::canonical::{
    Accumulator, BlockStart, Delta, Effort, ImageSource, Part, Request, Response, ResponseFormat,
    StreamEvent, ToolChoice,
};
use sluice_dialect::registry::StreamEncoder;
use sluice_dialect::{Dialect, SseEvent, SseParser, TokenUsage};

// ---------------------------------------------------------------------------------------------
// The corpus

/// A path below `tests/corpus`.
pub fn corpus_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(rel)
}

/// The bytes of a file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The bytes of a corpus file.
pub fn corpus_bytes(rel: &str) -> Vec<u8> {
    read(&corpus_path(rel))
}

/// The text of a corpus file.
pub fn corpus_text(rel: &str) -> String {
    let path = corpus_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(file stem, path)` of every `*.ext` file in a corpus folder, sorted by name; never empty.
pub fn corpus_files(dir: &str, ext: &str) -> Vec<(String, PathBuf)> {
    let path = corpus_path(dir);
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.{ext} files in {}", path.display());
    files
}

/// `(file stem, contents)` of every `*.ext` file in a corpus folder, sorted by name.
pub fn corpus_texts(dir: &str, ext: &str) -> Vec<(String, String)> {
    corpus_files(dir, ext)
        .into_iter()
        .map(|(stem, path)| {
            let text = std::fs::read_to_string(&path).unwrap();
            (stem, text)
        })
        .collect()
}

/// A request of the shared canonical corpus (`tests/corpus/requests/<name>.json`).
pub fn canonical_request(name: &str) -> Request {
    serde_json::from_slice(&corpus_bytes(&format!("requests/{name}.json"))).unwrap()
}

/// `(name, request)` for every request of the shared canonical corpus, sorted by name.
pub fn canonical_requests() -> Vec<(String, Request)> {
    corpus_files("requests", "json")
        .into_iter()
        .map(|(name, path)| {
            let req = serde_json::from_slice(&read(&path))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, req)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Streams

/// The events of an SSE transcript, the one left unterminated at the end included.
pub fn sse_events(bytes: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::default();
    parser.push(bytes);
    let mut events: Vec<SseEvent> = std::iter::from_fn(|| parser.next_event()).collect();
    events.extend(parser.finish());
    events
}

/// Runs an upstream transcript through the dialect's decoder, `finish` included.
pub fn decode_stream(dialect: Dialect, bytes: &[u8]) -> Vec<StreamEvent> {
    let mut decoder = dialect.stream_decoder();
    let mut out: Vec<StreamEvent> = sse_events(bytes)
        .iter()
        .flat_map(|e| decoder.push(e))
        .collect();
    out.extend(decoder.finish());
    out
}

/// The bytes an encoder writes for these events.
pub fn encode_stream(mut encoder: StreamEncoder, events: &[StreamEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        encoder.push(event, &mut out);
    }
    out
}

/// The complete answer a stream amounts to.
pub fn accumulate(events: &[StreamEvent], created: u64) -> Response {
    let mut acc = Accumulator::default();
    for event in events {
        acc.push(event);
    }
    acc.response(created)
}

/// A usage report, field by field.
pub fn usage(
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    reasoning: u64,
) -> TokenUsage {
    TokenUsage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: reasoning,
    }
}

/// `text` in pieces of `size` characters.
pub fn pieces(text: &str, size: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(size.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// The blocks a source streams for an answer's parts: one block each, at the part's position;
/// text, thinking and arguments cut into deltas by `split`, a signature last.
pub fn block_events(parts: &[Part], split: impl Fn(&str) -> Vec<String>) -> Vec<StreamEvent> {
    let mut events = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let (block, deltas): (BlockStart, Vec<Delta>) = match part {
            Part::Text {
                text,
                thought_signature,
                ..
            } => (
                BlockStart::Text,
                split(text)
                    .into_iter()
                    .map(Delta::Text)
                    .chain(thought_signature.clone().map(Delta::Signature))
                    .collect(),
            ),
            Part::Thinking { text, signature } => (
                BlockStart::Thinking,
                split(text)
                    .into_iter()
                    .map(Delta::Thinking)
                    .chain(signature.clone().map(Delta::Signature))
                    .collect(),
            ),
            Part::ToolCall {
                id,
                name,
                arguments,
                thought_signature,
            } => (
                BlockStart::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    thought_signature: thought_signature.clone(),
                },
                split(arguments)
                    .into_iter()
                    .map(Delta::ToolArguments)
                    .collect(),
            ),
            Part::RedactedThinking { data } => (
                BlockStart::RedactedThinking { data: data.clone() },
                Vec::new(),
            ),
            Part::Image { .. } | Part::ToolResult { .. } => {
                panic!("an answer holds no {part:?}")
            }
        };
        events.push(StreamEvent::BlockStart { index, block });
        events.extend(
            deltas
                .into_iter()
                .map(|delta| StreamEvent::Delta { index, delta }),
        );
        events.push(StreamEvent::BlockStop { index });
    }
    events
}

/// A whole answer as a well-formed stream: `MessageStart` (with `start_usage`), the blocks of
/// [`block_events`], the stop reason and usage in `MessageDelta`, `MessageStop`.
pub fn answer_events(
    resp: &Response,
    start_usage: Option<TokenUsage>,
    split: impl Fn(&str) -> Vec<String>,
) -> Vec<StreamEvent> {
    let mut events = vec![StreamEvent::MessageStart {
        id: resp.id.clone(),
        model: resp.model.clone(),
        usage: start_usage,
    }];
    events.extend(block_events(&resp.parts, split));
    events.push(StreamEvent::MessageDelta {
        stop_reason: resp.stop_reason.clone(),
        usage: Some(resp.usage),
    });
    events.push(StreamEvent::MessageStop);
    events
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Strings of `pattern` padded with `=` to a multiple of four, as standard base64 is.
pub fn padded_base64(pattern: &'static str) -> impl Strategy<Value = String> {
    pattern.prop_map(|mut s| {
        while !s.len().is_multiple_of(4) {
            s.push('=');
        }
        s
    })
}

pub fn effort() -> impl Strategy<Value = Effort> {
    prop_oneof![
        Just(Effort::None),
        Just(Effort::Minimal),
        Just(Effort::Low),
        Just(Effort::Medium),
        Just(Effort::High),
        Just(Effort::Xhigh),
    ]
}

/// Any tool choice, naming a tool from `name`.
pub fn tool_choice(name: impl Strategy<Value = String>) -> impl Strategy<Value = ToolChoice> {
    prop_oneof![
        Just(ToolChoice::Auto),
        Just(ToolChoice::Required),
        Just(ToolChoice::None),
        name.prop_map(ToolChoice::Named),
    ]
}

/// Any response format; a JSON schema is named from `name` and is `schema`.
pub fn response_format(
    name: impl Strategy<Value = String>,
    schema: Value,
) -> impl Strategy<Value = ResponseFormat> {
    prop_oneof![
        Just(ResponseFormat::Text),
        Just(ResponseFormat::JsonObject),
        (name, prop::option::of(any::<bool>())).prop_map(move |(name, strict)| {
            ResponseFormat::JsonSchema {
                name,
                schema: schema.clone(),
                strict,
            }
        }),
    ]
}

/// Tool arguments: the JSON text of an object of short keys with values from `value`.
pub fn json_arguments(
    value: impl Strategy<Value = Value>,
    keys: Range<usize>,
) -> impl Strategy<Value = String> {
    prop::collection::btree_map("[a-z]{1,5}", value, keys)
        .prop_map(|m| Value::Object(m.into_iter().collect()).to_string())
}

/// A PNG at `https://<host>/…` or inline as base64.
pub fn image_source(host: &'static str) -> impl Strategy<Value = ImageSource> {
    prop_oneof![
        "[a-z]{1,8}".prop_map(move |f| ImageSource::Url {
            url: format!("https://{host}/{f}.png")
        }),
        // Real base64: whole four-character groups, as the Gemini decoder checks.
        "([A-Za-z0-9+/]{4}){1,4}".prop_map(|data| ImageSource::Base64 {
            media_type: "image/png".into(),
            data,
        }),
    ]
}
