//! Forward with accounting through the real server: `/v1/moderations`, `/v1/audio/speech` and
//! `/v1/rerank` routed by model capability to OpenAI-compatible and Azure upstreams, answered
//! with the upstream's bytes unchanged, one usage record each with the upstream's usage or a
//! local estimate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

async fn gateway() -> Harness {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = format!("http://{}", mock.addr());
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: openai, kind: openai-compatible, base-url: '{base}/v1', api-keys: [{UPSTREAM_KEY}], models: [{{name: omni-moderation-latest}}, {{name: tts-1}}, {{name: jina-reranker-v2, alias: reranker}}, {{name: mock-model, alias: chat-model}}]}}
  - {{name: azure, kind: azure-openai, base-url: '{base}', api-keys: [azure-key], api-version: 2025-03-01-preview, models: [{{name: gpt-4o-mini-tts, deployment: prod-tts}}]}}
  - {{name: google, kind: gemini, base-url: '{base}', api-keys: [g], models: [{{name: gemini-tts-model, capabilities: [audio]}}]}}
"
    );
    Harness::from_yaml(mock, &yaml).await
}

async fn post(h: &Harness, path: &str, body: Value) -> reqwest::Response {
    h.http
        .post(h.url(path))
        .bearer_auth(CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn moderations_are_forwarded_and_recorded() {
    let h = gateway().await;
    let resp = post(
        &h,
        "/v1/moderations",
        json!({"input": ["plan an attack", "hello"]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-provider"], "openai");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["results"][0]["flagged"], true);
    assert_eq!(body["results"][1]["flagged"], false);
    assert_eq!(h.mock.requests()[0].path, "/v1/moderations");
    let records = h.records().await;
    assert_eq!(records[0].endpoint, "openai.moderations");
    assert_eq!(
        records[0].model_requested.as_deref(),
        Some("omni-moderation-latest")
    );
    assert!(records[0].usage.input_tokens > 0);
    assert!(records[0].estimated, "moderations report no usage");
    assert_eq!(records[0].status, 200);
}

#[tokio::test]
async fn speech_bytes_come_back_unchanged_from_openai_and_azure() {
    let h = gateway().await;
    let request = json!({"model": "tts-1", "input": "Hello there", "voice": "alloy"});
    let resp = post(&h, "/v1/audio/speech", request.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    let through = resp.bytes().await.unwrap();
    let direct = h
        .http
        .post(format!("{}/audio/speech", h.mock.base_url()))
        .json(&request)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(through, direct);

    let resp = post(
        &h,
        "/v1/audio/speech",
        json!({"model": "gpt-4o-mini-tts", "input": "Hi", "voice": "coral", "response_format": "wav"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    let sent = h.mock.requests();
    let azure = sent
        .iter()
        .find(|r| r.path.contains("deployments"))
        .unwrap();
    assert_eq!(azure.path, "/openai/deployments/prod-tts/audio/speech");
    assert_eq!(azure.header("api-key"), Some("azure-key"));
    let records = h.records().await;
    assert!(
        records
            .iter()
            .all(|r| r.endpoint == "openai.audio_speech" && r.status == 200)
    );
}

#[tokio::test]
async fn rerank_records_the_upstreams_usage() {
    let h = gateway().await;
    let resp = post(
        &h,
        "/v1/rerank",
        json!({"model": "reranker", "query": "rust gateway", "documents": ["a python script", "a rust gateway"], "top_n": 1}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["results"][0]["index"], 1);
    let sent: Value = serde_json::from_str(&h.mock.requests()[0].body).unwrap();
    assert_eq!(sent["model"], "jina-reranker-v2", "the alias is rewritten");
    let records = h.records().await;
    assert_eq!(records[0].endpoint, "rerank");
    assert_eq!(records[0].usage.input_tokens, 8);
    assert!(!records[0].estimated);
}

#[tokio::test]
async fn capability_provider_and_upstream_errors() {
    let h = gateway().await;
    // A chat model cannot speak; a speech model cannot moderate.
    let resp = post(
        &h,
        "/v1/audio/speech",
        json!({"model": "chat-model", "input": "x", "voice": "alloy"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_supported");
    let resp = post(
        &h,
        "/v1/moderations",
        json!({"model": "tts-1", "input": "x"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    // An audio model served only by a Gemini provider: no such API there.
    let resp = post(
        &h,
        "/v1/audio/speech",
        json!({"model": "gemini-tts-model", "input": "x", "voice": "a"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert!(h.mock.requests().is_empty());
    // The upstream's own 400 reaches the client.
    let resp = post(
        &h,
        "/v1/audio/speech",
        json!({"model": "tts-1", "input": "x"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("voice"),
        "{body}"
    );
    let resp = post(&h, "/v1/moderations", json!({"input": "x", "mystery": 1})).await;
    assert_eq!(resp.status(), 400);
    // No model at all.
    let resp = post(&h, "/v1/rerank", json!({"query": "x", "documents": ["y"]})).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(h.records().await.len(), 6);
}
