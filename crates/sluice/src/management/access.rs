//! Who may call the management API.
//!
//! In order: a banned source is refused; a source that is not local (see `crate::peer`) is
//! refused unless `allow-remote-management` is on; with no management key configured nobody
//! gets in; otherwise the request must carry the key (`Authorization: Bearer` or
//! `X-Management-Key`), checked against its bcrypt hash. `management-ban.max-failures` wrong
//! keys from one address ban it for `management-ban.duration`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ManagementError;
use crate::gateway::AppState;
use crate::settings::ManagementBan;

/// Addresses remembered at most; beyond it, addresses without an active ban are forgotten.
const MAX_TRACKED: usize = 10_000;

/// The management key and the failure record of each source.
#[derive(Default)]
pub struct Access {
    /// bcrypt hash of the key; `None` = no key configured.
    hash: ArcSwapOption<String>,
    /// SHA-256 of the last key that matched `hash`, so bcrypt (slow by design) runs once per
    /// key rather than once per request.
    verified: Mutex<Option<(Arc<String>, [u8; 32])>>,
    strikes: Mutex<HashMap<IpAddr, Strikes>>,
}

#[derive(Debug, Default)]
struct Strikes {
    failures: u32,
    banned_until: Option<Instant>,
}

/// Whether a configured key is plaintext (to be hashed), rather than a bcrypt hash, empty, or
/// an environment reference that must stay in the file as written.
pub fn is_plaintext(key: &str) -> bool {
    let env_reference = key.starts_with("${") && key.ends_with('}');
    !(key.is_empty() || is_bcrypt(key) || env_reference)
}

fn is_bcrypt(key: &str) -> bool {
    key.len() == 60
        && ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| key.starts_with(p))
}

/// bcrypt hash of a key (off the async threads: it is slow on purpose).
pub async fn hash(key: &str) -> Option<String> {
    let key = key.to_string();
    match tokio::task::spawn_blocking(move || bcrypt::hash(key, bcrypt::DEFAULT_COST)).await {
        Ok(Ok(hash)) => Some(hash),
        _ => {
            tracing::error!("could not bcrypt-hash the management key");
            None
        }
    }
}

impl Access {
    /// Takes the configured key: a hash as is, a plaintext hashed in memory.
    pub async fn load_key(&self, configured: &str) {
        let current = self.hash.load_full();
        let hash = if configured.is_empty() {
            None
        } else if is_bcrypt(configured) {
            Some(configured.to_string())
        } else if let Some(current) = current.as_deref()
            && bcrypt_matches(configured, current).await
        {
            // The same plaintext as before: keep its hash rather than hashing again.
            Some(current.clone())
        } else {
            hash(configured).await
        };
        if hash.as_deref() != current.as_deref().map(String::as_str) {
            self.hash.store(hash.map(Arc::new));
        }
    }

    /// Whether a management key is configured.
    pub fn has_key(&self) -> bool {
        self.hash.load().is_some()
    }

    async fn verify(&self, presented: &str) -> Result<(), ManagementError> {
        let Some(hash) = self.hash.load_full() else {
            return Err(ManagementError::no_key_configured());
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if let Ok(verified) = self.verified.lock()
            && let Some((for_hash, known)) = verified.as_ref()
            && Arc::ptr_eq(for_hash, &hash)
            && bool::from(known.ct_eq(&digest))
        {
            return Ok(());
        }
        if bcrypt_matches(presented, &hash).await {
            if let Ok(mut verified) = self.verified.lock() {
                *verified = Some((hash, digest));
            }
            Ok(())
        } else {
            Err(ManagementError::invalid_key())
        }
    }

    /// The time left on a ban of `ip`, if it is banned.
    fn banned(&self, ip: IpAddr) -> Option<Duration> {
        let strikes = self.strikes.lock().ok()?;
        let until = strikes.get(&ip)?.banned_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Records a wrong key; returns true when this one started a ban.
    fn strike(&self, ip: IpAddr, policy: &ManagementBan) -> bool {
        let Ok(mut strikes) = self.strikes.lock() else {
            return false;
        };
        if strikes.len() >= MAX_TRACKED {
            let now = Instant::now();
            strikes.retain(|_, s| s.banned_until.is_some_and(|u| u > now));
        }
        let entry = strikes.entry(ip).or_default();
        if entry.banned_until.is_some_and(|u| u <= Instant::now()) {
            *entry = Strikes::default();
        }
        entry.failures += 1;
        if entry.failures >= policy.max_failures {
            entry.failures = 0;
            entry.banned_until = Some(Instant::now() + policy.duration);
            return true;
        }
        false
    }

    fn clear(&self, ip: IpAddr) {
        if let Ok(mut strikes) = self.strikes.lock() {
            strikes.remove(&ip);
        }
    }
}

async fn bcrypt_matches(presented: &str, hash: &str) -> bool {
    let (presented, hash) = (presented.to_string(), hash.to_string());
    tokio::task::spawn_blocking(move || bcrypt::verify(presented, &hash).unwrap_or(false))
        .await
        .unwrap_or(false)
}

/// The key a request presents: `Authorization: Bearer <key>` or `X-Management-Key: <key>`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let v = v.trim();
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim()
        });
    bearer
        .or_else(|| {
            headers
                .get("x-management-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

/// The middleware in front of every management route.
pub async fn guard(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match admit(&app, &parts).await {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(e) => e.into_response(),
    }
}

async fn admit(app: &AppState, request: &http::request::Parts) -> Result<(), ManagementError> {
    let config = app.runtime.load().config.clone();
    let Some(client) = crate::peer::client_addr(
        &request.extensions,
        &request.headers,
        &config.trusted_proxies,
    ) else {
        return Err(ManagementError::remote_disabled());
    };
    let access = &app.management.access;
    if let Some(left) = access.banned(client.ip) {
        return Err(ManagementError::banned(left));
    }
    if !client.local && !config.allow_remote_management {
        return Err(ManagementError::remote_disabled());
    }
    if !access.has_key() {
        return Err(ManagementError::no_key_configured());
    }
    let presented = presented_key(&request.headers).ok_or_else(ManagementError::missing_key)?;
    match access.verify(presented).await {
        Ok(()) => {
            access.clear(client.ip);
            Ok(())
        }
        Err(e) => {
            if access.strike(client.ip, &config.management_ban) {
                tracing::warn!(
                    client = %client.ip,
                    ban = %humantime::format_duration(config.management_ban.duration),
                    "management: too many wrong keys from this address; it is banned"
                );
            } else {
                tracing::warn!(client = %client.ip, "management: wrong key");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_detection() {
        assert!(is_plaintext("my-secret"));
        assert!(!is_plaintext(""));
        assert!(!is_plaintext("${MGMT_KEY}"));
        assert!(!is_plaintext(
            "$2b$12$abcdefghijklmnopqrstuuJ9bXwz2V2Gq6Wq8QJQm3HqT0XyZ1234"
        ));
    }

    #[test]
    fn strikes_ban_after_the_limit_and_clear_on_success() {
        let access = Access::default();
        let ip: IpAddr = [192, 0, 2, 1].into();
        let policy = ManagementBan {
            max_failures: 3,
            duration: Duration::from_secs(60),
        };
        assert!(!access.strike(ip, &policy));
        access.clear(ip);
        assert!(!access.strike(ip, &policy));
        assert!(!access.strike(ip, &policy));
        assert!(access.banned(ip).is_none());
        assert!(access.strike(ip, &policy));
        assert!(
            access
                .banned(ip)
                .is_some_and(|d| d > Duration::from_secs(50))
        );
        assert!(access.banned([192, 0, 2, 2].into()).is_none());
    }
}
