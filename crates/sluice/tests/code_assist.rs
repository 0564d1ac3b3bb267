//! Gemini Code Assist accounts (token files of type `gemini`, as `sluice login gemini` writes
//! them) served through every client dialect, against sluice-mock's strict Code Assist fake:
//! wrapped requests with the account's project, unwrapped answers and streams, countTokens,
//! the first 401 answered by one refresh and one retry, usage records under platform `gemini`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer, RecordedRequest};

const MODEL: &str = "gemini-2.5-pro";
const FILE: &str = "gemini-me@example.com.json";

struct Account {
    h: Harness,
    _dir: tempfile::TempDir,
}

/// A gateway whose only upstream is one Code Assist account of `project`, its access token
/// refused by the fake (`expired-…`) although the file says it is good for an hour, so the
/// first request meets a 401.
async fn account(project: &str) -> Account {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let expiry = chrono::Utc::now() + chrono::Duration::hours(1);
    let file = json!({
        "type": "gemini",
        "token": {"access_token": "expired-ya29", "refresh_token": "google-rt", "token_type": "Bearer",
                  "expiry": expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)},
        "project_id": project, "email": "me@example.com",
    });
    std::fs::write(dir.path().join(FILE), file.to_string()).unwrap();
    let addr = mock.addr();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
auth-dir: '{dir}'
oauth:
  refresh-interval: 1h
  gemini: {{token-url: 'http://{addr}/token', code-assist-url: 'http://{addr}/v1internal'}}
providers: []
",
        dir = dir.path().display()
    );
    Account {
        h: Harness::from_yaml(mock, &yaml).await,
        _dir: dir,
    }
}

impl Account {
    fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.h
            .http
            .post(self.h.url(path))
            .header("x-goog-api-key", CLIENT_KEY)
            .header("x-api-key", CLIENT_KEY)
            .bearer_auth(CLIENT_KEY)
            .json(&body)
    }

    /// The fake's last Code Assist call.
    fn last_call(&self) -> RecordedRequest {
        self.h
            .mock
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.path.starts_with("/v1internal:"))
            .expect("Code Assist was called")
    }
}

fn gemini_body(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

fn assert_wrapped(call: &RecordedRequest, method: &str, project: &str) {
    assert_eq!(call.path, format!("/v1internal:{method}"));
    let token = call.header("authorization").unwrap();
    assert!(
        token.starts_with("Bearer oauth-google-at-"),
        "the refreshed token: {token}"
    );
    assert!(
        call.header("user-agent")
            .unwrap()
            .starts_with(&format!("GeminiCLI/0.34.0/{MODEL} (")),
        "{:?}",
        call.header("user-agent")
    );
    let body = call.json().unwrap();
    assert_eq!(body["model"], MODEL, "{body}");
    assert_eq!(body["project"], project, "{body}");
    assert!(body["request"]["contents"].is_array(), "{body}");
    assert!(body.get("contents").is_none(), "{body}");
}

#[tokio::test]
async fn every_dialect_reaches_a_code_assist_account() {
    let a = account("fake-project").await;

    // Gemini client, whole: the first attempt's 401 costs one refresh and one retry.
    let r = a
        .post(
            &format!("/v1beta/models/{MODEL}:generateContent"),
            gemini_body("hello code assist"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let whole: Value = r.json().await.unwrap();
    assert!(whole.get("response").is_none(), "unwrapped: {whole}");
    let text = whole["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("hello code assist"), "{text}");
    assert!(whole["responseId"].is_string(), "the trace id: {whole}");
    assert_eq!(a.h.mock.oauth().token_calls(), 1);
    assert_wrapped(&a.last_call(), "generateContent", "fake-project");

    // Gemini client, streamed: every event unwrapped.
    let r = a
        .post(
            &format!("/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"),
            gemini_body("stream please"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = sse_events(&r.text().await.unwrap());
    assert!(events.len() > 1);
    assert!(
        events
            .iter()
            .all(|(_, e)| e["candidates"].is_array() && e.get("response").is_none()),
        "{events:?}"
    );
    let streamed: String = events
        .iter()
        .filter_map(|(_, e)| e["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert!(streamed.contains("stream please"), "{streamed}");
    let call = a.last_call();
    assert_wrapped(&call, "streamGenerateContent", "fake-project");
    assert_eq!(call.query.as_deref(), Some("alt=sse"));

    // Gemini client, countTokens: Code Assist's count body, without a project.
    let r = a
        .post(
            &format!("/v1beta/models/{MODEL}:countTokens"),
            gemini_body("count me"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let counted: Value = r.json().await.unwrap();
    assert!(counted["totalTokens"].as_u64().unwrap() > 0, "{counted}");
    let call = a.last_call();
    assert_eq!(call.path, "/v1internal:countTokens");
    let body = call.json().unwrap();
    assert_eq!(body["request"]["model"], format!("models/{MODEL}"));
    assert!(body.get("project").is_none(), "{body}");

    // OpenAI Chat, whole and streamed.
    let r =
        a.h.chat(json!({"model": MODEL, "messages": user("from openai")}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let chat: Value = r.json().await.unwrap();
    assert!(
        chat["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("from openai")
    );
    assert!(chat["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_wrapped(&a.last_call(), "generateContent", "fake-project");
    let r =
        a.h.chat(json!({"model": MODEL, "messages": user("openai stream"), "stream": true}))
            .send()
            .await
            .unwrap();
    let text: String = sse_data(&r.text().await.unwrap())
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert!(text.contains("openai stream"), "{text}");
    assert_wrapped(&a.last_call(), "streamGenerateContent", "fake-project");

    // Anthropic Messages, whole, streamed and counted.
    let r = a
        .post(
            "/v1/messages",
            json!({"model": MODEL, "max_tokens": 64, "messages": user("from anthropic")}),
        )
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let message: Value = r.json().await.unwrap();
    assert!(
        message["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("from anthropic")
    );
    let r = a
        .post(
            "/v1/messages",
            json!({"model": MODEL, "max_tokens": 64, "stream": true, "messages": user("anthropic stream")}),
        )
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    let events = sse_events(&r.text().await.unwrap());
    assert!(
        events
            .iter()
            .any(|(n, _)| n.as_deref() == Some("message_stop"))
    );
    let r = a
        .post(
            "/v1/messages/count_tokens",
            json!({"model": MODEL, "messages": user("count from anthropic")}),
        )
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let counted: Value = r.json().await.unwrap();
    assert!(counted["input_tokens"].as_u64().unwrap() > 0, "{counted}");
    assert_eq!(a.last_call().path, "/v1internal:countTokens");

    // OpenAI Responses, and seed 004's `/gemini/v1/chat` (Gemini platforms only).
    let r = a
        .post(
            "/v1/responses",
            json!({"model": MODEL, "input": "from responses"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let response: Value = r.json().await.unwrap();
    assert!(
        response.to_string().contains("from responses"),
        "{response}"
    );
    assert_wrapped(&a.last_call(), "generateContent", "fake-project");
    let r = a
        .post(
            "/gemini/v1/chat",
            json!({"model": MODEL, "messages": user("from seed 004")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let chat: Value = r.json().await.unwrap();
    assert!(chat.to_string().contains("from seed 004"), "{chat}");
    assert_wrapped(&a.last_call(), "generateContent", "fake-project");

    // Every request is one record of the account, under seed 004's `gemini` platform.
    let records = a.h.wait_records(10).await;
    assert_eq!(records.len(), 10);
    for record in &records {
        assert_eq!(record.status, 200, "{record:?}");
        assert_eq!(record.platform.as_deref(), Some("gemini"));
        assert_eq!(
            record.provider.as_deref(),
            Some(format!("auth-file:{FILE}").as_str())
        );
    }
    assert_eq!(a.h.mock.oauth().token_calls(), 1, "one refresh in all");
}

#[tokio::test]
async fn a_project_the_account_lacks_is_refused_in_the_callers_words() {
    let a = account("someone-elses").await;
    let r =
        a.h.chat(json!({"model": MODEL, "messages": user("hi")}))
            .send()
            .await
            .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("projects/someone-elses"), "{message}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
