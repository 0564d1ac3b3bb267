//! Anthropic's Messages API with API keys (platform `claude-console`), and Anthropic-compatible
//! relays (`claude-ccr`).
//!
//! `POST {base-url}/v1/messages` (and `/v1/messages/count_tokens`) with `x-api-key`,
//! `anthropic-version` and, when the client sent one, its `anthropic-beta`.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::BuildContext;
use super::{Credential, Operation, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::ProviderConfig;

/// The API version Sluice speaks when the client did not name one.
const ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Debug)]
pub struct Anthropic {
    pub common: ProviderCommon,
    messages_url: reqwest::Url,
    count_url: reqwest::Url,
}

impl Anthropic {
    pub fn new(config: &ProviderConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let common = ProviderCommon::from_config(
            config,
            ctx,
            HeaderName::from_static("x-api-key"),
            str::to_string,
        )?;
        let messages_url = common.url("/v1/messages")?;
        let count_url = common.url("/v1/messages/count_tokens")?;
        Ok(Self {
            common,
            messages_url,
            count_url,
        })
    }

    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        let mut headers = self.common.base_headers(credential, call.stream);
        let version = call.forwarded.get("anthropic-version").cloned();
        headers.insert(
            "anthropic-version",
            version.unwrap_or(HeaderValue::from_static(ANTHROPIC_VERSION)),
        );
        if let Some(beta) = call.forwarded.get("anthropic-beta") {
            // A configured beta (an OAuth token's `oauth-2025-04-20`) is kept beside the
            // client's own.
            let merged = match headers.get("anthropic-beta").and_then(|v| v.to_str().ok()) {
                Some(own) => beta
                    .to_str()
                    .ok()
                    .and_then(|b| HeaderValue::from_str(&format!("{own},{b}")).ok()),
                None => None,
            };
            headers.insert("anthropic-beta", merged.unwrap_or_else(|| beta.clone()));
        }
        let url = match call.operation {
            Operation::Generate => self.messages_url.clone(),
            Operation::CountTokens => self.count_url.clone(),
            Operation::Embed { .. } => return Err("Anthropic has no embeddings API".into()),
        };
        Ok(UpstreamRequest { url, headers, body })
    }
}
