//! The provider kinds Azure OpenAI, AWS Bedrock (Anthropic models), Qwen (DashScope) and Codex
//! (Responses with API keys), each against its fake, through the real server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

const BEDROCK_MODEL: &str = "anthropic.claude-3-5-sonnet-20241022-v2:0";

async fn gateway(providers: &str) -> Harness {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
{}",
        providers.replace("{base}", &format!("http://{}", mock.addr()))
    );
    Harness::from_yaml(mock, &yaml).await
}

async fn chat(h: &Harness, model: &str, stream: bool) -> reqwest::Response {
    h.chat(json!({"model": model, "messages": user("Hello there"), "stream": stream}))
        .send()
        .await
        .unwrap()
}

fn streamed_text(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            serde_json::from_str::<Value>(d).ok()?["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

#[tokio::test]
async fn azure_openai_deployments_api_version_and_api_key() {
    let h = gateway(
        "  - name: azure
    kind: azure-openai
    base-url: '{base}'
    api-keys: [azure-key-1]
    api-version: 2024-10-21
    models: [{name: gpt-4o, deployment: prod-gpt4o, alias: azure-4o}]
",
    )
    .await;
    let resp = chat(&h, "azure-4o", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-provider"], "azure");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from sluice-mock! You said: Hello there"
    );
    let resp = chat(&h, "azure-4o", true).await;
    assert_eq!(
        streamed_text(&resp.text().await.unwrap()),
        "Hello from sluice-mock! You said: Hello there"
    );
    let sent = &h.mock.requests()[0];
    assert_eq!(sent.path, "/openai/deployments/prod-gpt4o/chat/completions");
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.header("api-key"), Some("azure-key-1"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        h.records().await[0].platform.as_deref(),
        Some("azure-openai")
    );
    // Seed 004's `platform,model`.
    assert_eq!(chat(&h, "azure-openai,azure-4o", false).await.status(), 200);
}

#[tokio::test]
async fn azure_without_api_version_is_refused_by_the_fake() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/openai/deployments/d/chat/completions",
            mock.addr()
        ))
        .header("api-key", "k")
        .json(&json!({"messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MissingApiVersionParameter");
}

const BEDROCK: &str = "  - name: bedrock
    kind: bedrock
    region: us-east-1
    base-url: '{base}'
    credentials:
      - {access-key-id: AKIDSLUICETEST1, secret-access-key: 'secret/one+key'}
      - {access-key-id: AKIDSLUICETEST2, secret-access-key: 'secret/two+key', session-token: session-token-2}
    models: [{name: 'anthropic.claude-3-5-sonnet-20241022-v2:0', alias: claude-bedrock}]
";

#[tokio::test]
async fn bedrock_sigv4_invoke_and_event_streams_for_every_client() {
    let h = gateway(BEDROCK).await;
    // OpenAI client, complete answer: translated from Anthropic.
    let resp = chat(&h, "claude-bedrock", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-provider"], "bedrock");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from sluice-mock! You said: Hello there"
    );
    // OpenAI client, stream: binary frames decoded, then translated.
    let resp = chat(&h, "claude-bedrock", true).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert_eq!(
        streamed_text(&text),
        "Hello from sluice-mock! You said: Hello there"
    );
    assert_eq!(sse_data(&text).last().map(String::as_str), Some("[DONE]"));
    // Anthropic client, stream: Anthropic's own events.
    let resp = h
        .http
        .post(h.url("/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&json!({"model": "claude-bedrock", "max_tokens": 100, "stream": true, "messages": user("Hi Bedrock")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events = sse_events(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().filter_map(|(n, _)| n.as_deref()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let said: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(said, "Hello from sluice-mock! You said: Hi Bedrock");

    let sent = h.mock.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent[0].path,
        format!("/model/{}/invoke", BEDROCK_MODEL.replace(':', "%3A"))
    );
    assert!(sent[1].path.ends_with("/invoke-with-response-stream"));
    for request in &sent {
        let auth = request.header("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDSLUICETEST"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
        assert!(!auth.contains("secret"), "the secret never travels");
        let body = request.json().unwrap();
        assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
        assert!(body.get("model").is_none() && body.get("stream").is_none());
    }
    // The second key sends its session token; the Anthropic client's beta rides in the body.
    assert_eq!(
        sent[1].header("x-amz-security-token"),
        Some("session-token-2")
    );
    assert_eq!(
        sent[2].json().unwrap()["anthropic_beta"],
        json!(["interleaved-thinking-2025-05-14"])
    );
    let records = h.records().await;
    assert!(
        records.iter().all(|r| r.usage.output_tokens > 0),
        "{records:?}"
    );
}

#[tokio::test]
async fn bedrock_throttling_fails_over_to_the_next_aws_key() {
    let h = gateway(BEDROCK).await;
    h.mock
        .faults()
        .set_for_key("AKIDSLUICETEST1", "status=429 retry_after=30");
    for _ in 0..3 {
        let resp = chat(&h, "claude-bedrock", true).await;
        assert_eq!(resp.status(), 200);
        assert!(!resp.text().await.unwrap().contains("\"error\""));
    }
    assert_eq!(h.mock.requests_with_key("AKIDSLUICETEST1"), 1);
    assert_eq!(h.mock.requests_with_key("AKIDSLUICETEST2"), 3);
    let record = &h.records().await[0];
    assert_eq!(record.failed_attempts[0].status, 429);
    assert_eq!(record.credential.as_deref(), Some("bedrock#1"));
}

#[tokio::test]
async fn bedrock_api_keys_are_bearer_tokens() {
    let h = gateway(
        "  - {name: bedrock, kind: bedrock, region: eu-west-1, base-url: '{base}', api-keys: [bedrock-api-key-1], models: [{name: 'anthropic.claude-3-haiku-20240307-v1:0', alias: haiku}]}
",
    )
    .await;
    assert_eq!(chat(&h, "haiku", false).await.status(), 200);
    assert_eq!(
        h.mock.requests()[0].header("authorization"),
        Some("Bearer bedrock-api-key-1")
    );
}

#[tokio::test]
async fn qwen_dashscope_keys_are_openai_compatible() {
    let h = gateway(
        "  - {name: dashscope, kind: qwen, base-url: '{base}/v1', api-keys: [sk-dashscope-1], models: [{name: qwen-plus}]}
",
    )
    .await;
    let resp = chat(&h, "qwen,qwen-plus", true).await;
    assert_eq!(resp.headers()["x-sluice-provider"], "dashscope");
    assert_eq!(
        streamed_text(&resp.text().await.unwrap()),
        "Hello from sluice-mock! You said: Hello there"
    );
    let sent = &h.mock.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-dashscope-1"));
    assert_eq!(h.records().await[0].platform.as_deref(), Some("qwen"));
}

#[tokio::test]
async fn codex_api_keys_speak_responses() {
    let h = gateway(
        "  - {name: codex, kind: codex, base-url: '{base}/v1', api-keys: [sk-codex-1], models: [{name: gpt-5-codex}]}
",
    )
    .await;
    let resp = chat(&h, "codex,gpt-5-codex", true).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        streamed_text(&resp.text().await.unwrap()),
        "Hello from sluice-mock! You said: Hello there"
    );
    let resp = h
        .http
        .post(h.url("/v1/responses"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "gpt-5-codex", "input": "Hi Codex"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "response");
    let sent = h.mock.requests();
    assert!(sent.iter().all(|r| r.path == "/v1/responses"));
    assert_eq!(sent[0].header("authorization"), Some("Bearer sk-codex-1"));
    assert_eq!(h.records().await[0].platform.as_deref(), Some("codex"));
}
