//! Response shapes of `POST /v1/chat/completions` and `GET /v1/models`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{chat, sse_chunks, start, start_with, user_request};
use serde_json::{Value, json};
use sluice_mock::MockConfig;

#[tokio::test]
async fn non_stream_reply_has_openai_shape() {
    let server = start().await;
    let body = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"}
    ]});
    let response = chat(&server, &body, None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let completion: Value = response.json().await.unwrap();

    let id = completion["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-") && id.len() > 20, "{id}");
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(completion["model"], "gpt-4o-mini");
    assert_eq!(completion["system_fingerprint"], "fp_mock");
    assert_eq!(
        completion["choices"],
        json!([{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello from sluice-mock! You said: What is the capital of France?",
                "refusal": null
            },
            "logprobs": null,
            "finish_reason": "stop"
        }])
    );
    // 14 + 30 characters -> 11 tokens; the reply has 11 words.
    assert_eq!(
        completion["usage"],
        json!({
            "prompt_tokens": 11, "completion_tokens": 11, "total_tokens": 22,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0}
        })
    );
}

#[tokio::test]
async fn ids_differ_between_requests() {
    let server = start().await;
    let first: Value = chat(&server, &user_request("a"), None)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = chat(&server, &user_request("a"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(first["id"], second["id"]);
}

#[tokio::test]
async fn words_and_cached_directives_from_the_body() {
    let server = start().await;
    let body = user_request("benchmark me mock:words=5 mock:cached=3");
    let completion: Value = chat(&server, &body, None).await.json().await.unwrap();
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "w1 w2 w3 w4 w5"
    );
    assert_eq!(completion["usage"]["completion_tokens"], 5);
    assert_eq!(
        completion["usage"]["prompt_tokens_details"]["cached_tokens"],
        3
    );
}

#[tokio::test]
async fn stream_chunks_concatenate_to_the_reply() {
    let server = start().await;
    let mut body = user_request("stream this please");
    body["stream"] = json!(true);
    let response = chat(&server, &body, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let text = response.text().await.unwrap();
    assert!(!text.contains("event:"));
    let chunks = sse_chunks(&text);

    let id = chunks[0]["id"].as_str().unwrap();
    for chunk in &chunks {
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["created"], chunks[0]["created"]);
        assert_eq!(chunk["model"], "gpt-4o-mini");
        assert_eq!(chunk["system_fingerprint"], "fp_mock");
        assert!(
            chunk.get("usage").is_none(),
            "usage only when asked: {chunk}"
        );
    }
    assert_eq!(
        chunks[0]["choices"],
        json!([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null},
                "logprobs": null, "finish_reason": null}])
    );
    let words = &chunks[1..chunks.len() - 1];
    let pieces: Vec<&str> = words
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(pieces.len(), 8, "one chunk per word: {pieces:?}");
    assert_eq!(pieces[0], "Hello ");
    assert_eq!(
        pieces.concat(),
        "Hello from sluice-mock! You said: stream this please"
    );
    for chunk in words {
        assert_eq!(chunk["choices"][0]["finish_reason"], Value::Null);
    }
    let last = chunks.last().unwrap();
    assert_eq!(
        last["choices"],
        json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}])
    );
}

#[tokio::test]
async fn include_usage_adds_null_usage_and_a_usage_chunk() {
    let server = start().await;
    let mut body = user_request("count me mock:words=3");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let chunks = sse_chunks(&chat(&server, &body, None).await.text().await.unwrap());

    let (usage_chunk, choice_chunks) = chunks.split_last().unwrap();
    assert_eq!(choice_chunks.len(), 1 + 3 + 1, "role, 3 words, finish");
    for chunk in choice_chunks {
        assert_eq!(chunk.get("usage"), Some(&Value::Null), "{chunk}");
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(
        choice_chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["id"], choice_chunks[0]["id"]);
    let usage = &usage_chunk["usage"];
    assert_eq!(usage["completion_tokens"], 3);
    // "count me mock:words=3" is 21 characters -> 6 tokens.
    assert_eq!(usage["prompt_tokens"], 6);
    assert_eq!(usage["total_tokens"], 9);

    body["stream_options"] = json!({"include_usage": false});
    let chunks = sse_chunks(&chat(&server, &body, None).await.text().await.unwrap());
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none() && !c["choices"].as_array().unwrap().is_empty())
    );
}

fn weather_request() -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}},
            {"type": "function", "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                    "required": ["city", "days"]
                }
            }}
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
    })
}

#[tokio::test]
async fn tool_call_non_stream() {
    let server = start().await;
    let completion: Value = chat(&server, &weather_request(), None)
        .await
        .json()
        .await
        .unwrap();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    let id = calls[0]["id"].as_str().unwrap();
    let suffix = id.strip_prefix("call_").unwrap();
    assert!(
        suffix.len() == 24 && suffix.chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris", "days": 1}));
    assert_eq!(completion["usage"]["completion_tokens"], 12);
}

#[tokio::test]
async fn tool_call_defaults_to_the_first_tool_and_none_disables_it() {
    let server = start().await;
    let mut body = weather_request();
    body["tool_choice"] = json!("auto");
    let completion: Value = chat(&server, &body, None).await.json().await.unwrap();
    let call = &completion["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "lookup");
    assert_eq!(call["arguments"], "{}");

    body["tool_choice"] = json!("none");
    let completion: Value = chat(&server, &body, None).await.json().await.unwrap();
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert!(
        completion["choices"][0]["message"]
            .get("tool_calls")
            .is_none()
    );
}

#[tokio::test]
async fn tool_call_stream_fragments_concatenate_to_json() {
    let server = start().await;
    let mut body = weather_request();
    body["stream"] = json!(true);
    let chunks = sse_chunks(&chat(&server, &body, None).await.text().await.unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    let start = &chunks[1]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(start["index"], 0);
    assert!(start["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(start["type"], "function");
    assert_eq!(
        start["function"],
        json!({"name": "get_weather", "arguments": ""})
    );

    let fragments = &chunks[2..chunks.len() - 1];
    assert!((2..=3).contains(&fragments.len()), "{fragments:?}");
    let mut arguments = String::new();
    for chunk in fragments {
        let call = &chunk["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert!(call.get("id").is_none() && call["function"].get("name").is_none());
        arguments.push_str(call["function"]["arguments"].as_str().unwrap());
    }
    let arguments: Value = serde_json::from_str(&arguments).unwrap();
    assert_eq!(arguments, json!({"city": "Paris", "days": 1}));

    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn tool_result_turn_gets_text() {
    let server = start().await;
    let mut body = weather_request();
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":1}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny, 24C"}]}
    ]);
    let completion: Value = chat(&server, &body, None).await.json().await.unwrap();
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Tool result received: sunny, 24C"
    );
}

#[tokio::test]
async fn models_lists_configured_models_or_a_default() {
    let server = start().await;
    let list: Value = reqwest::get(format!("{}/models", server.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        list,
        json!({"object": "list", "data": [
            {"id": "mock-model", "object": "model", "created": 1_700_000_000, "owned_by": "sluice-mock"}
        ]})
    );

    let config = MockConfig {
        models: vec!["a".into(), "b".into()],
        ..MockConfig::default()
    };
    let server = start_with(config).await;
    let list: Value = reqwest::get(format!("{}/models", server.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
}
