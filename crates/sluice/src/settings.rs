//! Seed 003's settings: the config keys its management API edits (`proxy-url`,
//! `quota-exceeded`, `generative-language-api-key`, `codex-api-key`, `claude-api-key`,
//! `openai-compatibility`, `request-retry`, …), their checks, and how the provider key lists
//! become providers.
//!
//! The keys live in [`Config`] under exactly seed 003's names; this module owns their types so
//! `config.rs` only lists them. [`seed_providers`] is called by `Runtime::build`, so start-up
//! and every reload turn the same lists into the same providers.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{Config, ConfigError, ModelConfig, ProviderConfig, ProviderKind};

/// Base URL of Google's Generative Language API (`generative-language-api-key`).
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// Default base URL of `claude-api-key` entries.
pub const CLAUDE_BASE_URL: &str = "https://api.anthropic.com";
/// Default base URL of `codex-api-key` entries.
pub const CODEX_BASE_URL: &str = "https://api.openai.com/v1";

/// Models a `generative-language-api-key` serves (the key lists carry no model list).
pub const GEMINI_MODELS: &[&str] = &[
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash",
    "gemini-3-pro-preview",
];
/// Models a `claude-api-key` entry or a Claude token file serves.
pub const CLAUDE_MODELS: &[&str] = &[
    "claude-opus-4-5",
    "claude-opus-4-1",
    "claude-sonnet-4-5",
    "claude-sonnet-4-0",
    "claude-haiku-4-5",
];
/// Models a `codex-api-key` entry or a Codex token file serves.
pub const CODEX_MODELS: &[&str] = &[
    "gpt-5",
    "gpt-5-codex",
    "gpt-5.1",
    "gpt-5.1-codex",
    "gpt-5.1-codex-mini",
    "codex-mini-latest",
];
/// Models a Qwen token file serves.
pub const QWEN_MODELS: &[&str] = &["qwen3-coder-plus", "qwen3-coder-flash"];

/// What to do when an upstream says its quota is exhausted (seed 003 `quota-exceeded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QuotaExceeded {
    /// Move to another credential / project.
    #[serde(default = "yes")]
    pub switch_project: bool,
    /// Fall back to the configured preview model.
    #[serde(default = "yes")]
    pub switch_preview_model: bool,
}

impl Default for QuotaExceeded {
    fn default() -> Self {
        Self {
            switch_project: true,
            switch_preview_model: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// One `codex-api-key` / `claude-api-key` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// The upstream key.
    pub api_key: String,
    /// API root; empty = the provider's official endpoint.
    #[serde(default)]
    pub base_url: String,
}

/// One `openai-compatibility` provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OpenAiCompatibility {
    /// Unique name; also the provider's platform label (`openrouter,model`).
    pub name: String,
    /// API root, e.g. `https://openrouter.ai/api/v1`.
    pub base_url: String,
    /// Upstream keys, used in turn.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Models served, with optional aliases.
    #[serde(default)]
    pub models: Vec<CompatModel>,
}

/// A model of an `openai-compatibility` provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CompatModel {
    /// The upstream's model name.
    pub name: String,
    /// The name clients use; empty = the upstream name.
    #[serde(default)]
    pub alias: String,
}

/// Banning sources that keep presenting wrong management keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ManagementBan {
    /// Wrong keys from one address before it is banned.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// How long a ban lasts.
    #[serde(default = "default_ban", with = "crate::config::duration")]
    pub duration: Duration,
}

impl Default for ManagementBan {
    fn default() -> Self {
        Self {
            max_failures: default_max_failures(),
            duration: default_ban(),
        }
    }
}

fn default_max_failures() -> u32 {
    5
}
fn default_ban() -> Duration {
    Duration::from_secs(30 * 60)
}

/// A trusted reverse proxy: an address (`10.0.0.1`) or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(pub ipnet::IpNet);

impl TrustedProxy {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(ip)
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if let Ok(net) = text.parse::<ipnet::IpNet>() {
            return Ok(TrustedProxy(net));
        }
        text.parse::<IpAddr>()
            .map(|ip| TrustedProxy(ipnet::IpNet::from(ip)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{text}` is not an IP address or network like 10.0.0.0/8"
                ))
            })
    }
}

impl Serialize for TrustedProxy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

/// Largest `request-retry` accepted (config check, the management API and its OpenAPI schema
/// all use this one number): more attempts only multiply a failure's latency.
pub const MAX_REQUEST_RETRY: u32 = 20;

pub(crate) fn default_request_retry() -> u32 {
    3
}

pub(crate) fn default_auth_dir() -> String {
    "auths".into()
}

/// The auth directory: `auth-dir`, relative paths taken from the config file's directory.
pub fn auth_dir(config: &Config) -> PathBuf {
    config.resolve(std::path::Path::new(&config.auth_dir))
}

/// `${VAR}` references in the seed keys' secrets.
pub(crate) fn apply_env(
    config: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
    missing: &mut Vec<ConfigError>,
) {
    let mut expand = |v: &mut String, key: String| crate::config::expand(v, &key, env, missing);
    for (i, k) in config.generative_language_api_key.iter_mut().enumerate() {
        expand(k, format!("generative-language-api-key[{i}]"));
    }
    for (list, name) in [
        (&mut config.codex_api_key, "codex-api-key"),
        (&mut config.claude_api_key, "claude-api-key"),
    ] {
        for (i, e) in list.iter_mut().enumerate() {
            expand(&mut e.api_key, format!("{name}[{i}].api-key"));
        }
    }
    for (p, c) in config.openai_compatibility.iter_mut().enumerate() {
        for (i, k) in c.api_keys.iter_mut().enumerate() {
            expand(k, format!("openai-compatibility[{p}].api-keys[{i}]"));
        }
    }
    expand(
        &mut config.remote_management_key,
        "remote-management-key".into(),
    );
}

/// Checks of the seed keys, appended to `errors`.
pub(crate) fn validate(config: &Config, errors: &mut Vec<ConfigError>) {
    // `proxy-url` is checked with the other proxy settings, in `routing::validate`.
    let mut err = |key: String, reason: &str| errors.push(ConfigError::new(key, reason));
    let key_ok = |k: &str| !k.trim().is_empty() && http::HeaderValue::from_str(k).is_ok();
    for (i, k) in config.generative_language_api_key.iter().enumerate() {
        if !key_ok(k) {
            err(
                format!("generative-language-api-key[{i}]"),
                "must be a non-empty printable string",
            );
        }
    }
    for (list, name) in [
        (&config.codex_api_key, "codex-api-key"),
        (&config.claude_api_key, "claude-api-key"),
    ] {
        for (i, e) in list.iter().enumerate() {
            if !key_ok(&e.api_key) {
                err(
                    format!("{name}[{i}].api-key"),
                    "must be a non-empty printable string",
                );
            }
            if !e.base_url.is_empty() && !is_http_url(&e.base_url) {
                err(
                    format!("{name}[{i}].base-url"),
                    "must be empty or an http:// or https:// URL with a host",
                );
            }
        }
    }
    let mut names: std::collections::HashSet<&str> =
        config.providers.iter().map(|p| p.name.as_str()).collect();
    for (p, c) in config.openai_compatibility.iter().enumerate() {
        let at = |k: &str| format!("openai-compatibility[{p}].{k}");
        if c.name.trim().is_empty() || c.name.contains(',') {
            err(at("name"), "must be non-empty and contain no comma");
        } else if !names.insert(c.name.as_str()) {
            err(at("name"), "another provider already has this name");
        }
        if !is_http_url(&c.base_url) {
            err(
                at("base-url"),
                "must be an http:// or https:// URL with a host",
            );
        }
        for (i, k) in c.api_keys.iter().enumerate() {
            if !key_ok(k) {
                err(
                    at(&format!("api-keys[{i}]")),
                    "must be a non-empty printable string",
                );
            }
        }
        for (m, model) in c.models.iter().enumerate() {
            if model.name.trim().is_empty() {
                err(at(&format!("models[{m}].name")), "must not be empty");
            }
            if model.alias.contains(',') {
                err(at(&format!("models[{m}].alias")), "must contain no comma");
            }
        }
    }
    if config.auth_dir.trim().is_empty() {
        err("auth-dir".into(), "must not be empty");
    }
    if config.management_ban.max_failures == 0 {
        err("management-ban.max-failures".into(), "must be at least 1");
    }
}

fn is_http_url(text: &str) -> bool {
    reqwest::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// The providers the seed key lists describe, after the `providers:` list. Names are derived
/// from the key (`claude-api-key-0`), so logs and usage records say where a provider came from.
pub fn seed_providers(config: &Config) -> Vec<ProviderConfig> {
    let models = |names: &[&str]| -> Vec<ModelConfig> {
        names
            .iter()
            .map(|n| ModelConfig {
                name: (*n).to_string(),
                alias: None,
                ..Default::default()
            })
            .collect()
    };
    let provider =
        |name: String, kind, platform: &str, base_url: String, keys: Vec<String>| ProviderConfig {
            name,
            kind,
            platform: Some(platform.to_string()),
            base_url,
            api_keys: keys,
            models: Vec::new(),
            headers: Default::default(),
            timeouts: Default::default(),
            ..Default::default()
        };
    let mut out = Vec::new();
    if !config.generative_language_api_key.is_empty() {
        out.push(ProviderConfig {
            models: models(GEMINI_MODELS),
            ..provider(
                "generative-language-api-key".into(),
                ProviderKind::Gemini,
                "gemini",
                GEMINI_BASE_URL.into(),
                config.generative_language_api_key.clone(),
            )
        });
    }
    for (i, e) in config.claude_api_key.iter().enumerate() {
        let (base, platform) = if e.base_url.is_empty() {
            (CLAUDE_BASE_URL.to_string(), "claude-console")
        } else {
            (e.base_url.clone(), "claude-ccr")
        };
        out.push(ProviderConfig {
            models: models(CLAUDE_MODELS),
            ..provider(
                format!("claude-api-key-{i}"),
                ProviderKind::Anthropic,
                platform,
                base,
                vec![e.api_key.clone()],
            )
        });
    }
    for (i, e) in config.codex_api_key.iter().enumerate() {
        let base = if e.base_url.is_empty() {
            CODEX_BASE_URL.to_string()
        } else {
            e.base_url.clone()
        };
        out.push(ProviderConfig {
            models: models(CODEX_MODELS),
            ..provider(
                format!("codex-api-key-{i}"),
                ProviderKind::OpenaiResponses,
                "codex",
                base,
                vec![e.api_key.clone()],
            )
        });
    }
    for c in &config.openai_compatibility {
        out.push(ProviderConfig {
            models: c
                .models
                .iter()
                .map(|m| ModelConfig {
                    name: m.name.clone(),
                    alias: (!m.alias.is_empty() && m.alias != m.name).then(|| m.alias.clone()),
                    ..Default::default()
                })
                .collect(),
            ..provider(
                c.name.clone(),
                ProviderKind::OpenaiCompatible,
                &c.name,
                c.base_url.clone(),
                c.api_keys.clone(),
            )
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn load(yaml: &str) -> Result<Config, Vec<ConfigError>> {
        Config::from_yaml(yaml, |n| (n == "GKEY").then(|| "from-env".to_string()))
    }

    #[test]
    fn seed_example_keys_parse_and_become_providers() {
        let c = load(
            "
debug: true
proxy-url: ''
api-keys: [k1]
quota-exceeded: {switch-project: true, switch-preview-model: false}
generative-language-api-key: ['${GKEY}', AI-2]
request-log: true
request-retry: 5
claude-api-key:
  - {api-key: cr-1, base-url: 'https://example.com/api'}
  - {api-key: cr-2}
codex-api-key: [{api-key: sk-01, base-url: 'https://example/v1'}]
openai-compatibility:
  - name: openrouter
    base-url: https://openrouter.ai/api/v1
    api-keys: [sk-01]
    models: [{name: 'moonshotai/kimi-k2:free', alias: kimi-k2}]
allow-localhost-unauthenticated: true
",
        )
        .unwrap();
        assert!(!c.quota_exceeded.switch_preview_model);
        assert_eq!(c.request_retry, 5);
        let ps = seed_providers(&c);
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "generative-language-api-key",
                "claude-api-key-0",
                "claude-api-key-1",
                "codex-api-key-0",
                "openrouter"
            ]
        );
        assert_eq!(ps[0].api_keys, ["from-env", "AI-2"]);
        assert_eq!(ps[0].base_url, GEMINI_BASE_URL);
        assert_eq!(ps[1].platform(), "claude-ccr");
        assert_eq!(ps[2].base_url, CLAUDE_BASE_URL);
        assert_eq!(ps[3].kind, ProviderKind::OpenaiResponses);
        assert_eq!(ps[4].models[0].alias.as_deref(), Some("kimi-k2"));
        assert_eq!(ps[4].platform(), "openrouter");
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = load("").unwrap();
        assert!(c.quota_exceeded.switch_project && c.quota_exceeded.switch_preview_model);
        assert_eq!(c.request_retry, 3);
        assert!(!c.allow_remote_management && !c.allow_localhost_unauthenticated);
        assert_eq!(c.management_ban.max_failures, 5);
        assert_eq!(c.management_ban.duration, Duration::from_secs(1800));
    }

    #[test]
    fn bad_seed_keys_name_the_key() {
        let errs = load(
            "
proxy-url: 'ftp://x'
claude-api-key: [{api-key: '', base-url: nope}]
openai-compatibility:
  - {name: a, base-url: 'http://x'}
  - {name: a, base-url: ''}
trusted-proxies: [10.0.0.0/8, 127.0.0.1]
",
        )
        .unwrap_err();
        let keys: Vec<String> = errs.into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "proxy-url",
                "claude-api-key[0].api-key",
                "claude-api-key[0].base-url",
                "openai-compatibility[1].name",
                "openai-compatibility[1].base-url"
            ]
        );
        let errs = load("trusted-proxies: [not-an-ip]").unwrap_err();
        assert!(errs[0].to_string().contains("not-an-ip"), "{}", errs[0]);
    }
}
