//! Upstream providers: one module per kind, behind the [`Provider`] enum.
//!
//! A provider knows how to address its API (URL, auth header, fixed headers) and holds its
//! credentials. It does not send anything: the `upstream` pipeline phase does, with the shared
//! client.

mod anthropic;
mod gemini;
mod openai_compatible;
mod openai_responses;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use sluice_dialect::Dialect;

use crate::config::{ProviderConfig, ProviderKind, Timeouts};

/// One upstream secret and the id it is known by in logs and usage records.
#[derive(Debug)]
pub struct Credential {
    /// `provider#index`: names the credential without revealing it.
    pub id: Arc<str>,
    /// The header carrying the secret; its value is marked sensitive so it is never printed.
    pub auth: Option<(HeaderName, HeaderValue)>,
}

/// Effective timeouts after applying per-provider overrides.
#[derive(Debug, Clone, Copy)]
pub struct ProviderTimeouts {
    pub first_byte: Duration,
    pub idle: Duration,
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
    /// The API root, without a trailing slash.
    pub base_url: String,
    next_credential: AtomicUsize,
}

impl ProviderCommon {
    /// `auth_header` names the header a kind sends its key in; `format` shapes the value.
    fn from_config(
        config: &ProviderConfig,
        defaults: &Timeouts,
        auth_header: HeaderName,
        format: impl Fn(&str) -> String,
    ) -> Self {
        let credential = |i: Option<usize>, key: Option<&str>| {
            let auth = key.and_then(|k| {
                let mut value = HeaderValue::from_str(&format(k)).ok()?;
                value.set_sensitive(true);
                Some((auth_header.clone(), value))
            });
            let id = match i {
                Some(i) => format!("{}#{i}", config.name),
                None => format!("{}#anonymous", config.name),
            };
            Credential {
                id: id.into(),
                auth,
            }
        };
        let credentials = if config.api_keys.is_empty() {
            vec![credential(None, None)]
        } else {
            config
                .api_keys
                .iter()
                .enumerate()
                .map(|(i, k)| credential(Some(i), Some(k)))
                .collect()
        };
        let headers = config
            .headers
            .iter()
            .filter_map(|(k, v)| {
                // Configured headers may carry secrets (`${VAR}`, token files' Bearer).
                let mut value = HeaderValue::from_str(v).ok()?;
                value.set_sensitive(true);
                Some((HeaderName::from_bytes(k.as_bytes()).ok()?, value))
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
            base_url: config.base_url.trim_end_matches('/').to_string(),
            next_credential: AtomicUsize::new(0),
        }
    }

    /// The next credential in turn.
    pub fn next_credential(&self) -> &Credential {
        let i = self.next_credential.fetch_add(1, Ordering::Relaxed) % self.credentials.len();
        &self.credentials[i]
    }

    /// Headers every request carries: JSON content, the credential, the configured extras.
    fn base_headers(&self, credential: &Credential, stream: bool) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.headers.len() + 4);
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
        if let Some((name, value)) = &credential.auth {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.headers {
            headers.insert(name, value.clone());
        }
        headers
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, String> {
        reqwest::Url::parse(&format!("{}{path}", self.base_url)).map_err(|e| {
            format!(
                "provider `{}`: cannot build the upstream URL: {e}",
                self.name
            )
        })
    }
}

/// What the gateway asks of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Generate an answer (stream or not).
    Generate,
    /// Count a request's input tokens.
    CountTokens,
}

/// One upstream call's particulars.
#[derive(Debug)]
pub struct UpstreamCall<'a> {
    pub operation: Operation,
    /// The upstream's model name.
    pub model: &'a str,
    pub stream: bool,
    /// Client headers a same-dialect upstream should see (`anthropic-version`, `anthropic-beta`).
    pub forwarded: &'a HeaderMap,
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
    OpenAiCompatible(openai_compatible::OpenAiCompatible),
    OpenAiResponses(openai_responses::OpenAiResponses),
    Anthropic(anthropic::Anthropic),
    Gemini(gemini::Gemini),
}

impl Provider {
    /// Builds a provider from its (validated) config.
    pub fn from_config(
        config: &ProviderConfig,
        defaults: &Timeouts,
    ) -> Result<Arc<Provider>, String> {
        Ok(Arc::new(match config.kind {
            ProviderKind::OpenaiCompatible => Provider::OpenAiCompatible(
                openai_compatible::OpenAiCompatible::new(config, defaults)?,
            ),
            ProviderKind::OpenaiResponses => {
                Provider::OpenAiResponses(openai_responses::OpenAiResponses::new(config, defaults)?)
            }
            ProviderKind::Anthropic => {
                Provider::Anthropic(anthropic::Anthropic::new(config, defaults)?)
            }
            ProviderKind::Gemini => Provider::Gemini(gemini::Gemini::new(config, defaults)?),
        }))
    }

    pub fn common(&self) -> &ProviderCommon {
        match self {
            Provider::OpenAiCompatible(p) => &p.common,
            Provider::OpenAiResponses(p) => &p.common,
            Provider::Anthropic(p) => &p.common,
            Provider::Gemini(p) => &p.common,
        }
    }

    pub fn name(&self) -> &str {
        &self.common().name
    }

    /// The API dialect the upstream speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Provider::OpenAiCompatible(_) => Dialect::OpenAiChat,
            Provider::OpenAiResponses(_) => Dialect::OpenAiResponses,
            Provider::Anthropic(_) => Dialect::Anthropic,
            Provider::Gemini(_) => Dialect::Gemini,
        }
    }

    /// Whether the upstream can count tokens itself.
    pub fn counts_tokens(&self) -> bool {
        matches!(self, Provider::Anthropic(_) | Provider::Gemini(_))
    }

    /// The request for one call with one credential.
    pub fn request(
        &self,
        call: &UpstreamCall<'_>,
        credential: &Credential,
        body: Bytes,
    ) -> Result<UpstreamRequest, String> {
        match self {
            Provider::OpenAiCompatible(p) => p.request(call, credential, body),
            Provider::OpenAiResponses(p) => p.request(call, credential, body),
            Provider::Anthropic(p) => p.request(call, credential, body),
            Provider::Gemini(p) => p.request(call, credential, body),
        }
    }
}
