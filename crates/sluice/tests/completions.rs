//! Legacy completions (`POST /v1/completions`) through the real server: the prompt served as one
//! chat message by every upstream dialect, answered in the completions shape, whole and
//! streamed; what chat cannot do refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

async fn complete(h: &Harness, body: Value) -> reqwest::Response {
    h.http
        .post(h.url("/v1/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

const REPLY: &str = "Hello from sluice-mock! You said: Say hello";

#[tokio::test]
async fn every_upstream_dialect_answers_in_the_completions_shape() {
    let h = matrix().await;
    for model in UPSTREAMS {
        let resp = complete(
            &h,
            json!({"model": model, "prompt": "Say hello", "max_tokens": 50, "stop": ["\n\n"]}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "text_completion", "{model}");
        assert!(body["id"].as_str().unwrap().starts_with("cmpl-"), "{body}");
        assert_eq!(body["choices"][0]["text"], REPLY, "{model}");
        assert_eq!(body["choices"][0]["index"], 0);
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(
            body["usage"]["completion_tokens"].as_u64().unwrap() > 0,
            "{body}"
        );

        let resp = complete(
            &h,
            json!({"model": model, "prompt": "Say hello", "stream": true, "stream_options": {"include_usage": true}}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let events = sse_data(&resp.text().await.unwrap());
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{model}");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["text"].as_str())
            .collect();
        assert_eq!(text, REPLY, "{model}");
        assert!(
            chunks
                .iter()
                .any(|c| c["usage"]["total_tokens"].as_u64() > Some(0)),
            "{model}"
        );
    }
    let records = h.records().await;
    assert_eq!(records.len(), 2 * UPSTREAMS.len());
    assert!(records.iter().all(|r| r.endpoint == "openai.completions"));
    assert!(records.iter().all(|r| r.usage.output_tokens > 0));
    // The upstream received a chat request with the completions fields carried over.
    let sent: Value = serde_json::from_str(&h.mock.requests()[0].body).unwrap();
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Say hello"}])
    );
    assert_eq!(sent["stop"], json!(["\n\n"]));
}

#[tokio::test]
async fn what_chat_cannot_serve_is_refused_by_name() {
    let h = matrix().await;
    for (body, param) in [
        (
            json!({"model": "via-chat", "prompt": "x", "echo": true}),
            "echo",
        ),
        (json!({"model": "via-chat", "prompt": "x", "n": 2}), "n"),
        (json!({"model": "via-chat", "prompt": ["a", "b"]}), "prompt"),
        (json!({"model": "via-chat"}), "prompt"),
    ] {
        let resp = complete(&h, body).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["param"], param, "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    assert!(h.mock.requests().is_empty());
    assert_eq!(h.records().await.len(), 4);
    // Unknown models are the usual 404.
    let resp = complete(&h, json!({"model": "nope", "prompt": "x"})).await;
    assert_eq!(resp.status(), 404);
}
