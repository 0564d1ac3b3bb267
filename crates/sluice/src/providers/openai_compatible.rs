//! OpenAI and every API that copies it: OpenRouter, DeepSeek, Qwen DashScope, vLLM, Ollama…
//!
//! `POST {base-url}/chat/completions` with `Authorization: Bearer <key>`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};

use super::{Credential, ProviderCommon, UpstreamRequest};
use crate::config::{ProviderConfig, Timeouts};

#[derive(Debug)]
pub struct OpenAiCompatible {
    pub common: ProviderCommon,
    chat_url: reqwest::Url,
}

impl OpenAiCompatible {
    pub fn new(config: &ProviderConfig, defaults: &Timeouts) -> Result<Self, String> {
        let base = config.base_url.trim_end_matches('/');
        let chat_url = reqwest::Url::parse(&format!("{base}/chat/completions"))
            .map_err(|e| format!("providers.{}: base-url: {e}", config.name))?;
        Ok(Self {
            common: ProviderCommon::from_config(config, defaults, bearer),
            chat_url,
        })
    }

    pub fn chat_request(
        &self,
        credential: &Credential,
        body: Bytes,
        stream: bool,
    ) -> UpstreamRequest {
        let mut headers = HeaderMap::with_capacity(self.common.headers.len() + 3);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        if let Some(auth) = &credential.auth_header {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        for (name, value) in &self.common.headers {
            headers.insert(name, value.clone());
        }
        UpstreamRequest {
            url: self.chat_url.clone(),
            headers,
            body,
        }
    }
}

fn bearer(key: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {key}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}
