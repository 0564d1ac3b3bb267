//! Anthropic Messages (`POST /v1/messages`, `POST /v1/messages/count_tokens`): the adapter
//! between Anthropic's wire format and the canonical form.
//!
//! Client side: [`decode_request`] / [`count_tokens_request`] read what an Anthropic client sent,
//! [`encode_response`] and [`StreamEncoder`] answer it. Upstream side: [`encode_request`] builds
//! the body for an Anthropic upstream, [`decode_response`] and [`StreamDecoder`] read its answer.
//!
//! Usage: Anthropic's `input_tokens` excludes the cache; canonical input is
//! `input_tokens + cache_creation_input_tokens + cache_read_input_tokens`, and encoding subtracts
//! the cache counts again. `output_tokens_details.thinking_tokens` is the reasoning count.
//!
//! Tool-call ids: encoders sanitise them to `^[a-zA-Z0-9_-]+$` ([`sanitize_tool_id`]) and, on the
//! client side, carry a Gemini thought signature inside the id ([`embed_thought_signature`]);
//! decoders split it out again ([`extract_thought_signature`]).
//!
//! # Not carried
//! From an Anthropic client (decoding):
//! - `cache_control` on images, `tool_use` blocks and tool definitions, and the top-level
//!   automatic `cache_control`. A `tool_result`'s `cache_control` moves to the last text block
//!   of its content, which marks the same cache prefix.
//! - `document` blocks other than plain-text sources (PDF, URL, file ids) and the `title` and
//!   `context` of plain-text ones (their text becomes a text part), image `file` sources,
//!   `search_result` blocks, citations.
//! - Server tools (web search, code execution, bash, text editor, computer use, MCP), their
//!   `server_tool_use` / `*_tool_result` blocks; `container`, `mcp_servers`,
//!   `context_management`, `service_tier`, `inference_geo`.
//! - `thinking.display` is read into `reasoning.include_thoughts` but never sent upstream.
//!
//! To an Anthropic upstream (encoding):
//! - `response_format` (JSON object or schema) and `seed`: Anthropic has no seed, and its
//!   structured outputs (`output_config.format`) are not sent, so older models and
//!   Anthropic-compatible servers keep working. Requests from Anthropic clients that carry
//!   `output_config.format` are read into `response_format` for other upstreams.
//! - Image `detail`, tool `strict`, Gemini thought signatures (Claude cannot use them).
//! - Thinking without a signature (other providers' reasoning): Anthropic rejects it.
//! - Whitespace-only text blocks; trailing whitespace at the end of a final assistant turn.
//! - Sampling Anthropic rejects: `temperature` is clamped to 0..=1; `top_p` is dropped when
//!   `temperature` is set (newer models refuse both); with thinking on, `temperature`, `top_k`
//!   and a `top_p` below 0.95 are dropped.
//! - Thinking itself when Anthropic would refuse it: with a forced tool choice, when a tool call
//!   in the current tool loop does not start with a thinking block, or when `max_tokens` leaves
//!   no room for the 1024-token minimum budget. A dynamic budget (-1) becomes the medium budget
//!   (8192) with `type: enabled`, which every thinking model accepts (`adaptive` is newer).
//!
//! To an Anthropic client (encoding answers):
//! - Images in answers, Gemini thought signatures of text parts, the matched `stop_sequence`
//!   (canonical keeps only the reason), stop reasons Anthropic does not define (sent as
//!   `end_turn`), the 5-minute/1-hour split of cache writes.

mod request;
mod response;
mod stream;

pub use request::{
    DEFAULT_MAX_TOKENS, MIN_THINKING_BUDGET, count_tokens_request, count_tokens_response,
    decode_request, encode_request,
};
pub use response::{
    decode_response, encode_response, stop_reason_from_anthropic, stop_reason_to_anthropic,
    usage_from_anthropic, usage_to_anthropic,
};
pub use stream::{EncodeOptions, StreamDecoder, StreamEncoder};

#[cfg(doc)]
use crate::canonical::{embed_thought_signature, extract_thought_signature, sanitize_tool_id};
