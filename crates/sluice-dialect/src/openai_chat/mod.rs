//! OpenAI Chat Completions (`POST /v1/chat/completions`).
//!
//! Two paths. **Passthrough** ([`ChatRequest`], [`inspect_chunk`], [`response_usage`],
//! [`stream_error_event`]): client and upstream both speak Chat Completions, and the gateway
//! reads and edits the bytes it forwards. **Translation** (the adapter contract of
//! `docs/adapters.md`: [`decode_request`], [`encode_request`], [`decode_response`],
//! [`encode_response`], [`StreamDecoder`], [`StreamEncoder`]): the other side speaks another
//! dialect, and everything goes through the canonical form.
//!
//! Mapping choices worth knowing:
//! - `system` and `developer` messages become canonical system blocks, in order, wherever they
//!   appear; upstream, all system blocks go out as one leading `system` message (joined with a
//!   blank line), because many open models' chat templates accept only that.
//! - `tool` messages become tool results in one user turn (consecutive ones merge, and a user
//!   message right after them joins that turn); the function name is looked up from the
//!   assistant's call. Upstream, a user turn's tool results go out first, as `tool` messages.
//! - `reasoning_content` (DeepSeek, vLLM; `reasoning` is read too) ↔ thinking. It goes back
//!   upstream on assistant messages: DeepSeek requires it on tool-call turns.
//! - Upstream requests say `max_tokens` (which vLLM, Ollama and DeepSeek understand; OpenAI
//!   still accepts it) and always ask for the usage chunk when streaming.
//! - Gemini thought signatures ride inside the tool-call ids given to clients
//!   (`embed_thought_signature`) and are taken out of the ids clients send back.
//! - A refusal (`refusal`) from an upstream arrives as text, and its `stop` as
//!   `StopReason::ContentFilter`.
//! - A finished answer that called tools reports `finish_reason: "tool_calls"` to the client
//!   even when the source said only "end of turn" (Gemini does).
//! - A stream that ends without a `finish_reason` becomes a canonical `Error`.
//!
//! # Not carried
//! From clients (decode_request):
//! - `n` (one choice only), `logprobs`, `top_logprobs`, `logit_bias`, `presence_penalty`,
//!   `frequency_penalty`, `metadata`, `store`, `service_tier`, `modalities`, `audio`,
//!   `prediction`, `web_search_options`, `verbosity`, `prompt_cache_key`.
//! - `stream_options` (the gateway reads `include_usage` itself, see [`ChatRequest`]).
//! - Legacy `functions`/`function_call` and `function`-role messages; non-function tools
//!   (`custom`, hosted tools) and `tool_choice` `allowed_tools`/`custom`.
//! - `input_audio` and `file` content parts; message `name`s; assistant `audio`.
//! - Where in the conversation a mid-conversation system message stood (it joins the system
//!   blocks).
//!
//! To upstreams (encode_request):
//! - `top_k` (OpenAI rejects it), `reasoning.include_thoughts`, an explicit thinking budget
//!   (sent as the matching `reasoning_effort`).
//! - Thinking signatures and redacted thinking; `cache_control` on system blocks and text.
//! - Thought signatures of tool calls (the upstream made the call; OpenAI also caps id length).
//! - A tool result's `is_error` flag and its images (tool messages carry text only).
//! - System block boundaries (one `system` message).
//!
//! From upstreams (decode_response, StreamDecoder):
//! - Choices other than index 0; `logprobs`; `annotations`; `audio`; `system_fingerprint`;
//!   `service_tier`; legacy `function_call` answers.
//!
//! To clients (encode_response, StreamEncoder):
//! - `cache_write_tokens` (OpenAI's usage has no field for it; they stay counted in
//!   `prompt_tokens`).
//! - Thinking signatures, redacted thinking, images and text thought signatures in answers.
//! - `StopReason::StopSequence` and `Other` (both become `stop`).
//! - Several text parts become one `content` string; several thinking parts one
//!   `reasoning_content`.

mod passthrough;
mod request;
mod response;
mod stream;
mod wire;

pub use passthrough::{
    ChatRequest, ChunkAction, ChunkInspection, CompletionDetails, PromptDetails, Usage,
    inspect_chunk, response_usage, stream_error_event,
};
pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{EncodeOptions, StreamDecoder, StreamEncoder};
