//! The model catalog: every client-facing model name (upstream names and aliases) → the
//! providers that serve it, each with its priority tier and weight; `platform,model` narrows
//! the choice to one platform (seed 004).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sluice_dialect::Capabilities;

use crate::error::GatewayError;
use crate::providers::Provider;

/// A provider that serves a model, and the name it knows the model by.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<Provider>,
    pub upstream_model: Arc<str>,
    /// Higher tiers serve first.
    pub priority: i32,
    /// Share of its tier under the `weighted` strategy.
    pub weight: u32,
    /// What the model can do at this provider.
    pub capabilities: Capabilities,
}

/// One model's providers and where each strategy's rotation stands.
#[derive(Debug)]
pub struct Entry {
    /// The client-facing name.
    pub name: String,
    pub targets: Vec<Target>,
    /// `preview-model`: where `quota-exceeded.switch-preview-model` falls back to.
    pub preview: Option<String>,
    rotation: Mutex<Rotation>,
}

impl Entry {
    /// What the model can do at any of its providers.
    pub fn capabilities(&self) -> Capabilities {
        self.targets
            .iter()
            .fold(Capabilities::NONE, |all, t| all.union(t.capabilities))
    }
}

/// Rotation state of one model.
#[derive(Debug, Default, Clone)]
pub struct Rotation {
    /// Round-robin counter over the tier's credentials.
    pub turn: usize,
    /// Smooth weighted round-robin: each target's current weight.
    pub current: Vec<i64>,
    /// Per target: the next of its credentials in turn.
    pub cursor: Vec<usize>,
}

impl Entry {
    pub fn rotation(&self) -> MutexGuard<'_, Rotation> {
        // The rotation is a set of counters: any value is valid, so a poisoned lock is fine.
        let mut rotation = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
        if rotation.current.len() != self.targets.len() {
            rotation.current = vec![0; self.targets.len()];
            rotation.cursor = vec![0; self.targets.len()];
        }
        rotation
    }
}

/// A provider and the models it serves: `(upstream name, alias, preview-model)`.
pub type ProviderModels = (Arc<Provider>, Vec<ModelName>, i32, u32);

/// A model's upstream name, optional alias, optional preview model and capabilities.
#[derive(Debug, Clone)]
pub struct ModelName {
    pub name: String,
    pub alias: Option<String>,
    pub preview: Option<String>,
    pub capabilities: Capabilities,
}

/// Every model the gateway serves.
#[derive(Debug, Default)]
pub struct Catalog {
    entries: HashMap<String, Entry>,
    /// Client-facing names in config order, for `/v1/models`.
    listed: Vec<(String, Arc<str>)>,
    /// Every provider, in config order.
    providers: Vec<Arc<Provider>>,
}

/// A request's model resolved: its entry and the platform restriction that applies.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'c> {
    pub entry: &'c Entry,
    pub platform: Option<&'c str>,
}

impl Catalog {
    pub fn new(providers: &[ProviderModels]) -> Self {
        let mut catalog = Catalog::default();
        for (provider, models, priority, weight) in providers {
            catalog.providers.push(provider.clone());
            for model in models {
                let upstream_model: Arc<str> = model.name.as_str().into();
                for public in std::iter::once(&model.name).chain(model.alias.as_ref()) {
                    let entry = catalog.entries.entry(public.clone()).or_insert_with(|| {
                        catalog
                            .listed
                            .push((public.clone(), provider.common().name.clone()));
                        Entry {
                            name: public.clone(),
                            targets: Vec::new(),
                            preview: None,
                            rotation: Mutex::default(),
                        }
                    });
                    if entry.preview.is_none() {
                        entry.preview.clone_from(&model.preview);
                    }
                    entry.targets.push(Target {
                        provider: provider.clone(),
                        upstream_model: upstream_model.clone(),
                        priority: *priority,
                        weight: (*weight).max(1),
                        capabilities: model.capabilities,
                    });
                }
            }
        }
        catalog
    }

    /// Resolves a requested model (`model` or `platform,model`).
    /// `only_platform` is the endpoint's own restriction (seed 004's `/gemini/v1/chat`).
    pub fn resolve<'c>(
        &'c self,
        requested: &'c str,
        only_platform: Option<&'c str>,
    ) -> Result<Resolved<'c>, GatewayError> {
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
        if !entry.targets.iter().any(|t| serves_platform(t, platform)) {
            return Err(GatewayError::model_not_found(requested));
        }
        Ok(Resolved { entry, platform })
    }

    /// The entry of a client-facing model name.
    pub fn entry(&self, model: &str) -> Option<&Entry> {
        self.entries.get(model)
    }

    /// Every provider, in config order.
    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// Client-facing model names with the provider that first offered each.
    pub fn models(&self) -> impl Iterator<Item = (&str, &str)> {
        self.listed.iter().map(|(m, p)| (m.as_str(), &**p))
    }

    /// What a client-facing model can do (nothing, when it is not served).
    pub fn capabilities(&self, model: &str) -> Capabilities {
        self.entries
            .get(model)
            .map_or(Capabilities::NONE, Entry::capabilities)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether a target may serve under a platform restriction.
pub fn serves_platform(target: &Target, platform: Option<&str>) -> bool {
    platform.is_none_or(|p| &*target.provider.common().platform == p)
}
