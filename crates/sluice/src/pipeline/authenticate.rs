//! Phase 1: who is calling. Reads the client key from the headers each SDK uses and checks it
//! against the configured keys in constant time, then against the stored keys (seed 004) in
//! the in-memory [`KeyCache`].

use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::GatewayError;
use crate::keys::{CachedKey, KeyCache};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// Stable, non-secret id of the key used (`config:<hash prefix>` or `key:<id>`), `None` when
    /// anonymous.
    pub key_id: Option<String>,
    /// The user the key belongs to (config keys: the first admin, if there is one).
    pub user_id: Option<i64>,
    /// A stored key's permissions and limits; `None` for config keys (unlimited) and anonymous
    /// callers.
    pub key: Option<Arc<CachedKey>>,
}

impl Caller {
    fn anonymous() -> Self {
        Self {
            key_id: None,
            user_id: None,
            key: None,
        }
    }
}

/// The client keys a gateway accepts.
#[derive(Debug, Default)]
pub struct ClientKeys {
    /// SHA-256 digests: comparing fixed-size digests hides key lengths as well as contents.
    digests: Vec<[u8; 32]>,
    ids: Vec<String>,
    allow_anonymous: bool,
    /// `allow-localhost-unauthenticated`: local callers may come without a key.
    allow_local: bool,
}

impl ClientKeys {
    pub fn new(keys: &[String], allow_anonymous: bool) -> Self {
        let digests: Vec<[u8; 32]> = keys
            .iter()
            .map(|k| Sha256::digest(k.as_bytes()).into())
            .collect();
        let ids = digests
            .iter()
            .map(|d| format!("config:{}", hex_prefix(d)))
            .collect();
        Self {
            digests,
            ids,
            allow_anonymous,
            allow_local: false,
        }
    }

    /// Lets local callers (loopback peers, see `crate::peer`) in without a key.
    pub fn allow_loopback(mut self, allow: bool) -> Self {
        self.allow_local = allow;
        self
    }

    /// [`Self::authenticate_with`], letting a keyless local caller in when
    /// `allow-localhost-unauthenticated` allows it. A presented key is still checked.
    /// `anonymous_route`: whether `allow-anonymous` holds on this route (seed 000's routes
    /// only); elsewhere a caller without a key is refused whatever it says.
    pub fn authenticate_from(
        &self,
        stored: &KeyCache,
        now_ms: i64,
        headers: &HeaderMap,
        query: Option<&str>,
        local: bool,
        anonymous_route: bool,
    ) -> Result<Caller, GatewayError> {
        if self.allow_local
            && local
            && presented_key(headers).is_none()
            && query.and_then(query_key).is_none()
        {
            return Ok(Caller {
                key_id: Some("localhost".into()),
                user_id: stored.config_owner(),
                key: None,
            });
        }
        self.check(
            stored,
            now_ms,
            headers,
            query,
            self.allow_anonymous && anonymous_route,
        )
    }

    /// Seed 004's routes: a configured or stored key must be presented, whatever
    /// `allow-anonymous` or `allow-localhost-unauthenticated` say; anything else is seed 004's
    /// 401 (missing or invalid key).
    pub fn authenticate_keyed(
        &self,
        stored: &KeyCache,
        now_ms: i64,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Caller, GatewayError> {
        let from_query = query.and_then(query_key);
        let presented = presented_key(headers)
            .or(from_query.as_deref())
            .ok_or_else(GatewayError::missing_key)?;
        self.find(stored, now_ms, presented)?
            .ok_or_else(GatewayError::invalid_key)
    }

    /// Authenticates a request against the configured keys only.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Caller, GatewayError> {
        self.authenticate_with(&KeyCache::default(), 0, headers, query)
    }

    /// Authenticates a request by its headers (or Gemini's `?key=` query parameter): a
    /// configured key, else a stored key (which may be disabled or expired at `now_ms`).
    pub fn authenticate_with(
        &self,
        stored: &KeyCache,
        now_ms: i64,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Caller, GatewayError> {
        self.check(stored, now_ms, headers, query, self.allow_anonymous)
    }

    fn check(
        &self,
        stored: &KeyCache,
        now_ms: i64,
        headers: &HeaderMap,
        query: Option<&str>,
        allow_anonymous: bool,
    ) -> Result<Caller, GatewayError> {
        let no_keys = self.digests.is_empty() && stored.is_empty();
        let from_query = query.and_then(query_key);
        let Some(presented) = presented_key(headers).or(from_query.as_deref()) else {
            return if allow_anonymous {
                Ok(Caller::anonymous())
            } else if no_keys && !self.allow_anonymous {
                Err(GatewayError::no_keys_configured())
            } else {
                Err(GatewayError::missing_key())
            };
        };
        if no_keys && allow_anonymous {
            return Ok(Caller::anonymous());
        }
        match self.find(stored, now_ms, presented)? {
            Some(caller) => Ok(caller),
            None if no_keys && !self.allow_anonymous => Err(GatewayError::no_keys_configured()),
            None => Err(GatewayError::invalid_key()),
        }
    }

    /// The caller a presented key belongs to: a configured key, else a stored key (an error when
    /// that one is disabled or expired at `now_ms`); `None` when it matches none.
    fn find(
        &self,
        stored: &KeyCache,
        now_ms: i64,
        presented: &str,
    ) -> Result<Option<Caller>, GatewayError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Check every key, without an early exit, so timing does not tell which one matched.
        let mut found = None;
        for (i, candidate) in self.digests.iter().enumerate() {
            if bool::from(candidate.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            return Ok(Some(Caller {
                key_id: Some(self.ids[i].clone()),
                user_id: stored.config_owner(),
                key: None,
            }));
        }
        Ok(stored.lookup(&digest, now_ms)?.map(|key| Caller {
            key_id: Some(format!("key:{}", key.id)),
            user_id: Some(key.user_id),
            key: Some(key),
        }))
    }
}

/// `Authorization: Bearer <key>`, `X-API-Key: <key>` (OpenAI, Anthropic, seed 004) or
/// `x-goog-api-key: <key>` (Gemini).
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .unwrap_or(value)
            .trim();
        if !key.is_empty() {
            return Some(key);
        }
    }
    ["x-api-key", "x-goog-api-key"]
        .into_iter()
        .find_map(|name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|k| !k.is_empty())
        })
}

/// Gemini clients may send the key as `?key=`.
fn query_key(query: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))?;
    let decoded = percent_decode(raw);
    (!decoded.is_empty()).then_some(decoded)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_prefix(digest: &[u8; 32]) -> String {
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::StatusCode;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    impl ClientKeys {
        fn authenticate_h(&self, headers: &HeaderMap) -> Result<Caller, GatewayError> {
            self.authenticate(headers, None)
        }
    }

    #[test]
    fn gemini_header_and_query_key() {
        let keys = ClientKeys::new(&["sk-one/two".into()], false);
        let header = keys
            .authenticate(&headers(&[("x-goog-api-key", "sk-one/two")]), None)
            .unwrap();
        let query = keys
            .authenticate(&HeaderMap::new(), Some("alt=sse&key=sk-one%2Ftwo"))
            .unwrap();
        assert_eq!(header, query);
        assert!(
            keys.authenticate(&HeaderMap::new(), Some("key=sk-one"))
                .is_err()
        );
        assert!(
            keys.authenticate(&HeaderMap::new(), Some("alt=sse"))
                .is_err()
        );
    }

    #[test]
    fn bearer_and_x_api_key() {
        let keys = ClientKeys::new(&["sk-one".into(), "sk-two".into()], false);
        let a = keys
            .authenticate_h(&headers(&[("authorization", "Bearer sk-two")]))
            .unwrap();
        let b = keys
            .authenticate_h(&headers(&[("x-api-key", "sk-two")]))
            .unwrap();
        assert_eq!(a, b);
        assert!(a.key_id.unwrap().starts_with("config:"));
        let one = keys
            .authenticate_h(&headers(&[("authorization", "Bearer sk-one")]))
            .unwrap();
        assert_ne!(one, b);
    }

    #[test]
    fn wrong_missing_and_unconfigured() {
        let keys = ClientKeys::new(&["sk-one".into()], false);
        let wrong = keys
            .authenticate_h(&headers(&[("authorization", "Bearer sk-on")]))
            .unwrap_err();
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong.body.code.as_deref(), Some("invalid_api_key"));
        let missing = keys.authenticate_h(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.body.code.as_deref(), Some("missing_api_key"));

        let none = ClientKeys::new(&[], false);
        let refused = none
            .authenticate_h(&headers(&[("authorization", "Bearer anything")]))
            .unwrap_err();
        assert_eq!(refused.body.code.as_deref(), Some("no_api_keys_configured"));
        assert_eq!(
            none.authenticate_h(&HeaderMap::new()).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn anonymous_only_when_allowed() {
        let open = ClientKeys::new(&[], true);
        assert_eq!(
            open.authenticate_h(&HeaderMap::new()).unwrap(),
            Caller::anonymous()
        );
        let mixed = ClientKeys::new(&["sk-one".into()], true);
        assert_eq!(
            mixed.authenticate_h(&HeaderMap::new()).unwrap(),
            Caller::anonymous()
        );
        // A presented key is still checked: a wrong key is not silently treated as anonymous.
        assert!(
            mixed
                .authenticate_h(&headers(&[("x-api-key", "nope")]))
                .is_err()
        );
    }
}
