//! Recording, inspection endpoints, shutdown, and the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{chat, start, start_with, user_request};
use serde_json::{Value, json};
use sluice_mock::MockConfig;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn requests_are_recorded_with_headers_body_and_path() {
    let server = start().await;
    let body = user_request("record me");
    let response = reqwest::Client::new()
        .post(format!(
            "{}/chat/completions?api-version=1",
            server.base_url()
        ))
        .bearer_auth("sk-upstream")
        .header("X-Custom", "yes")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Even a failing request is recorded.
    let failing = chat(&server, &json!({"model": "m"}), None).await;
    assert_eq!(failing.status(), 400);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.query.as_deref(), Some("api-version=1"));
    assert_eq!(first.header("authorization"), Some("Bearer sk-upstream"));
    assert_eq!(first.header("X-CUSTOM"), Some("yes"));
    assert!(
        first
            .headers
            .iter()
            .all(|(name, _)| *name == name.to_lowercase())
    );
    assert_eq!(first.json(), Some(body));
    assert_eq!(requests[1].json(), Some(json!({"model": "m"})));

    server.clear();
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn inspection_endpoints_list_and_clear() {
    let server = start().await;
    chat(&server, &user_request("one"), None).await;
    let url = format!("http://{}/__mock/requests", server.addr());
    let listed: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "inspection requests are not recorded");
    assert_eq!(listed[0]["path"], "/v1/chat/completions");
    assert_eq!(listed[0]["method"], "POST");
    assert!(listed[0]["body"].as_str().unwrap().contains("one"));

    let stats: Value = reqwest::get(format!("http://{}/__mock/stats", server.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, json!({"requests": 1, "cancelled_streams": 0}));

    let cleared = reqwest::Client::new().delete(&url).send().await.unwrap();
    assert!(cleared.status().is_success());
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn recording_can_be_switched_off() {
    let server = start_with(MockConfig {
        record: false,
        ..MockConfig::default()
    })
    .await;
    let response = chat(&server, &user_request("hi"), None).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn router_can_be_embedded() {
    let (app, recorder) = sluice_mock::router(MockConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&user_request("embedded"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(recorder.requests().len(), 1);
    task.abort();
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = start().await;
    let base_url = server.base_url();
    assert_eq!(chat(&server, &user_request("hi"), None).await.status(), 200);
    drop(server);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // A fresh client: no pooled connection to reuse.
        let result = reqwest::Client::new()
            .post(format!("{base_url}/chat/completions"))
            .json(&user_request("hi"))
            .send()
            .await;
        if result.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "server still answers after drop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn binary_prints_its_address_and_serves() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice-mock"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--model",
            "m1",
            "--api-key",
            "sk-cli-key-1234",
            "--no-record",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the address line comes")
        .unwrap()
        .unwrap();
    let url = line
        .strip_prefix("sluice-mock listening on http://")
        .expect(&line);
    assert!(!url.ends_with(":0"), "the real port is printed: {line}");

    let response = reqwest::Client::new()
        .post(format!("http://{url}/v1/chat/completions"))
        .bearer_auth("sk-cli-key-1234")
        .json(&json!({"model": "m1", "messages": [{"role": "user", "content": "cli"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let unknown_model = reqwest::Client::new()
        .post(format!("http://{url}/v1/chat/completions"))
        .bearer_auth("sk-cli-key-1234")
        .json(&json!({"model": "m2", "messages": [{"role": "user", "content": "cli"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_model.status(), 404);
    let stats: Value = reqwest::get(format!("http://{url}/__mock/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 0, "--no-record");
    child.kill().await.unwrap();
}
