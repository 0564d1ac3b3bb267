//! Embeddings and model capabilities through the real server: `POST /v1/embeddings` and
//! Gemini's `:embedContent` / `:batchEmbedContents`, against every upstream kind that serves
//! them (each faked strictly by sluice-mock), translated both ways; models that cannot serve
//! an endpoint refused before any upstream call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine;
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
  - {{name: openai, kind: openai-compatible, base-url: '{base}/v1', api-keys: [{UPSTREAM_KEY}], models: [{{name: text-embedding-3-small, alias: emb-openai}}, {{name: mock-model, alias: chat-openai}}, {{name: house-vectors, capabilities: [embedding]}}]}}
  - {{name: azure, kind: azure-openai, base-url: '{base}', api-keys: [azure-key], api-version: 2024-10-21, models: [{{name: text-embedding-3-large, deployment: prod-embed, alias: emb-azure}}]}}
  - {{name: google, kind: gemini, base-url: '{base}', api-keys: [gemini-key], models: [{{name: gemini-embedding-001, alias: emb-gemini}}, {{name: gemini-2.5-flash}}]}}
  - {{name: dashscope, kind: qwen, base-url: '{base}/v1', api-keys: [sk-dashscope], models: [{{name: text-embedding-v4, alias: emb-qwen}}]}}
  - {{name: aws, kind: bedrock, region: us-east-1, base-url: '{base}', api-keys: [bedrock-key], models: [{{name: 'amazon.titan-embed-text-v2:0', alias: emb-titan}}, {{name: cohere.embed-english-v3, alias: emb-cohere}}]}}
  - {{name: claude, kind: anthropic, base-url: '{base}', api-keys: [claude-key], models: [{{name: claude-sonnet-4-5}}, {{name: claude-embedder, capabilities: [embedding]}}]}}
"
    );
    Harness::from_yaml(mock, &yaml).await
}

async fn embed(h: &Harness, body: Value) -> reqwest::Response {
    h.http
        .post(h.url("/v1/embeddings"))
        .bearer_auth(CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn gemini(h: &Harness, model: &str, action: &str, body: Value) -> reqwest::Response {
    h.http
        .post(h.url(&format!("/v1beta/models/{model}:{action}")))
        .header("x-goog-api-key", CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn from_base64(v: &Value) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[tokio::test]
async fn openai_clients_embed_through_every_upstream_kind_as_float_and_base64() {
    let h = gateway().await;
    // (model, provider, upstream path, whether the upstream reports tokens)
    let cases = [
        ("emb-openai", "openai", "/v1/embeddings", true),
        (
            "emb-azure",
            "azure",
            "/openai/deployments/prod-embed/embeddings",
            true,
        ),
        (
            "emb-gemini",
            "google",
            "/v1beta/models/gemini-embedding-001:batchEmbedContents",
            false,
        ),
        ("emb-qwen", "dashscope", "/v1/embeddings", true),
        (
            "emb-titan",
            "aws",
            "/model/amazon.titan-embed-text-v2%3A0/invoke",
            true,
        ),
        (
            "emb-cohere",
            "aws",
            "/model/cohere.embed-english-v3/invoke",
            false,
        ),
    ];
    for (model, provider, path, reports) in cases {
        // Titan embeds one text per call.
        let input = if model == "emb-titan" {
            json!("hello vectors")
        } else {
            json!(["hello vectors", "second text"])
        };
        let count = if model == "emb-titan" { 1 } else { 2 };
        h.mock.clear();
        let resp = embed(&h, json!({"model": model, "input": input})).await;
        assert_eq!(resp.status(), 200, "{model}");
        assert_eq!(resp.headers()["x-sluice-provider"], provider);
        let float: Value = resp.json().await.unwrap();
        assert_eq!(float["object"], "list");
        assert_eq!(float["model"], model);
        assert_eq!(float["data"].as_array().unwrap().len(), count, "{model}");
        assert_eq!(float["data"][0]["object"], "embedding");
        assert_eq!(float["data"][0]["index"], 0);
        assert!(float["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
        let sent = &h.mock.requests()[0];
        assert_eq!(sent.path, path, "{model}");

        let resp = embed(
            &h,
            json!({"model": model, "input": input, "encoding_format": "base64"}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let b64: Value = resp.json().await.unwrap();
        for i in 0..count {
            let vector = from_base64(&b64["data"][i]["embedding"]);
            assert_eq!(vector, floats(&float["data"][i]["embedding"]), "{model}");
        }
        let records = h.records().await;
        let record = records.last().unwrap();
        assert_eq!(record.endpoint, "openai.embeddings");
        assert_eq!(record.provider.as_deref(), Some(provider));
        assert_eq!(record.model_requested.as_deref(), Some(model));
        assert!(record.usage.input_tokens > 0);
        assert_eq!(record.usage.output_tokens, 0);
        assert_eq!(record.estimated, !reports, "{model}");
    }
    // The mock's vectors depend only on the text: Gemini's and OpenAI's agree at 16 dimensions.
    let a: Value = embed(&h, json!({"model": "emb-openai", "input": "same"}))
        .await
        .json()
        .await
        .unwrap();
    let b: Value = embed(&h, json!({"model": "emb-gemini", "input": "same"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["data"][0]["embedding"], b["data"][0]["embedding"]);
}

#[tokio::test]
async fn openai_requests_reach_the_upstream_in_its_shape() {
    let h = gateway().await;
    let resp = embed(
        &h,
        json!({"model": "emb-gemini", "input": ["a", "b"], "dimensions": 8}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 8);
    let sent: Value = serde_json::from_str(&h.mock.requests()[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 8},
        ]})
    );
    // Token ids go to OpenAI-shaped upstreams as they are.
    h.mock.clear();
    let resp = embed(
        &h,
        json!({"model": "emb-openai", "input": [[1, 2, 3], [4]]}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sent: Value = serde_json::from_str(&h.mock.requests()[0].body).unwrap();
    assert_eq!(sent["input"], json!([[1, 2, 3], [4]]));
    assert_eq!(sent["model"], "text-embedding-3-small");
    assert_eq!(sent["encoding_format"], "float");
    // …and are refused, clearly and before any call, where the upstream takes only text.
    h.mock.clear();
    let resp = embed(&h, json!({"model": "emb-gemini", "input": [1, 2, 3]})).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Token-id input"),
        "{body}"
    );
    assert!(h.mock.requests().is_empty());
    // Titan takes one text per request.
    let resp = embed(&h, json!({"model": "emb-titan", "input": ["a", "b"]})).await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn gemini_clients_embed_single_and_batch_against_gemini_and_openai_upstreams() {
    let h = gateway().await;
    for (model, upstream_path) in [
        (
            "emb-gemini",
            "/v1beta/models/gemini-embedding-001:embedContent",
        ),
        ("emb-openai", "/v1/embeddings"),
    ] {
        h.mock.clear();
        let resp = gemini(
            &h,
            model,
            "embedContent",
            json!({"content": {"parts": [{"text": "one text"}]}, "taskType": "RETRIEVAL_QUERY"}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["embedding"]["values"].as_array().unwrap().len(), 16);
        assert_eq!(h.mock.requests()[0].path, upstream_path);

        let resp = gemini(
            &h,
            model,
            "batchEmbedContents",
            json!({"requests": [
                {"model": format!("models/{model}"), "content": {"parts": [{"text": "x"}]}},
                {"model": format!("models/{model}"), "content": {"parts": [{"text": "y"}]}},
            ]}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["embeddings"].as_array().unwrap().len(), 2);
        let records = h.records().await;
        let record = records.last().unwrap();
        assert_eq!(record.endpoint, "gemini.batch_embed_contents");
        assert!(record.usage.input_tokens >= 2);
    }
    // The same text gives the same vector whichever way it went.
    let one: Value = gemini(
        &h,
        "emb-openai",
        "embedContent",
        json!({"content": {"parts": [{"text": "same"}]}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let other: Value = embed(&h, json!({"model": "emb-gemini", "input": "same"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["embedding"]["values"], other["data"][0]["embedding"]);
    // A malformed Gemini body is the caller's 400, in Gemini's shape.
    let resp = gemini(&h, "emb-gemini", "embedContent", json!({"content": {}})).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
}

#[tokio::test]
async fn models_that_cannot_serve_an_endpoint_are_refused_before_any_upstream_call() {
    let h = gateway().await;
    let resp = h
        .chat(json!({"model": "emb-openai", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_supported");
    assert_eq!(body["error"]["param"], "model");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("embedding model"),
        "{body}"
    );

    let resp = embed(&h, json!({"model": "chat-openai", "input": "x"})).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_supported");

    let resp = gemini(
        &h,
        "gemini-embedding-001",
        "generateContent",
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");

    let resp = gemini(
        &h,
        "gemini-2.5-flash",
        "embedContent",
        json!({"content": {"parts": [{"text": "hi"}]}}),
    )
    .await;
    assert_eq!(resp.status(), 400);

    // An embedding model only an Anthropic provider lists: no API for it there.
    let resp = embed(&h, json!({"model": "claude-embedder", "input": "x"})).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No provider"),
        "{body}"
    );
    assert!(h.mock.requests().is_empty(), "no upstream was called");
    let records = h.records().await;
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.status == 400));

    // Configured capabilities override the name.
    assert_eq!(
        embed(&h, json!({"model": "house-vectors", "input": "x"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn model_lists_say_what_each_model_serves() {
    let h = gateway().await;
    let list: Value = h
        .http
        .get(h.url("/v1/models"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let caps = |id: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["capabilities"].clone())
            .unwrap()
    };
    assert_eq!(caps("emb-openai"), json!(["embedding"]));
    assert_eq!(caps("chat-openai"), json!(["chat"]));
    assert_eq!(caps("house-vectors"), json!(["embedding"]));
    assert_eq!(caps("amazon.titan-embed-text-v2:0"), json!(["embedding"]));

    let list: Value = h
        .http
        .get(h.url("/v1beta/models"))
        .header("x-goog-api-key", CLIENT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let methods = |name: &str| {
        list["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == format!("models/{name}"))
            .map(|m| m["supportedGenerationMethods"].clone())
            .unwrap()
    };
    assert_eq!(
        methods("emb-gemini"),
        json!(["embedContent", "batchEmbedContents", "countTokens"])
    );
    assert_eq!(
        methods("gemini-2.5-flash"),
        json!(["generateContent", "streamGenerateContent", "countTokens"])
    );
    let one: Value = h
        .http
        .get(h.url("/v1beta/models/emb-gemini"))
        .header("x-goog-api-key", CLIENT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["supportedGenerationMethods"][0], "embedContent");
}

#[tokio::test]
async fn upstream_failures_fail_over_and_reach_the_client_in_its_shape() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = format!("http://{}", mock.addr());
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: first, kind: openai-compatible, base-url: '{base}/v1', api-keys: [bad-key], priority: 1, models: [{{name: text-embedding-3-small}}]}}
  - {{name: second, kind: gemini, base-url: '{base}', api-keys: [good-key], models: [{{name: text-embedding-3-small}}]}}
"
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    h.mock.faults().set_for_key("bad-key", "mock:status=503");
    let resp = embed(&h, json!({"model": "text-embedding-3-small", "input": "x"})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-provider"], "second");
    let records = h.records().await;
    assert_eq!(records[0].attempts, 2);
    assert_eq!(records[0].provider.as_deref(), Some("second"));
    assert!(records[0].estimated);

    // Both failing: the last upstream error, in the caller's shape.
    h.mock.faults().set_for_key("good-key", "mock:status=400");
    let resp = gemini(
        &h,
        "text-embedding-3-small",
        "embedContent",
        json!({"content": {"parts": [{"text": "x"}]}}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["status"].is_string(), "{body}");
}
