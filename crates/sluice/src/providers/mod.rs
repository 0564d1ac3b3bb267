//! Upstream providers: one module per kind, behind the [`Provider`] enum.
//!
//! A provider knows how to address its API (URL, auth headers) and holds its credentials.
//! It does not send anything: the `upstream` pipeline phase does, with the shared client.

mod openai_compatible;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{ProviderConfig, ProviderKind, Timeouts};
pub use openai_compatible::OpenAiCompatible;

/// One upstream secret and the id it is known by in logs and usage records.
#[derive(Debug)]
pub struct Credential {
    /// `provider#index`: names the credential without revealing it.
    pub id: Arc<str>,
    /// The header value carrying the secret, marked sensitive so it is never printed.
    pub auth_header: Option<HeaderValue>,
}

/// What every provider kind shares.
#[derive(Debug)]
pub struct ProviderCommon {
    pub name: Arc<str>,
    pub platform: Arc<str>,
    pub timeouts: ProviderTimeouts,
    pub credentials: Vec<Credential>,
    /// Extra headers from the config, sent with every request.
    pub headers: HeaderMap,
    next_credential: AtomicUsize,
}

/// Effective timeouts after applying per-provider overrides.
#[derive(Debug, Clone, Copy)]
pub struct ProviderTimeouts {
    pub first_byte: Duration,
    pub idle: Duration,
}

impl ProviderCommon {
    fn from_config(
        config: &ProviderConfig,
        defaults: &Timeouts,
        auth: impl Fn(&str) -> Option<HeaderValue>,
    ) -> Self {
        let credentials = if config.api_keys.is_empty() {
            vec![Credential {
                id: format!("{}#anonymous", config.name).into(),
                auth_header: None,
            }]
        } else {
            config
                .api_keys
                .iter()
                .enumerate()
                .map(|(i, key)| Credential {
                    id: format!("{}#{i}", config.name).into(),
                    auth_header: auth(key),
                })
                .collect()
        };
        let headers = config
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        Self {
            name: config.name.as_str().into(),
            platform: config.platform().into(),
            timeouts: ProviderTimeouts {
                first_byte: config.timeouts.first_byte.unwrap_or(defaults.first_byte),
                idle: config.timeouts.idle.unwrap_or(defaults.idle),
            },
            credentials,
            headers,
            next_credential: AtomicUsize::new(0),
        }
    }

    /// The next credential in turn.
    pub fn next_credential(&self) -> &Credential {
        let i = self.next_credential.fetch_add(1, Ordering::Relaxed) % self.credentials.len();
        &self.credentials[i]
    }
}

/// An upstream request, ready to send.
#[derive(Debug)]
pub struct UpstreamRequest {
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Every provider kind Sluice can call.
#[derive(Debug)]
pub enum Provider {
    OpenAiCompatible(OpenAiCompatible),
}

impl Provider {
    /// Builds a provider from its (validated) config.
    pub fn from_config(
        config: &ProviderConfig,
        defaults: &Timeouts,
    ) -> Result<Arc<Provider>, String> {
        Ok(Arc::new(match config.kind {
            ProviderKind::OpenaiCompatible => {
                Provider::OpenAiCompatible(OpenAiCompatible::new(config, defaults)?)
            }
        }))
    }

    pub fn common(&self) -> &ProviderCommon {
        match self {
            Provider::OpenAiCompatible(p) => &p.common,
        }
    }

    pub fn name(&self) -> &str {
        &self.common().name
    }

    /// A Chat Completions request for this provider with the given credential.
    pub fn chat_request(
        &self,
        credential: &Credential,
        body: Bytes,
        stream: bool,
    ) -> UpstreamRequest {
        match self {
            Provider::OpenAiCompatible(p) => p.chat_request(credential, body, stream),
        }
    }
}
