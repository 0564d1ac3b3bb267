//! State several gateway instances share, behind traits free of any driver: routing health
//! (cooldown windows, probes, disables), change events, and locks. [`crate::redis`] implements
//! them on Redis; a single instance needs none of them.
//!
//! Everything here is *soft* state: rebuildable (cooldowns expire, counters reseed from the
//! store) or an optimisation (events; the periodic refresh is the backstop). Durable facts live
//! in the [`crate::Store`].

use std::fmt::Debug;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Something that changed on one instance and that every instance must apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Users or keys changed in the store: re-read what changed.
    Keys,
    /// A credential cools down for a model for `remaining_ms` more (the later deadline wins).
    Cooled {
        credential: String,
        model: String,
        remaining_ms: u64,
        reason: String,
    },
    /// A credential's probe succeeded: its cooldown for the model is over everywhere.
    Cleared { credential: String, model: String },
    /// A credential was refused upstream (401/403) and is disabled everywhere.
    Disabled { credential: String, reason: String },
    /// A disabled credential may be tried again (its config was fixed and reloaded).
    Enabled { credential: String },
    /// Messages may have been missed (the epoch moved without them, or the subscription was
    /// re-established): re-read everything shared.
    Resync,
}

/// Shared cooldowns and disables, as one instance reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingSnapshot {
    /// (credential, model, remaining ms, reason) of every live cooldown window.
    pub cooling: Vec<(String, String, u64, String)>,
    /// (credential, reason) of every disabled credential.
    pub disabled: Vec<(String, String)>,
}

/// Routing health shared across instances. Every call is best-effort: when the shared service is
/// unreachable the answers fall back to "decide locally" (a probe is allowed, nothing is shared).
#[async_trait]
pub trait SharedRouting: Send + Sync + Debug + 'static {
    /// Cools `credential` for `model` for `window_ms` from now (the shared clock's now); a
    /// longer window already set is kept. Returns the window in effect (ms from now).
    async fn cool(&self, credential: &str, model: &str, window_ms: u64, reason: &str) -> u64;
    /// Ends the credential's cooldown for the model everywhere (its probe succeeded).
    async fn clear(&self, credential: &str, model: &str);
    /// Takes the one probe of a cooled credential across all instances for `lease_ms`;
    /// `false`: another instance is probing it.
    async fn try_probe(&self, credential: &str, model: &str, lease_ms: u64) -> bool;
    /// Disables a credential everywhere.
    async fn disable(&self, credential: &str, reason: &str);
    /// Re-enables a credential everywhere.
    async fn enable(&self, credential: &str);
    /// Every live cooldown and disable.
    async fn snapshot(&self) -> Option<RoutingSnapshot>;
    /// The credential a session (an opaque digest) is bound to on any instance.
    async fn session(&self, session: &str) -> Option<String>;
    /// Binds a session to a credential for `ttl_ms` on every instance.
    async fn bind_session(&self, session: &str, credential: &str, ttl_ms: u64);
}

/// Publishes changes to every instance (including this one's own subscribers).
#[async_trait]
pub trait EventBus: Send + Sync + Debug + 'static {
    async fn publish(&self, event: Event);
    /// Events as they arrive (and [`Event::Resync`] when some may have been missed).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event>;
}

/// A lock held by one instance at a time (single-flight work such as refreshing an OAuth token
/// whose refresh token rotates), released on drop or when its lease ends.
#[async_trait]
pub trait SharedLock: Send + Sync + Debug + 'static {
    /// Takes `name` for `lease_ms`; `None` when another holder has it. When the shared service
    /// is unreachable the lock is granted (the caller's own in-process single-flight still
    /// holds).
    async fn try_lock(&self, name: &str, lease_ms: u64) -> Option<LockToken>;
    /// Releases a lock this holder took (a lock whose lease ended and was taken by another
    /// holder is left alone).
    async fn unlock(&self, token: LockToken);
}

/// Proof of holding a [`SharedLock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockToken {
    pub name: String,
    pub value: String,
}

/// Whether a shared service is reachable, for `/readyz`, logs and metrics. Cheap to read.
#[derive(Debug, Default)]
pub struct Health {
    degraded: AtomicBool,
    reason: Mutex<String>,
}

impl Health {
    /// `Some(reason)` while degraded.
    pub fn degraded(&self) -> Option<String> {
        self.degraded
            .load(Ordering::Relaxed)
            .then(|| self.reason.lock().map(|r| r.clone()).unwrap_or_default())
    }

    /// Whether the service is believed reachable.
    pub fn is_up(&self) -> bool {
        !self.degraded.load(Ordering::Relaxed)
    }

    /// Marks the service unreachable; true when this is a change (log it once).
    pub fn set_down(&self, reason: String) -> bool {
        if let Ok(mut r) = self.reason.lock() {
            *r = reason;
        }
        !self.degraded.swap(true, Ordering::Relaxed)
    }

    /// Marks the service reachable again; true when this is a change.
    pub fn set_up(&self) -> bool {
        self.degraded.swap(false, Ordering::Relaxed)
    }
}
