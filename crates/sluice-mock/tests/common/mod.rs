//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

/// A mock with the default config (any model, any key, recording on).
pub async fn start() -> MockServer {
    start_with(MockConfig::default()).await
}

pub async fn start_with(config: MockConfig) -> MockServer {
    MockServer::start(config).await.expect("mock starts")
}

/// POST `body` to `/v1/chat/completions` with optional `x-mock` directives.
pub async fn chat(
    server: &MockServer,
    body: &Value,
    directives: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(body);
    if let Some(directives) = directives {
        request = request.header("x-mock", directives);
    }
    request.send().await.expect("request reaches the mock")
}

/// A minimal request with one user message.
pub fn user_request(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

/// The `data:` payloads of an SSE body, checking the framing on the way.
pub fn sse_data(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "SSE body must end with a blank line: {body:?}"
    );
    body.trim_end_matches("\n\n")
        .split("\n\n")
        .map(|event| {
            assert!(!event.contains('\n'), "one line per event: {event:?}");
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without `data: `: {event:?}"))
                .to_owned()
        })
        .collect()
}

/// The JSON chunks of an SSE body, asserting it ends with exactly one `[DONE]`.
pub fn sse_chunks(body: &str) -> Vec<Value> {
    let mut data = sse_data(body);
    assert_eq!(data.pop().as_deref(), Some("[DONE]"));
    data.iter()
        .map(|d| serde_json::from_str(d).expect("chunk is JSON"))
        .collect()
}

/// Asserts the OpenAI error shape and returns the `error` object.
pub async fn error_body(response: reqwest::Response) -> Value {
    let body: Value = response.json().await.expect("error body is JSON");
    let error = body["error"].clone();
    for key in ["message", "type", "param", "code"] {
        assert!(error.get(key).is_some(), "error lacks {key}: {body}");
    }
    assert!(error["message"].is_string() && error["type"].is_string());
    error
}

/// POST `body` as JSON to `path` (from the server root, e.g. `/v1/messages`) with extra headers.
pub async fn post(
    server: &MockServer,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", server.addr()))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request reaches the mock")
}

/// GET `path` (from the server root) with extra headers.
pub async fn get(server: &MockServer, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("http://{}{path}", server.addr()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request reaches the mock")
}

/// The `(event name, JSON data)` pairs of an SSE body whose events are named (Anthropic,
/// OpenAI Responses), checking the framing: `event:` line, `data:` line, blank line.
pub fn sse_events(body: &str) -> Vec<(String, Value)> {
    assert!(
        body.ends_with("\n\n"),
        "SSE body must end with a blank line: {body:?}"
    );
    body.trim_end_matches("\n\n")
        .split("\n\n")
        .map(|event| {
            let (name, data) = event
                .split_once('\n')
                .unwrap_or_else(|| panic!("event without two lines: {event:?}"));
            let name = name
                .strip_prefix("event: ")
                .unwrap_or_else(|| panic!("first line is not `event: `: {event:?}"));
            let data = data
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("second line is not `data: `: {event:?}"));
            assert!(!data.contains('\n'), "one data line per event: {event:?}");
            let json: Value = serde_json::from_str(data).expect("event data is JSON");
            assert_eq!(json["type"], name, "data.type matches the event name");
            (name.to_owned(), json)
        })
        .collect()
}

/// Reads a stream until the connection fails, asserting it does fail (not end cleanly), and
/// returns what arrived before.
pub async fn read_until_cut(mut response: reqwest::Response) -> String {
    let mut received = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!("clean end after {:?}", String::from_utf8_lossy(&received)),
            Err(error) => {
                assert!(error.is_body() || error.is_decode(), "{error:?}");
                return String::from_utf8(received).expect("UTF-8 stream");
            }
        }
    }
}
