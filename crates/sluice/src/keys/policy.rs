//! A key's permissions: which platforms and models it may use (seed 004's `allowed_platforms`
//! and `allowed_models`), and routing a request within them.

use crate::error::GatewayError;
use crate::pipeline::route::{Catalog, Route};

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

    /// Names without wildcards (platforms a request can be routed to).
    fn exact(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .flatten()
            .filter(|n| !n.ends_with('*'))
            .map(String::as_str)
    }
}

/// Routes a request the way [`Catalog::resolve`] does, staying within what `key` may use:
/// a model served by several platforms goes to one the key allows; a platform it names (or
/// the endpoint's) must be allowed (403 otherwise); the model, as asked for or as served
/// upstream, must be allowed (403 otherwise).
pub fn route_within(
    catalog: &Catalog,
    requested: &str,
    endpoint_platform: Option<&str>,
    key: Option<&CachedKey>,
) -> Result<Route, GatewayError> {
    let Some(key) = key else {
        return catalog.resolve(requested, endpoint_platform);
    };
    let (named_platform, model) = match requested.split_once(',') {
        Some((p, m)) => (Some(p.trim()), m.trim()),
        None => (None, requested),
    };
    let route = if key.platforms.allows_all() {
        catalog.resolve(requested, endpoint_platform)?
    } else if let Some(platform) = named_platform.or(endpoint_platform) {
        if !key.platforms.allows(platform) {
            return Err(GatewayError::platform_not_allowed(platform));
        }
        catalog.resolve(requested, endpoint_platform)?
    } else {
        let first = catalog.resolve(requested, None)?;
        if key
            .platforms
            .allows(&first.target.provider.common().platform)
        {
            first
        } else {
            key.platforms
                .exact()
                .find_map(|p| catalog.resolve(model, Some(p)).ok())
                .ok_or_else(|| {
                    GatewayError::platform_not_allowed(&first.target.provider.common().platform)
                })?
        }
    };
    if !key.models.allows(model) && !key.models.allows(&route.target.upstream_model) {
        return Err(GatewayError::model_not_allowed(model));
    }
    Ok(route)
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

    fn catalog() -> Catalog {
        let config = Config::from_yaml(
            "
providers:
  - {name: a, kind: openai-compatible, platform: openai, base-url: 'http://a', models: [{name: gpt-4o, alias: fast}, {name: shared}]}
  - {name: b, kind: openai-compatible, platform: azure-openai, base-url: 'http://b', models: [{name: shared}]}
",
            |_| None,
        )
        .unwrap();
        crate::gateway::build_catalog(&config).unwrap()
    }

    fn code(r: Result<Route, GatewayError>) -> String {
        r.unwrap_err().body.code.unwrap_or_default()
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
        let c = catalog();
        let azure = key("azure-openai", "");
        for _ in 0..4 {
            let r = route_within(&c, "shared", None, Some(&azure)).unwrap();
            assert_eq!(r.target.provider.name(), "b");
        }
        assert_eq!(
            code(route_within(&c, "gpt-4o", None, Some(&azure))),
            "platform_not_allowed"
        );
        assert_eq!(
            code(route_within(&c, "openai,shared", None, Some(&azure))),
            "platform_not_allowed"
        );
        assert_eq!(
            code(route_within(&c, "nope", None, Some(&azure))),
            "model_not_found"
        );
    }

    #[test]
    fn models_are_checked_by_requested_or_served_name() {
        let c = catalog();
        let only = key("all", "gpt-4o");
        assert!(route_within(&c, "gpt-4o", None, Some(&only)).is_ok());
        assert!(
            route_within(&c, "fast", None, Some(&only)).is_ok(),
            "alias of gpt-4o"
        );
        assert_eq!(
            code(route_within(&c, "shared", None, Some(&only))),
            "model_not_allowed"
        );
        assert!(route_within(&c, "shared", None, None).is_ok());
    }
}
