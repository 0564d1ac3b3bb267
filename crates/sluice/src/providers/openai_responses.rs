//! OpenAI's Responses API, for providers that offer only it (Codex with API keys, some
//! OpenAI-compatible relays).
//!
//! `POST {base-url}/responses` with `Authorization: Bearer <key>`.

use bytes::Bytes;
use http::header;

use super::BuildContext;
use super::{Credential, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::ProviderConfig;

#[derive(Debug)]
pub struct OpenAiResponses {
    pub common: ProviderCommon,
    responses_url: reqwest::Url,
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
        })
    }

    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        let headers = self.common.base_headers(credential, call.stream);
        let url = match credential.base_url {
            None => self.responses_url.clone(),
            Some(_) => self.common.credential_url(credential, "/responses")?,
        };
        Ok(UpstreamRequest { url, headers, body })
    }
}
