//! The `refresh_token` grant against a provider's token endpoint, and the one judgement that
//! matters: is a refusal **permanent** (the account needs a human to sign in again; never retry)
//! or **transient** (back off, honouring `Retry-After`, and try later)?
//!
//! | answer | verdict |
//! |---|---|
//! | 2xx JSON with `access_token` | granted |
//! | 429 | transient, for `Retry-After` / `retry-after-ms` (else a minute) |
//! | 408, 5xx, network failure, timeout, an HTML page (Cloudflare, a WAF), 2xx without a token | transient |
//! | 400/401/403/404 and other 4xx (`invalid_grant`, `refresh_token_reused`, `…_expired`, `…_invalidated`, Claude's 404 for a consumed token) | permanent |

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::provider::{BodyFormat, Endpoints, Kind};

/// How long one refresh call may take (CPA#4712 hung without one).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Back-off after a transient failure without `Retry-After`.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What the token endpoint granted.
#[derive(Clone, Deserialize)]
pub struct Granted {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    /// Everything else (Claude's `account` / `organization`, Qwen's `resource_url`, `scope`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for Granted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("expires_in", &self.expires_in)
            .field("rotated", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a refresh failed, in words without secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// The refresh token is dead: only a new sign-in helps.
    #[error("{reason}")]
    Permanent { reason: String },
    /// Try again later (not before `retry_after`).
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Duration,
    },
}

impl RefreshError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, RefreshError::Permanent { .. })
    }

    fn transient(reason: impl Into<String>) -> Self {
        RefreshError::Transient {
            reason: reason.into(),
            retry_after: DEFAULT_BACKOFF,
        }
    }
}

/// Exchanges `refresh_token` for new tokens. One call, no retries (the caller backs off).
pub async fn refresh(
    http: &reqwest::Client,
    kind: Kind,
    endpoints: &Endpoints,
    refresh_token: &str,
) -> Result<Granted, RefreshError> {
    let mut fields: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", endpoints.client_id.as_str()),
    ];
    if let Some(secret) = &endpoints.client_secret {
        fields.push(("client_secret", secret));
    }
    let request = http
        .post(&endpoints.token_url)
        .header(http::header::ACCEPT, "application/json")
        .timeout(TIMEOUT);
    let request = match kind.body_format() {
        BodyFormat::Json => {
            let body: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
                .collect();
            request.json(&body)
        }
        BodyFormat::Form => request.form(&fields),
    };
    let response = request
        .send()
        .await
        .map_err(|e| RefreshError::transient(describe(&e)))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| RefreshError::transient(describe(&e)))?;
    judge(status, &headers, &body)
}

/// The verdict on a token endpoint's answer.
pub fn judge(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<Granted, RefreshError> {
    let html = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
        || body.trim_ascii_start().starts_with(b"<");
    let code = status.as_u16();
    if status.is_success() {
        return serde_json::from_slice::<Granted>(body)
            .ok()
            .filter(|g| !g.access_token.trim().is_empty())
            .ok_or_else(|| {
                RefreshError::transient(format!(
                    "the token endpoint answered HTTP {code} without an access_token"
                ))
            });
    }
    if code == 429 {
        return Err(RefreshError::Transient {
            reason: "the token endpoint is rate limiting (HTTP 429)".into(),
            retry_after: retry_after(headers)
                .unwrap_or(DEFAULT_BACKOFF)
                .clamp(Duration::from_secs(1), MAX_BACKOFF),
        });
    }
    if code == 408 || status.is_server_error() {
        return Err(RefreshError::Transient {
            reason: format!("the token endpoint failed (HTTP {code})"),
            retry_after: retry_after(headers)
                .unwrap_or(DEFAULT_BACKOFF)
                .clamp(Duration::from_secs(1), MAX_BACKOFF),
        });
    }
    if html {
        return Err(RefreshError::transient(format!(
            "the token endpoint answered HTTP {code} with an HTML page (a proxy, Cloudflare or WAF challenge?)"
        )));
    }
    let code_word = error_code(body).unwrap_or_else(|| "no error code".into());
    Err(RefreshError::Permanent {
        reason: format!("the token endpoint refused the refresh token (HTTP {code}, {code_word})"),
    })
}

/// The OAuth error code, from `error` (a string), `error.code`, or `code`; only plain words
/// are kept, so nothing the endpoint echoed can leak.
fn error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let code = match value.get("error") {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(Value::Object(o)) => o
            .get("code")
            .or_else(|| o.get("type"))
            .and_then(Value::as_str),
        _ => None,
    }
    .or_else(|| value.get("code").and_then(Value::as_str))?;
    let clean = code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    clean.then(|| code.to_string())
}

/// `Retry-After` (seconds or an HTTP date) or `retry-after-ms`.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let text = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let left = when.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// A transport failure in words, without the URL (which may carry secrets in a proxy setting).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the token endpoint did not answer in time".into()
    } else if e.is_connect() {
        "the token endpoint could not be reached".into()
    } else {
        "the connection to the token endpoint failed".into()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::{HeaderMap, HeaderValue, StatusCode};

    fn verdict(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Granted, RefreshError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        judge(StatusCode::from_u16(status).unwrap(), &map, body.as_bytes())
    }

    #[test]
    fn verdicts() {
        let ok = verdict(
            200,
            &[],
            r#"{"access_token":"a","expires_in":60,"account":{"uuid":"u"}}"#,
        )
        .unwrap();
        assert_eq!(ok.access_token, "a");
        assert!(ok.refresh_token.is_none());
        assert!(ok.extra.contains_key("account"));
        assert!(!format!("{ok:?}").contains("\"a\""));

        for (status, body) in [
            (
                400,
                r#"{"error":"invalid_grant","error_description":"Bad Request"}"#,
            ),
            (
                401,
                r#"{"error":{"code":"refresh_token_reused","message":"used"}}"#,
            ),
            (400, r#"{"error":"refresh_token_expired"}"#),
            (
                404,
                r#"{"type":"error","error":{"type":"not_found_error","message":"x"}}"#,
            ),
            (404, ""),
        ] {
            let e = verdict(status, &[], body).unwrap_err();
            assert!(e.is_permanent(), "{status} {body}: {e}");
        }
        let e = verdict(401, &[], r#"{"error":{"code":"refresh_token_reused"}}"#).unwrap_err();
        assert!(e.to_string().contains("refresh_token_reused"), "{e}");
        let e = verdict(400, &[], r#"{"error":"secret sk-ant-ort01-xyz leaked"}"#).unwrap_err();
        assert!(!e.to_string().contains("sk-ant"), "{e}");

        let e = verdict(429, &[("retry-after", "7")], "{}").unwrap_err();
        assert_eq!(
            e,
            RefreshError::Transient {
                reason: "the token endpoint is rate limiting (HTTP 429)".into(),
                retry_after: Duration::from_secs(7)
            }
        );
        for (status, headers, body) in [
            (500, vec![], "{}"),
            (503, vec![], "oops"),
            (
                403,
                vec![("content-type", "text/html")],
                "<html>challenge</html>",
            ),
            (403, vec![], "  <!DOCTYPE html>"),
            (200, vec![], "{}"),
            (200, vec![], "<html>"),
        ] {
            let e = verdict(status, &headers, body).unwrap_err();
            assert!(!e.is_permanent(), "{status} {body}");
        }
    }
}
