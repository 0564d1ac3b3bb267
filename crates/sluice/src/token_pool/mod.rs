//! Seed 000's token pool (placeholder; filled in below).

use std::sync::Arc;

use crate::providers::Credential;

/// Uploaded upstream tokens.
#[derive(Debug)]
pub struct TokenPool {
    settings: crate::config::TokenPoolConfig,
}

impl TokenPool {
    pub fn open(settings: &crate::config::TokenPoolConfig) -> Result<Self, String> {
        let _ = Self {
            settings: settings.clone(),
        };
        Err("token-pool: not available yet".into())
    }
    pub fn settings(&self) -> &crate::config::TokenPoolConfig {
        &self.settings
    }
    pub fn attach(
        &self,
        _c: &crate::config::Config,
        _k: &crate::transport::Clients,
    ) -> Result<(), String> {
        Ok(())
    }

    /// The pool's tokens as credentials.
    pub fn credentials(&self) -> Arc<[Arc<Credential>]> {
        Arc::from(Vec::new())
    }

    /// Refreshes a token the upstream refused; whether it can be tried again.
    pub async fn refresh_after_rejection(&self, _id: &str) -> bool {
        false
    }
}

/// Authenticates a proxied request: a Sluice key, or (seed 000) a caller's own upstream token
/// when some provider allows client tokens.
pub fn authenticate(
    runtime: &crate::gateway::Runtime,
    headers: &http::HeaderMap,
    query: Option<&str>,
) -> Result<(crate::pipeline::authenticate::Caller, Option<String>), crate::error::GatewayError> {
    match runtime.keys.authenticate(headers, query) {
        Ok(caller) => Ok((caller, None)),
        Err(e) => match own_token(runtime, headers) {
            Some(token) => Ok((
                crate::pipeline::authenticate::Caller { key_id: None },
                Some(token),
            )),
            None => Err(e),
        },
    }
}

fn own_token(runtime: &crate::gateway::Runtime, headers: &http::HeaderMap) -> Option<String> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("Bearer ")?
        .trim();
    if bearer.is_empty() || bearer.starts_with("sk-") {
        return None;
    }
    runtime
        .catalog()
        .providers()
        .iter()
        .any(|p| p.common().allow_client_tokens)
        .then(|| bearer.to_string())
}
