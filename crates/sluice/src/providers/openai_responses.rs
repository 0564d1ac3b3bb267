//! OpenAI's Responses API, for providers that offer only it (Codex with API keys, some
//! OpenAI-compatible relays), and the ChatGPT Codex backend for Codex OAuth accounts
//! ([`super::codex_backend`]).
//!
//! `POST {base-url}/responses` with `Authorization: Bearer <key>`.

use bytes::Bytes;
use http::header;

use super::BuildContext;
use super::{Credential, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::{ProviderConfig, ProviderKind};

#[derive(Debug)]
pub struct OpenAiResponses {
    pub common: ProviderCommon,
    responses_url: reqwest::Url,
    /// A Codex OAuth account (a `codex` token file): the ChatGPT Codex backend's rules apply.
    pub codex_backend: bool,
}

impl OpenAiResponses {
    pub fn new(config: &ProviderConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let common = ProviderCommon::from_config(config, ctx, header::AUTHORIZATION, |k| {
            format!("Bearer {k}")
        })?;
        let responses_url = common.url("/responses")?;
        Ok(Self {
            common,
            responses_url,
            codex_backend: config.kind == ProviderKind::Codex && config.auth_file.is_some(),
        })
    }

    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        let mut headers = self.common.base_headers(credential, call.stream);
        let url = match credential.base_url {
            None => self.responses_url.clone(),
            Some(_) => self.common.credential_url(credential, "/responses")?,
        };
        let body = if self.codex_backend {
            let body = super::codex_backend::body(&body)?;
            super::codex_backend::headers(&mut headers, &body);
            body
        } else {
            body
        };
        Ok(UpstreamRequest {
            url,
            headers,
            body,
            first_byte: None,
        })
    }
}
