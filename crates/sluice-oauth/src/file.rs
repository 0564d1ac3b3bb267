//! A token file as a JSON document: read what refreshing needs (tokens, expiry, state), and
//! merge a refresh into it without dropping anything — a response without a `refresh_token`
//! keeps the old one, identity fields are only ever filled in, unknown fields survive, and the
//! file's own conventions (CPA's `expired`, Qwen Code's `expiry_date` in ms, CPA Gemini's nested
//! `token` object) are kept.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::provider::Kind;
use crate::refresh::Granted;

/// The field recording that an account needs a new sign-in.
pub const NEEDS_RELOGIN: &str = "needs_relogin";

/// A parsed token file.
#[derive(Clone)]
pub struct TokenDoc {
    kind: Kind,
    map: Map<String, Value>,
}

impl std::fmt::Debug for TokenDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenDoc")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why and since when an account needs a new sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relogin {
    pub reason: String,
    /// RFC 3339.
    pub since: String,
}

impl TokenDoc {
    /// Parses a token file (the gateway validates its shape first; this reads what it needs).
    pub fn parse(bytes: &[u8]) -> Result<TokenDoc, String> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(map) = value else {
            return Err("not a JSON object".into());
        };
        let kind = match map.get("type").and_then(Value::as_str) {
            Some(t) => t.parse()?,
            None if map.contains_key("resource_url") => Kind::Qwen,
            None if map.get("token").is_some_and(Value::is_object) => Kind::Gemini,
            None => return Err("no `type`".into()),
        };
        Ok(TokenDoc { kind, map })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A document of `kind` from a JSON object (a new sign-in's file before its first grant).
    pub fn from_map(kind: Kind, map: Map<String, Value>) -> TokenDoc {
        TokenDoc { kind, map }
    }

    /// The object holding the tokens: CPA Gemini files nest them under `token`.
    fn tokens(&self) -> &Map<String, Value> {
        match self.map.get("token") {
            Some(Value::Object(inner)) if self.kind == Kind::Gemini => inner,
            _ => &self.map,
        }
    }

    fn with_tokens_mut(&mut self, f: impl FnOnce(&mut Map<String, Value>)) {
        if self.kind == Kind::Gemini
            && let Some(Value::Object(inner)) = self.map.get_mut("token")
        {
            f(inner);
        } else {
            f(&mut self.map);
        }
    }

    fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
        map.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    pub fn access_token(&self) -> Option<&str> {
        Self::text(self.tokens(), "access_token").or_else(|| Self::text(&self.map, "access_token"))
    }

    pub fn refresh_token(&self) -> Option<&str> {
        Self::text(self.tokens(), "refresh_token")
            .or_else(|| Self::text(&self.map, "refresh_token"))
    }

    pub fn email(&self) -> Option<&str> {
        Self::text(&self.map, "email")
    }

    pub fn account_id(&self) -> Option<&str> {
        Self::text(&self.map, "account_id")
    }

    /// When the access token expires, unix ms: `expired` / `expiry` (RFC 3339), `expiry_date`
    /// (ms), or a JWT access token's `exp` (Codex).
    pub fn expires_at_ms(&self) -> Option<i64> {
        let rfc3339 = |map: &Map<String, Value>, key: &str| {
            Self::text(map, key)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis())
        };
        rfc3339(self.tokens(), "expiry")
            .or_else(|| rfc3339(&self.map, "expired"))
            .or_else(|| self.map.get("expiry_date").and_then(Value::as_i64))
            .or_else(|| self.tokens().get("expiry_date").and_then(Value::as_i64))
            .or_else(|| crate::jwt::exp(self.access_token()?).map(|s| s.saturating_mul(1000)))
    }

    /// When the tokens were last refreshed, unix ms (`last_refresh`).
    pub fn last_refresh_ms(&self) -> Option<i64> {
        Self::text(&self.map, "last_refresh")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
    }

    /// Whether the account was found to need a new sign-in.
    pub fn needs_relogin(&self) -> Option<Relogin> {
        let state = self.map.get(NEEDS_RELOGIN)?.as_object()?;
        Some(Relogin {
            reason: Self::text(state, "reason")
                .unwrap_or("refresh refused")
                .to_string(),
            since: Self::text(state, "since").unwrap_or_default().to_string(),
        })
    }

    /// Records that the account needs a new sign-in (a new login or upload replaces the file).
    pub fn set_needs_relogin(&mut self, reason: &str, now: DateTime<Utc>) {
        let mut state = Map::new();
        state.insert("reason".into(), Value::String(reason.into()));
        state.insert("since".into(), Value::String(rfc3339(now)));
        self.map.insert(NEEDS_RELOGIN.into(), Value::Object(state));
    }

    /// Merges a refresh into the file.
    pub fn apply(&mut self, granted: &Granted, now: DateTime<Utc>) {
        let set = |map: &mut Map<String, Value>, key: &str, value: &str| {
            map.insert(key.into(), Value::String(value.into()));
        };
        let expires_ms = granted
            .expires_in
            .filter(|s| *s > 0)
            .map(|s| {
                now.timestamp_millis()
                    .saturating_add(s.saturating_mul(1000))
            })
            .or_else(|| crate::jwt::exp(&granted.access_token).map(|s| s.saturating_mul(1000)));
        let nested =
            self.kind == Kind::Gemini && self.map.get("token").is_some_and(Value::is_object);
        let flat_ms = self.map.contains_key("expiry_date");
        self.with_tokens_mut(|tokens| {
            set(tokens, "access_token", &granted.access_token);
            if let Some(rt) = granted
                .refresh_token
                .as_deref()
                .filter(|r| !r.trim().is_empty())
            {
                set(tokens, "refresh_token", rt);
            }
            if let Some(id) = granted.id_token.as_deref().filter(|r| !r.trim().is_empty()) {
                set(tokens, "id_token", id);
            }
            if let (true, Some(ms)) = (nested, expires_ms) {
                set(tokens, "expiry", &rfc3339_ms(ms));
            }
        });
        match expires_ms {
            Some(ms) if flat_ms => {
                self.map.insert("expiry_date".into(), Value::from(ms));
            }
            Some(ms) if !nested => set(&mut self.map, "expired", &rfc3339_ms(ms)),
            _ => {}
        }
        set(&mut self.map, "last_refresh", &rfc3339(now));
        self.map.remove(NEEDS_RELOGIN);
        self.merge_identity(granted);
    }

    /// Identity from the grant fills in fields, never blanks them.
    fn merge_identity(&mut self, granted: &Granted) {
        let mut fill = |key: &str, value: Option<&str>| {
            if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
                self.map.insert(key.into(), Value::String(v.into()));
            }
        };
        let path = |a: &str, b: &str| {
            granted
                .extra
                .get(a)
                .and_then(|o| o.get(b))
                .and_then(Value::as_str)
        };
        match self.kind {
            Kind::Claude => {
                fill("email", path("account", "email_address"));
                fill("account_uuid", path("account", "uuid"));
                fill("organization_uuid", path("organization", "uuid"));
                fill("organization_name", path("organization", "name"));
            }
            Kind::Codex => {
                if let Some(id_token) = &granted.id_token {
                    let identity = crate::jwt::codex_identity(id_token);
                    fill("account_id", identity.account_id.as_deref());
                    fill("email", identity.email.as_deref());
                }
            }
            Kind::Qwen => fill(
                "resource_url",
                granted
                    .extra
                    .get("resource_url")
                    .and_then(Value::as_str)
                    .filter(|url| usable_resource_url(url)),
            ),
            Kind::Gemini => {}
        }
    }

    /// The file's bytes (pretty JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(&self.map).unwrap_or_default()
    }
}

/// Whether a granted `resource_url` (a host such as `portal.qwen.ai`, or a URL) is one the
/// gateway can use as an upstream root: `https://`, a host, no credentials, no query. Anything
/// else is not merged, so a refresh never leaves a file the gateway refuses.
fn usable_resource_url(text: &str) -> bool {
    let text = text.trim().trim_end_matches('/');
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("https://{text}")
    };
    url::Url::parse(&with_scheme).is_ok_and(|u| {
        u.scheme() == "https"
            && u.host_str().is_some()
            && u.username().is_empty()
            && u.password().is_none()
            && u.query().is_none()
    })
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn rfc3339_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn granted(v: Value) -> Granted {
        serde_json::from_value(v).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn claude_refresh_keeps_identity_and_rotates() {
        let mut doc = TokenDoc::parse(
            br#"{"type":"claude","access_token":"a1","refresh_token":"r1","email":"me@x","expired":"2027-01-01T00:00:00Z","claude_device_ids":["d"]}"#,
        )
        .unwrap();
        assert_eq!(doc.expires_at_ms(), Some(1_798_761_600_000));
        doc.apply(
            &granted(json!({"access_token":"a2","refresh_token":"r2","expires_in":3600,"account":{"uuid":"u","email_address":""}})),
            now(),
        );
        let v: Value = serde_json::from_slice(&doc.to_bytes()).unwrap();
        assert_eq!(v["access_token"], "a2");
        assert_eq!(v["refresh_token"], "r2");
        assert_eq!(
            v["email"], "me@x",
            "a blank email never replaces a known one"
        );
        assert_eq!(v["account_uuid"], "u");
        assert_eq!(v["claude_device_ids"][0], "d");
        assert_eq!(v["expired"], "2027-01-15T09:00:00Z");
        assert_eq!(v["last_refresh"], "2027-01-15T08:00:00Z");
    }

    #[test]
    fn a_grant_without_refresh_token_keeps_the_old_one() {
        let mut doc = TokenDoc::parse(
            br#"{"type":"gemini","token":{"access_token":"g1","refresh_token":"gr","expiry":"2020-01-01T00:00:00Z"},"project_id":"p"}"#,
        )
        .unwrap();
        doc.set_needs_relogin("x", now());
        assert!(doc.needs_relogin().is_some());
        doc.apply(
            &granted(json!({"access_token":"g2","expires_in":3599})),
            now(),
        );
        assert_eq!(doc.access_token(), Some("g2"));
        assert_eq!(doc.refresh_token(), Some("gr"));
        assert_eq!(doc.expires_at_ms(), Some(1_800_000_000_000 + 3_599_000));
        assert!(doc.needs_relogin().is_none(), "a refresh clears the state");

        let mut qwen = TokenDoc::parse(
            br#"{"access_token":"q1","refresh_token":"qr","resource_url":"portal.qwen.ai","expiry_date":1}"#,
        )
        .unwrap();
        qwen.apply(
            &granted(json!({"access_token":"q2","expires_in":10})),
            now(),
        );
        let v: Value = serde_json::from_slice(&qwen.to_bytes()).unwrap();
        assert_eq!(v["expiry_date"], 1_800_000_010_000_i64);
        assert_eq!(v["refresh_token"], "qr");
        assert!(v.get("expired").is_none());
    }

    /// Found by fuzzing (`fuzz/` target `token_files`): a Qwen grant's `resource_url` was
    /// merged unchecked, and one the gateway refuses made it refuse the whole file.
    #[test]
    fn a_granted_resource_url_is_merged_only_when_usable() {
        let file = br#"{"access_token":"q1","resource_url":"portal.qwen.ai","expiry_date":1}"#;
        for (granted_url, kept) in [
            ("dashscope.aliyuncs.com", "dashscope.aliyuncs.com"),
            (
                "https://dashscope.aliyuncs.com/",
                "https://dashscope.aliyuncs.com/",
            ),
            ("dashscop?e.ali$uncs.com", "portal.qwen.ai"),
            ("http://10.0.0.1", "portal.qwen.ai"),
            ("https://user@evil.example", "portal.qwen.ai"),
        ] {
            let mut doc = TokenDoc::parse(file).unwrap();
            doc.apply(
                &granted(json!({"access_token":"q2","resource_url": granted_url})),
                now(),
            );
            let v: Value = serde_json::from_slice(&doc.to_bytes()).unwrap();
            assert_eq!(v["resource_url"], kept, "granted {granted_url}");
        }
    }

    #[test]
    fn codex_identity_from_the_id_token() {
        let id = crate::jwt::unsigned(
            &json!({"email":"c@x","https://api.openai.com/auth":{"chatgpt_account_id":"acct"}}),
        );
        let access = crate::jwt::unsigned(&json!({"exp": 1_900_000_000}));
        let mut doc =
            TokenDoc::parse(br#"{"type":"codex","access_token":"c1","refresh_token":"cr"}"#)
                .unwrap();
        assert_eq!(doc.expires_at_ms(), None);
        doc.apply(
            &granted(json!({"access_token": access, "id_token": id, "refresh_token": "cr2"})),
            now(),
        );
        assert_eq!(doc.account_id(), Some("acct"));
        assert_eq!(doc.email(), Some("c@x"));
        assert_eq!(doc.expires_at_ms(), Some(1_900_000_000_000));
    }
}
