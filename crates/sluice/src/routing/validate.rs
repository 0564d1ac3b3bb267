//! Config checks for the keys this module owns (routing, cooldowns, retries, proxies,
//! credentials, the token pool and the provider kinds' own settings). Called from
//! `Config::validate`, so `sluice config check` reports them with every other problem.

use crate::config::{Config, ProviderConfig, ProviderKind};

/// Collects one problem: the dotted key and the reason.
pub type Report<'a> = dyn FnMut(String, &str) + 'a;

use crate::settings::MAX_REQUEST_RETRY;

/// Checks the top-level keys.
pub fn top_level(config: &Config, err: &mut Report<'_>) {
    if config.request_retry > MAX_REQUEST_RETRY {
        err(
            "request-retry".into(),
            &format!("must be at most {MAX_REQUEST_RETRY} extra attempts"),
        );
    }
    let c = &config.cooldown;
    for (name, d) in [
        ("quota-backoff", c.quota_backoff),
        ("quota-backoff-max", c.quota_backoff_max),
        ("server-error", c.server_error),
    ] {
        if d.is_zero() {
            err(format!("cooldown.{name}"), "must be greater than zero");
        }
    }
    if c.quota_backoff > c.quota_backoff_max {
        err(
            "cooldown.quota-backoff".into(),
            "must not exceed cooldown.quota-backoff-max",
        );
    }
    if c.server_error_threshold == 0 {
        err(
            "cooldown.server-error-threshold".into(),
            "must be at least 1",
        );
    }
    if config.routing.shared_sticky_sessions
        && (!config.routing.sticky_sessions || config.limits.redis.is_empty())
    {
        err(
            "routing.shared-sticky-sessions".into(),
            "needs routing.sticky-sessions and limits.redis",
        );
    }
    if config.routing.sticky_ttl.is_zero() {
        err("routing.sticky-ttl".into(), "must be greater than zero");
    }
    if http::HeaderName::from_bytes(config.routing.session_header.as_bytes()).is_err() {
        err("routing.session-header".into(), "not a valid header name");
    }
    if let Err(reason) = check_proxy(&config.proxy_url) {
        err("proxy-url".into(), &reason);
    }
    let pooled: Vec<&ProviderConfig> = config.providers.iter().filter(|p| p.token_pool).collect();
    match &config.token_pool {
        Some(pool) => {
            if !pool.service_key.starts_with("sk-") || pool.service_key.len() < 8 {
                err(
                    "token-pool.service-key".into(),
                    "must start with `sk-` and be at least 8 characters (seed 000)",
                );
            }
            if pool.data_dir.trim().is_empty() {
                err("token-pool.data-dir".into(), "must not be empty");
            }
            match reqwest::Url::parse(&pool.refresh_url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {}
                _ => err(
                    "token-pool.refresh-url".into(),
                    "must be an http:// or https:// URL",
                ),
            }
            if pooled.len() > 1 {
                err(
                    "providers".into(),
                    "only one provider may set `token-pool: true`",
                );
            } else if pooled.is_empty() {
                err(
                    "token-pool".into(),
                    "no provider takes the pool's tokens: set `token-pool: true` on one",
                );
            }
        }
        None if !pooled.is_empty() => err(
            "token-pool".into(),
            "a provider sets `token-pool: true`, so the top-level `token-pool` block (with its service-key) is required",
        ),
        None => {}
    }
    let served: std::collections::HashSet<&str> = config
        .providers
        .iter()
        .flat_map(|p| p.models.iter())
        .flat_map(|m| std::iter::once(m.name.as_str()).chain(m.alias.as_deref()))
        .collect();
    for (p, provider) in config.providers.iter().enumerate() {
        for (m, model) in provider.models.iter().enumerate() {
            if let Some(preview) = model.preview_model.as_deref() {
                let at = format!("providers[{p}].models[{m}].preview-model");
                if preview == model.name || Some(preview) == model.alias.as_deref() {
                    err(at, "must name a different model");
                } else if !served.contains(preview) {
                    err(at, "no provider serves this model");
                }
            }
        }
    }
}

/// Checks one provider's keys.
pub fn provider(_config: &Config, p: usize, provider: &ProviderConfig, err: &mut Report<'_>) {
    let at = |k: &str| format!("providers[{p}].{k}");
    if provider.weight == 0 {
        err(at("weight"), "must be at least 1");
    }
    if let Some(proxy) = &provider.proxy_url
        && let Err(reason) = check_proxy(proxy)
    {
        err(at("proxy-url"), &reason);
    }
    let bedrock = provider.kind == ProviderKind::Bedrock;
    for (c, credential) in provider.credentials.iter().enumerate() {
        let at = |k: &str| format!("providers[{p}].credentials[{c}].{k}");
        if let Some(proxy) = &credential.proxy_url
            && let Err(reason) = check_proxy(proxy)
        {
            err(at("proxy-url"), &reason);
        }
        let sigv4 = credential.access_key_id.is_some() || credential.secret_access_key.is_some();
        if sigv4 && !bedrock {
            err(
                at("access-key-id"),
                "AWS keys are for `kind: bedrock` providers only",
            );
        } else if sigv4
            && (credential
                .access_key_id
                .as_deref()
                .is_none_or(str::is_empty)
                || credential
                    .secret_access_key
                    .as_deref()
                    .is_none_or(str::is_empty))
        {
            err(
                at("secret-access-key"),
                "give both access-key-id and secret-access-key",
            );
        } else if sigv4 && credential.api_key.is_some() {
            err(
                at("api-key"),
                "give either an api-key or AWS access keys, not both",
            );
        } else if !sigv4 && credential.api_key.as_deref().is_none_or(str::is_empty) {
            err(at("api-key"), "must not be empty");
        }
        for (name, value) in [
            ("api-key", &credential.api_key),
            ("session-token", &credential.session_token),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| http::HeaderValue::from_str(v).is_err())
            {
                err(at(name), "must be a printable string");
            }
        }
    }
    if provider.allow_client_tokens && !provider.bearer_auth() {
        err(
            at("allow-client-tokens"),
            "only for kinds that send `Authorization: Bearer` (openai-compatible, openai-responses, qwen, codex)",
        );
    }
    if provider.token_pool
        && !matches!(
            provider.kind,
            ProviderKind::Qwen | ProviderKind::OpenaiCompatible
        )
    {
        err(
            at("token-pool"),
            "only `qwen` and `openai-compatible` providers take uploaded tokens",
        );
    }
    if provider.kind == ProviderKind::AzureOpenai
        && provider
            .api_version
            .as_deref()
            .is_some_and(|v| v.trim().is_empty() || v.contains(['&', '#', ' ']))
    {
        err(at("api-version"), "not an api-version like 2024-10-21");
    }
    let code_assist = provider.kind == ProviderKind::GeminiCodeAssist;
    match provider.project.as_deref() {
        Some(_) if !code_assist => err(at("project"), "only for `kind: gemini-code-assist`"),
        None if code_assist => err(
            at("project"),
            "required for gemini-code-assist: the account's Code Assist project (`sluice login gemini` prints it)",
        ),
        Some(p) if p.trim().is_empty() || p.contains(['"', '\\', '/']) => {
            err(at("project"), "not a Google Cloud project id")
        }
        _ => {}
    }
    if provider.kind == ProviderKind::Bedrock
        && provider.region.as_deref().is_none_or(|r| {
            r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        err(at("region"), "required for bedrock, e.g. us-east-1");
    }
}

/// A proxy setting: empty, `direct`, or an `http`, `https`, `socks5` or `socks5h` URL.
pub fn check_proxy(proxy: &str) -> Result<(), String> {
    let proxy = proxy.trim();
    if proxy.is_empty() || proxy == "direct" {
        return Ok(());
    }
    match reqwest::Url::parse(proxy) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h")
                && url.host().is_some() =>
        {
            Ok(())
        }
        // The reason never repeats the URL: it may carry a password.
        Ok(_) => Err(
            "must be an http://, https://, socks5:// or socks5h:// URL with a host, or `direct`"
                .into(),
        ),
        Err(e) => Err(format!("not a URL ({e})")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::config::Config;

    fn problems(yaml: &str) -> Vec<String> {
        match Config::from_yaml(yaml, |_| None) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.key).collect(),
        }
    }

    #[test]
    fn routing_keys_are_checked_and_named() {
        let bad = "
request-retry: 99
proxy-url: ftp://proxy
cooldown: {quota-backoff: 1h, quota-backoff-max: 1m, server-error-threshold: 0}
routing: {session-header: 'bad header'}
providers:
  - name: a
    kind: openai-compatible
    base-url: http://a
    weight: 0
    proxy-url: 'socks5://'
    credentials: [{api-key: ''}, {access-key-id: AKID, secret-access-key: s}]
    models: [{name: m, preview-model: nowhere}]
";
        assert_eq!(
            problems(bad),
            [
                "providers[0].weight",
                "providers[0].proxy-url",
                "providers[0].credentials[0].api-key",
                "providers[0].credentials[1].access-key-id",
                "request-retry",
                "cooldown.quota-backoff",
                "cooldown.server-error-threshold",
                "routing.session-header",
                "proxy-url",
                "providers[0].models[0].preview-model",
            ]
        );
        let good = "
proxy-url: 'socks5://user:pass@127.0.0.1:1080'
routing: {strategy: weighted, sticky-sessions: true}
providers:
  - {name: a, kind: openai-compatible, base-url: 'http://a', priority: 2, weight: 3, proxy-url: direct, models: [{name: m, preview-model: n}]}
  - {name: b, kind: qwen, models: [{name: n}], credentials: [{api-key: k, proxy-url: 'http://u:p@h:3128'}]}
";
        assert_eq!(problems(good), Vec::<String>::new());
    }

    #[test]
    fn proxy_errors_never_repeat_the_url() {
        let reason = super::check_proxy("ftp://user:secret@host").unwrap_err();
        assert!(!reason.contains("secret"), "{reason}");
    }
}
