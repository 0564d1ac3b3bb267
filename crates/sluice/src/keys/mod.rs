//! Stored API keys (seed 004) on the request path: minting them, and the in-memory
//! [`KeyCache`] that authenticates them without waiting on the store.
//!
//! A key is `sk-` followed by 64 random alphanumerics, shown once when created and kept only as
//! its SHA-256 digest (right for high-entropy secrets: nothing to brute-force) and its display
//! prefix `sk-a1b2c3d4...`. The cache maps digests to each key's permissions and limits. Every
//! change made through this process updates it at once; changes made elsewhere (the CLI,
//! another gateway on the same database) arrive with the next refresh (`user-keys.refresh`,
//! 1 s by default), so a disabled or deleted key stops working within that time.

pub mod policy;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

use crate::error::GatewayError;
use crate::limits::KeyLimits;
use crate::store::{ApiKey, Status, Store, StoreResult, User};
use policy::AllowList;

/// Random characters after `sk-`.
pub const KEY_RANDOM_CHARS: usize = 64;

/// Characters of the random part shown in `key_prefix`.
const PREFIX_CHARS: usize = 8;

/// A new key: the secret (shown once), its digest (stored) and its display prefix.
#[derive(Debug, Clone)]
pub struct MintedKey {
    pub secret: String,
    pub hash: String,
    pub prefix: String,
}

/// Mints `sk-` + 64 random alphanumerics from the thread's CSPRNG (seeded by the OS).
pub fn mint() -> MintedKey {
    let random = Alphanumeric.sample_string(&mut rand::rng(), KEY_RANDOM_CHARS);
    let secret = format!("sk-{random}");
    MintedKey {
        hash: hex(&Sha256::digest(secret.as_bytes()).into()),
        prefix: format!("sk-{}...", &random[..PREFIX_CHARS]),
        secret,
    }
}

/// Lowercase hex of a digest.
pub fn hex(digest: &[u8; 32]) -> String {
    use std::fmt::Write;
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What the request path knows about a stored key.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedKey {
    pub id: i64,
    pub user_id: i64,
    pub status: Status,
    /// Unix milliseconds.
    pub expires_at: Option<i64>,
    pub platforms: AllowList,
    pub models: AllowList,
    pub limits: KeyLimits,
}

impl CachedKey {
    pub fn from_row(key: &ApiKey) -> Self {
        Self {
            id: key.id,
            user_id: key.user_id,
            status: key.status,
            expires_at: key.expires_at,
            platforms: AllowList::platforms(&key.allowed_platforms),
            models: AllowList::models(&key.allowed_models),
            limits: KeyLimits {
                key_id: key.id,
                rate_limit: u64::try_from(key.rate_limit).unwrap_or(0),
                daily_limit: u64::try_from(key.daily_limit).unwrap_or(0),
                monthly_quota: key.monthly_quota.max(0),
            },
        }
    }
}

#[derive(Debug, Default)]
struct Entries {
    by_digest: HashMap<[u8; 32], Arc<CachedKey>>,
    digest_of: HashMap<i64, [u8; 32]>,
    disabled_users: HashSet<i64>,
}

/// Stored keys by digest, in memory.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: RwLock<Entries>,
    /// Store time (unix ms) of the last refresh's start.
    refreshed_at: AtomicI64,
    /// The user config-file keys belong to (the first admin), 0 when there is none.
    config_owner: AtomicI64,
}

/// Overlap between refreshes, so a change written in the same millisecond as a refresh (or
/// by a gateway whose clock is slightly behind) is not missed.
const REFRESH_OVERLAP_MS: i64 = 2_000;

impl KeyCache {
    /// Whether no stored key exists (for the "no keys configured" answer).
    pub fn is_empty(&self) -> bool {
        self.entries.read().map_or(true, |e| e.by_digest.is_empty())
    }

    /// The user config-file keys act for.
    pub fn config_owner(&self) -> Option<i64> {
        match self.config_owner.load(Ordering::Relaxed) {
            0 => None,
            id => Some(id),
        }
    }

    pub fn set_config_owner(&self, user: Option<i64>) {
        self.config_owner
            .store(user.unwrap_or(0), Ordering::Relaxed);
    }

    /// The key with this digest, if it may be used now; the seed's 401s otherwise. `Ok(None)`:
    /// not a stored key.
    pub fn lookup(
        &self,
        digest: &[u8; 32],
        now_ms: i64,
    ) -> Result<Option<Arc<CachedKey>>, GatewayError> {
        let Ok(entries) = self.entries.read() else {
            return Ok(None);
        };
        let Some(key) = entries.by_digest.get(digest) else {
            return Ok(None);
        };
        if key.status != Status::Active || entries.disabled_users.contains(&key.user_id) {
            return Err(GatewayError::key_disabled());
        }
        if key.expires_at.is_some_and(|at| at <= now_ms) {
            return Err(GatewayError::key_expired());
        }
        Ok(Some(key.clone()))
    }

    /// Puts a key's current row in (or takes a deleted one out).
    pub fn apply_key(&self, key: &ApiKey) {
        let Some(digest) = unhex(&key.key_hash) else {
            tracing::error!(
                key_id = key.id,
                "stored key hash is not 64 hex digits; key ignored"
            );
            return;
        };
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        // A rotated key's old secret stops matching at once.
        if let Some(old) = entries.digest_of.get(&key.id).copied()
            && old != digest
        {
            entries.by_digest.remove(&old);
        }
        if key.deleted_at.is_some() {
            entries.by_digest.remove(&digest);
            entries.digest_of.remove(&key.id);
        } else {
            entries
                .by_digest
                .insert(digest, Arc::new(CachedKey::from_row(key)));
            entries.digest_of.insert(key.id, digest);
        }
    }

    /// Forgets a key at once (deleted through this process).
    pub fn remove_key(&self, id: i64) {
        if let Ok(mut entries) = self.entries.write()
            && let Some(digest) = entries.digest_of.remove(&id)
        {
            entries.by_digest.remove(&digest);
        }
    }

    /// Notes a user's status (a disabled user's keys stop working).
    pub fn apply_user(&self, user: &User) {
        if let Ok(mut entries) = self.entries.write() {
            if user.status == Status::Active {
                entries.disabled_users.remove(&user.id);
            } else {
                entries.disabled_users.insert(user.id);
            }
        }
    }

    /// Reads what changed in the store since the last refresh (everything, the first time).
    pub async fn refresh(&self, store: &dyn Store, now_ms: i64) -> StoreResult<()> {
        let last = self.refreshed_at.load(Ordering::Relaxed);
        let since = if last == 0 {
            0
        } else {
            last - REFRESH_OVERLAP_MS
        };
        let users = store.users_changed_since(since).await?;
        let keys = store.keys_changed_since(since).await?;
        for user in &users {
            self.apply_user(user);
        }
        for key in &keys {
            self.apply_key(key);
        }
        if last == 0 || users.iter().any(|u| u.role == crate::store::Role::Admin) {
            self.set_config_owner(store.first_admin().await?.map(|u| u.id));
        }
        self.refreshed_at.store(now_ms.max(1), Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(id: i64, hash: &str) -> ApiKey {
        ApiKey {
            id,
            user_id: 1,
            name: "n".into(),
            key_hash: hash.into(),
            key_prefix: "p".into(),
            status: Status::Active,
            allowed_platforms: "all".into(),
            allowed_models: String::new(),
            rate_limit: 60,
            daily_limit: 0,
            monthly_quota: 0,
            used_tokens: 0,
            used_cost: 0,
            request_count: 0,
            last_used_at: None,
            expires_at: Some(1_000),
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
        }
    }

    #[test]
    fn minted_keys_have_the_seed_shape() {
        let a = mint();
        let b = mint();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 3 + 64);
        assert!(a.secret.starts_with("sk-"));
        assert!(a.secret[3..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(a.prefix, format!("{}...", &a.secret[..11]));
        assert_eq!(a.hash, hex(&Sha256::digest(a.secret.as_bytes()).into()));
        assert_eq!(unhex(&a.hash).map(|d| hex(&d)), Some(a.hash));
    }

    #[test]
    fn disabled_expired_and_deleted_keys_stop_at_once() {
        let cache = KeyCache::default();
        let minted = mint();
        let digest = unhex(&minted.hash).unwrap();
        let mut key = row(5, &minted.hash);
        cache.apply_key(&key);
        assert_eq!(cache.lookup(&digest, 999).unwrap().unwrap().id, 5);
        let expired = cache.lookup(&digest, 1_000).unwrap_err();
        assert_eq!(expired.body.code.as_deref(), Some("api_key_expired"));
        key.status = Status::Disabled;
        cache.apply_key(&key);
        let disabled = cache.lookup(&digest, 0).unwrap_err();
        assert_eq!(disabled.body.code.as_deref(), Some("api_key_disabled"));
        key.status = Status::Active;
        cache.apply_key(&key);
        cache.apply_user(&User {
            id: 1,
            username: "u".into(),
            password_hash: String::new(),
            role: crate::store::Role::User,
            status: Status::Disabled,
            created_at: 0,
            ceilings: Default::default(),
        });
        assert!(cache.lookup(&digest, 0).is_err(), "owner disabled");
        cache.remove_key(5);
        assert!(cache.lookup(&digest, 0).unwrap().is_none());
        assert!(cache.is_empty());
    }
}
