//! The Gemini fake: `:generateContent`, `:streamGenerateContent` (SSE and JSON array),
//! `:countTokens`, model listing, keys, errors, and Gemini 3's thought-signature check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{get, post, read_until_cut, start, start_with};
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

const MODEL: &str = "gemini-2.5-flash";

async fn call(server: &MockServer, method: &str, query: &str, body: &Value) -> reqwest::Response {
    let path = format!("/v1beta/models/{MODEL}:{method}{query}");
    post(server, &path, &[], body).await
}

fn user_request(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

fn weather_request() -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather for a city",
             "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"},
                "days": {"type": "INTEGER"}}, "required": ["location", "days"]}}
        ]}]
    })
}

/// Asserts Google's error shape and returns `error`.
async fn error_body(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    let error = body["error"].clone();
    assert_eq!(error["code"], status, "{body}");
    assert!(
        error["message"].is_string() && error["status"].is_string(),
        "{body}"
    );
    error
}

/// The JSON chunks of an `alt=sse` body, checking the `data: …\r\n\r\n` framing.
fn sse_chunks(body: &str) -> Vec<Value> {
    assert!(body.ends_with("\r\n\r\n"), "{body:?}");
    body.trim_end_matches("\r\n\r\n")
        .split("\r\n\r\n")
        .map(|event| {
            let data = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without `data: `: {event:?}"));
            assert!(!data.contains('\n'), "one line per event: {event:?}");
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

fn is_base64(text: &str) -> bool {
    text.len() >= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

#[tokio::test]
async fn generate_content_has_gemini_shape() {
    let server = start().await;
    let mut body = user_request("What is the capital of France?");
    body["systemInstruction"] = json!({"parts": [{"text": "You are terse."}]});
    let response = call(&server, "generateContent", "", &body).await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(
        reply["candidates"],
        json!([{"content": {"role": "model", "parts": [
            {"text": "Hello from sluice-mock! You said: What is the capital of France?"}
        ]}, "finishReason": "STOP", "index": 0}])
    );
    assert_eq!(
        reply["usageMetadata"],
        json!({"promptTokenCount": 11, "candidatesTokenCount": 11, "totalTokenCount": 22,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 11}]})
    );
    assert_eq!(reply["modelVersion"], MODEL);
    assert!(reply["responseId"].as_str().unwrap().len() > 10);
}

#[tokio::test]
async fn sse_stream_sends_one_chunk_per_word_and_finishes_last() {
    let server = start().await;
    let response = call(
        &server,
        "streamGenerateContent",
        "?alt=sse",
        &user_request("stream this please"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = sse_chunks(&response.text().await.unwrap());
    assert_eq!(chunks.len(), 8, "one chunk per word");
    let mut text = String::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let candidate = &chunk["candidates"][0];
        assert_eq!(candidate["content"]["role"], "model");
        assert_eq!(candidate["index"], 0);
        let parts = candidate["content"]["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 1);
        text.push_str(parts[0]["text"].as_str().unwrap());
        let last = i + 1 == chunks.len();
        assert_eq!(candidate.get("finishReason").is_some(), last, "{chunk}");
        // Usage is cumulative on every chunk, as the real API sends it.
        assert_eq!(chunk["usageMetadata"]["promptTokenCount"], 5);
        assert_eq!(chunk["usageMetadata"]["candidatesTokenCount"], i + 1);
        assert_eq!(chunk["responseId"], chunks[0]["responseId"]);
        assert_eq!(chunk["modelVersion"], MODEL);
    }
    assert_eq!(text, "Hello from sluice-mock! You said: stream this please");
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 13);
}

#[tokio::test]
async fn stream_without_alt_sse_is_one_json_array() {
    let server = start().await;
    let response = call(
        &server,
        "streamGenerateContent",
        "",
        &user_request("mock:words=3"),
    )
    .await;
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body = response.text().await.unwrap();
    assert!(!body.contains("data:"));
    let chunks: Vec<Value> = serde_json::from_str(&body).unwrap();
    let texts: Vec<&str> = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(texts, ["w1 ", "w2 ", "w3"]);
    assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn function_call_is_signed_and_has_no_id() {
    let server = start().await;
    let reply: Value = call(&server, "generateContent", "", &weather_request())
        .await
        .json()
        .await
        .unwrap();
    let candidate = &reply["candidates"][0];
    assert_eq!(candidate["finishReason"], "STOP");
    let parts = candidate["content"]["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 1);
    let part = parts[0].as_object().unwrap();
    assert_eq!(
        part["functionCall"],
        json!({"name": "get_weather", "args": {"location": "Paris", "days": 1}})
    );
    assert!(is_base64(part["thoughtSignature"].as_str().unwrap()));
    assert_eq!(
        part.len(),
        2,
        "functionCall and thoughtSignature only: {part:?}"
    );
    assert_eq!(reply["usageMetadata"]["candidatesTokenCount"], 12);

    // Streamed, the call arrives whole in one (last) chunk.
    let chunks = sse_chunks(
        &call(
            &server,
            "streamGenerateContent",
            "?alt=sse",
            &weather_request(),
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    assert_eq!(chunks.len(), 1);
    let part = &chunks[0]["candidates"][0]["content"]["parts"][0];
    assert_eq!(part["functionCall"]["args"]["location"], "Paris");
    assert!(part["thoughtSignature"].is_string());
    assert_eq!(chunks[0]["candidates"][0]["finishReason"], "STOP");

    // Mode NONE: text instead.
    let mut body = weather_request();
    body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
    let reply: Value = call(&server, "generateContent", "", &body)
        .await
        .json()
        .await
        .unwrap();
    assert!(reply["candidates"][0]["content"]["parts"][0]["text"].is_string());
}

#[tokio::test]
async fn function_response_turn_gets_text() {
    let server = start().await;
    let mut body = weather_request();
    body["contents"] = json!([
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
            "args": {"location": "Paris", "days": 1}}, "thoughtSignature": "c2lnbmF0dXJl"}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
            "response": {"result": "sunny, 24C"}}}]}
    ]);
    let reply: Value = call(&server, "generateContent", "", &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["candidates"][0]["content"]["parts"],
        json!([{"text": "Tool result received: sunny, 24C"}])
    );
}

#[tokio::test]
async fn unsigned_function_call_in_history_is_rejected() {
    let server = start().await;
    let mut body = weather_request();
    body["contents"] = json!([
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
            "response": {"result": "sunny"}}}]}
    ]);
    for method in ["generateContent", "streamGenerateContent"] {
        let error = error_body(call(&server, method, "?alt=sse", &body).await, 400).await;
        assert_eq!(error["status"], "INVALID_ARGUMENT");
        let message = error["message"].as_str().unwrap();
        assert!(
            message
                .starts_with("Function call is missing a thought_signature in functionCall parts."),
            "{message}"
        );
        assert!(
            message.contains("`default_api:get_weather` , position 2."),
            "{message}"
        );
    }
    // countTokens generates nothing and does not check.
    let response = call(&server, "countTokens", "", &body).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn include_thoughts_adds_a_thought_part_and_thought_tokens() {
    let server = start().await;
    let mut body = user_request("think");
    body["generationConfig"] = json!({"thinkingConfig": {"includeThoughts": true,
        "thinkingBudget": 1024}});
    let reply: Value = call(&server, "generateContent", "", &body)
        .await
        .json()
        .await
        .unwrap();
    let parts = reply["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["thought"], true);
    let thought_tokens = parts[0]["text"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .count();
    assert!(thought_tokens > 0);
    assert_eq!(
        parts[1],
        json!({"text": "Hello from sluice-mock! You said: think"})
    );
    let usage = &reply["usageMetadata"];
    assert_eq!(usage["thoughtsTokenCount"], thought_tokens);
    assert_eq!(usage["candidatesTokenCount"], 6);
    assert_eq!(usage["totalTokenCount"], 2 + 6 + thought_tokens);

    let chunks = sse_chunks(
        &call(&server, "streamGenerateContent", "?alt=sse", &body)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        chunks[0]["candidates"][0]["content"]["parts"][0]["thought"],
        true
    );
    assert!(chunks[1..].iter().all(|c| {
        c["candidates"][0]["content"]["parts"][0]
            .get("thought")
            .is_none()
    }));
}

#[tokio::test]
async fn structured_output_follows_the_response_schema() {
    let server = start().await;
    let mut body = user_request("json please");
    body["generationConfig"] = json!({"responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"city": {"type": "STRING"},
            "population": {"type": "INTEGER"}}}});
    let reply: Value = call(&server, "generateContent", "", &body)
        .await
        .json()
        .await
        .unwrap();
    let text = reply["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    let value: Value = serde_json::from_str(text).unwrap();
    assert_eq!(value, json!({"city": "Paris", "population": 1}));
}

#[tokio::test]
async fn keys_are_read_from_the_header_or_the_query() {
    let server = start_with(MockConfig {
        api_keys: vec!["AIza-good-key".into()],
        ..MockConfig::default()
    })
    .await;
    let path = format!("/v1beta/models/{MODEL}:generateContent");
    let body = user_request("hi");
    let header = post(
        &server,
        &path,
        &[("x-goog-api-key", "AIza-good-key")],
        &body,
    )
    .await;
    assert_eq!(header.status(), 200);
    let query = post(&server, &format!("{path}?key=AIza-good-key"), &[], &body).await;
    assert_eq!(query.status(), 200);
    let recorded = server.requests();
    assert_eq!(recorded[0].header("x-goog-api-key"), Some("AIza-good-key"));
    assert_eq!(recorded[1].path, path);
    assert_eq!(recorded[1].query.as_deref(), Some("key=AIza-good-key"));

    for response in [
        post(&server, &path, &[("x-goog-api-key", "AIza-bad")], &body).await,
        post(&server, &format!("{path}?key=AIza-bad"), &[], &body).await,
    ] {
        let error = error_body(response, 400).await;
        assert_eq!(error["status"], "INVALID_ARGUMENT");
        assert_eq!(
            error["message"],
            "API key not valid. Please pass a valid API key."
        );
        assert_eq!(error["details"][0]["reason"], "API_KEY_INVALID");
    }
    let missing = post(&server, &path, &[], &body).await;
    assert_eq!(
        error_body(missing, 403).await["status"],
        "PERMISSION_DENIED"
    );
}

#[tokio::test]
async fn injected_errors_carry_google_status_names() {
    let server = start().await;
    for (status, name) in [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ] {
        let body = user_request(&format!("fail mock:status={status}"));
        let error = error_body(call(&server, "generateContent", "", &body).await, status).await;
        assert_eq!(error["status"], name, "{status}");
        assert!(error["message"].as_str().unwrap().contains("injected"));
    }
    let body = user_request("mock:status=429 mock:retry_after=9");
    let response = call(&server, "generateContent", "", &body).await;
    assert_eq!(response.headers()["retry-after"], "9");
    let error = error_body(response, 429).await;
    assert_eq!(
        error["details"],
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9s"}])
    );
}

#[tokio::test]
async fn count_tokens_accepts_both_request_forms() {
    let server = start().await;
    let count: Value = call(&server, "countTokens", "", &user_request("hello world, hi"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        count,
        json!({"totalTokens": 4, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}]})
    );
    let wrapped = json!({"generateContentRequest": {"model": format!("models/{MODEL}"),
        "contents": [{"role": "user", "parts": [{"text": "hello world, hi"}]}],
        "systemInstruction": {"parts": [{"text": "four"}]}}});
    let count: Value = call(&server, "countTokens", "", &wrapped)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count["totalTokens"], 5);
}

#[tokio::test]
async fn validation_and_unknown_models() {
    let server = start_with(MockConfig {
        models: vec![MODEL.into()],
        ..MockConfig::default()
    })
    .await;
    let error = error_body(
        call(&server, "generateContent", "", &json!({"contents": []})).await,
        400,
    )
    .await;
    assert_eq!(
        error["message"],
        "* GenerateContentRequest.contents: contents is not specified\n"
    );
    let response = post(
        &server,
        "/v1beta/models/gemini-nope:generateContent",
        &[],
        &user_request("hi"),
    )
    .await;
    let error = error_body(response, 404).await;
    assert_eq!(error["status"], "NOT_FOUND");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("models/gemini-nope is not found for API version v1beta")
    );
}

#[tokio::test]
async fn v1_prefix_and_model_listing() {
    let server = start().await;
    let response = post(
        &server,
        &format!("/v1/models/{MODEL}:generateContent"),
        &[("x-goog-api-key", "k")],
        &user_request("hi"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.unwrap();
    assert_eq!(reply["candidates"][0]["finishReason"], "STOP");

    let expected_model = json!({"name": "models/mock-model", "version": "001",
        "displayName": "mock-model", "description": "A fake model served by sluice-mock.",
        "inputTokenLimit": 1_048_576, "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1.0, "topP": 0.95, "topK": 64, "maxTemperature": 2.0, "thinking": true});
    let list: Value = get(&server, "/v1beta/models", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!({"models": [expected_model]}));
    // `/v1/models` answers Gemini's shape to a Gemini client (key in header or query).
    for (path, headers) in [
        ("/v1/models", &[("x-goog-api-key", "k")][..]),
        ("/v1/models?key=k", &[][..]),
    ] {
        let list: Value = get(&server, path, headers).await.json().await.unwrap();
        assert_eq!(list["models"][0]["name"], "models/mock-model", "{path}");
    }
    let one: Value = get(&server, "/v1beta/models/mock-model", &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["name"], "models/mock-model");
}

#[tokio::test]
async fn stream_faults_apply_to_gemini_streams() {
    let server = start().await;
    let response = call(
        &server,
        "streamGenerateContent",
        "?alt=sse",
        &user_request("mock:words=10 mock:cut_after=2"),
    )
    .await;
    let received = read_until_cut(response).await;
    assert_eq!(sse_chunks(&received).len(), 2);
}
