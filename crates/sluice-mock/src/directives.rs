//! Per-request fault injection.
//!
//! Directives are `mock:key=value` tokens taken from the raw request body (anywhere, usually in a
//! user message, so they survive a gateway's translation) and from the `x-mock` header (where
//! the `mock:` prefix is optional and tokens are separated by spaces or commas). Later tokens
//! override earlier ones and the header overrides the body. Unknown keys and malformed values are
//! ignored.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};

/// Header carrying directives.
const HEADER: &str = "x-mock";

const PREFIX: &str = "mock:";

/// Upper bound for `words=N`, so one request cannot exhaust the mock's memory.
const MAX_WORDS: usize = 100_000;

/// The faults and reply shaping asked for by one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    /// `status=NNN` (400–599): answer with this error status.
    pub(crate) status: Option<StatusCode>,
    /// `retry_after=S`: `Retry-After` header value on an injected error.
    pub(crate) retry_after: Option<String>,
    /// `latency_ms=N`: wait before sending response headers.
    pub(crate) latency: Option<Duration>,
    /// `chunk_delay_ms=N`: wait between stream events.
    pub(crate) chunk_delay: Option<Duration>,
    /// `cut_after=N`: abort the connection after N stream events.
    pub(crate) cut_after: Option<usize>,
    /// `fail_after=N`: after N stream events, end the stream with the provider's own
    /// mid-stream error event (OpenAI's error chunk, Responses' `response.failed`, Anthropic's
    /// `error`, Gemini's error object), then close it cleanly.
    pub(crate) fail_after: Option<usize>,
    /// `fail_echo_key=1`: that error event's message echoes the key the request sent, whole
    /// and masked as OpenAI masks keys (`sk-...WXYZ`), as a leaky upstream might (OpenAI Chat,
    /// Anthropic and Gemini streams). Holds the key once [`arrive`] read it.
    pub(crate) fail_echo_key: Option<String>,
    /// `stall_after=N`: send nothing more, forever, after N stream events.
    pub(crate) stall_after: Option<usize>,
    /// `words=N`: reply `w1 w2 … wN` instead of the default text.
    pub(crate) words: Option<usize>,
    /// `cached=N`: cached prompt tokens to report.
    pub(crate) cached: Option<u64>,
    /// `cycle=S1.S2…`: the Nth request carrying this same pattern answers with status
    /// `S(N mod len)`; `200` means no fault.
    pub(crate) cycle: Option<String>,
    /// `usage=none`: report no usage at all (OpenAI Chat), as servers that ignore
    /// `stream_options.include_usage` do.
    pub(crate) omit_usage: bool,
    /// `reject_key=1`: refuse the key sent as the provider refuses an invalid one (OpenAI:
    /// 401 echoing the key masked; Anthropic: 401 `authentication_error`; Gemini: 400
    /// `INVALID_ARGUMENT` with reason `API_KEY_INVALID`). Meant for [`Faults::set_for_key`].
    pub(crate) reject_key: bool,
    /// `qwen_free_tier=ended`: answer as Qwen's portal does since its OAuth free tier was
    /// discontinued (2026-04-15): 429 `insufficient_quota`, "Qwen OAuth free tier quota
    /// exceeded…". Meant for [`Faults::set_for_key`].
    pub(crate) qwen_free_tier_ended: bool,
}

/// Faults set from outside the request, per server: directives for every request that
/// authenticates with a given key, and the counters of `cycle` patterns. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    shared: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    by_key: Mutex<HashMap<String, String>>,
    cycles: Mutex<HashMap<String, usize>>,
}

impl Faults {
    /// Applies `directives` (as in the `x-mock` header) to every request carrying `key`
    /// (`Authorization: Bearer`, `x-api-key`, `x-goog-api-key` or `api-key`), between the
    /// body's directives and the header's.
    pub fn set_for_key(&self, key: &str, directives: &str) {
        lock(&self.shared.by_key).insert(key.to_owned(), directives.to_owned());
    }

    /// Stops applying directives to requests with `key`.
    pub fn clear_key(&self, key: &str) {
        lock(&self.shared.by_key).remove(key);
    }

    fn for_request(&self, headers: &HeaderMap) -> Option<String> {
        let by_key = lock(&self.shared.by_key);
        if by_key.is_empty() {
            return None;
        }
        by_key.get(sent_key(headers)?).cloned()
    }

    /// The status of a `cycle` pattern's next turn.
    fn next_in_cycle(&self, pattern: &str) -> Option<StatusCode> {
        let statuses: Vec<u16> = pattern.split('.').filter_map(|s| s.parse().ok()).collect();
        if statuses.is_empty() {
            return None;
        }
        let mut cycles = lock(&self.shared.cycles);
        let turn = cycles.entry(pattern.to_owned()).or_default();
        let status = statuses[*turn % statuses.len()];
        *turn += 1;
        StatusCode::from_u16(status)
            .ok()
            .filter(|s| (400..=599).contains(&s.as_u16()))
    }
}

/// The key a request authenticates with (`Authorization: Bearer`, a SigV4 access key id,
/// `x-api-key`, `x-goog-api-key` or `api-key`).
fn sent_key(headers: &HeaderMap) -> Option<&str> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let key = value("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| sigv4_key_id(v)))
        .or_else(|| value("x-api-key"))
        .or_else(|| value("x-goog-api-key"))
        .or_else(|| value("api-key"))?;
    Some(key.trim())
}

/// The access key id of a SigV4 `Authorization` value.
pub(crate) fn sigv4_key_id(authorization: &str) -> Option<&str> {
    authorization
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")?
        .split('/')
        .next()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads a request's directives and waits out its `latency_ms`: the first step of every
/// endpoint, before authentication, so even a rejected request can be slowed down.
pub(crate) async fn arrive(faults: &Faults, headers: &HeaderMap, body: &[u8]) -> Directives {
    let header = headers.get(HEADER).and_then(|value| value.to_str().ok());
    let keyed = faults.for_request(headers);
    let mut directives = Directives::parse(None, &String::from_utf8_lossy(body));
    for extra in [keyed.as_deref(), header].into_iter().flatten() {
        directives.apply_header(extra);
    }
    if directives.fail_echo_key.is_some() {
        directives.fail_echo_key = Some(sent_key(headers).unwrap_or_default().to_owned());
    }
    if let Some(pattern) = directives.cycle.clone() {
        directives.status = faults.next_in_cycle(&pattern);
    }
    if let Some(latency) = directives.latency {
        tokio::time::sleep(latency).await;
    }
    directives
}

impl Directives {
    /// Collects directives from the raw body text and the `x-mock` header value.
    pub(crate) fn parse(header: Option<&str>, body: &str) -> Self {
        let mut directives = Self::default();
        let mut rest = body;
        while let Some(at) = rest.find(PREFIX) {
            rest = rest.get(at + PREFIX.len()..).unwrap_or_default();
            directives.apply(rest);
        }
        directives.apply_header(header.unwrap_or_default());
        directives
    }

    /// Applies header-style tokens (prefix optional, separated by spaces or commas).
    fn apply_header(&mut self, text: &str) {
        for token in text.split(|c: char| c.is_whitespace() || c == ',') {
            self.apply(token.strip_prefix(PREFIX).unwrap_or(token));
        }
    }

    /// Applies the `key=value` at the start of `text`, if there is one.
    fn apply(&mut self, text: &str) {
        let Some((key, value)) = split_directive(text) else {
            return;
        };
        match key {
            "status" => {
                if let Some(status) = number::<u16>(value)
                    .filter(|code| (400..=599).contains(code))
                    .and_then(|code| StatusCode::from_u16(code).ok())
                {
                    self.status = Some(status);
                }
            }
            "retry_after" => self.retry_after = Some(value.to_owned()),
            "latency_ms" => set(&mut self.latency, number(value).map(Duration::from_millis)),
            "chunk_delay_ms" => set(
                &mut self.chunk_delay,
                number(value).map(Duration::from_millis),
            ),
            "cut_after" => set(&mut self.cut_after, number(value)),
            "stall_after" => set(&mut self.stall_after, number(value)),
            "fail_after" => set(&mut self.fail_after, number(value)),
            "fail_echo_key" => self.fail_echo_key = matches!(value, "1" | "true").then(String::new),
            "words" => set(
                &mut self.words,
                number::<usize>(value).map(|n| n.min(MAX_WORDS)),
            ),
            "cached" => set(&mut self.cached, number(value)),
            "cycle" => self.cycle = Some(value.to_owned()),
            "usage" => self.omit_usage = value == "none",
            "reject_key" => self.reject_key = matches!(value, "1" | "true"),
            "qwen_free_tier" => self.qwen_free_tier_ended = value == "ended",
            _ => {}
        }
    }
}

fn number<T: FromStr>(value: &str) -> Option<T> {
    value.parse().ok()
}

/// Overwrites only with a valid value, so a malformed later token does not erase an earlier one.
fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

/// Splits a leading `[a-z_]+=[A-Za-z0-9_.-]+` into key and value (trailing dots dropped).
fn split_directive(text: &str) -> Option<(&str, &str)> {
    let key_len = text
        .bytes()
        .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
        .count();
    let (key, rest) = text.split_at_checked(key_len)?;
    let rest = rest.strip_prefix('=')?;
    let value_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    // A sentence-ending period is prose, not part of the value.
    let value = rest.get(..value_len)?.trim_end_matches('.');
    (!key.is_empty() && !value.is_empty()).then_some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_directives_are_found_anywhere_in_the_text() {
        let body = r#"{"messages":[{"role":"user","content":"hi mock:status=429 mock:retry_after=2, mock:words=7."}]}"#;
        let d = Directives::parse(None, body);
        assert_eq!(d.status, Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(d.retry_after.as_deref(), Some("2"));
        assert_eq!(d.words, Some(7));
        assert_eq!(d.latency, None);
    }

    #[test]
    fn header_overrides_body_and_prefix_is_optional_there() {
        let d = Directives::parse(
            Some("mock:latency_ms=5, chunk_delay_ms=3 cut_after=2"),
            "mock:latency_ms=900 mock:stall_after=4",
        );
        assert_eq!(d.latency, Some(Duration::from_millis(5)));
        assert_eq!(d.chunk_delay, Some(Duration::from_millis(3)));
        assert_eq!(d.cut_after, Some(2));
        assert_eq!(d.stall_after, Some(4));
    }

    #[test]
    fn malformed_and_unknown_tokens_are_ignored() {
        let d = Directives::parse(
            Some("status=200 cached=x bogus=1"),
            "mock:status=503 mock: words=3 mock:Words=3 mock:cached= mock:status=abc",
        );
        assert_eq!(d.status, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(d.words, None);
        assert_eq!(d.cached, None);
    }

    #[test]
    fn words_are_capped() {
        let d = Directives::parse(None, "mock:words=999999999");
        assert_eq!(d.words, Some(MAX_WORDS));
    }
}
