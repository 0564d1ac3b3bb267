//! OpenAI and every API that copies it: OpenRouter, DeepSeek, Qwen DashScope, vLLM, Ollama…
//!
//! `POST {base-url}/chat/completions` with `Authorization: Bearer <key>`.

use bytes::Bytes;
use http::header;

use super::BuildContext;
use super::{Credential, Operation, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::ProviderConfig;

#[derive(Debug)]
pub struct OpenAiCompatible {
    pub common: ProviderCommon,
    chat_url: reqwest::Url,
}

impl OpenAiCompatible {
    pub fn new(config: &ProviderConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let common = ProviderCommon::from_config(config, ctx, header::AUTHORIZATION, |k| {
            format!("Bearer {k}")
        })?;
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
        let url = match (call.operation, &credential.base_url) {
            (Operation::Embed { .. }, _) => {
                self.common.credential_url(credential, "/embeddings")?
            }
            (Operation::Forward { path }, _) => self.common.credential_url(credential, path)?,
            (_, None) => self.chat_url.clone(),
            (_, Some(_)) => self
                .common
                .credential_url(credential, "/chat/completions")?,
        };
        Ok(UpstreamRequest {
            url,
            headers,
            body,
            first_byte: None,
        })
    }
}
