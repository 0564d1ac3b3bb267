//! Sticky sessions: a session keeps the credential that last served it, so the upstream's
//! prompt cache stays warm. A binding lives `sticky-ttl` past its last use, and is released
//! as soon as its credential cannot take a request (cooling, probing or disabled).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::HeaderMap;
use sha2::{Digest, Sha256};
use sluice_dialect::Dialect;

/// Bindings kept at most; past this, expired ones are swept, and new sessions go unbound
/// until some expire.
const MAX_BINDINGS: usize = 100_000;

/// A session, identified by a digest of its key and the model (never the raw key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 16]);

impl SessionKey {
    /// Lowercase hex, for naming the binding in shared state.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn new(model: &str, session: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(model.as_bytes())
            .chain_update([0])
            .chain_update(session.as_bytes())
            .finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }
}

/// The session of a request: the configured header, else Anthropic's `metadata.user_id`.
pub fn session_of(
    header: &http::HeaderName,
    headers: &HeaderMap,
    dialect: Dialect,
    body: &[u8],
) -> Option<String> {
    if let Some(value) = headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        return Some(value.to_string());
    }
    if dialect != Dialect::Anthropic {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Body {
        metadata: Option<Metadata>,
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        user_id: Option<String>,
    }
    serde_json::from_slice::<Body>(body)
        .ok()?
        .metadata?
        .user_id
        .filter(|id| !id.is_empty())
}

#[derive(Debug)]
struct Binding {
    credential: Arc<str>,
    expires: Instant,
}

/// Session → credential bindings.
#[derive(Debug)]
pub struct Sticky {
    ttl: Duration,
    bindings: Mutex<HashMap<SessionKey, Binding>>,
}

impl Sticky {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            bindings: Mutex::default(),
        }
    }

    /// The key of a session for a model.
    pub fn key(model: &str, session: &str) -> SessionKey {
        SessionKey::new(model, session)
    }

    /// The credential a session is bound to, if the binding is alive.
    pub fn bound(&self, key: &SessionKey, now: Instant) -> Option<Arc<str>> {
        let bindings = self.bindings.lock().unwrap_or_else(PoisonError::into_inner);
        bindings
            .get(key)
            .filter(|b| b.expires > now)
            .map(|b| b.credential.clone())
    }

    /// Binds (or re-binds, refreshing the TTL) a session to the credential that served it.
    pub fn bind(&self, key: SessionKey, credential: Arc<str>, now: Instant) {
        let mut bindings = self.bindings.lock().unwrap_or_else(PoisonError::into_inner);
        if bindings.len() >= MAX_BINDINGS && !bindings.contains_key(&key) {
            bindings.retain(|_, b| b.expires > now);
            if bindings.len() >= MAX_BINDINGS {
                return;
            }
        }
        bindings.insert(
            key,
            Binding {
                credential,
                expires: now + self.ttl,
            },
        );
    }

    /// Takes over another table's live bindings (on a config reload).
    pub fn inherit(&self, previous: &Sticky, now: Instant) {
        let carried: Vec<(SessionKey, Binding)> = previous
            .bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, b)| b.expires > now)
            .map(|(k, b)| {
                (
                    *k,
                    Binding {
                        credential: b.credential.clone(),
                        expires: b.expires,
                    },
                )
            })
            .collect();
        self.bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(carried);
    }

    /// The TTL of a binding.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Releases a session whose credential became unavailable.
    pub fn release(&self, key: &SessionKey) {
        self.bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Live bindings (for status listings).
    pub fn len(&self, now: Instant) -> usize {
        self.bindings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|b| b.expires > now)
            .count()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bindings_expire_and_release() {
        let sticky = Sticky::new(Duration::from_secs(60));
        let t = Instant::now();
        let key = Sticky::key("m", "session-1");
        assert_ne!(key, Sticky::key("other-model", "session-1"));
        sticky.bind(key, "p#0".into(), t);
        assert_eq!(sticky.bound(&key, t).as_deref(), Some("p#0"));
        assert_eq!(sticky.bound(&key, t + Duration::from_secs(60)), None);
        sticky.bind(key, "p#1".into(), t + Duration::from_secs(30));
        assert_eq!(
            sticky.bound(&key, t + Duration::from_secs(80)).as_deref(),
            Some("p#1"),
            "use refreshes the TTL"
        );
        sticky.release(&key);
        assert_eq!(sticky.bound(&key, t), None);
    }

    #[test]
    fn session_from_header_or_anthropic_metadata() {
        let name = http::HeaderName::from_static("x-session-id");
        let mut headers = HeaderMap::new();
        let body = br#"{"metadata":{"user_id":"user-7"},"model":"m"}"#;
        assert_eq!(
            session_of(&name, &headers, Dialect::Anthropic, body).as_deref(),
            Some("user-7")
        );
        assert_eq!(session_of(&name, &headers, Dialect::OpenAiChat, body), None);
        headers.insert("x-session-id", "s-1".parse().unwrap());
        assert_eq!(
            session_of(&name, &headers, Dialect::OpenAiChat, body).as_deref(),
            Some("s-1")
        );
    }
}
