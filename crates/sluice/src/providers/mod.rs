//! Upstream providers: one module per kind, behind the [`Provider`] enum.
//!
//! A provider knows how to address its API (URL, auth header, fixed headers) and holds its
//! credentials. It does not send anything: the `upstream` pipeline phase does, with the shared
//! client.

mod anthropic;
mod azure;
pub mod bedrock;
mod code_assist;
mod codex_backend;
mod gemini;
mod openai_compatible;
mod openai_responses;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use sluice_dialect::Dialect;
use sluice_dialect::embedding::EmbeddingWire;

use crate::config::{ProviderConfig, ProviderKind, Timeouts};
use crate::pipeline::respond::UpstreamBody;
use crate::token_pool::TokenPool;
use crate::transport::{Clients, ProxySetting};

/// One upstream secret and the id it is known by in logs and usage records.
#[derive(Debug)]
pub struct Credential {
    /// `provider#index` (`provider#pool-<digest>` for uploaded tokens, `provider#caller` for a
    /// caller's own token): names the credential without revealing it.
    pub id: Arc<str>,
    /// The header carrying the secret; its value is marked sensitive so it is never printed.
    pub auth: Option<(HeaderName, HeaderValue)>,
    /// The client its requests go through (its proxy and connect timeout).
    pub http: reqwest::Client,
    /// An API root of its own, replacing the provider's (a Qwen token's `resource_url`).
    pub base_url: Option<String>,
    /// Where the credential came from.
    pub origin: Origin,
    /// AWS keys for SigV4 (Bedrock); their `Debug` hides the secret.
    pub sigv4: Option<Arc<aws_credential_types::Credentials>>,
}

/// Where a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The config file.
    Config,
    /// Uploaded through `/api/upload-token`.
    Pool,
    /// The caller's own upstream token (`allow-client-tokens`): its failures are the caller's.
    Caller,
}

/// Effective timeouts after applying per-provider overrides.
#[derive(Debug, Clone, Copy)]
pub struct ProviderTimeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    /// The first-byte timeout of image requests.
    pub image: Duration,
}

/// What building a provider needs besides its own config.
#[derive(Debug)]
pub struct BuildContext<'a> {
    /// The global `timeouts`.
    pub defaults: &'a Timeouts,
    /// The global `proxy-url`.
    pub proxy_url: &'a str,
    /// The upstream clients, one per distinct (proxy, connect timeout).
    pub clients: &'a Clients,
    /// Seed 000's token pool, given to the provider that sets `token-pool: true`.
    pub pool: Option<Arc<TokenPool>>,
    /// The OAuth refresher, given to providers built from token files.
    pub refresher: Option<Arc<crate::oauth::Refresher>>,
}

/// What every provider kind shares.
#[derive(Debug)]
pub struct ProviderCommon {
    pub name: Arc<str>,
    pub platform: Arc<str>,
    pub timeouts: ProviderTimeouts,
    credentials: Arc<[Arc<Credential>]>,
    /// Extra headers from the config, sent with every request.
    pub headers: HeaderMap,
    /// The API root, without a trailing slash.
    pub base_url: String,
    /// Forward a caller's own (non-`sk-`) Bearer token as the upstream credential.
    pub allow_client_tokens: bool,
    /// The uploaded tokens this provider also uses.
    pub pool: Option<Arc<TokenPool>>,
    /// The client for the provider's own proxy setting (caller tokens, pool tokens).
    pub http: reqwest::Client,
    /// The OAuth account (token file) this provider serves, whose token is refreshed.
    pub account: Option<crate::oauth::scheduler::AccountHandle>,
    auth_header: HeaderName,
    auth_format: fn(&str) -> String,
}

impl ProviderCommon {
    /// `auth_header` names the header a kind sends its key in; `format` shapes the value.
    fn from_config(
        config: &ProviderConfig,
        ctx: &BuildContext<'_>,
        auth_header: HeaderName,
        format: fn(&str) -> String,
    ) -> Result<Self, String> {
        let connect = config.timeouts.connect.unwrap_or(ctx.defaults.connect);
        let client_for = |proxy: Option<&str>| {
            let setting = ProxySetting::resolve(proxy, config.proxy_url.as_deref(), ctx.proxy_url);
            ctx.clients
                .get(&setting, connect)
                .map_err(|e| format!("provider `{}`: {e}", config.name))
        };
        let http = client_for(None)?;
        let sensitive = |value: String| {
            let mut value = HeaderValue::from_str(&value).ok()?;
            value.set_sensitive(true);
            Some(value)
        };
        let mut credentials = Vec::new();
        for (i, key) in config.api_keys.iter().enumerate() {
            credentials.push(Arc::new(Credential {
                id: format!("{}#{i}", config.name).into(),
                auth: sensitive(format(key)).map(|v| (auth_header.clone(), v)),
                http: http.clone(),
                base_url: None,
                origin: Origin::Config,
                sigv4: None,
            }));
        }
        for (c, entry) in config.credentials.iter().enumerate() {
            let Some(key) = entry.api_key.as_deref() else {
                continue; // AWS keys: the Bedrock provider builds those itself
            };
            credentials.push(Arc::new(Credential {
                id: format!("{}#{}", config.name, config.api_keys.len() + c).into(),
                auth: sensitive(format(key)).map(|v| (auth_header.clone(), v)),
                http: client_for(entry.proxy_url.as_deref())?,
                base_url: None,
                origin: Origin::Config,
                sigv4: None,
            }));
        }
        let pool = if config.token_pool {
            ctx.pool.clone()
        } else {
            None
        };
        if credentials.is_empty() && pool.is_none() && config.kind != ProviderKind::Bedrock {
            credentials.push(Arc::new(Credential {
                id: format!("{}#anonymous", config.name).into(),
                auth: None,
                http: http.clone(),
                base_url: None,
                origin: Origin::Config,
                sigv4: None,
            }));
        }
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
        Ok(Self {
            name: config.name.as_str().into(),
            platform: config.platform().into(),
            timeouts: ProviderTimeouts {
                connect,
                first_byte: config
                    .timeouts
                    .first_byte
                    .unwrap_or(ctx.defaults.first_byte),
                idle: config.timeouts.idle.unwrap_or(ctx.defaults.idle),
                image: config.timeouts.image.unwrap_or(ctx.defaults.image),
            },
            credentials: credentials.into(),
            headers,
            base_url: config
                .effective_base_url()
                .trim_end_matches('/')
                .to_string(),
            allow_client_tokens: config.allow_client_tokens,
            pool,
            http,
            account: match (&config.auth_file, &ctx.refresher) {
                (Some(file), Some(refresher)) => Some(crate::oauth::scheduler::AccountHandle {
                    refresher: refresher.clone(),
                    file: file.as_str().into(),
                }),
                _ => None,
            },
            auth_header,
            auth_format: format,
        })
    }

    /// Every credential the provider can use now: the configured ones, then uploaded tokens.
    pub fn credentials(&self) -> Arc<[Arc<Credential>]> {
        match &self.pool {
            None => self.credentials.clone(),
            Some(pool) => {
                let uploaded = pool.credentials();
                if self.credentials.is_empty() {
                    uploaded
                } else {
                    self.credentials
                        .iter()
                        .chain(uploaded.iter())
                        .cloned()
                        .collect()
                }
            }
        }
    }

    /// Adds configured credentials (kinds with credentials of their own, e.g. AWS keys).
    fn add_credentials(&mut self, more: Vec<Arc<Credential>>) {
        self.credentials = self.credentials.iter().cloned().chain(more).collect();
    }

    /// A credential for a caller's own upstream token (`allow-client-tokens`).
    pub fn caller_credential(&self, token: &str) -> Option<Arc<Credential>> {
        let mut value = HeaderValue::from_str(&(self.auth_format)(token)).ok()?;
        value.set_sensitive(true);
        Some(Arc::new(Credential {
            id: format!("{}#caller", self.name).into(),
            auth: Some((self.auth_header.clone(), value)),
            http: self.http.clone(),
            base_url: None,
            origin: Origin::Caller,
            sigv4: None,
        }))
    }

    /// A credential for an uploaded token (the pool calls this).
    pub fn bearer_credential(
        id: Arc<str>,
        token: &str,
        base_url: Option<String>,
        http: reqwest::Client,
    ) -> Option<Credential> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
        value.set_sensitive(true);
        Some(Credential {
            id,
            auth: Some((header::AUTHORIZATION, value)),
            http,
            base_url,
            origin: Origin::Pool,
            sigv4: None,
        })
    }

    /// The API root for a credential: its own, or the provider's.
    fn root<'a>(&'a self, credential: &'a Credential) -> &'a str {
        credential
            .base_url
            .as_deref()
            .unwrap_or(&self.base_url)
            .trim_end_matches('/')
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
        self.url_at(&self.base_url, path)
    }

    /// A URL under a credential's API root.
    fn credential_url(&self, credential: &Credential, path: &str) -> Result<reqwest::Url, String> {
        self.url_at(self.root(credential), path)
    }

    fn url_at(&self, root: &str, path: &str) -> Result<reqwest::Url, String> {
        reqwest::Url::parse(&format!("{root}{path}")).map_err(|e| {
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
    /// Embed texts; `batch`: as a list (Gemini's `:batchEmbedContents`, not `:embedContent`).
    Embed { batch: bool },
    /// Forward the body to this path under the API root (`/moderations`, `/audio/speech`,
    /// `/rerank`) and relay the answer unchanged.
    Forward { path: &'static str },
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
    /// Its own first-byte timeout (image requests), instead of the provider's.
    pub first_byte: Option<Duration>,
}

/// Every provider kind Sluice can call.
#[derive(Debug)]
pub enum Provider {
    OpenAiCompatible(openai_compatible::OpenAiCompatible),
    OpenAiResponses(openai_responses::OpenAiResponses),
    Anthropic(anthropic::Anthropic),
    Gemini(gemini::Gemini),
    CodeAssist(code_assist::CodeAssist),
    Azure(azure::Azure),
    Bedrock(bedrock::Bedrock),
}

impl Provider {
    /// Builds a provider from its (validated) config.
    pub fn from_config(
        config: &ProviderConfig,
        ctx: &BuildContext<'_>,
    ) -> Result<Arc<Provider>, String> {
        Ok(Arc::new(match config.kind {
            ProviderKind::OpenaiCompatible | ProviderKind::Qwen => {
                Provider::OpenAiCompatible(openai_compatible::OpenAiCompatible::new(config, ctx)?)
            }
            ProviderKind::OpenaiResponses | ProviderKind::Codex => {
                Provider::OpenAiResponses(openai_responses::OpenAiResponses::new(config, ctx)?)
            }
            ProviderKind::Anthropic => Provider::Anthropic(anthropic::Anthropic::new(config, ctx)?),
            ProviderKind::Gemini => Provider::Gemini(gemini::Gemini::new(config, ctx)?),
            ProviderKind::GeminiCodeAssist => {
                Provider::CodeAssist(code_assist::CodeAssist::new(config, ctx)?)
            }
            ProviderKind::AzureOpenai => Provider::Azure(azure::Azure::new(config, ctx)?),
            ProviderKind::Bedrock => Provider::Bedrock(bedrock::Bedrock::new(config, ctx)?),
        }))
    }

    pub fn common(&self) -> &ProviderCommon {
        match self {
            Provider::OpenAiCompatible(p) => &p.common,
            Provider::OpenAiResponses(p) => &p.common,
            Provider::Anthropic(p) => &p.common,
            Provider::Gemini(p) => &p.common,
            Provider::CodeAssist(p) => &p.common,
            Provider::Azure(p) => &p.common,
            Provider::Bedrock(p) => &p.common,
        }
    }

    pub fn name(&self) -> &str {
        &self.common().name
    }

    /// The API dialect the upstream speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Provider::OpenAiCompatible(_) | Provider::Azure(_) => Dialect::OpenAiChat,
            Provider::OpenAiResponses(_) => Dialect::OpenAiResponses,
            Provider::Anthropic(_) | Provider::Bedrock(_) => Dialect::Anthropic,
            Provider::Gemini(_) | Provider::CodeAssist(_) => Dialect::Gemini,
        }
    }

    /// The embeddings API the upstream has for `model`, if it has one: OpenAI's
    /// `/embeddings` (OpenAI-compatible, DashScope, Azure deployments), Gemini's
    /// `:embedContent` / `:batchEmbedContents`, Bedrock's Titan and Cohere invoke bodies.
    pub fn embedding_wire(&self, model: &str, batch: bool) -> Option<EmbeddingWire> {
        match self {
            Provider::OpenAiCompatible(_) | Provider::Azure(_) => Some(EmbeddingWire::OpenAi),
            Provider::Gemini(_) if batch => Some(EmbeddingWire::GeminiBatch),
            Provider::Gemini(_) => Some(EmbeddingWire::GeminiSingle),
            Provider::Bedrock(_) => Some(EmbeddingWire::for_bedrock_model(model)),
            Provider::OpenAiResponses(_) | Provider::Anthropic(_) | Provider::CodeAssist(_) => None,
        }
    }

    /// Whether the upstream has an API for `operation` at all.
    pub fn supports(&self, operation: Operation) -> bool {
        match operation {
            Operation::Generate | Operation::CountTokens => true,
            Operation::Embed { batch } => self.embedding_wire("", batch).is_some(),
            Operation::Forward { .. } => {
                matches!(self, Provider::OpenAiCompatible(_) | Provider::Azure(_))
            }
        }
    }

    /// Whether the upstream answers only with streams (the ChatGPT Codex backend): a client
    /// asking for one answer gets the stream folded into it.
    pub fn forces_stream(&self) -> bool {
        matches!(self, Provider::OpenAiResponses(p) if p.codex_backend)
    }

    /// Whether the upstream can count tokens itself.
    pub fn counts_tokens(&self) -> bool {
        matches!(
            self,
            Provider::Anthropic(_) | Provider::Gemini(_) | Provider::CodeAssist(_)
        )
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
            Provider::CodeAssist(p) => p.request(call, credential, body),
            Provider::Azure(p) => p.request(call, credential, body),
            Provider::Bedrock(p) => p.request(call, credential, body),
        }
    }

    /// A 2xx stream's body as SSE bytes in the provider's dialect (Bedrock's binary event
    /// stream is decoded here, Code Assist's events unwrapped).
    pub fn stream_body(&self, response: reqwest::Response) -> UpstreamBody {
        match self {
            Provider::Bedrock(_) => bedrock::event_stream_to_sse(response),
            Provider::CodeAssist(_) => {
                code_assist::unwrap_stream(Box::pin(response.bytes_stream()))
            }
            _ => Box::pin(response.bytes_stream()),
        }
    }

    /// A 2xx whole answer in the provider's dialect (Code Assist's unwrapped).
    pub fn answer_body(&self, body: Bytes) -> Bytes {
        match self {
            Provider::CodeAssist(_) => code_assist::unwrap_answer(body),
            _ => body,
        }
    }
}
