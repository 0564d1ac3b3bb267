//! Wire types of the LLM API dialects Sluice speaks, and the pure functions that read and
//! rewrite them.
//!
//! This crate does no I/O and knows nothing of HTTP status codes: it turns bytes into values
//! and values into bytes. The gateway (`sluice`) decides what travels where.
#![forbid(unsafe_code)]

pub mod anthropic;
pub mod canonical;
pub mod capability;
pub mod embedding;
pub mod error;
pub mod gemini;
pub mod json_edit;
pub mod openai_chat;
mod openai_common;
pub mod openai_completions;
pub mod openai_responses;
pub mod registry;
pub mod sse;
pub mod usage;

pub use capability::{Capabilities, Capability};
pub use error::{ErrorBody, ErrorKind};
pub use json_edit::{Edit, ObjectSpans};
pub use sse::{SseEvent, SseParser};
pub use usage::TokenUsage;

/// The API dialects Sluice speaks, to clients and to upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// OpenAI Chat Completions.
    OpenAiChat,
    /// OpenAI Responses.
    OpenAiResponses,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini `generateContent`.
    Gemini,
}
