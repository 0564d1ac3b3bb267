//! Google's Gemini API with AI Studio keys.
//!
//! `POST {base-url}/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`
//! and `:countTokens`, with `x-goog-api-key` (never `?key=`, which would put the key in URLs
//! and so in logs).

use bytes::Bytes;
use http::HeaderName;

use super::BuildContext;
use super::{Credential, Operation, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::ProviderConfig;

#[derive(Debug)]
pub struct Gemini {
    pub common: ProviderCommon,
}

impl Gemini {
    pub fn new(config: &ProviderConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let common = ProviderCommon::from_config(
            config,
            ctx,
            HeaderName::from_static("x-goog-api-key"),
            str::to_string,
        )?;
        common.url("/v1beta/models")?;
        Ok(Self { common })
    }

    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        let headers = self.common.base_headers(credential, call.stream);
        let action = match (call.operation, call.stream) {
            (Operation::CountTokens, _) => "countTokens",
            (Operation::Generate, true) => "streamGenerateContent?alt=sse",
            (Operation::Generate, false) => "generateContent",
            (Operation::Embed { batch: true }, _) => "batchEmbedContents",
            (Operation::Embed { batch: false }, _) => "embedContent",
            (Operation::Forward { path }, _) => {
                return Err(format!("Gemini has no OpenAI `{path}` endpoint"));
            }
        };
        // The model name is a path segment: keep it from adding segments or a query.
        let model: String = call
            .model
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let url = self
            .common
            .url(&format!("/v1beta/models/{model}:{action}"))?;
        Ok(UpstreamRequest {
            url,
            headers,
            body,
            first_byte: None,
        })
    }
}
