//! Errors and injected faults: auth, validation, `mock:` directives, cut and stalled streams,
//! client cancellation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{chat, error_body, sse_data, start, start_with, user_request};
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

fn keyed() -> MockConfig {
    MockConfig {
        models: vec!["gpt-4o-mini".into()],
        api_keys: vec!["sk-good-key-0001".into()],
        ..MockConfig::default()
    }
}

async fn chat_with_key(server: &MockServer, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

fn stream_request(text: &str) -> Value {
    let mut body = user_request(text);
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn wrong_key_is_rejected_with_a_masked_key() {
    let server = start_with(keyed()).await;
    let response = chat_with_key(&server, Some("sk-wrong-key-9876"), &user_request("hi")).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("x-request-id"));
    let error = error_body(response).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "invalid_api_key");
    assert_eq!(error["param"], Value::Null);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("Incorrect API key provided: sk-...9876."),
        "{message}"
    );
    assert!(!message.contains("sk-wrong-key-9876"));

    let ok = chat_with_key(&server, Some("sk-good-key-0001"), &user_request("hi")).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn missing_key_is_rejected() {
    let server = start_with(keyed()).await;
    let response = chat_with_key(&server, None, &user_request("hi")).await;
    assert_eq!(response.status(), 401);
    let error = error_body(response).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("You didn't provide an API key")
    );
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let server = start().await;
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error = error_body(response).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("could not parse the JSON body")
    );
}

#[tokio::test]
async fn missing_fields_are_named() {
    let server = start().await;
    for (body, field) in [
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "model",
        ),
        (json!({"model": "gpt-4o-mini"}), "messages"),
    ] {
        let response = chat(&server, &body, None).await;
        assert_eq!(response.status(), 400);
        let error = error_body(response).await;
        assert_eq!(error["param"], field);
        assert_eq!(error["code"], "missing_required_parameter");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains(&format!("'{field}'"))
        );
    }
}

#[tokio::test]
async fn unknown_model_is_a_404() {
    let server = start_with(keyed()).await;
    let mut body = user_request("hi");
    body["model"] = json!("gpt-9");
    let response = chat_with_key(&server, Some("sk-good-key-0001"), &body).await;
    assert_eq!(response.status(), 404);
    let error = error_body(response).await;
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(
        error["message"],
        "The model `gpt-9` does not exist or you do not have access to it."
    );
}

#[tokio::test]
async fn unknown_url_and_wrong_method() {
    let server = start().await;
    let response = reqwest::get(format!("{}/nope", server.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        error_body(response).await["message"],
        "Invalid URL (GET /v1/nope)"
    );
    let response = reqwest::get(format!("{}/chat/completions", server.base_url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    error_body(response).await;
}

#[tokio::test]
async fn injected_429_with_retry_after() {
    let server = start().await;
    let body = user_request("please fail mock:status=429 mock:retry_after=2");
    let response = chat(&server, &body, None).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let error = error_body(response).await;
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["type"], "requests");
    assert!(error["message"].as_str().unwrap().contains("injected"));
}

#[tokio::test]
async fn injected_status_from_the_header() {
    let server = start().await;
    let response = chat(&server, &user_request("hi"), Some("mock:status=503")).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_none());
    let error = error_body(response).await;
    assert_eq!(error["type"], "server_error");
    assert_eq!(error["code"], Value::Null);
}

#[tokio::test]
async fn latency_delays_the_headers() {
    let server = start().await;
    let started = Instant::now();
    let response = chat(&server, &user_request("slow mock:latency_ms=300"), None).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let response = chat(&server, &stream_request("slow"), Some("latency_ms=300")).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn chunk_delay_spaces_out_the_events() {
    let server = start().await;
    let started = Instant::now();
    let response = chat(
        &server,
        &stream_request("mock:words=2 mock:chunk_delay_ms=40"),
        None,
    )
    .await;
    let events = sse_data(&response.text().await.unwrap());
    // role, 2 words, finish, [DONE]: four gaps.
    assert_eq!(events.len(), 5);
    assert!(
        started.elapsed() >= Duration::from_millis(160),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn cut_after_makes_the_client_see_an_error() {
    let server = start().await;
    let mut response = chat(
        &server,
        &stream_request("mock:words=20 mock:cut_after=2"),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let error = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => panic!("clean end after {:?}", String::from_utf8_lossy(&received)),
            Err(error) => break error,
        }
    };
    assert!(error.is_body() || error.is_decode(), "{error:?}");
    let received = String::from_utf8(received).unwrap();
    let events = sse_data(&received);
    assert_eq!(
        events.len(),
        2,
        "exactly the first two events arrive: {received:?}"
    );
    assert!(events[1].contains("\"content\":\"w1 \""));
    assert_eq!(
        server.cancelled_streams(),
        0,
        "a cut is not a client cancellation"
    );
}

#[tokio::test]
async fn stall_after_stops_sending_without_ending() {
    let server = start().await;
    let mut response = chat(&server, &stream_request("mock:stall_after=2"), None).await;
    let mut received = Vec::new();
    while sse_events_in(&received) < 2 {
        let chunk = response.chunk().await.unwrap().expect("stream continues");
        received.extend_from_slice(&chunk);
    }
    let next = tokio::time::timeout(Duration::from_millis(200), response.chunk()).await;
    assert!(next.is_err(), "nothing more may arrive: {next:?}");
    drop(response);
    wait_for_cancelled(&server, 1).await;
}

fn sse_events_in(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes).matches("\n\n").count()
}

#[tokio::test]
async fn dropping_a_slow_stream_counts_as_cancelled() {
    let server = start().await;
    let mut response = chat(
        &server,
        &stream_request("mock:words=50 mock:chunk_delay_ms=50"),
        None,
    )
    .await;
    let first = response.chunk().await.unwrap().expect("first event");
    assert!(first.starts_with(b"data: "));
    assert_eq!(server.cancelled_streams(), 0);
    drop(response);
    wait_for_cancelled(&server, 1).await;
}

#[tokio::test]
async fn completed_streams_are_not_cancelled() {
    let server = start().await;
    let text = chat(&server, &stream_request("mock:words=3"), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    // Give the server time to drop the finished body.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.cancelled_streams(), 0);
}

async fn wait_for_cancelled(server: &MockServer, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.cancelled_streams() < expected {
        assert!(
            Instant::now() < deadline,
            "stream never counted as cancelled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.cancelled_streams(), expected);
}

#[tokio::test]
async fn faults_by_key_hit_only_that_key() {
    let server = start().await;
    server
        .faults()
        .set_for_key("key-a", "status=429 retry_after=3");
    let a = chat_with_key(&server, Some("key-a"), &user_request("hi")).await;
    assert_eq!(a.status(), 429);
    assert_eq!(a.headers()["retry-after"], "3");
    let b = chat_with_key(&server, Some("key-b"), &user_request("hi")).await;
    assert_eq!(b.status(), 200);
    // The request's own header still overrides.
    let overridden = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth("key-a")
        .header("x-mock", "status=503")
        .json(&user_request("hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(overridden.status(), 503);
    server.faults().clear_key("key-a");
    let a = chat_with_key(&server, Some("key-a"), &user_request("hi")).await;
    assert_eq!(a.status(), 200);
    assert_eq!(server.requests_with_key("key-a"), 3);
    assert_eq!(server.requests_with_key("key-b"), 1);
}

#[tokio::test]
async fn cycle_patterns_take_turns() {
    let server = start().await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = chat_with_key(&server, None, &user_request("mock:cycle=429.200.500")).await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [429, 200, 500, 429, 200, 500]);
}
