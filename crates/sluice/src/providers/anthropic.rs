//! Anthropic's Messages API with API keys (platform `claude-console`), and Anthropic-compatible
//! relays (`claude-ccr`).
//!
//! `POST {base-url}/v1/messages` (and `/v1/messages/count_tokens`) with `x-api-key`,
//! `anthropic-version` and, when the client sent one, its `anthropic-beta`.
//!
//! Claude accounts signed in with OAuth (platform `claude-official`, research `oauth.md` §2.5):
//! `Authorization: Bearer`, Claude Code's beta flags (`oauth-2025-04-20` always), `?beta=true`,
//! and the system prompt Claude's OAuth API requires: the first system block is exactly Claude
//! Code's line (Haiku models are exempt), the caller's system text follows it.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::BuildContext;
use super::{Credential, Operation, ProviderCommon, UpstreamCall, UpstreamRequest};
use crate::config::ProviderConfig;

/// The API version Sluice speaks when the client did not name one.
const ANTHROPIC_VERSION: &str = "2023-06-01";
/// The first system block Claude's OAuth API requires.
pub const CLAUDE_CODE_SYSTEM: &str = "You are Claude Code, Anthropic's official CLI for Claude.";
/// The platform of Claude accounts signed in with OAuth.
pub const CLAUDE_OFFICIAL: &str = "claude-official";

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
        let mut url = match call.operation {
            Operation::Generate => self.messages_url.clone(),
            Operation::CountTokens => self.count_url.clone(),
            Operation::Embed { .. } => return Err("Anthropic has no embeddings API".into()),
            Operation::Forward { path } => {
                return Err(format!("Anthropic has no OpenAI `{path}` endpoint"));
            }
        };
        let mut body = body;
        if &*self.common.platform == CLAUDE_OFFICIAL {
            url.query_pairs_mut().append_pair("beta", "true");
            ensure_beta(&mut headers, "oauth-2025-04-20");
            headers.remove("x-api-key");
            body = claude_code_system(body);
        }
        Ok(UpstreamRequest {
            url,
            headers,
            body,
            first_byte: None,
        })
    }
}

/// Adds `flag` to `anthropic-beta` unless it is there.
fn ensure_beta(headers: &mut http::HeaderMap, flag: &str) {
    let current = headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if current.split(',').any(|f| f.trim() == flag) {
        return;
    }
    let merged = if current.trim().is_empty() {
        flag.to_string()
    } else {
        format!("{current},{flag}")
    };
    if let Ok(v) = HeaderValue::from_str(&merged) {
        headers.insert("anthropic-beta", v);
    }
}

/// Puts Claude Code's system line first (the caller's system text after it), except for Haiku
/// models. A body that is not a JSON object is sent as it is (the upstream judges it).
pub fn claude_code_system(body: Bytes) -> Bytes {
    use serde_json::{Value, json};
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    if map
        .get("model")
        .and_then(Value::as_str)
        .is_some_and(|m| m.contains("haiku"))
    {
        return body;
    }
    let line = json!({"type": "text", "text": CLAUDE_CODE_SYSTEM});
    let system = match map.remove("system") {
        None | Some(Value::Null) => vec![line],
        Some(Value::String(text)) if text == CLAUDE_CODE_SYSTEM => vec![line],
        Some(Value::String(text)) if text.is_empty() => vec![line],
        Some(Value::String(text)) => vec![line, json!({"type": "text", "text": text})],
        Some(Value::Array(mut blocks)) => {
            let first_is_line = blocks
                .first()
                .and_then(|b| b.get("text"))
                .and_then(Value::as_str)
                == Some(CLAUDE_CODE_SYSTEM);
            if !first_is_line {
                blocks.insert(0, line);
            }
            blocks
        }
        Some(other) => {
            map.insert("system".into(), other);
            return body;
        }
    };
    map.insert("system".into(), Value::Array(system));
    serde_json::to_vec(&Value::Object(map))
        .map(Bytes::from)
        .unwrap_or(body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn system_of(body: &str) -> serde_json::Value {
        let out = claude_code_system(Bytes::from(body.to_string()));
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["system"].clone()
    }

    #[test]
    fn claude_code_line_first() {
        let s = system_of(r#"{"model":"claude-sonnet-4-5","system":"Be brief.","messages":[]}"#);
        assert_eq!(s[0]["text"], CLAUDE_CODE_SYSTEM);
        assert_eq!(s[1]["text"], "Be brief.");
        let s = system_of(r#"{"model":"claude-opus-4-5","messages":[]}"#);
        assert_eq!(s.as_array().unwrap().len(), 1);
        let s = system_of(
            r#"{"model":"claude-opus-4-5","system":[{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude."},{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]}"#,
        );
        assert_eq!(s.as_array().unwrap().len(), 2, "not added twice");
        assert_eq!(s[1]["cache_control"]["type"], "ephemeral");
        let haiku = r#"{"model":"claude-haiku-4-5","system":"Be brief."}"#;
        assert_eq!(
            claude_code_system(Bytes::from(haiku)),
            Bytes::from(haiku),
            "Haiku is exempt"
        );
    }
}
