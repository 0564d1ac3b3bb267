//! `POST /v1/completions` over HTTP, per OpenAI's published format: `text_completion` objects
//! whole and streamed (the usage chunk only with `stream_options.include_usage`, then
//! `[DONE]`), completions models only — and the chat endpoint refusing them in turn.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{chat, error_body, post, sse_chunks, start, user_request};
use serde_json::{Value, json};

const INSTRUCT: &str = "gpt-3.5-turbo-instruct";

#[tokio::test]
async fn whole_answers_have_openais_shape() {
    let server = start().await;
    let body = json!({"model": INSTRUCT, "prompt": ["Say hi", "Say bye"], "n": 2, "max_tokens": 3, "logprobs": 1});
    let response = post(&server, "/v1/completions", &[], &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["model"], INSTRUCT);
    let choices = answer["choices"].as_array().unwrap();
    let indexes: Vec<u64> = choices
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3]);
    assert_eq!(choices[0]["text"], "Hello from sluice-mock! ");
    assert_eq!(choices[0]["finish_reason"], "length");
    assert_eq!(
        choices[0]["logprobs"]["tokens"].as_array().unwrap().len(),
        3
    );
    let usage = &answer["usage"];
    assert_eq!(usage["completion_tokens"], 12, "3 words × 4 choices");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap() + 12)
    );
}

#[tokio::test]
async fn streams_end_with_the_usage_chunk_only_when_asked() {
    let server = start().await;
    for include_usage in [false, true] {
        let body = json!({"model": INSTRUCT, "prompt": "Say hi", "stream": true,
            "stream_options": {"include_usage": include_usage}});
        let response = post(&server, "/v1/completions", &[], &body).await;
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let chunks = sse_chunks(&response.text().await.unwrap());
        assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["text"].as_str())
            .collect();
        assert_eq!(text, "Hello from sluice-mock! You said: Say hi");
        let last = chunks.last().unwrap();
        if include_usage {
            assert_eq!(last["choices"], json!([]));
            assert!(last["usage"]["total_tokens"].as_u64() > Some(0));
            assert!(
                chunks[..chunks.len() - 1]
                    .iter()
                    .all(|c| c["usage"].is_null())
            );
        } else {
            assert_eq!(last["choices"][0]["finish_reason"], "stop");
            assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        }
    }
}

#[tokio::test]
async fn chat_and_completions_models_stay_on_their_own_endpoints() {
    let server = start().await;
    let body = json!({"model": "gpt-4o-mini", "prompt": "x"});
    let response = post(&server, "/v1/completions", &[], &body).await;
    assert_eq!(response.status(), 404);
    let error = error_body(response).await;
    assert_eq!(
        error["message"],
        "This is a chat model and not supported in the v1/completions endpoint. Did you mean to use v1/chat/completions?"
    );
    assert_eq!(error["param"], "model");
    let response = chat(&server, &user_request_for(INSTRUCT), None).await;
    assert_eq!(response.status(), 404);
    let error = error_body(response).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("This is not a chat model"),
        "{error}"
    );
    let response = post(&server, "/v1/completions", &[], &json!({"model": INSTRUCT})).await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_body(response).await["param"], "prompt");
}

fn user_request_for(model: &str) -> Value {
    let mut request = user_request("x");
    request["model"] = json!(model);
    request
}
