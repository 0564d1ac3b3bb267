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
    /// Input plus output (saturating: the counts come from upstreams, and a hostile or broken
    /// one can report any `u64`).
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Dialect;

    /// Found by fuzzing (`fuzz/` target `response_openai_chat`): an upstream reporting
    /// `prompt_tokens` near `u64::MAX` overflowed the total when the answer was rendered
    /// (a panic with overflow checks, a wrapped `total_tokens` without).
    #[test]
    fn totals_of_hostile_counts_saturate() {
        let huge = TokenUsage {
            input_tokens: u64::MAX,
            output_tokens: 1,
            ..TokenUsage::default()
        };
        assert_eq!(huge.total(), u64::MAX);
        let body = br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":1}}"#;
        let response = Dialect::OpenAiChat.decode_response(body).unwrap();
        for client in [
            Dialect::OpenAiChat,
            Dialect::OpenAiResponses,
            Dialect::Anthropic,
            Dialect::Gemini,
        ] {
            let rendered = client.encode_response(&response).to_string();
            assert!(!rendered.contains("\"total_tokens\":0"), "{rendered}");
        }
    }
}
