//! A key's permissions: which platforms and models it may use (seed 004's `allowed_platforms`
//! and `allowed_models`), and routing a request within them.

use crate::error::GatewayError;
use crate::routing::Plan;

use super::CachedKey;

/// Comma-separated names; `all` or empty means everything. A name ending in `*` matches by
/// prefix (`claude-*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList {
    /// `None` = everything.
    names: Option<Vec<String>>,
}

impl AllowList {
    /// `allowed_platforms`: `all` (the default) or a list.
    pub fn platforms(text: &str) -> Self {
        Self::parse(text)
    }

    /// `allowed_models`: empty (all) or a list.
    pub fn models(text: &str) -> Self {
        Self::parse(text)
    }

    fn parse(text: &str) -> Self {
        let names: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        if names.is_empty() || names.iter().any(|n| n.eq_ignore_ascii_case("all")) {
            Self { names: None }
        } else {
            Self { names: Some(names) }
        }
    }

    pub fn allows_all(&self) -> bool {
        self.names.is_none()
    }

    pub fn allows(&self, name: &str) -> bool {
        self.names.as_ref().is_none_or(|names| {
            names.iter().any(|n| match n.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => n == name,
            })
        })
    }
}

/// Narrows a routing plan to what `key` may use: a model served by several platforms goes to
/// one the key allows; a platform the request names (or the endpoint's) must be allowed (403
/// otherwise); the model, as asked for or as served upstream, must be allowed (403 otherwise).
pub fn restrict_plan(
    plan: &mut Plan<'_>,
    requested: &str,
    endpoint_platform: Option<&str>,
    key: Option<&CachedKey>,
) -> Result<(), GatewayError> {
    let Some(key) = key else {
        return Ok(());
    };
    let (named_platform, model) = match requested.split_once(',') {
        Some((p, m)) => (Some(p.trim()), m.trim()),
        None => (None, requested),
    };
    if !key.platforms.allows_all() {
        if let Some(platform) = named_platform.or(endpoint_platform)
            && !key.platforms.allows(platform)
        {
            return Err(GatewayError::platform_not_allowed(platform));
        }
        let first = plan.first_platform().unwrap_or_default().to_string();
        let platforms = key.platforms.clone();
        if !plan.restrict(move |t| platforms.allows(&t.provider.common().platform)) {
            return Err(GatewayError::platform_not_allowed(&first));
        }
    }
    if !key.models.allows(model) {
        let models = key.models.clone();
        if !plan.restrict(move |t| models.allows(&t.upstream_model)) {
            return Err(GatewayError::model_not_allowed(model));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;
    use crate::limits::KeyLimits;
    use crate::store::Status;

    fn key(platforms: &str, models: &str) -> CachedKey {
        CachedKey {
            id: 1,
            user_id: 1,
            status: Status::Active,
            expires_at: None,
            platforms: AllowList::platforms(platforms),
            models: AllowList::models(models),
            limits: KeyLimits {
                key_id: 1,
                rate_limit: 0,
                daily_limit: 0,
                monthly_quota: 0,
            },
        }
    }

    fn router() -> crate::routing::Router {
        let config = Config::from_yaml(
            "
providers:
  - {name: a, kind: openai-compatible, platform: openai, base-url: 'http://a', models: [{name: gpt-4o, alias: fast}, {name: shared}]}
  - {name: b, kind: openai-compatible, platform: azure-openai, base-url: 'http://b', models: [{name: shared}]}
",
            |_| None,
        )
        .unwrap();
        crate::gateway::Runtime::build(&config).unwrap().router
    }

    /// The provider that would serve `requested` for `key`, or the error code.
    fn route(
        r: &crate::routing::Router,
        requested: &str,
        key: Option<&CachedKey>,
    ) -> Result<String, String> {
        let code = |e: GatewayError| e.body.code.unwrap_or_default();
        let mut plan = r.plan(requested, None, None).map_err(code)?;
        restrict_plan(&mut plan, requested, None, key).map_err(code)?;
        let pick = plan.next_pick().map_err(|_| "exhausted".to_string())?;
        Ok(pick.target.provider.name().to_string())
    }

    #[test]
    fn lists_parse_and_match() {
        assert!(AllowList::platforms("all").allows_all());
        assert!(AllowList::models("").allows_all());
        let l = AllowList::models(" gpt-4o , claude-* ");
        assert!(l.allows("gpt-4o") && l.allows("claude-sonnet-4") && !l.allows("gpt-4o-mini"));
    }

    #[test]
    fn routing_stays_within_allowed_platforms() {
        let r = router();
        let azure = key("azure-openai", "");
        for _ in 0..4 {
            assert_eq!(route(&r, "shared", Some(&azure)).unwrap(), "b");
        }
        assert_eq!(
            route(&r, "gpt-4o", Some(&azure)).unwrap_err(),
            "platform_not_allowed"
        );
        assert_eq!(
            route(&r, "openai,shared", Some(&azure)).unwrap_err(),
            "platform_not_allowed"
        );
        assert_eq!(
            route(&r, "nope", Some(&azure)).unwrap_err(),
            "model_not_found"
        );
    }

    #[test]
    fn models_are_checked_by_requested_or_served_name() {
        let r = router();
        let only = key("all", "gpt-4o");
        assert!(route(&r, "gpt-4o", Some(&only)).is_ok());
        assert!(route(&r, "fast", Some(&only)).is_ok(), "alias of gpt-4o");
        assert_eq!(
            route(&r, "shared", Some(&only)).unwrap_err(),
            "model_not_allowed"
        );
        assert!(route(&r, "shared", None).is_ok());
    }
}
