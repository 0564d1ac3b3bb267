//! OpenAI's Responses API, for providers that offer only it (Codex with API keys, some
//! OpenAI-compatible relays).
//!
//! `POST {base-url}/responses` with `Authorization: Bearer <key>`.

use bytes::Bytes;
use http::header;

use super::{Credential, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::{ProviderConfig, Timeouts};

#[derive(Debug)]
pub struct OpenAiResponses {
    pub common: ProviderCommon,
    responses_url: reqwest::Url,
}

impl OpenAiResponses {
    pub fn new(config: &ProviderConfig, defaults: &Timeouts) -> Result<Self, String> {
        let common = ProviderCommon::from_config(config, defaults, header::AUTHORIZATION, |k| {
            format!("Bearer {k}")
        });
        let responses_url = common.url("/responses")?;
        Ok(Self {
            common,
            responses_url,
        })
    }

    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        let headers = self.common.base_headers(credential, call.stream);
        Ok(UpstreamRequest {
            url: self.responses_url.clone(),
            headers,
            body,
        })
    }
}
