//! Who may call the management API.
//!
//! In order: a banned source is refused; a source that is not local (see `crate::peer`) is
//! refused unless `allow-remote-management` is on; with no management key configured nobody
//! gets in; otherwise the request must carry the key (`Authorization: Bearer` or
//! `X-Management-Key`), checked against its bcrypt hash. `management-ban.max-failures` wrong
//! keys from one address ban it for `management-ban.duration`; each attempt is counted before
//! bcrypt runs (`crate::throttle`), so concurrent guesses cannot outrun the ban.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ManagementError;
use crate::gateway::AppState;

/// The management key and the failure record of each source.
#[derive(Default)]
pub struct Access {
    /// bcrypt hash of the key; `None` = no key configured.
    hash: ArcSwapOption<String>,
    /// SHA-256 of the last key that matched `hash`, so bcrypt (slow by design) runs once per
    /// key rather than once per request.
    verified: Mutex<Option<(Arc<String>, [u8; 32])>>,
    /// Wrong keys per address, counted before the bcrypt check.
    bans: crate::throttle::Bans<IpAddr>,
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

    /// Whether `presented` is the key bcrypt already accepted (no hashing needed).
    fn known(&self, presented: &str) -> bool {
        let Some(hash) = self.hash.load_full() else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.verified.lock().is_ok_and(|verified| {
            verified.as_ref().is_some_and(|(for_hash, known)| {
                Arc::ptr_eq(for_hash, &hash) && bool::from(known.ct_eq(&digest))
            })
        })
    }

    /// Checks `presented` against the bcrypt hash (slow by design).
    async fn verify(&self, presented: &str) -> Result<(), ManagementError> {
        let Some(hash) = self.hash.load_full() else {
            return Err(ManagementError::no_key_configured());
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if bcrypt_matches(presented, &hash).await {
            if let Ok(mut verified) = self.verified.lock() {
                *verified = Some((hash, digest));
            }
            Ok(())
        } else {
            Err(ManagementError::invalid_key())
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
    if let Some(left) = access.bans.banned(&client.ip) {
        return Err(ManagementError::banned(left));
    }
    if !client.local && !config.allow_remote_management {
        return Err(ManagementError::remote_disabled());
    }
    if !access.has_key() {
        return Err(ManagementError::no_key_configured());
    }
    let presented = presented_key(&request.headers).ok_or_else(ManagementError::missing_key)?;
    if access.known(presented) {
        access.bans.clear(&client.ip);
        return Ok(());
    }
    // Counted as a failure before bcrypt runs: the sixth of 200 concurrent wrong keys is
    // refused as banned without costing a hash.
    let policy = &config.management_ban;
    access
        .bans
        .begin(&client.ip, policy)
        .map_err(ManagementError::banned)?;
    match access.verify(presented).await {
        Ok(()) => {
            access.bans.clear(&client.ip);
            Ok(())
        }
        Err(e) => {
            if access.bans.failed(&client.ip, policy) {
                tracing::warn!(
                    client = %client.ip,
                    ban = %humantime::format_duration(policy.duration),
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
}
