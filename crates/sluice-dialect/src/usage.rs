//! Token usage in the gateway's own terms, whatever dialect reported it.

use serde::{Deserialize, Serialize};

/// Tokens one request consumed.
///
/// `input_tokens` counts every prompt token, cached or not (OpenAI's `prompt_tokens`);
/// `cache_read_tokens` and `cache_write_tokens` say how many of them hit or filled a prompt
/// cache. `output_tokens` includes `reasoning_tokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

impl TokenUsage {
    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}
