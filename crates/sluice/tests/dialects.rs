//! Every client dialect against every upstream dialect, over raw HTTP: text, streams, tool
//! calls with Gemini thought signatures, errors and mid-stream failures in the caller's shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

/// A client dialect: how to ask, and how to read the answer.
#[derive(Clone, Copy, Debug)]
enum Client {
    Chat,
    Responses,
    Anthropic,
    Gemini,
}

const CLIENTS: [Client; 4] = [
    Client::Chat,
    Client::Responses,
    Client::Anthropic,
    Client::Gemini,
];

impl Client {
    fn request(
        self,
        h: &Harness,
        model: &str,
        text: &str,
        stream: bool,
    ) -> reqwest::RequestBuilder {
        match self {
            Client::Chat => h
                .http
                .post(h.url("/v1/chat/completions"))
                .bearer_auth(CLIENT_KEY)
                .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})),
            Client::Responses => h
                .http
                .post(h.url("/v1/responses"))
                .bearer_auth(CLIENT_KEY)
                .json(&json!({"model": model, "stream": stream, "input": text})),
            Client::Anthropic => h
                .http
                .post(h.url("/v1/messages"))
                .header("x-api-key", CLIENT_KEY)
                .header("anthropic-version", "2023-06-01")
                .json(&json!({"model": model, "max_tokens": 256, "stream": stream, "messages": [{"role": "user", "content": text}]})),
            Client::Gemini => {
                let action = if stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
                h.http
                    .post(h.url(&format!("/v1beta/models/{model}:{action}")))
                    .header("x-goog-api-key", CLIENT_KEY)
                    .json(&json!({"contents": [{"role": "user", "parts": [{"text": text}]}]}))
            }
        }
    }

    /// The answer text of a complete response.
    fn text(self, body: &Value) -> String {
        match self {
            Client::Chat => body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Client::Responses => body["output"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["type"] == "message")
                .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
                .filter_map(|c| c["text"].as_str().map(String::from))
                .collect(),
            Client::Anthropic => body["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b["text"].as_str().map(String::from))
                .collect(),
            Client::Gemini => body["candidates"][0]["content"]["parts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["thought"] != true)
                .filter_map(|p| p["text"].as_str().map(String::from))
                .collect(),
        }
    }

    /// The streamed text, and whether the stream ended the way the dialect ends a success.
    fn stream_text(self, body: &str) -> (String, bool) {
        let events = sse_events(body);
        let mut text = String::new();
        let mut ended = false;
        for (name, data) in &events {
            match self {
                Client::Chat => {
                    if let Some(t) = data["choices"][0]["delta"]["content"].as_str() {
                        text.push_str(t);
                    }
                }
                Client::Responses => {
                    if name.as_deref() == Some("response.output_text.delta") {
                        text.push_str(data["delta"].as_str().unwrap_or_default());
                    }
                    ended |= name.as_deref() == Some("response.completed");
                }
                Client::Anthropic => {
                    if data["delta"]["type"] == "text_delta" {
                        text.push_str(data["delta"]["text"].as_str().unwrap_or_default());
                    }
                    ended |= name.as_deref() == Some("message_stop");
                }
                Client::Gemini => {
                    text.push_str(&self.text(data));
                    ended |= data["candidates"][0]["finishReason"].is_string();
                }
            }
        }
        if let Client::Chat = self {
            ended = body.trim_end().ends_with("data: [DONE]");
        }
        (text, ended)
    }
}

#[tokio::test]
async fn every_client_reads_every_upstream() {
    let h = matrix().await;
    for client in CLIENTS {
        for model in UPSTREAMS {
            let resp = client
                .request(&h, model, "Hello matrix", false)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{client:?} → {model}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                client.text(&body),
                "Hello from sluice-mock! You said: Hello matrix",
                "{client:?} → {model}: {body}"
            );

            let resp = client
                .request(&h, model, "Hello stream", true)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{client:?} → {model} stream");
            let body = resp.text().await.unwrap();
            let (text, ended) = client.stream_text(&body);
            assert_eq!(
                text, "Hello from sluice-mock! You said: Hello stream",
                "{client:?} → {model}: {body}"
            );
            assert!(
                ended,
                "{client:?} → {model}: stream did not end cleanly: {body}"
            );
        }
    }
    let records = h.records().await;
    assert_eq!(records.len(), 32);
    assert!(
        records
            .iter()
            .all(|r| r.status == 200 && r.error.is_none() && r.usage.output_tokens > 0),
        "{records:#?}"
    );
}

#[tokio::test]
async fn errors_come_back_in_the_callers_shape() {
    let h = matrix().await;
    for client in CLIENTS {
        for model in [
            "no-such-model",
            "via-chat",
            "via-anthropic",
            "via-gemini",
            "via-responses",
        ] {
            let text = if model == "no-such-model" {
                "hi"
            } else {
                "mock:status=429 mock:retry_after=3"
            };
            let resp = client.request(&h, model, text, false).send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                status,
                if model == "no-such-model" { 404 } else { 429 },
                "{client:?} → {model}: {body}"
            );
            match client {
                Client::Chat | Client::Responses => {
                    let e = &body["error"];
                    assert!(
                        e["message"].is_string()
                            && e.get("type").is_some()
                            && e.get("param").is_some()
                            && e.get("code").is_some(),
                        "{body}"
                    );
                }
                Client::Anthropic => {
                    assert_eq!(body["type"], "error", "{body}");
                    let want = if status == 404 {
                        "not_found_error"
                    } else {
                        "rate_limit_error"
                    };
                    assert_eq!(body["error"]["type"], want, "{body}");
                }
                Client::Gemini => {
                    assert_eq!(body["error"]["code"], status, "{body}");
                    let want = if status == 404 {
                        "NOT_FOUND"
                    } else {
                        "RESOURCE_EXHAUSTED"
                    };
                    assert_eq!(body["error"]["status"], want, "{body}");
                }
            }
        }
    }
}

#[tokio::test]
async fn anthropic_overload_keeps_529_for_every_client() {
    for client in CLIENTS {
        // A fresh gateway each time: repeated 5xx would cool the only credential down.
        let h = matrix().await;
        let resp = client
            .request(&h, "via-anthropic", "mock:status=529", false)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 529, "{client:?}");
        if let Client::Anthropic = client {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["type"], "overloaded_error");
        }
    }
}

#[tokio::test]
async fn mid_stream_failure_is_the_dialects_error_event() {
    let h = matrix().await;
    for client in CLIENTS {
        for model in UPSTREAMS {
            let resp = client
                .request(
                    &h,
                    model,
                    "mock:chunk_delay_ms=5 mock:cut_after=3 mock:words=30",
                    true,
                )
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.text().await.unwrap();
            let events = sse_events(&body);
            let (name, last) = events.last().cloned().unwrap_or((None, Value::Null));
            match client {
                Client::Chat | Client::Gemini => assert!(
                    last["error"]["message"].is_string(),
                    "{client:?} → {model}: {body}"
                ),
                Client::Anthropic => {
                    assert_eq!(
                        name.as_deref(),
                        Some("error"),
                        "{client:?} → {model}: {body}"
                    );
                    assert_eq!(last["type"], "error");
                }
                Client::Responses => {
                    let names: Vec<_> = events.iter().filter_map(|(n, _)| n.clone()).collect();
                    assert!(
                        names.iter().any(|n| n == "error" || n == "response.failed"),
                        "{model}: {body}"
                    );
                    assert!(
                        !names.iter().any(|n| n == "response.completed"),
                        "{model}: {body}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn gemini_thought_signatures_survive_an_openai_round_trip() {
    let h = matrix().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]);
    let first: Value = h
        .chat(json!({"model": "via-gemini", "messages": user("Weather in Paris?"), "tools": tools}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{first}");
    let id = call["id"].as_str().unwrap();
    let messages = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": id, "content": "18C and sunny"}
    ]);
    let resp = h
        .chat(json!({"model": "via-gemini", "messages": messages, "tools": tools}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let second: Value = resp.json().await.unwrap();
    assert_eq!(
        status, 200,
        "the fake Gemini rejects unsigned function-call history: {second}"
    );
    assert!(
        second["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("Tool result received")
    );
    let sent = h.mock.requests().last().unwrap().json().unwrap();
    let part = &sent["contents"][1]["parts"][0];
    assert!(
        part["thoughtSignature"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{sent}"
    );
}

#[tokio::test]
async fn platform_routes_and_platform_model_syntax() {
    let h = matrix().await;
    let ask = |path: &str, model: &str| {
        h.http
            .post(h.url(path))
            .bearer_auth(CLIENT_KEY)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}))
            .send()
    };
    assert_eq!(
        ask("/gemini/v1/chat", "via-gemini").await.unwrap().status(),
        200
    );
    assert_eq!(
        ask("/gemini/v1/chat", "via-chat").await.unwrap().status(),
        404,
        "only Gemini platforms serve /gemini/v1/chat"
    );
    assert_eq!(
        ask(
            "/openai/v1/chat/completions",
            "claude-console,via-anthropic"
        )
        .await
        .unwrap()
        .status(),
        200
    );
    assert_eq!(
        ask("/openai/v1/chat/completions", "gemini,via-anthropic")
            .await
            .unwrap()
            .status(),
        404
    );
    let claude = ask("/claude/v1/messages", "via-anthropic").await.unwrap();
    assert_eq!(claude.status(), 200);
    let body: Value = claude.json().await.unwrap();
    assert_eq!(body["type"], "message");
}

#[tokio::test]
async fn gemini_keys_by_header_or_query_and_model_list() {
    let h = matrix().await;
    let body = json!({"contents": [{"parts": [{"text": "hi"}]}]});
    let by_query = h
        .http
        .post(h.url(&format!(
            "/v1/models/via-gemini:generateContent?key={CLIENT_KEY}"
        )))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);
    let wrong = h
        .http
        .post(h.url("/v1beta/models/via-gemini:generateContent?key=wrong"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let err: Value = wrong.json().await.unwrap();
    assert_eq!(err["error"]["status"], "UNAUTHENTICATED");
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
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(
        names.contains(&"models/via-gemini") && names.contains(&"models/via-chat"),
        "{list}"
    );
}

#[tokio::test]
async fn count_tokens_upstream_or_estimated() {
    let h = matrix().await;
    let count = |model: &str| {
        h.http
            .post(h.url("/v1/messages/count_tokens"))
            .header("x-api-key", CLIENT_KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "How many tokens is this sentence?"}]}))
            .send()
    };
    for model in UPSTREAMS {
        let resp = count(model).await.unwrap();
        assert_eq!(resp.status(), 200, "{model}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["input_tokens"].as_u64().unwrap() > 0,
            "{model}: {body}"
        );
    }
    let paths: Vec<String> = h.mock.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.contains(&"/v1/messages/count_tokens".to_string()),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with(":countTokens")),
        "{paths:?}"
    );
    assert_eq!(
        paths.len(),
        2,
        "chat and responses upstreams cannot count: estimated locally"
    );

    let gemini: Value = h
        .http
        .post(h.url("/v1beta/models/via-anthropic:countTokens"))
        .header("x-goog-api-key", CLIENT_KEY)
        .json(&json!({"contents": [{"parts": [{"text": "count me"}]}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(gemini["totalTokens"].as_u64().unwrap() > 0, "{gemini}");
}

#[tokio::test]
async fn same_dialect_passthrough_uses_the_dialects_own_auth_and_renames_the_model() {
    let h = matrix().await;
    for (client, model, path, auth_header) in [
        (
            Client::Anthropic,
            "via-anthropic",
            "/v1/messages",
            "x-api-key",
        ),
        (
            Client::Gemini,
            "via-gemini",
            "/v1beta/models/gemini-mock:generateContent",
            "x-goog-api-key",
        ),
        (
            Client::Responses,
            "via-responses",
            "/v1/responses",
            "authorization",
        ),
    ] {
        h.mock.clear();
        let resp = client.request(&h, model, "hi", false).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let sent = &h.mock.requests()[0];
        assert_eq!(sent.path, path);
        let auth = sent.header(auth_header).unwrap();
        assert!(
            auth.contains(UPSTREAM_KEY) && !auth.contains(CLIENT_KEY),
            "{auth}"
        );
        assert!(
            !sent.body.contains(model),
            "alias leaked upstream: {}",
            sent.body
        );
    }
}
