//! Phase 3: which provider serves the model. The catalog maps every client-facing model name
//! (upstream names and aliases) to the providers that serve it; `platform,model` narrows the
//! choice to one platform (seed 004).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::GatewayError;
use crate::providers::Provider;

/// A model's upstream name and optional client-facing alias.
pub type ModelName = (String, Option<String>);

/// A provider that serves a model, and the name it knows the model by.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<Provider>,
    pub upstream_model: Arc<str>,
}

#[derive(Debug, Default)]
struct Entry {
    targets: Vec<Target>,
    next: AtomicUsize,
}

/// Every model the gateway serves.
#[derive(Debug, Default)]
pub struct Catalog {
    entries: HashMap<String, Entry>,
    /// Client-facing names in config order, for `/v1/models`.
    listed: Vec<(String, Arc<str>)>,
}

/// The routing decision for one request.
#[derive(Debug, Clone)]
pub struct Route {
    pub target: Target,
}

impl Catalog {
    pub fn new(providers: &[(Arc<Provider>, Vec<ModelName>)]) -> Self {
        let mut catalog = Catalog::default();
        for (provider, models) in providers {
            for (name, alias) in models {
                let upstream_model: Arc<str> = name.as_str().into();
                for public in std::iter::once(name).chain(alias.as_ref()) {
                    let entry = catalog.entries.entry(public.clone()).or_insert_with(|| {
                        catalog
                            .listed
                            .push((public.clone(), provider.common().name.clone()));
                        Entry::default()
                    });
                    entry.targets.push(Target {
                        provider: provider.clone(),
                        upstream_model: upstream_model.clone(),
                    });
                }
            }
        }
        catalog
    }

    /// Resolves a requested model (`model` or `platform,model`) to a target, taking providers
    /// that serve the same model in turn.
    /// `only_platform` is the endpoint's own restriction (seed 004's `/gemini/v1/chat`).
    pub fn resolve(
        &self,
        requested: &str,
        only_platform: Option<&str>,
    ) -> Result<Route, GatewayError> {
        let (platform, model) = match requested.split_once(',') {
            Some((platform, model)) => (Some(platform.trim()), model.trim()),
            None => (None, requested),
        };
        if let (Some(named), Some(only)) = (platform, only_platform)
            && named != only
        {
            return Err(GatewayError::model_not_found(requested));
        }
        let platform = platform.or(only_platform);
        let entry = self
            .entries
            .get(model)
            .ok_or_else(|| GatewayError::model_not_found(requested))?;
        let eligible = |t: &&Target| platform.is_none_or(|p| &*t.provider.common().platform == p);
        let count = entry.targets.iter().filter(eligible).count();
        if count == 0 {
            return Err(GatewayError::model_not_found(requested));
        }
        let n = entry.next.fetch_add(1, Ordering::Relaxed) % count;
        let target = entry.targets.iter().filter(eligible).nth(n).cloned();
        target
            .map(|target| Route { target })
            .ok_or_else(|| GatewayError::model_not_found(requested))
    }

    /// Client-facing model names with the provider that first offered each.
    pub fn models(&self) -> impl Iterator<Item = (&str, &str)> {
        self.listed.iter().map(|(m, p)| (m.as_str(), &**p))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Config;

    fn catalog() -> Catalog {
        let config = Config::from_yaml(
            "
providers:
  - {name: a, kind: openai-compatible, platform: openai, base-url: 'http://a', models: [{name: m1, alias: fast}, {name: shared}]}
  - {name: b, kind: openai-compatible, platform: qwen, base-url: 'http://b', models: [{name: shared}]}
",
            |_| None,
        )
        .unwrap();
        crate::gateway::build_catalog(&config).unwrap()
    }

    #[test]
    fn aliases_and_names() {
        let c = catalog();
        let r = c.resolve("fast", None).unwrap();
        assert_eq!(
            (r.target.provider.name(), &*r.target.upstream_model),
            ("a", "m1")
        );
        assert_eq!(&*c.resolve("m1", None).unwrap().target.upstream_model, "m1");
        let err = c.resolve("nope", None).unwrap_err();
        assert_eq!(err.body.code.as_deref(), Some("model_not_found"));
        let names: Vec<_> = c.models().map(|(m, _)| m).collect();
        assert_eq!(names, vec!["m1", "fast", "shared"]);
    }

    #[test]
    fn shared_models_alternate_and_platform_narrows() {
        let c = catalog();
        let picks: Vec<String> = (0..4)
            .map(|_| {
                c.resolve("shared", None)
                    .unwrap()
                    .target
                    .provider
                    .name()
                    .to_string()
            })
            .collect();
        assert_eq!(picks, vec!["a", "b", "a", "b"]);
        for _ in 0..3 {
            assert_eq!(
                c.resolve("qwen,shared", None)
                    .unwrap()
                    .target
                    .provider
                    .name(),
                "b"
            );
        }
        assert!(c.resolve("qwen,m1", None).is_err());
        assert!(c.resolve("gemini,shared", None).is_err());
        assert_eq!(
            c.resolve("shared", Some("qwen"))
                .unwrap()
                .target
                .provider
                .name(),
            "b"
        );
        assert!(c.resolve("openai,shared", Some("qwen")).is_err());
        assert!(c.resolve("m1", Some("qwen")).is_err());
    }
}
