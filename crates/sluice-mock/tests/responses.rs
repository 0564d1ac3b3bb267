//! The OpenAI Responses fake: `POST /v1/responses`, JSON and SSE.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{error_body, post, read_until_cut, sse_events, start, start_with};
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

async fn responses(server: &MockServer, body: &Value) -> reqwest::Response {
    post(server, "/v1/responses", &[], body).await
}

fn weather_request() -> Value {
    json!({"model": "gpt-5", "input": "Weather in Paris?",
    "tools": [
        {"type": "web_search"},
        {"type": "function", "name": "get_weather", "description": "Weather for a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"]}, "strict": true}
    ]})
}

fn hex_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 50 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn stream(server: &MockServer, body: &Value) -> Vec<(String, Value)> {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let response = responses(server, &body).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = response.text().await.unwrap();
    assert!(!text.contains("[DONE]"));
    let events = sse_events(&text);
    for (i, (_, event)) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], i, "{event}");
    }
    events
}

#[tokio::test]
async fn non_stream_response_has_every_field_the_sdk_reads() {
    let server = start().await;
    let body = json!({"model": "gpt-5", "instructions": "You are terse.",
        "input": [{"role": "user", "content": [{"type": "input_text",
            "text": "What is the capital of France?"}]}],
        "metadata": {"run": "1"}, "temperature": 0.2});
    let response = responses(&server, &body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let reply: Value = response.json().await.unwrap();
    assert!(hex_id(reply["id"].as_str().unwrap(), "resp_"), "{reply}");
    assert_eq!(reply["object"], "response");
    assert!(reply["created_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(reply["status"], "completed");
    assert_eq!(reply["model"], "gpt-5");
    for null in [
        "error",
        "incomplete_details",
        "previous_response_id",
        "max_output_tokens",
        "user",
    ] {
        assert_eq!(reply[null], Value::Null, "{null}");
    }
    assert_eq!(reply["instructions"], "You are terse.");
    assert_eq!(reply["metadata"], json!({"run": "1"}));
    assert_eq!(reply["temperature"], 0.2);
    assert_eq!(reply["top_p"], 1.0);
    assert_eq!(reply["parallel_tool_calls"], true);
    assert_eq!(reply["tool_choice"], "auto");
    assert_eq!(reply["tools"], json!([]));
    assert_eq!(
        reply["text"],
        json!({"format": {"type": "text"}, "verbosity": "medium"})
    );
    let output = reply["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    let message = &output[0];
    assert!(hex_id(message["id"].as_str().unwrap(), "msg_"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["status"], "completed");
    assert_eq!(message["role"], "assistant");
    assert_eq!(
        message["content"],
        json!([{"type": "output_text", "annotations": [], "logprobs": [],
            "text": "Hello from sluice-mock! You said: What is the capital of France?"}])
    );
    assert_eq!(
        reply["usage"],
        json!({"input_tokens": 11,
            "input_tokens_details": {"cache_write_tokens": 0, "cached_tokens": 0},
            "output_tokens": 11, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 22})
    );
}

#[tokio::test]
async fn text_stream_follows_the_event_sequence() {
    let server = start().await;
    let body = json!({"model": "gpt-5", "input": "stream this please"});
    let events = stream(&server, &body).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    let words = 8;
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", words));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);

    for (_, event) in &events[..2] {
        assert_eq!(event["response"]["status"], "in_progress");
        assert_eq!(event["response"]["output"], json!([]));
        assert_eq!(event["response"]["usage"], Value::Null);
    }
    let item = &events[2].1["item"];
    assert_eq!(item["type"], "message");
    assert_eq!(item["status"], "in_progress");
    assert_eq!(item["content"], json!([]));
    let item_id = item["id"].as_str().unwrap();
    assert_eq!(
        events[3].1["part"],
        json!({"type": "output_text", "annotations": [], "logprobs": [], "text": ""})
    );
    let mut text = String::new();
    for (_, delta) in &events[4..4 + words] {
        assert_eq!(delta["item_id"], item_id);
        assert_eq!(delta["output_index"], 0);
        assert_eq!(delta["content_index"], 0);
        assert_eq!(delta["logprobs"], json!([]));
        text.push_str(delta["delta"].as_str().unwrap());
    }
    assert_eq!(text, "Hello from sluice-mock! You said: stream this please");
    assert_eq!(events[4 + words].1["text"], text.as_str());
    assert_eq!(events[5 + words].1["part"]["text"], text.as_str());
    let done_item = &events[6 + words].1["item"];
    assert_eq!(done_item["status"], "completed");
    assert_eq!(done_item["content"][0]["text"], text.as_str());

    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["id"], events[0].1["response"]["id"]);
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"], json!([done_item]));
    assert_eq!(completed["usage"]["output_tokens"], 8);
}

#[tokio::test]
async fn function_call_non_stream_and_stream() {
    let server = start().await;
    let reply: Value = responses(&server, &weather_request())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["tools"],
        weather_request()["tools"],
        "tools are echoed"
    );
    let output = reply["output"].as_array().unwrap();
    assert_eq!(output.len(), 1);
    let call = &output[0];
    assert_eq!(call["type"], "function_call");
    assert!(hex_id(call["id"].as_str().unwrap(), "fc_"));
    let call_id = call["call_id"].as_str().unwrap();
    assert!(
        call_id.starts_with("call_") && call_id.len() == 29,
        "{call_id}"
    );
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["status"], "completed");
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));
    assert_eq!(reply["usage"]["output_tokens"], 12);

    let events = stream(&server, &weather_request()).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names[..3],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ]
    );
    let added = &events[2].1["item"];
    assert_eq!(added["type"], "function_call");
    assert_eq!(added["arguments"], "");
    assert_eq!(added["status"], "in_progress");
    let deltas: Vec<&str> = events
        .iter()
        .filter(|(name, _)| name == "response.function_call_arguments.delta")
        .map(|(_, event)| {
            assert_eq!(event["item_id"], added["id"]);
            event["delta"].as_str().unwrap()
        })
        .collect();
    assert!((2..=3).contains(&deltas.len()), "{deltas:?}");
    assert_eq!(
        names[3 + deltas.len()..],
        [
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let done = &events[3 + deltas.len()].1;
    assert_eq!(done["arguments"], deltas.concat());
    assert_eq!(done["name"], "get_weather");
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["output"][0]["arguments"], deltas.concat());
    assert_eq!(completed["output"][0]["call_id"], added["call_id"]);
}

#[tokio::test]
async fn function_call_output_turn_gets_text_and_must_answer_a_call() {
    let server = start().await;
    let mut body = weather_request();
    body["input"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": "call_abc", "name": "get_weather",
         "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_abc", "output": "sunny, 24C"}
    ]);
    let reply: Value = responses(&server, &body).await.json().await.unwrap();
    assert_eq!(
        reply["output"][0]["content"][0]["text"],
        "Tool result received: sunny, 24C"
    );

    body["input"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call_output", "call_id": "call_zzz", "output": "sunny"}
    ]);
    let response = responses(&server, &body).await;
    assert_eq!(response.status(), 400);
    let error = error_body(response).await;
    assert_eq!(
        error["message"],
        "No tool call found for function call output with call_id call_zzz."
    );
    assert_eq!(error["param"], "input");

    let mut none = weather_request();
    none["tool_choice"] = json!("none");
    let reply: Value = responses(&server, &none).await.json().await.unwrap();
    assert_eq!(reply["output"][0]["type"], "message");
    assert_eq!(reply["tool_choice"], "none");
}

#[tokio::test]
async fn reasoning_summary_adds_a_reasoning_item() {
    let server = start().await;
    let body = json!({"model": "gpt-5", "input": "think",
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"]});
    let reply: Value = responses(&server, &body).await.json().await.unwrap();
    assert_eq!(
        reply["reasoning"],
        json!({"effort": "low", "summary": "auto"})
    );
    let output = reply["output"].as_array().unwrap();
    assert_eq!(output.len(), 2);
    let reasoning = &output[0];
    assert_eq!(reasoning["type"], "reasoning");
    assert!(hex_id(reasoning["id"].as_str().unwrap(), "rs_"));
    let summary = reasoning["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["type"], "summary_text");
    let summary_tokens = summary[0]["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .count();
    assert!(reasoning["encrypted_content"].as_str().unwrap().len() >= 64);
    assert_eq!(output[1]["type"], "message");
    let usage = &reply["usage"];
    assert_eq!(
        usage["output_tokens_details"]["reasoning_tokens"],
        summary_tokens
    );
    assert_eq!(usage["output_tokens"], 6 + summary_tokens);

    let events = stream(&server, &body).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names[2..4],
        [
            "response.output_item.added",
            "response.reasoning_summary_part.added"
        ]
    );
    let deltas: String = events
        .iter()
        .filter(|(name, _)| name == "response.reasoning_summary_text.delta")
        .map(|(_, event)| event["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, summary[0]["text"].as_str().unwrap());
    let first_text = names
        .iter()
        .position(|name| *name == "response.output_text.delta")
        .unwrap();
    let summary_done = names
        .iter()
        .position(|name| *name == "response.reasoning_summary_part.done")
        .unwrap();
    assert!(summary_done < first_text);
    let message_added = events
        .iter()
        .filter(|(name, _)| name == "response.output_item.added")
        .nth(1)
        .unwrap();
    assert_eq!(message_added.1["output_index"], 1);

    // Without a summary, no reasoning item.
    let plain = json!({"model": "gpt-5", "input": "think", "reasoning": {"effort": "low"}});
    let reply: Value = responses(&server, &plain).await.json().await.unwrap();
    assert_eq!(reply["output"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn json_schema_format_gives_json_text() {
    let server = start().await;
    let body = json!({"model": "gpt-5", "input": "a city",
        "text": {"format": {"type": "json_schema", "name": "city", "strict": true,
            "schema": {"type": "object", "properties": {"city": {"type": "string"},
                "population": {"type": "integer"}}, "required": ["city", "population"],
                "additionalProperties": false}}}});
    let reply: Value = responses(&server, &body).await.json().await.unwrap();
    let text = reply["output"][0]["content"][0]["text"].as_str().unwrap();
    let value: Value = serde_json::from_str(text).unwrap();
    assert_eq!(value, json!({"city": "Paris", "population": 1}));
    assert_eq!(reply["text"], body["text"]);
}

#[tokio::test]
async fn auth_errors_are_openai_shaped() {
    let server = start_with(MockConfig {
        api_keys: vec!["sk-good-key-0001".into()],
        ..MockConfig::default()
    })
    .await;
    let body = json!({"model": "gpt-5", "input": "hi"});
    let wrong = post(
        &server,
        "/v1/responses",
        &[("authorization", "Bearer sk-wrong-key-9876")],
        &body,
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let error = error_body(wrong).await;
    assert_eq!(error["code"], "invalid_api_key");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("Incorrect API key provided: sk-...9876.")
    );
    let missing = responses(&server, &body).await;
    assert_eq!(missing.status(), 401);
    let ok = post(
        &server,
        "/v1/responses",
        &[("authorization", "Bearer sk-good-key-0001")],
        &body,
    )
    .await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn injected_errors_and_validation() {
    let server = start().await;
    let response = responses(
        &server,
        &json!({"model": "gpt-5", "input": "mock:status=429 mock:retry_after=3"}),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    let error = error_body(response).await;
    assert_eq!(error["code"], "rate_limit_exceeded");

    let response = post(
        &server,
        "/v1/responses",
        &[("x-mock", "status=503")],
        &json!({"model": "gpt-5", "input": "hi"}),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert_eq!(error_body(response).await["type"], "server_error");

    for (body, param) in [
        (json!({"input": "hi"}), "model"),
        (json!({"model": "gpt-5"}), "input"),
        (
            json!({"model": "gpt-5", "input": "hi", "previous_response_id": "resp_old"}),
            "previous_response_id",
        ),
    ] {
        let response = responses(&server, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(error_body(response).await["param"], param);
    }
}

#[tokio::test]
async fn stream_faults_apply_to_responses_streams() {
    let server = start().await;
    let body = json!({"model": "gpt-5", "input": "mock:words=10 mock:cut_after=4",
        "stream": true});
    let received = read_until_cut(responses(&server, &body).await).await;
    let names: Vec<String> = sse_events(&received).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
}
