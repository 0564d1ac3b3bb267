//! OpenAI and every API that copies it: OpenRouter, DeepSeek, Qwen DashScope, vLLM, Ollama…
//!
//! `POST {base-url}/chat/completions` with `Authorization: Bearer <key>`.

use bytes::Bytes;
use http::header;

use super::{Credential, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::{ProviderConfig, Timeouts};

#[derive(Debug)]
pub struct OpenAiCompatible {
    pub common: ProviderCommon,
    chat_url: reqwest::Url,
}

impl OpenAiCompatible {
    pub fn new(config: &ProviderConfig, defaults: &Timeouts) -> Result<Self, String> {
        let common = ProviderCommon::from_config(config, defaults, header::AUTHORIZATION, |k| {
            format!("Bearer {k}")
        });
        let chat_url = common.url("/chat/completions")?;
        Ok(Self { common, chat_url })
    }

    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        let headers = self.common.base_headers(credential, call.stream);
        Ok(UpstreamRequest {
            url: self.chat_url.clone(),
            headers,
            body,
        })
    }
}
