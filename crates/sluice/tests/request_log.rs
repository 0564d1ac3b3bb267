//! Seed 003's `request-log` through the real server: off writes nothing; turned on through the
//! management API it logs the next request (request, answer or upstream events, attempts),
//! with no client key, provider key or management key in any file; turned off it stops at
//! once; the listing and one entry by request id are served; files stay within their limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

const KEY_A: &str = "upstream-secret-aaaa";
const KEY_B: &str = "upstream-secret-bbbb";

async fn gateway(extra: &str) -> Harness {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
{extra}
providers:
  - name: pool
    kind: openai-compatible
    base-url: {base}
    api-keys: [{KEY_A}, {KEY_B}]
    models: [{{name: mock-model, alias: gpt-4o-mini}}]
  - name: gem
    kind: gemini
    base-url: 'http://{addr}'
    api-keys: [{KEY_A}]
    models: [{{name: gemini-mock}}]
",
        base = mock.base_url(),
        addr = mock.addr(),
    );
    Harness::from_yaml(mock, &yaml).await
}

/// Every byte of every file under the request log's directory.
fn all_files(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return String::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

async fn switch(h: &Harness, on: bool) {
    let resp = h
        .management(reqwest::Method::PUT, "/request-log")
        .json(&json!({"value": on}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn listing(h: &Harness) -> Value {
    let resp = h
        .management(reqwest::Method::GET, "/request-log")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn on_logs_redacted_entries_off_logs_nothing_and_both_take_effect_at_once() {
    let h = gateway("").await;
    let dir = h.data_dir.path().join("request-log");
    let plain = h.chat(json!({"model": "gpt-4o-mini", "messages": user("before")}));
    assert_eq!(plain.send().await.unwrap().status(), 200);
    h.records().await;
    assert_eq!(all_files(&dir), "", "off: nothing written");
    assert_eq!(
        listing(&h).await,
        json!({"request-log": false, "entries": []})
    );

    switch(&h, true).await;
    // A 429 on the first key, served by the second.
    h.mock
        .faults()
        .set_for_key(KEY_A, "status=429 retry_after=30");
    let failed_over = h
        .chat(json!({"model": "gpt-4o-mini", "messages": user("first question")}))
        .header("x-request-id", "req-failover")
        .send()
        .await
        .unwrap();
    assert_eq!(failed_over.status(), 200);
    h.mock.faults().clear_key(KEY_A);
    // A stream.
    let streamed = h
        .chat(json!({"model": "gpt-4o-mini", "stream": true, "messages": user("stream me")}))
        .header("x-request-id", "req-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    streamed.text().await.unwrap();
    // Gemini with the key in the query string.
    let gemini = h
        .http
        .post(h.url(&format!(
            "/v1beta/models/gemini-mock:generateContent?key={CLIENT_KEY}"
        )))
        .header("x-request-id", "req-gemini")
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(gemini.status(), 200);
    // A refused request is logged too, with the error it got.
    let refused = h
        .http
        .post(h.url("/v1/chat/completions"))
        .bearer_auth("sk-not-a-key-at-all")
        .header("x-request-id", "req-refused")
        .json(&json!({"model": "gpt-4o-mini", "messages": user("who am i")}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    h.records().await;

    let listed = listing(&h).await;
    assert_eq!(listed["request-log"], true);
    let ids: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["req-refused", "req-gemini", "req-stream", "req-failover"]
    );

    let entry = |id: &str| {
        let request = h.management(reqwest::Method::GET, &format!("/request-log/{id}"));
        async move {
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let failover = entry("req-failover").await;
    assert_eq!(
        failover["request"]["body"]["messages"][0]["content"],
        "first question"
    );
    assert_eq!(
        failover["request"]["headers"]["authorization"],
        "[redacted]"
    );
    assert_eq!(failover["response"]["status"], 200);
    assert!(failover["response"]["body"]["choices"].is_array());
    let attempts = failover["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{failover}");
    assert_eq!(
        (
            attempts[0]["credential"].as_str(),
            attempts[0]["status"].as_u64()
        ),
        (Some("pool#0"), Some(429))
    );
    assert_eq!(
        (
            attempts[1]["credential"].as_str(),
            attempts[1]["status"].as_u64()
        ),
        (Some("pool#1"), Some(200))
    );
    let stream = entry("req-stream").await;
    assert!(
        stream["response"]["upstream_events"]
            .as_str()
            .unwrap()
            .contains("data: ")
    );
    let gemini = entry("req-gemini").await;
    assert_eq!(
        gemini["request"]["path"],
        "/v1beta/models/gemini-mock:generateContent?key=[redacted]"
    );
    let refused = entry("req-refused").await;
    assert_eq!(refused["status"], 401);
    assert!(refused["response"]["error"]["message"].is_string());
    let missing = h
        .management(reqwest::Method::GET, "/request-log/no-such-request")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // No secret anywhere on disk.
    let text = all_files(&dir);
    for secret in [CLIENT_KEY, KEY_A, KEY_B, MGMT_KEY, "sk-not-a-key-at-all"] {
        assert!(!text.contains(secret), "{secret} is in the request log");
    }

    // Off again: the very next request is not logged.
    switch(&h, false).await;
    let after = h
        .chat(json!({"model": "gpt-4o-mini", "messages": user("after")}))
        .header("x-request-id", "req-after")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
    h.records().await;
    assert!(!all_files(&dir).contains("req-after"));
    assert_eq!(listing(&h).await["entries"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn files_rotate_and_stay_within_the_size_limit() {
    let h = gateway(
        "request-log: true
request-log-files: {max-file-size: 4KiB, max-total-size: 12KiB, max-body-size: 512}",
    )
    .await;
    let dir = h.data_dir.path().join("request-log");
    let long = "x".repeat(2000);
    for i in 0..40 {
        let resp = h
            .chat(json!({"model": "gpt-4o-mini", "messages": user(&format!("{i} {long}"))}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    h.records().await;
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    let total: u64 = files.iter().sum();
    assert!(files.len() >= 3, "rotated: {files:?}");
    assert!(files.iter().all(|len| *len <= 4096), "{files:?}");
    assert!(total <= 12 * 1024 + 4096, "{total}");
    // Bodies are cut at max-body-size: the 2000-character prompt is not kept whole.
    assert!(!all_files(&dir).contains(&long));
    let listed = listing(&h).await;
    assert!(!listed["entries"].as_array().unwrap().is_empty());
}
