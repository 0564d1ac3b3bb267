//! Phase 5: the call. Sends a prepared request with the shared client, bounded by the
//! provider's time-to-first-byte timeout, and turns transport failures into errors that name
//! the provider but never a secret (reqwest errors are stripped of their URL).

use std::time::Duration;

use http::StatusCode;

use crate::error::GatewayError;
use crate::providers::UpstreamRequest;

/// Sends the request and waits for the response headers.
pub async fn send(
    client: &reqwest::Client,
    provider: &str,
    request: UpstreamRequest,
    first_byte: Duration,
) -> Result<reqwest::Response, GatewayError> {
    let call = client
        .post(request.url)
        .headers(request.headers)
        .body(request.body)
        .send();
    match tokio::time::timeout(first_byte, call).await {
        Err(_) => Err(GatewayError::upstream_timeout(provider, first_byte)),
        Ok(Err(e)) if e.is_connect() && e.is_timeout() => {
            let mut error = GatewayError::upstream_failed(provider, "connecting timed out");
            error.status = StatusCode::GATEWAY_TIMEOUT;
            error.body = error.body.with_code("upstream_connect_timeout");
            Err(error)
        }
        Ok(Err(e)) if e.is_timeout() => Err(GatewayError::upstream_timeout(provider, first_byte)),
        Ok(Err(e)) => Err(GatewayError::upstream_failed(provider, &describe(e))),
        Ok(Ok(response)) => Ok(response),
    }
}

/// Reads a whole (non-stream) body, allowing `idle` between chunks.
pub async fn read_body(
    provider: &str,
    mut response: reqwest::Response,
    idle: Duration,
) -> Result<bytes::Bytes, GatewayError> {
    let mut body = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, response.chunk()).await {
            Err(_) => return Err(GatewayError::upstream_timeout(provider, idle)),
            Ok(Err(e)) => return Err(GatewayError::upstream_failed(provider, &describe(e))),
            Ok(Ok(None)) => return Ok(body.freeze()),
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
        }
    }
}

/// A non-success upstream answer, read and cleaned for the client.
pub struct Refusal {
    /// The error for the client (any echo of the attempt's credential removed).
    pub error: GatewayError,
    /// The upstream said the credential itself is invalid although its status is not 401/403
    /// (Gemini answers a bad API key with 400 `INVALID_ARGUMENT`, reason `API_KEY_INVALID`).
    pub credential_invalid: bool,
}

/// A non-success upstream answer as a client error, reading at most 64 KiB of its body.
/// `secrets` are the credentials the attempt sent ([`secrets_of`]): whatever of them the
/// upstream echoes (the whole key, or a masked fragment such as `sk-abc***…WXYZ`) is removed
/// before the text can reach a log, a record or the client.
pub async fn error_from_response(
    provider: &str,
    dialect: sluice_dialect::Dialect,
    response: reqwest::Response,
    idle: Duration,
    secrets: &[String],
) -> Refusal {
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
    let body = match tokio::time::timeout(idle, response.bytes()).await {
        Ok(Ok(b)) => b.slice(..b.len().min(64 * 1024)),
        _ => bytes::Bytes::new(),
    };
    let credential_invalid = status == StatusCode::BAD_REQUEST && api_key_invalid(&body);
    let body = redact_secrets(body, secrets);
    Refusal {
        error: GatewayError::from_upstream(provider, dialect, status, retry_after, body),
        credential_invalid,
    }
}

/// Google's answer to an invalid API key: `error.details[].reason` `API_KEY_INVALID`, or
/// status `INVALID_ARGUMENT` with the message "API key not valid".
fn api_key_invalid(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let error = &value["error"];
    let by_reason = error["details"].as_array().is_some_and(|details| {
        details
            .iter()
            .any(|d| d["reason"].as_str() == Some("API_KEY_INVALID"))
    });
    let by_message = error["status"].as_str() == Some("INVALID_ARGUMENT")
        && error["message"]
            .as_str()
            .is_some_and(|m| m.contains("API key not valid"));
    by_reason || by_message
}

/// Headers whose values are credentials.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "proxy-authorization",
    "chatgpt-account-id",
];

/// Shortest value treated as a secret whose fragments are looked for.
const MIN_SECRET_LEN: usize = 8;

/// The credentials an upstream request carries: its credential headers (without the
/// `Bearer` / `Basic` scheme; a SigV4 header's access key id) and a `key` query parameter.
pub fn secrets_of(request: &UpstreamRequest) -> Vec<String> {
    let mut secrets = Vec::new();
    for (name, value) in &request.headers {
        if !(value.is_sensitive() || SECRET_HEADERS.contains(&name.as_str())) {
            continue;
        }
        let Ok(text) = value.to_str() else { continue };
        let text = text.trim();
        let secret = if let Some(signed) = text.strip_prefix("AWS4-HMAC-SHA256") {
            signed
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next())
                .unwrap_or_default()
        } else {
            text.strip_prefix("Bearer ")
                .or_else(|| text.strip_prefix("Basic "))
                .unwrap_or(text)
                .trim()
        };
        secrets.push(secret.to_string());
    }
    for (name, value) in request.url.query_pairs() {
        if name == "key" {
            secrets.push(value.into_owned());
        }
    }
    secrets.retain(|s| s.chars().count() >= MIN_SECRET_LEN);
    secrets
}

/// `body` without any echo of `secrets`: in a JSON body every string value is cleaned (and
/// the body re-serialised only when something was removed), otherwise the raw text.
pub fn redact_secrets(body: bytes::Bytes, secrets: &[String]) -> bytes::Bytes {
    if secrets.is_empty() || body.is_empty() {
        return body;
    }
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) {
        if redact_json(&mut value, secrets) {
            return bytes::Bytes::from(value.to_string());
        }
        return body;
    }
    let text = String::from_utf8_lossy(&body);
    match redact_text(&text, secrets) {
        Some(clean) => bytes::Bytes::from(clean),
        None => body,
    }
}

fn redact_json(value: &mut serde_json::Value, secrets: &[String]) -> bool {
    match value {
        serde_json::Value::String(text) => match redact_text(text, secrets) {
            Some(clean) => {
                *text = clean;
                true
            }
            None => false,
        },
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| redact_json(item, secrets) | changed),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, item| redact_json(item, secrets) | changed),
        _ => false,
    }
}

/// What replaces a credential or a fragment of one.
const REDACTED: &str = "[redacted]";

/// `text` with every echo of a secret replaced, or `None` when there was none: the whole
/// secret anywhere, and any word (a run between spaces, quotes and brackets) that holds the
/// secret's last 4 characters, or that begins with its first 6 and shows a mask (`*`, `...`,
/// `…`) — the shapes providers use (`sk-abc***…WXYZ`, `sk-...WXYZ`).
pub fn redact_text(text: &str, secrets: &[String]) -> Option<String> {
    let mut out = text.to_string();
    for secret in secrets {
        if secret.chars().count() < MIN_SECRET_LEN {
            continue;
        }
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), REDACTED);
        }
        let chars: Vec<char> = secret.chars().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        let head: String = chars[..6].iter().collect();
        let is_boundary = |c: char| c.is_whitespace() || "\"'`(),;[]{}<>\\".contains(c);
        let mut cleaned = String::with_capacity(out.len());
        let mut word = String::new();
        let flush = |word: &mut String, cleaned: &mut String| {
            let masked = word.contains('*') || word.contains("...") || word.contains('…');
            if word.contains(tail.as_str()) || (masked && word.starts_with(head.as_str())) {
                cleaned.push_str(REDACTED);
            } else {
                cleaned.push_str(word);
            }
            word.clear();
        };
        for c in out.chars() {
            if is_boundary(c) {
                flush(&mut word, &mut cleaned);
                cleaned.push(c);
            } else {
                word.push(c);
            }
        }
        flush(&mut word, &mut cleaned);
        out = cleaned;
    }
    (out != text).then_some(out)
}

/// A transport error in words: the error and its causes, without the URL.
pub fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the response body broke off"
    } else {
        "the request failed"
    };
    let e = e.without_url();
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    causes.dedup();
    match causes.last() {
        Some(root) => format!("{kind} ({root})"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn provider_masking_shapes_are_redacted() {
        let key = "sk-abcDEF0123456789ghijklmnopWXYZ";
        let keys = secrets(&[key]);
        for text in [
            // OpenAI
            "Incorrect API key provided: sk-abcDEF******************************WXYZ. You can find your API key at https://platform.openai.com/account/api-keys.",
            "Incorrect API key provided: sk-...WXYZ.",
            // the whole key, in prose and in a URL
            "invalid key sk-abcDEF0123456789ghijklmnopWXYZ given",
            "see https://x.test/?key=sk-abcDEF0123456789ghijklmnopWXYZ&y=1",
            // a prefix with a mask
            "key sk-abcD… is not valid",
        ] {
            let clean = redact_text(text, &keys).unwrap();
            assert!(
                !clean.contains("WXYZ") && !clean.contains("sk-abcD"),
                "{clean}"
            );
            assert!(clean.contains(REDACTED), "{clean}");
        }
        // Nothing of the key: unchanged (Anthropic's and Gemini's invalid-key messages).
        for text in [
            "invalid x-api-key",
            "API key not valid. Please pass a valid API key.",
        ] {
            assert_eq!(redact_text(text, &keys), None);
        }
    }

    #[test]
    fn json_bodies_stay_json_and_untouched_bodies_stay_byte_identical() {
        let keys = secrets(&["AIzaSyA-secret-key-9876"]);
        let body = bytes::Bytes::from_static(
            br#"{"error": {"message": "bad key \"AIzaSyA-secret-key-9876\"", "details": [{"reason": "x ...9876"}]}}"#,
        );
        let clean = redact_secrets(body, &keys);
        let value: serde_json::Value = serde_json::from_slice(&clean).unwrap();
        assert_eq!(value["error"]["message"], "bad key \"[redacted]\"");
        assert_eq!(value["error"]["details"][0]["reason"], "x [redacted]");
        let untouched = bytes::Bytes::from_static(b"{\"error\":  {\"message\": \"quota\"}}");
        assert_eq!(redact_secrets(untouched.clone(), &keys), untouched);
    }

    #[test]
    fn secrets_come_from_credential_headers_and_the_key_parameter() {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer sk-token-12345678".parse().unwrap());
        headers.insert("x-goog-api-key", "AIza-header-key".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("x-api-key", "short".parse().unwrap());
        let request = UpstreamRequest {
            url: "https://up.test/v1?key=query-key-123&alt=sse"
                .parse()
                .unwrap(),
            headers,
            body: bytes::Bytes::new(),
            first_byte: None,
        };
        let mut found = secrets_of(&request);
        found.sort();
        assert_eq!(
            found,
            ["AIza-header-key", "query-key-123", "sk-token-12345678"]
        );
    }

    #[test]
    fn gemini_invalid_key_is_recognised() {
        let by_reason = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let by_message = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
        let other = br#"{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}"#;
        assert!(api_key_invalid(by_reason));
        assert!(api_key_invalid(by_message));
        assert!(!api_key_invalid(other));
        assert!(!api_key_invalid(b"not json"));
    }
}
