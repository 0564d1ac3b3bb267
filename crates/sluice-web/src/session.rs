//! Opaque server-side sessions. The cookie `sluice_ui` holds 64 random alphanumerics (about
//! 380 bits); the store keeps only their SHA-256, with the user, a CSRF token, and the times
//! the idle and absolute expiry are judged by. Nothing in the cookie means anything without
//! the store, so signing out (deleting the row) ends the session everywhere at once.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use sluice_store::ui::UiSession;
use sluice_store::{Role, Status, User};
use subtle::ConstantTimeEq;

use crate::Web;

/// The session cookie.
pub const SESSION_COOKIE: &str = "sluice_ui";
/// The sign-in form's token (double submit: cookie and hidden field must match).
pub const LOGIN_COOKIE: &str = "sluice_login";
/// Activity is written back at most this often (not on every request a live page makes).
const TOUCH_EVERY_MS: i64 = 60_000;

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// The session's CSRF token (rendered into forms and htmx headers).
    pub csrf: String,
    /// SHA-256 of the session id (to sign out).
    pub id_hash: String,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// A fresh random token.
pub fn random_token() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 64)
}

/// Lowercase hex SHA-256.
pub fn digest(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Constant-time token comparison.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value scoped to the dashboard: `HttpOnly; SameSite=Strict; Path=/ui`, and
/// `Secure` when configured. `max_age: Some(0)` deletes it; `None` makes a browser-session
/// cookie.
pub fn set_cookie(web: &Web, name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if web.config.secure_cookie {
        c.push_str("; Secure");
    }
    c
}

/// The session of a request, if it has a live one: the row exists, is within its idle and
/// absolute lifetime, and its user is active. Expired rows are deleted on sight.
pub async fn current(web: &Web, parts: &http::request::Parts) -> Option<Viewer> {
    if let Some(viewer) = parts.extensions.get::<Viewer>() {
        return Some(viewer.clone());
    }
    let id = cookie(&parts.headers, SESSION_COOKIE)?;
    let id_hash = digest(&id);
    let store = web.gateway.store();
    let row = match store.ui().ui_session(&id_hash).await {
        Ok(row) => row?,
        Err(e) => {
            tracing::warn!(error = %e, "reading a dashboard session failed");
            return None;
        }
    };
    let now = web.gateway.now_ms();
    let idle = millis(web.config.session_idle);
    let max = millis(web.config.session_max);
    if now - row.last_seen_at > idle || now - row.created_at > max {
        let _ = store.ui().delete_ui_session(&id_hash).await;
        return None;
    }
    let user = store.user_by_id(row.user_id).await.ok()?;
    if user.status != Status::Active {
        let _ = store.ui().delete_ui_sessions_of(user.id).await;
        return None;
    }
    if now - row.last_seen_at > TOUCH_EVERY_MS.min(idle / 4) {
        let _ = store.ui().touch_ui_session(&id_hash, now).await;
    }
    Some(Viewer {
        user_id: user.id,
        username: user.username,
        role: user.role,
        csrf: row.csrf_token,
        id_hash,
    })
}

/// Starts a session for `user`; the cookie value to set.
pub async fn start(web: &Web, user: &User) -> Result<String, sluice_store::StoreError> {
    let id = random_token();
    let now = web.gateway.now_ms();
    let store = web.gateway.store();
    // Sessions past their lifetime are swept whenever someone signs in.
    let _ = store
        .ui()
        .expire_ui_sessions(
            now - millis(web.config.session_idle),
            now - millis(web.config.session_max),
        )
        .await;
    store
        .ui()
        .create_ui_session(&UiSession {
            id_hash: digest(&id),
            user_id: user.id,
            csrf_token: random_token(),
            created_at: now,
            last_seen_at: now,
        })
        .await?;
    Ok(id)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Sign-in attempts allowed: per client address 10 at once, then one every 6 s; per user name
/// 5 at once, then one every 12 s (so guessing one password costs minutes, not milliseconds).
pub struct LoginLimits {
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    by_user: DefaultKeyedRateLimiter<String>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        let quota = |burst: u32, every: Duration| {
            Quota::with_period(every)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        LoginLimits {
            by_address: RateLimiter::keyed(quota(10, Duration::from_secs(6))),
            by_user: RateLimiter::keyed(quota(5, Duration::from_secs(12))),
        }
    }
}

impl LoginLimits {
    /// Counts an attempt; `Err(seconds)` when it must wait that long first.
    pub fn attempt(&self, address: Option<IpAddr>, username: &str) -> Result<(), u64> {
        if self.by_address.len() > 10_000 {
            self.by_address.retain_recent();
            self.by_user.retain_recent();
        }
        let wait = |e: governor::NotUntil<governor::clock::QuantaInstant>| {
            e.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ))
            .as_secs()
            .max(1)
        };
        if let Some(ip) = address {
            self.by_address.check_key(&ip).map_err(wait)?;
        }
        self.by_user
            .check_key(&username.to_lowercase())
            .map_err(wait)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            http::HeaderValue::from_static("a=1; sluice_ui=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn the_sixth_guess_at_one_user_waits() {
        let limits = LoginLimits::default();
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..5 {
            assert!(limits.attempt(ip, "Admin").is_ok());
        }
        let wait = limits.attempt(ip, "admin").unwrap_err();
        assert!((1..=12).contains(&wait), "{wait}");
        // Another user from the same address is still allowed (the address limit is 10).
        assert!(limits.attempt(ip, "bob").is_ok());
    }
}
