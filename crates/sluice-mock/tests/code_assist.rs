//! The Code Assist fake (`/v1internal:generateContent`, `:streamGenerateContent`, `:countTokens`):
//! wrapped bodies and answers, and the refusals of what Google's service refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::start;
use serde_json::{Value, json};
use sluice_mock::MockServer;
use sluice_mock::oauth::{GEMINI_CLIENT_ID, GEMINI_CLIENT_SECRET};

const MODEL: &str = "gemini-2.5-pro";

/// An access token the fake's Google token endpoint issued (a refresh of an unseen token).
async fn google_token(server: &MockServer) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("http://{}/token", server.addr()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "seed-refresh-token"),
            ("client_id", GEMINI_CLIENT_ID),
            ("client_secret", GEMINI_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

async fn call(server: &MockServer, method: &str, token: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/v1internal:{method}", server.addr()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn contents() -> Value {
    json!([{"role": "user", "parts": [{"text": "hi there"}]}])
}

fn wrapped(project: &str) -> Value {
    json!({"model": MODEL, "project": project, "user_prompt_id": "p1", "request": {"contents": contents()}})
}

async fn refused(response: reqwest::Response, status: u16, words: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], status, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(words), "{message}");
}

#[tokio::test]
async fn wrapped_generation_stream_and_count() {
    let server = start().await;
    let token = google_token(&server).await;

    let whole: Value = call(&server, "generateContent", &token, &wrapped("fake-project"))
        .await
        .json()
        .await
        .unwrap();
    assert!(whole["traceId"].is_string(), "{whole}");
    let text = whole["response"]["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(text.contains("hi there"), "{text}");
    assert!(whole["response"]["usageMetadata"]["totalTokenCount"].is_u64());

    let stream = call(
        &server,
        "streamGenerateContent?alt=sse",
        &token,
        &wrapped("fake-project"),
    )
    .await;
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let body = stream.text().await.unwrap();
    let events: Vec<Value> = body
        .split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert!(events.len() > 1, "{body}");
    assert!(
        events
            .iter()
            .all(|e| e["response"]["candidates"].is_array() && e["traceId"].is_string())
    );

    let count = json!({"request": {"model": format!("models/{MODEL}"), "contents": contents()}});
    let counted: Value = call(&server, "countTokens", &token, &count)
        .await
        .json()
        .await
        .unwrap();
    assert!(counted["totalTokens"].as_u64().unwrap() > 0, "{counted}");
}

#[tokio::test]
async fn refuses_what_code_assist_refuses() {
    let server = start().await;
    let token = google_token(&server).await;

    let unwrapped = json!({"contents": contents()});
    refused(
        call(&server, "generateContent", &token, &unwrapped).await,
        400,
        "Unknown name \"contents\"",
    )
    .await;
    refused(
        call(&server, "countTokens", &token, &unwrapped).await,
        400,
        "Unknown name \"contents\"",
    )
    .await;
    let no_project = json!({"model": MODEL, "request": {"contents": contents()}});
    refused(
        call(&server, "generateContent", &token, &no_project).await,
        400,
        "project",
    )
    .await;
    refused(
        call(
            &server,
            "generateContent",
            &token,
            &wrapped("someone-elses"),
        )
        .await,
        403,
        "projects/someone-elses",
    )
    .await;
    for bad in ["never-issued", "expired-token"] {
        refused(
            call(&server, "generateContent", bad, &wrapped("fake-project")).await,
            401,
            "invalid authentication credentials",
        )
        .await;
    }
    let count_without_prefix = json!({"request": {"model": MODEL, "contents": contents()}});
    refused(
        call(&server, "countTokens", &token, &count_without_prefix).await,
        400,
        "models/",
    )
    .await;
}
