//! The Anthropic Messages fake: `POST /v1/messages`, `/v1/messages/count_tokens`, and the
//! Anthropic shape of `GET /v1/models`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{get, post, read_until_cut, sse_events, start, start_with};
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

const VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

async fn messages(server: &MockServer, body: &Value) -> reqwest::Response {
    post(server, "/v1/messages", &[VERSION], body).await
}

fn user_request(text: &str) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}]})
}

fn weather_request() -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
    "tools": [
        {"name": "get_weather", "description": "Weather for a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
            "unit": {"type": "string"}}, "required": ["city"]}}
    ]})
}

/// Asserts Anthropic's error shape and the `request-id` header, and returns `error`.
async fn error_body(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let header = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["request_id"], header.as_str());
    assert!(header.starts_with("req_011C"), "{header}");
    let error = body["error"].clone();
    assert!(
        error["type"].is_string() && error["message"].is_string(),
        "{body}"
    );
    assert_eq!(error.as_object().unwrap().len(), 2, "{body}");
    error
}

fn is_base64(text: &str) -> bool {
    text.len() >= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

#[tokio::test]
async fn non_stream_message_has_anthropic_shape() {
    let server = start().await;
    let mut body = user_request("What is the capital of France?");
    body["system"] = json!([{"type": "text", "text": "You are terse."}]);
    let response = messages(&server, &body).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_011C")
    );
    let message: Value = response.json().await.unwrap();
    let id = message["id"].as_str().unwrap();
    assert!(id.starts_with("msg_01") && id.len() == 28, "{id}");
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "claude-sonnet-4-5");
    assert_eq!(
        message["content"],
        json!([{"type": "text",
            "text": "Hello from sluice-mock! You said: What is the capital of France?"}])
    );
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["stop_sequence"], Value::Null);
    // 14 + 30 characters -> 11 tokens; the reply has 11 words.
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 11, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": 11, "service_tier": "standard"})
    );
}

#[tokio::test]
async fn directives_shape_the_reply_and_cached_tokens_are_cache_reads() {
    let server = start().await;
    let body = user_request("bench mock:words=4 mock:cached=30");
    let message: Value = messages(&server, &body).await.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "w1 w2 w3 w4");
    let usage = &message["usage"];
    assert_eq!(usage["output_tokens"], 4);
    assert_eq!(usage["cache_read_input_tokens"], 30);
    // Prompt = input + cache reads; the estimate is raised to the cached count.
    assert_eq!(usage["input_tokens"], 0);
}

#[tokio::test]
async fn stream_events_come_in_anthropic_order_and_concatenate() {
    let server = start().await;
    let mut body = user_request("stream this please");
    body["stream"] = json!(true);
    let response = messages(&server, &body).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(response.headers().contains_key("request-id"));
    let events = sse_events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    let words = 8;
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", words));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);

    let start = &events[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_01"));
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(start["usage"]["input_tokens"], 5);
    assert_eq!(
        events[1].1,
        json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}})
    );
    let text: String = events[3..3 + words]
        .iter()
        .map(|(_, delta)| {
            assert_eq!(delta["index"], 0);
            assert_eq!(delta["delta"]["type"], "text_delta");
            delta["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "Hello from sluice-mock! You said: stream this please");
    assert_eq!(events[3 + words].1["index"], 0);
    let delta = &events[4 + words].1;
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"]["output_tokens"], 8);
    assert_eq!(events[5 + words].1, json!({"type": "message_stop"}));
}

#[tokio::test]
async fn tool_use_block_with_synthesised_input() {
    let server = start().await;
    let message: Value = messages(&server, &weather_request())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
    let content = message["content"].as_array().unwrap();
    assert_eq!(content.len(), 1);
    let block = &content[0];
    assert_eq!(block["type"], "tool_use");
    let id = block["id"].as_str().unwrap();
    assert!(id.starts_with("toolu_01"), "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({"city": "Paris"}));
    assert_eq!(message["usage"]["output_tokens"], 12);
}

#[tokio::test]
async fn tool_use_streams_as_input_json_fragments() {
    let server = start().await;
    let mut body = weather_request();
    body["stream"] = json!(true);
    let events = sse_events(&messages(&server, &body).await.text().await.unwrap());
    let (_, start) = events
        .iter()
        .find(|(name, _)| name == "content_block_start")
        .unwrap();
    let block = &start["content_block"];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_01"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({}));
    let fragments: Vec<&str> = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .map(|(_, event)| {
            assert_eq!(event["delta"]["type"], "input_json_delta");
            event["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert!((2..=3).contains(&fragments.len()), "{fragments:?}");
    let input: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(input, json!({"city": "Paris"}));
    let (_, delta) = events
        .iter()
        .find(|(name, _)| name == "message_delta")
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn tool_result_turn_gets_text_and_tool_choice_none_disables_calls() {
    let server = start().await;
    let mut body = weather_request();
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01abc", "name": "get_weather", "input": {"city": "Paris"}}
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01abc",
            "content": [{"type": "text", "text": "sunny, 24C"}]}]}
    ]);
    let message: Value = messages(&server, &body).await.json().await.unwrap();
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "Tool result received: sunny, 24C"}])
    );

    let mut body = weather_request();
    body["tool_choice"] = json!({"type": "none"});
    let message: Value = messages(&server, &body).await.json().await.unwrap();
    assert_eq!(message["content"][0]["type"], "text");
}

#[tokio::test]
async fn thinking_block_comes_first_with_a_signature() {
    let server = start().await;
    let mut body = user_request("think first");
    body["max_tokens"] = json!(2048);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let message: Value = messages(&server, &body).await.json().await.unwrap();
    let content = message["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["type"], "thinking");
    let thinking = content[0]["thinking"].as_str().unwrap();
    assert!(!thinking.is_empty());
    assert!(is_base64(content[0]["signature"].as_str().unwrap()));
    assert_eq!(content[1]["type"], "text");
    // Thinking is billed as output.
    let thinking_tokens = thinking.split_whitespace().count() as u64;
    assert_eq!(message["usage"]["output_tokens"], 7 + thinking_tokens);

    body["thinking"] = json!({"type": "adaptive"});
    body["stream"] = json!(true);
    let events = sse_events(&messages(&server, &body).await.text().await.unwrap());
    let block_events: Vec<(&str, &Value)> = events
        .iter()
        .filter(|(_, event)| event["index"] == 0)
        .map(|(name, event)| (name.as_str(), event))
        .collect();
    assert_eq!(block_events[0].1["content_block"]["type"], "thinking");
    let deltas: Vec<&str> = block_events
        .iter()
        .filter(|(name, _)| *name == "content_block_delta")
        .map(|(_, event)| event["delta"]["type"].as_str().unwrap())
        .collect();
    let (signature, thinking_deltas) = deltas.split_last().unwrap();
    assert_eq!(*signature, "signature_delta", "signature comes last");
    assert!(
        !thinking_deltas.is_empty() && thinking_deltas.iter().all(|d| *d == "thinking_delta"),
        "{deltas:?}"
    );
    assert_eq!(block_events.last().unwrap().0, "content_block_stop");
    let text_start = events
        .iter()
        .find(|(name, event)| name == "content_block_start" && event["index"] == 1)
        .unwrap();
    assert_eq!(text_start.1["content_block"]["type"], "text");
}

#[tokio::test]
async fn keys_are_checked_the_anthropic_way() {
    let server = start_with(MockConfig {
        api_keys: vec!["sk-ant-good-0001".into()],
        ..MockConfig::default()
    })
    .await;
    let body = user_request("hi");
    let wrong = post(
        &server,
        "/v1/messages",
        &[VERSION, ("x-api-key", "sk-ant-wrong")],
        &body,
    )
    .await;
    let error = error_body(wrong, 401).await;
    assert_eq!(
        error,
        json!({"type": "authentication_error", "message": "invalid x-api-key"})
    );
    let missing = post(&server, "/v1/messages", &[VERSION], &body).await;
    assert_eq!(
        error_body(missing, 401).await["message"],
        "x-api-key header is required"
    );
    let bad_bearer = post(
        &server,
        "/v1/messages",
        &[VERSION, ("authorization", "Bearer nope")],
        &body,
    )
    .await;
    assert_eq!(
        error_body(bad_bearer, 401).await["type"],
        "authentication_error"
    );
    for auth in [
        ("x-api-key", "sk-ant-good-0001"),
        ("authorization", "Bearer sk-ant-good-0001"),
    ] {
        let ok = post(&server, "/v1/messages", &[VERSION, auth], &body).await;
        assert_eq!(ok.status(), 200, "{auth:?}");
    }
}

#[tokio::test]
async fn injected_errors_are_typed_as_anthropic_types_them() {
    let server = start().await;
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ] {
        let body = user_request(&format!("fail mock:status={status}"));
        let error = error_body(messages(&server, &body).await, status).await;
        assert_eq!(error["type"], kind, "{status}");
        assert!(error["message"].as_str().unwrap().contains("injected"));
    }
    let response = post(
        &server,
        "/v1/messages",
        &[VERSION, ("x-mock", "status=429 retry_after=7")],
        &user_request("hi"),
    )
    .await;
    assert_eq!(response.headers()["retry-after"], "7");
    error_body(response, 429).await;
}

#[tokio::test]
async fn anthropic_version_is_required_and_checked() {
    let server = start().await;
    let missing = post(&server, "/v1/messages", &[], &user_request("hi")).await;
    let error = error_body(missing, 400).await;
    assert_eq!(
        error,
        json!({"type": "invalid_request_error", "message": "anthropic-version: header is required"})
    );
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/messages", server.addr()))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-version", "2023-06-01")
        .json(&user_request("hi"))
        .send()
        .await
        .unwrap();
    let error = error_body(response, 400).await;
    assert_eq!(
        error["message"],
        "anthropic-version: \"2023-06-01, 2023-06-01\" is not a valid version"
    );
}

#[tokio::test]
async fn history_is_validated_like_the_real_api() {
    let server = start().await;
    let with_messages = |messages: Value| json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages});
    let cases = [
        (
            with_messages(json!([
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "call.1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call.1", "content": "x"}]}
            ])),
            "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
        ),
        (
            with_messages(json!([
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "no tools here"},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_gone", "content": "x"}]}
            ])),
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: \
             toolu_gone. Each `tool_result` block must have a corresponding `tool_use` block in \
             the previous message.",
        ),
        (
            with_messages(json!([
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm"},
                    {"type": "text", "text": "hello"}]},
                {"role": "user", "content": "again"}
            ])),
            "messages.1.content.0.thinking.signature: Field required",
        ),
        (
            with_messages(json!([
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm",
                    "signature": ""}, {"type": "text", "text": "hello"}]},
                {"role": "user", "content": "again"}
            ])),
            "messages.1.content.0: Invalid `signature` in `thinking` block",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            "max_tokens: Field required",
        ),
        (
            with_messages(json!([])),
            "messages: at least one message is required",
        ),
        (
            json!({"model": "m", "max_tokens": 2048, "messages": [{"role": "user", "content": "hi"}],
                "thinking": {"type": "enabled", "budget_tokens": 512}}),
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
    ];
    for (body, message) in cases {
        let error = error_body(messages(&server, &body).await, 400).await;
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["message"], message);
    }
    let mut too_big_budget = user_request("hi");
    too_big_budget["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let error = error_body(messages(&server, &too_big_budget).await, 400).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("`max_tokens` must be greater than `thinking.budget_tokens`")
    );

    // A signed thinking block in history is fine.
    let signed = with_messages(json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "c2ln"},
            {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "again"}
    ]));
    assert_eq!(messages(&server, &signed).await.status(), 200);
}

#[tokio::test]
async fn unknown_model_is_a_not_found_error() {
    let server = start_with(MockConfig {
        models: vec!["claude-sonnet-4-5".into()],
        ..MockConfig::default()
    })
    .await;
    let mut body = user_request("hi");
    body["model"] = json!("claude-nope");
    let error = error_body(messages(&server, &body).await, 404).await;
    assert_eq!(
        error,
        json!({"type": "not_found_error", "message": "model: claude-nope"})
    );
}

#[tokio::test]
async fn count_tokens_matches_the_message_input_tokens() {
    let server = start().await;
    let body = json!({"model": "claude-sonnet-4-5", "system": "You are terse.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let response = post(&server, "/v1/messages/count_tokens", &[VERSION], &body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("request-id"));
    let count: Value = response.json().await.unwrap();
    assert_eq!(count, json!({"input_tokens": 11}));

    let missing_model = json!({"messages": [{"role": "user", "content": "hi"}]});
    let response = post(
        &server,
        "/v1/messages/count_tokens",
        &[VERSION],
        &missing_model,
    )
    .await;
    assert_eq!(
        error_body(response, 400).await["message"],
        "model: Field required"
    );
}

#[tokio::test]
async fn models_list_is_anthropic_shaped_only_for_anthropic_clients() {
    let server = start_with(MockConfig {
        models: vec!["claude-sonnet-4-5".into(), "claude-haiku-4-5".into()],
        ..MockConfig::default()
    })
    .await;
    let response = get(&server, "/v1/models", &[VERSION]).await;
    assert!(response.headers().contains_key("request-id"));
    let list: Value = response.json().await.unwrap();
    let model = |id: &str, display_name: &str| {
        json!({"type": "model", "id": id, "display_name": display_name,
            "created_at": "2023-11-14T22:13:20Z", "lifecycle": "active",
            "deprecated_at": null, "retires_at": null,
            "max_input_tokens": 200_000, "max_tokens": 64000})
    };
    assert_eq!(
        list,
        json!({"data": [
            model("claude-sonnet-4-5", "Claude Sonnet 4 5"),
            model("claude-haiku-4-5", "Claude Haiku 4 5")
        ], "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-haiku-4-5"})
    );
    let one: Value = get(&server, "/v1/models/claude-haiku-4-5", &[VERSION])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "claude-haiku-4-5");
    let unknown = get(&server, "/v1/models/claude-nope", &[VERSION]).await;
    error_body(unknown, 404).await;

    let openai: Value = get(&server, "/v1/models", &[]).await.json().await.unwrap();
    assert_eq!(openai["object"], "list");
    assert_eq!(openai["data"][0]["object"], "model");
}

#[tokio::test]
async fn stream_faults_apply_to_anthropic_streams() {
    let server = start().await;
    let mut body = user_request("mock:words=20 mock:cut_after=3");
    body["stream"] = json!(true);
    let received = read_until_cut(messages(&server, &body).await).await;
    let names: Vec<String> = sse_events(&received).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["message_start", "content_block_start", "ping"]);
}
