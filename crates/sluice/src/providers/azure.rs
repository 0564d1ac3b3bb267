//! Azure OpenAI (platform `azure-openai`): Chat Completions on deployments.
//!
//! `POST {base-url}/openai/deployments/{deployment}/chat/completions?api-version={version}`
//! with the key in the `api-key` header. A model's deployment is its `deployment` (default: its
//! name); `api-version` defaults to the current GA version.

use std::collections::HashMap;

use bytes::Bytes;
use http::HeaderName;

use super::{BuildContext, Credential, Operation, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::ProviderConfig;

/// The `api-version` used when the config names none.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

#[derive(Debug)]
pub struct Azure {
    pub common: ProviderCommon,
    api_version: String,
    /// Upstream model name → deployment.
    deployments: HashMap<String, String>,
}

impl Azure {
    pub fn new(config: &ProviderConfig, ctx: &BuildContext<'_>) -> Result<Self, String> {
        let common = ProviderCommon::from_config(
            config,
            ctx,
            HeaderName::from_static("api-key"),
            str::to_string,
        )?;
        common.url("/openai/deployments")?;
        let deployments = config
            .models
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.deployment.clone().unwrap_or_else(|| m.name.clone()),
                )
            })
            .collect();
        Ok(Self {
            common,
            api_version: config
                .api_version
                .clone()
                .unwrap_or_else(|| DEFAULT_API_VERSION.into()),
            deployments,
        })
    }

    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        if call.operation == Operation::CountTokens {
            return Err("Azure OpenAI does not count tokens".into());
        }
        let deployment = self
            .deployments
            .get(call.model)
            .map_or(call.model, String::as_str);
        let deployment: String = deployment
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let action = match call.operation {
            Operation::Embed { .. } => "embeddings",
            Operation::Forward { path } => path.trim_start_matches('/'),
            _ => "chat/completions",
        };
        let url = self.common.url(&format!(
            "/openai/deployments/{deployment}/{action}?api-version={}",
            self.api_version
        ))?;
        Ok(UpstreamRequest {
            url,
            headers: self.common.base_headers(credential, call.stream),
            body,
            first_byte: None,
        })
    }
}
