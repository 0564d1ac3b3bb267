//! Audio in and images through the real server (issue 13): multipart
//! `/v1/audio/transcriptions` and `/translations` and `/v1/images/edits` forwarded as the
//! client sent them (the form written again only to rename an aliased model), JSON
//! `/v1/images/generations`, to OpenAI-compatible and Azure upstreams; usage records with
//! seconds, images and characters and their cost; a too-large upload answered 413 and recorded;
//! image requests given their own first-byte timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

async fn gateway(extra: &str) -> Harness {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = format!("http://{}", mock.addr());
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
{extra}
providers:
  - {{name: openai, kind: openai-compatible, base-url: '{base}/v1', api-keys: [{UPSTREAM_KEY}], timeouts: {{first-byte: 1s, image: 10s}}, models: [{{name: whisper-1, alias: whisper}}, {{name: gpt-4o-transcribe}}, {{name: dall-e-2}}, {{name: dall-e-3}}, {{name: gpt-image-1}}, {{name: tts-1}}, {{name: jina-reranker-v2}}, {{name: mock-model, alias: chat-model}}]}}
  - {{name: azure, kind: azure-openai, base-url: '{base}', api-keys: [azure-key], models: [{{name: whisper-azure, deployment: whisper-1, capabilities: [audio]}}, {{name: gpt-image-azure, deployment: gpt-image-1, capabilities: [image]}}]}}
"
    );
    Harness::from_yaml(mock, &yaml).await
}

/// `bytes` of "audio" under `name`.
fn audio(name: &str, bytes: usize) -> Part {
    Part::bytes(vec![7u8; bytes])
        .file_name(name.to_string())
        .mime_str("audio/wav")
        .unwrap()
}

async fn send_form(h: &Harness, path: &str, form: Form) -> (u16, String) {
    let resp = h
        .http
        .post(h.url(path))
        .bearer_auth(CLIENT_KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn post(h: &Harness, path: &str, body: Value) -> (u16, Value) {
    let resp = h
        .http
        .post(h.url(path))
        .bearer_auth(CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn transcriptions_reach_the_upstream_as_sent_and_are_billed_by_the_second() {
    let h = gateway("").await;
    // 48 000 bytes: three seconds to the fake.
    let form = Form::new()
        .text("model", "whisper-1")
        .text("prompt", "names: Sluice")
        .part("file", audio("talk.wav", 48_000));
    let boundary = form.boundary().to_string();
    let (status, body) = send_form(&h, "/v1/audio/transcriptions", form).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["text"],
        "sluice-mock heard 3 s of talk.wav. Prompt: names: Sluice"
    );
    let sent = &h.mock.requests()[0];
    assert_eq!(sent.path, "/v1/audio/transcriptions");
    assert_eq!(
        sent.header("content-type"),
        Some(format!("multipart/form-data; boundary={boundary}").as_str()),
        "the client's boundary goes upstream"
    );
    assert!(sent.body.starts_with(&format!("--{boundary}\r\n")));

    // An alias: the form is written again with the upstream's model, the file intact.
    let form = Form::new()
        .text("model", "whisper")
        .text("response_format", "verbose_json")
        .part("file", audio("talk.mp3", 20_000));
    let (status, body) = send_form(&h, "/v1/audio/translations", form).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["task"], "translate");
    let sent = &h.mock.requests()[1];
    assert!(sent.body.contains("\r\n\r\nwhisper-1\r\n"), "{}", sent.body);
    assert!(sent.body.contains(&"\u{7}".repeat(20_000)));

    let records = h.records().await;
    assert_eq!(records[0].endpoint, "openai.audio_transcriptions");
    assert_eq!(records[0].units.audio_seconds, 3.0);
    assert_eq!(records[0].cost_nanos, 300_000, "whisper-1: $0.006 a minute");
    assert_eq!(records[0].usage.total(), 0);
    assert!(!records[0].estimated);
    assert_eq!(records[1].endpoint, "openai.audio_translations");
    assert_eq!(records[1].model_served.as_deref(), Some("whisper-1"));
    assert_eq!(records[1].units.audio_seconds, 2.0);
}

#[tokio::test]
async fn streamed_transcriptions_relay_events_and_record_tokens() {
    let h = gateway("").await;
    let form = Form::new()
        .text("model", "gpt-4o-transcribe")
        .text("stream", "true")
        .part("file", audio("a.ogg", 16_000));
    let (status, body) = send_form(&h, "/v1/audio/transcriptions", form).await;
    assert_eq!(status, 200);
    assert!(body.contains("transcript.text.delta"), "{body}");
    assert!(body.contains("transcript.text.done"), "{body}");
    let records = h.records().await;
    assert!(records[0].stream);
    assert_eq!(records[0].usage.input_tokens, 10, "the done event's usage");
    assert!(records[0].cost_nanos > 0);
}

#[tokio::test]
async fn azure_deployments_take_forms_and_images() {
    let h = gateway("").await;
    let form = Form::new()
        .text("model", "whisper-azure")
        .part("file", audio("a.wav", 1000));
    let (status, body) = send_form(&h, "/v1/audio/transcriptions", form).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &h,
        "/v1/images/generations",
        json!({"model": "gpt-image-azure", "prompt": "a fox", "size": "1024x1024", "quality": "low"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"][0]["b64_json"].is_string());
    let paths: Vec<String> = h.mock.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/openai/deployments/whisper-1/audio/transcriptions",
            "/openai/deployments/gpt-image-1/images/generations"
        ]
    );
    assert_eq!(h.mock.requests()[0].header("api-key"), Some("azure-key"));
}

#[tokio::test]
async fn images_are_counted_and_priced_by_model_quality_and_size() {
    let h = gateway("").await;
    let (status, body) = post(
        &h,
        "/v1/images/generations",
        json!({"model": "dall-e-3", "prompt": "a lighthouse", "quality": "hd", "size": "1792x1024"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    let (status, body) = post(
        &h,
        "/v1/images/generations",
        json!({"model": "gpt-image-1", "prompt": "two cats", "n": 2, "quality": "high", "size": "1024x1536"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let form = Form::new()
        .text("model", "dall-e-2")
        .text("prompt", "add a hat")
        .text("n", "2")
        .text("size", "512x512")
        .text("response_format", "b64_json")
        .part(
            "image",
            Part::bytes(b"\x89PNG fake".to_vec()).file_name("in.png"),
        );
    let (status, body) = send_form(&h, "/v1/images/edits", form).await;
    assert_eq!(status, 200, "{body}");

    let records = h.records().await;
    assert_eq!(records[0].endpoint, "openai.images_generations");
    assert_eq!(records[0].units.images, 1);
    assert_eq!(records[0].cost_nanos, 120_000_000, "dall-e-3 hd 1792x1024");
    assert_eq!(records[1].units.images, 2);
    // 2 × $0.25, and the prompt's two tokens at $5 a million.
    assert_eq!(records[1].usage.input_tokens, 2);
    assert_eq!(records[1].cost_nanos, 500_000_000 + 10_000);
    assert_eq!(records[2].endpoint, "openai.images_edits");
    assert_eq!(records[2].units.images, 2);
    assert_eq!(records[2].cost_nanos, 36_000_000, "2 × dall-e-2 512x512");
}

#[tokio::test]
async fn wrong_forms_capabilities_and_upstream_refusals_answer_in_openais_shape() {
    let h = gateway("").await;
    // No file: refused before any upstream call.
    let (status, body) = send_form(
        &h,
        "/v1/audio/transcriptions",
        Form::new().text("model", "whisper-1"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["param"], "file");
    // JSON where a form is due.
    let (status, body) = post(
        &h,
        "/v1/audio/transcriptions",
        json!({"model": "whisper-1"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data"),
        "{body}"
    );
    // A chat model cannot transcribe or draw.
    let (status, body) = send_form(
        &h,
        "/v1/audio/transcriptions",
        Form::new()
            .text("model", "chat-model")
            .part("file", audio("a.wav", 10)),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("model_not_supported"), "{body}");
    let (status, body) = post(
        &h,
        "/v1/images/generations",
        json!({"model": "whisper-1", "prompt": "x"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "model_not_supported");
    assert!(h.mock.requests().is_empty());
    // The upstream's own 400 (dall-e-3 makes one image at a time) and an injected 500.
    let (status, body) = post(
        &h,
        "/v1/images/generations",
        json!({"model": "dall-e-3", "prompt": "x", "n": 2}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "n");
    let (status, body) = send_form(
        &h,
        "/v1/audio/transcriptions",
        Form::new()
            .text("model", "whisper-1")
            .text("prompt", "mock:status=500")
            .part("file", audio("a.wav", 10)),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["error"]["message"].is_string());
    let records = h.records().await;
    assert_eq!(records.len(), 6);
    assert!(
        records
            .iter()
            .all(|r| r.units.is_empty() && r.cost_nanos == 0)
    );
}

#[tokio::test]
async fn a_too_large_upload_is_413_and_recorded() {
    let h = gateway("max-upload-size: 64KiB").await;
    let form = Form::new()
        .text("model", "whisper-1")
        .part("file", audio("big.wav", 300_000));
    let (status, body) = send_form(&h, "/v1/audio/transcriptions", form).await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("65536"),
        "{body}"
    );
    assert!(h.mock.requests().is_empty());
    let records = h.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 413);
    assert_eq!(records[0].endpoint, "openai.audio_transcriptions");
    // JSON endpoints keep `max-body-size`.
    let form = Form::new()
        .text("model", "whisper-1")
        .part("file", audio("small.wav", 30_000));
    assert_eq!(send_form(&h, "/v1/audio/transcriptions", form).await.0, 200);
}

#[tokio::test]
async fn image_requests_wait_for_the_image_timeout_not_the_first_byte_one() {
    let h = gateway("").await;
    // The provider's first byte: 1 s; its image timeout: 10 s.
    let (status, body) = post(
        &h,
        "/v1/images/generations",
        json!({"model": "dall-e-2", "prompt": "slow mock:latency_ms=1500"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(
        &h,
        "/v1/audio/speech",
        json!({"model": "tts-1", "input": "slow mock:latency_ms=1500", "voice": "alloy"}),
    )
    .await;
    assert_eq!(status, 504);
}

#[tokio::test]
async fn speech_counts_characters_and_rerank_documents() {
    let h = gateway("").await;
    let resp = h
        .http
        .post(h.url("/v1/audio/speech"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "tts-1", "input": "Grüße!", "voice": "alloy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let (status, _) = post(
        &h,
        "/v1/rerank",
        json!({"model": "jina-reranker-v2", "query": "q", "documents": ["a", "b", "c"]}),
    )
    .await;
    assert_eq!(status, 200);
    let records = h.records().await;
    assert_eq!(records[0].units.characters, 6);
    assert_eq!(
        records[0].cost_nanos, 90_000,
        "tts-1: $15 per million characters"
    );
    assert_eq!(records[1].units.documents, 3);
}
