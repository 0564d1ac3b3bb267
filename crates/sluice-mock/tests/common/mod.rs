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
