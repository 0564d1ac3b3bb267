//! The OpenAI-compatible proxy end to end: a real Sluice on a real port in front of the fake
//! upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

#[tokio::test]
async fn non_stream_rewrites_alias_and_swaps_credentials() {
    let h = Harness::start().await;
    let sent_body = r#"{"model": "gpt-4o-mini",  "messages":[{"role":"user","content":"Hello!"}],"temperature":0.250,"x-vendor":{"a":[1,2]}}"#;
    let resp = h
        .http
        .post(h.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .header("content-type", "application/json")
        .body(sent_body)
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
    assert_eq!(resp.headers()["x-sluice-provider"], "mock");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from sluice-mock! You said: Hello!"
    );

    let sent = h.mock.requests();
    assert_eq!(sent.len(), 1);
    let upstream = &sent[0];
    assert_eq!(upstream.path, "/v1/chat/completions");
    assert_eq!(
        upstream.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert_eq!(upstream.header("x-custom-header"), Some("custom-value"));
    assert_eq!(upstream.header("x-request-id"), Some("req-abc-123"));
    // Only the model changed; every other byte is the client's.
    assert_eq!(
        upstream.body,
        sent_body.replace(r#""gpt-4o-mini""#, r#""mock-model""#)
    );
    for (name, value) in &upstream.headers {
        assert!(
            !value.contains(CLIENT_KEY),
            "client key leaked upstream in {name}"
        );
    }

    let records = h.records().await;
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.request_id, "req-abc-123");
    assert_eq!((r.status, r.stream, r.error.as_deref()), (200, false, None));
    assert_eq!(r.provider.as_deref(), Some("mock"));
    assert_eq!(r.credential.as_deref(), Some("mock#0"));
    assert_eq!(r.model_requested.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(r.model_served.as_deref(), Some("mock-model"));
    assert!(r.key_id.as_deref().unwrap().starts_with("config:"));
    assert_eq!(
        r.usage.input_tokens,
        body["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        r.usage.output_tokens,
        body["usage"]["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn request_id_is_generated_when_absent() {
    let h = Harness::start().await;
    let resp = h
        .chat(json!({"model": "mock-model", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(id.len() >= 16, "{id}");
    assert_eq!(
        h.mock.requests()[0].header("x-request-id"),
        Some(id.as_str())
    );
}

#[tokio::test]
async fn stream_without_include_usage_hides_the_usage_gateway_asked_for() {
    let h = Harness::start().await;
    let resp = h
        .chat(json!({"model": "gpt-4o-mini", "messages": user("Hello there"), "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let mut text = String::new();
    for chunk in &data[..data.len() - 1] {
        let v: Value = serde_json::from_str(chunk).unwrap();
        assert!(
            v.get("usage").is_none(),
            "client did not ask for usage: {chunk}"
        );
        assert!(
            !v["choices"].as_array().unwrap().is_empty(),
            "usage-only chunk leaked: {chunk}"
        );
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    assert_eq!(text, "Hello from sluice-mock! You said: Hello there");

    let upstream = h.mock.requests()[0].json().unwrap();
    assert_eq!(upstream["stream_options"]["include_usage"], true);
    assert_eq!(upstream["model"], "mock-model");

    let records = h.records().await;
    assert_eq!(
        (
            records[0].status,
            records[0].stream,
            records[0].error.as_deref()
        ),
        (200, true, None)
    );
    assert!(records[0].usage.input_tokens > 0 && records[0].usage.output_tokens > 0);
    assert!(records[0].ttft_ms.is_some());
}

#[tokio::test]
async fn stream_with_include_usage_keeps_the_usage_chunk() {
    let h = Harness::start().await;
    let body = h
        .chat(json!({"model": "mock-model", "messages": user("hi"), "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = sse_data(&body);
    let usage_chunk: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    let total = usage_chunk["usage"]["total_tokens"].as_u64().unwrap();
    assert!(total > 0);
    // Untouched passthrough: the mock's own `"usage":null` fields are still there.
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["usage"], Value::Null);
    assert!(first.get("usage").is_some());
    let records = h.records().await;
    assert_eq!(records[0].usage.total(), total);
}

#[tokio::test]
async fn streamed_tool_calls_pass_through() {
    let h = Harness::start().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]);
    let body = h
        .chat(json!({"model": "mock-model", "messages": user("weather?"), "stream": true, "tools": tools}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut args = String::new();
    let mut finish = None;
    for chunk in sse_data(&body).iter().filter(|d| *d != "[DONE]") {
        let v: Value = serde_json::from_str(chunk).unwrap();
        if let Some(calls) = v["choices"][0]["delta"]["tool_calls"].as_array() {
            args.push_str(calls[0]["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "Paris"})
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let h = Harness::start().await;
    let resp = h
        .chat(json!({"model": "mock-model", "messages": user("slow mock:chunk_delay_ms=100 mock:words=50"), "stream": true}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    let mut cancelled = 0;
    for _ in 0..500 {
        cancelled = h.mock.cancelled_streams();
        if cancelled > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        cancelled, 1,
        "upstream stream kept running after the client left"
    );
    let records = h.wait_records(1).await;
    assert_eq!(records[0].status, 499);
    assert_eq!(records[0].error.as_deref(), Some("client_closed"));
}

#[tokio::test]
async fn upstream_cut_mid_stream_ends_with_an_error_event() {
    let h = Harness::start().await;
    let resp = h
        .chat(json!({"model": "mock-model", "messages": user("mock:chunk_delay_ms=5 mock:cut_after=2"), "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let data = sse_data(&body);
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_broken");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`mock`")
    );
    let records = h.records().await;
    assert_eq!(records[0].error.as_deref(), Some("upstream_stream_broken"));
}

#[tokio::test]
async fn stalled_stream_is_cut_after_the_idle_timeout() {
    let h = Harness::with_config("", "    timeouts: {idle: 300ms}").await;
    let started = std::time::Instant::now();
    let body = h
        .chat(
            json!({"model": "mock-model", "messages": user("mock:stall_after=2"), "stream": true}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let last: Value = serde_json::from_str(sse_data(&body).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_idle_timeout");
}

#[tokio::test]
async fn upstream_errors_keep_their_status() {
    let h = Harness::start().await;
    let resp = h
        .chat(
            json!({"model": "mock-model", "messages": user("mock:status=429 mock:retry_after=7")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
    assert!(
        body["error"].get("type").is_some()
            && body["error"].get("param").is_some()
            && body["error"].get("code").is_some()
    );

    for status in [400u16, 401, 403, 404, 500, 503] {
        // A fresh gateway each time: 401/403 disable the only credential, 5xx count toward a
        // cooldown.
        let h = Harness::start().await;
        let resp = h
            .chat(
                json!({"model": "mock-model", "messages": user(&format!("mock:status={status}"))}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
        let records = h.records().await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].status, status);
    }
    let records = h.records().await;
    assert_eq!(
        records.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429]
    );
}

#[tokio::test]
async fn unreachable_upstream_is_502_naming_the_provider_without_secrets() {
    let h = Harness::start().await;
    let resp = h
        .chat(json!({"model": "dead-model", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`dead`"),
        "{text}"
    );
    assert!(
        !text.contains("dead-provider-secret") && !text.contains(CLIENT_KEY),
        "{text}"
    );
    assert!(!text.contains("127.0.0.1:1"), "upstream URL leaked: {text}");
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let h = Harness::with_config("", "    timeouts: {first-byte: 200ms}").await;
    let resp = h
        .chat(json!({"model": "mock-model", "messages": user("mock:latency_ms=3000")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`mock`")
    );
}

#[tokio::test]
async fn authentication() {
    let h = Harness::start().await;
    let ok = h
        .http
        .post(h.url("/v1/chat/completions"))
        .header("x-api-key", CLIENT_KEY)
        .json(&json!({"model": "mock-model", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    for request in [
        h.http.post(h.url("/v1/chat/completions")),
        h.http
            .post(h.url("/v1/chat/completions"))
            .bearer_auth("sk-test-client-ke"),
        h.http
            .post(h.url("/v1/chat/completions"))
            .header("x-api-key", "wrong"),
        h.http.get(h.url("/v1/models")).bearer_auth("wrong"),
    ] {
        let resp = request
            .json(&json!({"model": "mock-model", "messages": user("hi")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("API key")
        );
    }
    assert_eq!(
        h.mock.requests().len(),
        1,
        "rejected requests must not reach the upstream"
    );
}

#[tokio::test]
async fn no_keys_and_no_anonymous_refuses_everything() {
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let yaml = config_yaml(&mock, "", "").replace(&format!("api-keys: [{CLIENT_KEY}]\n"), "");
    let h = Harness::from_yaml(mock, &yaml).await;
    for key in [None, Some("anything")] {
        let mut req = h
            .http
            .post(h.url("/v1/chat/completions"))
            .json(&json!({"model": "mock-model", "messages": user("hi")}));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "no_api_keys_configured");
    }
    assert!(h.mock.requests().is_empty());
}

#[tokio::test]
async fn anonymous_when_allowed() {
    let mock = sluice_mock::MockServer::start(Default::default())
        .await
        .unwrap();
    let yaml = config_yaml(&mock, "allow-anonymous: true", "")
        .replace(&format!("api-keys: [{CLIENT_KEY}]\n"), "");
    let h = Harness::from_yaml(mock, &yaml).await;
    let resp = h
        .http
        .post(h.url("/v1/chat/completions"))
        .json(&json!({"model": "mock-model", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(h.records().await[0].key_id, None);
}

#[tokio::test]
async fn bad_input_gets_a_named_400() {
    let h = Harness::with_config("max-body-size: 1KiB", "").await;
    let post = |body: &'static str| {
        h.http
            .post(h.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: [(&str, u16, Option<&str>); 7] = [
        ("{not json", 400, None),
        ("[1,2]", 400, None),
        (
            r#"{"messages":[{"role":"user","content":"hi"}]}"#,
            400,
            Some("model"),
        ),
        (r#"{"model":"mock-model"}"#, 400, Some("messages")),
        (
            r#"{"model":"mock-model","messages":"hi"}"#,
            400,
            Some("messages"),
        ),
        (
            r#"{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"stream":"yes"}"#,
            400,
            Some("stream"),
        ),
        (
            r#"{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}"#,
            404,
            Some("model"),
        ),
    ];
    for (body, status, param) in cases {
        let resp = post(body).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"].as_str(), param, "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let resp = post(r#"{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}"#)
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");

    let big = json!({"model": "mock-model", "messages": user(&"x".repeat(4096))});
    let resp = h.chat(big).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");

    let resp = h.http.get(h.url("/v1/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/nowhere")
    );
    let resp = h
        .http
        .get(h.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(
        h.mock.requests().is_empty(),
        "invalid requests must not reach the upstream"
    );
}

#[tokio::test]
async fn models_lists_names_and_aliases() {
    let h = Harness::start().await;
    let v: Value = h
        .http
        .get(h.url("/v1/models"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["mock-model", "gpt-4o-mini", "dead-model"]);
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(v["data"][0]["owned_by"], "mock");
}

#[tokio::test]
async fn health_and_readiness() {
    let h = Harness::start().await;
    let health = h.http.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = h.http.get(h.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn concurrency_limit_refuses_with_429() {
    let h = Harness::with_config("max-concurrent-requests: 1", "").await;
    let slow = h
        .chat(json!({"model": "mock-model", "messages": user("mock:latency_ms=500")}))
        .send();
    let slow = tokio::spawn(slow);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let refused = h
        .chat(json!({"model": "mock-model", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    let after = h
        .chat(json!({"model": "mock-model", "messages": user("hi")}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
}
