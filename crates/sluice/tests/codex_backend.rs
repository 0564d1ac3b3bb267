//! The ChatGPT Codex backend behind a Codex OAuth account (a `codex` token file), against
//! sluice-mock's strict fake (`/backend-api/codex/responses`: 400 without `stream: true`,
//! `store: false`, `instructions`, a list `input`, or with a parameter it refuses; 400/403
//! without the right `chatgpt-account-id`). Every client dialect reaches it, whole and
//! streamed; a whole answer is the upstream's stream folded, with the stream's exact usage;
//! usage records carry platform `codex`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

const MODEL: &str = "gpt-5-codex";
const ACCOUNT: &str = "chatgpt-acct-42";

struct Codex {
    h: Harness,
    _dir: tempfile::TempDir,
}

/// A gateway whose only chat provider is one Codex account (`id_token` naming `ACCOUNT`, no
/// `account_id` field: the claim is where it comes from).
async fn start() -> Codex {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id_token = sluice_oauth::jwt::unsigned(&json!({
        "email": "me@example.com",
        "https://api.openai.com/auth": {"chatgpt_account_id": ACCOUNT, "chatgpt_plan_type": "plus"},
    }));
    let expires = chrono::Utc::now() + chrono::Duration::days(7);
    std::fs::write(
        dir.path().join("codex-me.json"),
        json!({"type": "codex", "access_token": "codex-access-1", "refresh_token": "codex-rt-1",
            "id_token": id_token, "email": "me@example.com",
            "expired": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
        .to_string(),
    )
    .unwrap();
    let addr = mock.addr();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
auth-dir: '{dir}'
oauth:
  codex: {{token-url: 'http://{addr}/oauth/token', base-url: 'http://{addr}/backend-api/codex'}}
providers: []
",
        dir = dir.path().display()
    );
    Codex {
        h: Harness::from_yaml(mock, &yaml).await,
        _dir: dir,
    }
}

impl Codex {
    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.h
            .http
            .post(self.h.url(path))
            .bearer_auth(CLIENT_KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
    }

    /// The last request the fake backend received.
    fn sent(&self) -> sluice_mock::RecordedRequest {
        self.h
            .mock
            .requests()
            .into_iter()
            .rfind(|r| r.path == "/backend-api/codex/responses")
            .expect("the Codex backend was not called")
    }
}

/// (path, body, stream) per client dialect asking the same question.
fn asks(stream: bool) -> Vec<(&'static str, String, Value)> {
    let gemini = if stream {
        format!("/v1beta/models/{MODEL}:streamGenerateContent?alt=sse")
    } else {
        format!("/v1beta/models/{MODEL}:generateContent")
    };
    vec![
        (
            "openai chat",
            "/v1/chat/completions".into(),
            json!({"model": MODEL, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                "max_tokens": 64, "temperature": 0.2, "stream": stream}),
        ),
        (
            "openai responses",
            "/v1/responses".into(),
            json!({"model": MODEL, "input": "hi", "max_output_tokens": 64, "store": true, "stream": stream}),
        ),
        (
            "anthropic",
            "/v1/messages".into(),
            json!({"model": MODEL, "max_tokens": 64, "system": "be brief",
                "messages": [{"role": "user", "content": "hi"}], "stream": stream}),
        ),
        (
            "gemini",
            gemini,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "generationConfig": {"maxOutputTokens": 64}}),
        ),
    ]
}

/// The reply text of a whole answer in any dialect.
fn whole_text(answer: &Value) -> String {
    let pointers = [
        "/choices/0/message/content",
        "/output_text",
        "/content/0/text",
        "/candidates/0/content/parts/0/text",
    ];
    if let Some(items) = answer["output"].as_array() {
        for item in items {
            if let Some(t) = item.pointer("/content/0/text").and_then(Value::as_str) {
                return t.to_string();
            }
        }
    }
    pointers
        .iter()
        .find_map(|p| answer.pointer(p).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn every_dialect_is_served_whole_and_streamed_with_the_backends_rules() {
    let c = start().await;
    let mut expected_usage = None;
    for stream in [false, true] {
        for (dialect, path, body) in asks(stream) {
            let resp = c.post(&path, body).send().await.unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_eq!(status, 200, "{dialect} stream={stream}: {text}");
            if stream {
                assert!(text.contains("data:"), "{dialect}: an event stream: {text}");
            } else {
                let answer: Value = serde_json::from_str(&text).unwrap();
                assert!(
                    !whole_text(&answer).is_empty(),
                    "{dialect}: one whole answer with text: {answer}"
                );
            }
            let sent = c.sent();
            assert_eq!(sent.header("chatgpt-account-id"), Some(ACCOUNT));
            assert_eq!(sent.header("authorization"), Some("Bearer codex-access-1"));
            assert_eq!(sent.header("originator"), Some("codex_cli_rs"));
            assert!(sent.header("session_id").is_some());
            assert_eq!(sent.header("accept"), Some("text/event-stream"));
            let upstream: Value = serde_json::from_str(&sent.body).unwrap();
            assert_eq!(upstream["stream"], true, "{dialect}: {upstream}");
            assert_eq!(upstream["store"], false);
            assert!(upstream["instructions"].is_string());
            assert!(upstream["input"].is_array());
            assert!(
                upstream["include"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("reasoning.encrypted_content"))
            );
            for refused in ["max_output_tokens", "temperature", "max_tokens"] {
                assert!(upstream.get(refused).is_none(), "{dialect}: {upstream}");
            }
        }
    }
    let records = c.h.wait_records(8).await;
    assert_eq!(records.len(), 8);
    for r in &records {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.platform.as_deref(), Some("codex"));
        assert_eq!(r.provider.as_deref(), Some("auth-file:codex-me.json"));
        assert!(!r.estimated, "usage read from the upstream: {r:?}");
        assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
        if r.endpoint == "openai.responses" {
            // Same prompt whole and streamed: the folded answer has the stream's usage.
            match expected_usage {
                None => expected_usage = Some(r.usage),
                Some(u) => assert_eq!(u, r.usage, "whole and streamed usage agree"),
            }
        }
    }
}

#[tokio::test]
async fn a_whole_answer_is_the_folded_stream_with_its_usage() {
    let c = start().await;
    let whole: Value = c
        .post(
            "/v1/responses",
            json!({"model": MODEL, "input": "hi", "stream": false}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["object"], "response", "{whole}");
    assert_eq!(whole["status"], "completed");
    // The fake's own answer to the same request, streamed: its completed event's usage.
    let sent = c.sent();
    let streamed = reqwest::Client::new()
        .post(format!(
            "http://{}/backend-api/codex/responses",
            c.h.mock.addr()
        ))
        .header("authorization", "Bearer codex-access-1")
        .header("chatgpt-account-id", ACCOUNT)
        .header("content-type", "application/json")
        .body(sent.body.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let completed = sse_data(&streamed)
        .into_iter()
        .filter_map(|d| serde_json::from_str::<Value>(&d).ok())
        .find(|e| e["type"] == "response.completed")
        .unwrap();
    let usage = &completed["response"]["usage"];
    assert_eq!(whole["usage"]["input_tokens"], usage["input_tokens"]);
    assert_eq!(whole["usage"]["output_tokens"], usage["output_tokens"]);
    assert_eq!(whole["usage"]["total_tokens"], usage["total_tokens"]);
    assert_eq!(
        whole_text(&whole),
        whole_text(&completed["response"]),
        "the same text"
    );
}

#[tokio::test]
async fn the_fake_refuses_what_the_backend_refuses() {
    let c = start().await;
    let url = format!("http://{}/backend-api/codex/responses", c.h.mock.addr());
    let good = json!({"model": MODEL, "input": [{"role": "user", "content": "hi"}],
        "instructions": "", "stream": true, "store": false});
    let http = reqwest::Client::new();
    let send = |body: Value, account: Option<&str>, token: &str| {
        let mut req = http
            .post(&url)
            .header("authorization", format!("Bearer {token}"))
            .json(&body);
        if let Some(a) = account {
            req = req.header("chatgpt-account-id", a);
        }
        req.send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(send(good.clone(), Some(ACCOUNT), "t").await.unwrap()),
        200
    );
    assert_eq!(status(send(good.clone(), None, "t").await.unwrap()), 400);
    assert_eq!(
        status(
            send(good.clone(), Some(ACCOUNT), "expired-t")
                .await
                .unwrap()
        ),
        401
    );
    let other = sluice_oauth::jwt::unsigned(
        &json!({"https://api.openai.com/auth": {"chatgpt_account_id": "someone-else"}}),
    );
    assert_eq!(
        status(send(good.clone(), Some(ACCOUNT), &other).await.unwrap()),
        403
    );
    for (field, value) in [
        ("stream", json!(false)),
        ("store", json!(true)),
        ("instructions", Value::Null),
        ("input", json!("hi")),
        ("max_output_tokens", json!(5)),
    ] {
        let mut body = good.clone();
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value;
        }
        let resp = send(body, Some(ACCOUNT), "t").await.unwrap();
        assert_eq!(resp.status(), 400, "{field}");
        let detail: Value = resp.json().await.unwrap();
        assert!(detail["detail"].is_string(), "{field}: {detail}");
    }
}
