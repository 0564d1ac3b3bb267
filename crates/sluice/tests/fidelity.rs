//! Fidelity at the edges of the dialects, against the real server and the strict fakes: Google's
//! URL-safe base64 images, the upstream's own mid-stream errors relayed alone, a cut Responses
//! relay that ends the same response, Google's status names, a model path that is not UTF-8,
//! and the model catalog in each SDK's shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

/// Bytes whose base64 differs between the alphabets: `+/+//hCDRw==` standard, `-_-__hCDRw`
/// URL-safe and unpadded, as google-genai sends them.
const IMAGE_URL_SAFE: &str = "-_-__hCDRw";
const IMAGE_STANDARD: &str = "+/+//hCDRw==";

/// What `mock:fail_after` puts in the upstream's own error event.
const MOCK_FAILURE: &str = "the model failed mid-stream (mock:fail_after)";

fn gemini_generate(h: &Harness, model: &str, body: Value) -> reqwest::RequestBuilder {
    h.http
        .post(h.url(&format!("/v1beta/models/{model}:generateContent")))
        .header("x-goog-api-key", CLIENT_KEY)
        .json(&body)
}

#[tokio::test]
async fn url_safe_base64_images_reach_other_upstreams_as_standard_base64() {
    let h = matrix().await;
    for model in ["via-chat", "via-responses", "via-anthropic"] {
        h.mock.clear();
        let body = json!({"contents": [{"role": "user", "parts": [
            {"text": "what is this?"},
            {"inlineData": {"mimeType": "image/png", "data": IMAGE_URL_SAFE}},
        ]}]});
        let resp = gemini_generate(&h, model, body).send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        // The fakes refuse URL-safe base64 with a 400, as OpenAI and Anthropic do.
        assert_eq!(status, 200, "{model}: {text}");
        let sent = h.mock.requests();
        assert_eq!(sent.len(), 1, "{model}");
        let upstream = &sent[0].body;
        assert!(
            upstream.contains(IMAGE_STANDARD) && !upstream.contains(IMAGE_URL_SAFE),
            "{model}: the image did not arrive as standard base64: {upstream}"
        );
    }
    // Data that is base64 in neither alphabet is the caller's mistake: a Gemini 400 naming it.
    let body = json!({"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "image/png", "data": "not base64!"}},
    ]}]});
    let resp = gemini_generate(&h, "via-chat", body).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["status"], "INVALID_ARGUMENT", "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("contents[0].parts[0].inlineData.data"),
        "{err}"
    );
}

/// The error events of a streamed body in `client`'s dialect.
fn error_events(client: &str, body: &str) -> Vec<Value> {
    sse_events(body)
        .into_iter()
        .filter(|(name, data)| match client {
            "responses" => {
                matches!(data["type"].as_str(), Some("error" | "response.failed"))
            }
            "anthropic" => name.as_deref() == Some("error"),
            _ => data.get("error").is_some(),
        })
        .map(|(_, data)| data)
        .collect()
}

fn stream_request(h: &Harness, client: &str, model: &str, text: &str) -> reqwest::RequestBuilder {
    match client {
        "chat" => h.chat(json!({"model": model, "stream": true, "messages": user(text)})),
        "responses" => h
            .http
            .post(h.url("/v1/responses"))
            .bearer_auth(CLIENT_KEY)
            .json(&json!({"model": model, "stream": true, "input": text})),
        "anthropic" => h
            .http
            .post(h.url("/v1/messages"))
            .header("x-api-key", CLIENT_KEY)
            .header("anthropic-version", "2023-06-01")
            .json(
                &json!({"model": model, "max_tokens": 256, "stream": true, "messages": user(text)}),
            ),
        _ => h
            .http
            .post(h.url(&format!(
                "/v1beta/models/{model}:streamGenerateContent?alt=sse"
            )))
            .header("x-goog-api-key", CLIENT_KEY)
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})),
    }
}

#[tokio::test]
async fn an_upstream_error_event_is_relayed_alone_on_same_dialect_streams() {
    let h = matrix().await;
    let pairs = [
        ("chat", "via-chat"),
        ("responses", "via-responses"),
        ("anthropic", "via-anthropic"),
        ("gemini", "via-gemini"),
    ];
    for (client, model) in pairs {
        let resp = stream_request(&h, client, model, "mock:words=20 mock:fail_after=4")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{client}");
        let body = resp.text().await.unwrap();
        let errors = error_events(client, &body);
        assert_eq!(
            errors.len(),
            1,
            "{client}: the upstream's error event, and nothing added: {body}"
        );
        assert!(
            errors[0].to_string().contains(MOCK_FAILURE),
            "{client}: not the upstream's own error: {body}"
        );
        let last = sse_events(&body).pop().unwrap().1;
        assert_eq!(last, errors[0], "{client}: the error is the last event");
    }
    let records = h.wait_records(pairs.len()).await;
    assert_eq!(records.len(), pairs.len());
    for r in &records {
        assert_eq!(r.error.as_deref(), Some("upstream_error_event"), "{r:?}");
    }
}

/// Issue 9 leftover: an upstream's own mid-stream error event that echoes the gateway's
/// provider key (whole, or masked as `sk-...WXYZ`) reaches the client without it, relayed on
/// the same-dialect paths (OpenAI Chat's hot path, Anthropic's and Gemini's passthrough) and
/// translated, like an error answer before the stream does.
#[tokio::test]
async fn mid_stream_upstream_errors_never_echo_the_gateway_key() {
    let h = matrix().await;
    let tail: String = UPSTREAM_KEY.chars().skip(UPSTREAM_KEY.len() - 4).collect();
    let pairs = [
        ("chat", "via-chat"),
        ("anthropic", "via-anthropic"),
        ("gemini", "via-gemini"),
        ("anthropic", "via-chat"),
        ("chat", "via-anthropic"),
    ];
    for (client, model) in pairs {
        let text = "mock:words=20 mock:fail_after=4 mock:fail_echo_key=1";
        let resp = stream_request(&h, client, model, text)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{client} via {model}");
        let body = resp.text().await.unwrap();
        let errors = error_events(client, &body);
        assert_eq!(errors.len(), 1, "{client} via {model}: {body}");
        let error = errors[0].to_string();
        assert!(error.contains(MOCK_FAILURE), "{client} via {model}: {body}");
        assert!(error.contains("[redacted]"), "{client} via {model}: {body}");
        for leak in [UPSTREAM_KEY, tail.as_str()] {
            assert!(
                !body.contains(leak),
                "{client} via {model}: {leak} in {body}"
            );
        }
    }
}

#[tokio::test]
async fn a_cut_responses_relay_ends_the_same_response() {
    let h = matrix().await;
    let resp = stream_request(
        &h,
        "responses",
        "via-responses",
        "mock:words=20 mock:cut_after=6",
    )
    .send()
    .await
    .unwrap();
    let body = resp.text().await.unwrap();
    let events = sse_events(&body);
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|(_, d)| d["response"]["id"].as_str())
        .collect();
    assert!(ids.len() >= 3, "{body}");
    assert!(ids.iter().all(|id| *id == ids[0]), "one response: {ids:?}");
    let created = events
        .iter()
        .filter(|(_, d)| d["type"] == "response.created")
        .count();
    assert_eq!(created, 1, "{body}");
    let sequence: Vec<u64> = events
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..sequence.len() as u64).collect();
    assert_eq!(sequence, expected, "sequence numbers follow on: {body}");
    let (_, last) = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{body}");
    let message = last["response"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("broke"), "{body}");
}

#[tokio::test]
async fn gemini_errors_carry_googles_status_name_for_the_http_status() {
    let h = matrix().await;
    // A 429 cools the only credential down, so it comes last.
    for (status, name) in [
        (404, "NOT_FOUND"),
        (500, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (429, "RESOURCE_EXHAUSTED"),
    ] {
        // Translated from an OpenAI upstream, so the body is Sluice's own rendering.
        let body = json!({"contents": [{"parts": [{"text": format!("mock:status={status}")}]}]});
        let resp = gemini_generate(&h, "via-chat", body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], status, "{err}");
        assert_eq!(err["error"]["status"], name, "{status}: {err}");
    }
}

#[tokio::test]
async fn a_model_path_that_is_not_utf8_is_a_gemini_400() {
    let h = matrix().await;
    for (method, path) in [
        (
            reqwest::Method::POST,
            "/v1beta/models/%FF%FE:generateContent",
        ),
        (
            reqwest::Method::POST,
            "/v1/models/gem%C3ini:generateContent",
        ),
        (reqwest::Method::GET, "/v1beta/models/%FF"),
    ] {
        let resp = h
            .http
            .request(method.clone(), h.url(path))
            .header("x-goog-api-key", CLIENT_KEY)
            .json(&json!({"contents": [{"parts": [{"text": "hi"}]}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{method} {path}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["code"], 400, "{err}");
        assert_eq!(err["error"]["status"], "INVALID_ARGUMENT", "{err}");
    }
}

#[tokio::test]
async fn models_are_listed_and_retrieved_in_each_sdks_shape() {
    let h = matrix().await;
    let get = |path: &str| h.http.get(h.url(path));

    // OpenAI's `models.retrieve`.
    let resp = get("/v1/models/via-gemini")
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let model: Value = resp.json().await.unwrap();
    assert_eq!(model["id"], "via-gemini");
    assert_eq!(model["object"], "model");
    let resp = get("/v1/models/no-such-model")
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "model_not_found", "{err}");

    // Anthropic's `models.retrieve`.
    let model: Value = get("/v1/models/via-chat")
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&model["type"], &model["id"]),
        (&json!("model"), &json!("via-chat"))
    );

    // google-genai's `models.list` and `models.get`, on both prefixes.
    for prefix in ["/v1beta", "/v1"] {
        let list: Value = get(&format!("{prefix}/models"))
            .header("x-goog-api-key", CLIENT_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = list["models"]
            .as_array()
            .unwrap_or_else(|| panic!("{prefix}: not Gemini's list: {list}"))
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        for alias in UPSTREAMS {
            assert!(
                names.contains(&format!("models/{alias}").as_str()),
                "{names:?}"
            );
        }
        let model: Value = get(&format!("{prefix}/models/via-anthropic"))
            .header("x-goog-api-key", CLIENT_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(model["name"], "models/via-anthropic", "{model}");
        let resp = get(&format!("{prefix}/models/no-such-model?key={CLIENT_KEY}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["error"]["status"], "NOT_FOUND", "{err}");
    }

    // Without a key: refused in the caller's shape.
    let resp = get("/v1beta/models/via-chat").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["status"], "UNAUTHENTICATED", "{err}");
}
