//! Legacy completions (`POST /v1/completions`) through the real server: a completions model
//! forwarded as-is to its upstream's own endpoint (OpenAI-compatible, Azure), with failover,
//! key limits and the upstream's usage; any other model's prompt served as one chat message by
//! every upstream dialect, answered in the completions shape, whole and streamed; what chat
//! cannot do refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

async fn complete(h: &Harness, body: Value) -> reqwest::Response {
    h.http
        .post(h.url("/v1/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

const REPLY: &str = "Hello from sluice-mock! You said: Say hello";

/// A completions stream's chunks (all `text_completion` objects, then `[DONE]`) and the text of
/// their first choices.
async fn completion_stream(resp: reqwest::Response) -> (Vec<Value>, String) {
    let events = sse_data(&resp.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    (chunks, text)
}

#[tokio::test]
async fn every_upstream_dialect_answers_in_the_completions_shape() {
    let h = matrix().await;
    for model in UPSTREAMS {
        let resp = complete(
            &h,
            json!({"model": model, "prompt": "Say hello", "max_tokens": 50, "stop": ["\n\n"]}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["object"], "text_completion", "{model}");
        assert!(body["id"].as_str().unwrap().starts_with("cmpl-"), "{body}");
        assert_eq!(body["choices"][0]["text"], REPLY, "{model}");
        assert_eq!(body["choices"][0]["index"], 0);
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(
            body["usage"]["completion_tokens"].as_u64().unwrap() > 0,
            "{body}"
        );

        let resp = complete(
            &h,
            json!({"model": model, "prompt": "Say hello", "stream": true, "stream_options": {"include_usage": true}}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let (chunks, text) = completion_stream(resp).await;
        assert_eq!(text, REPLY, "{model}");
        assert!(
            chunks
                .iter()
                .any(|c| c["usage"]["total_tokens"].as_u64() > Some(0)),
            "{model}"
        );
    }
    let records = h.records().await;
    assert_eq!(records.len(), 2 * UPSTREAMS.len());
    assert!(records.iter().all(|r| r.endpoint == "openai.completions"));
    assert!(records.iter().all(|r| r.usage.output_tokens > 0));
    // The upstream received a chat request with the completions fields carried over.
    let sent: Value = serde_json::from_str(&h.mock.requests()[0].body).unwrap();
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Say hello"}])
    );
    assert_eq!(sent["stop"], json!(["\n\n"]));
}

#[tokio::test]
async fn what_chat_cannot_serve_is_refused_by_name() {
    let h = matrix().await;
    for (body, param) in [
        (
            json!({"model": "via-chat", "prompt": "x", "echo": true}),
            "echo",
        ),
        (json!({"model": "via-chat", "prompt": "x", "n": 2}), "n"),
        (json!({"model": "via-chat", "prompt": ["a", "b"]}), "prompt"),
        (json!({"model": "via-chat"}), "prompt"),
    ] {
        let resp = complete(&h, body).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["param"], param, "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    assert!(h.mock.requests().is_empty());
    assert_eq!(h.records().await.len(), 4);
    // Unknown models are the usual 404.
    let resp = complete(&h, json!({"model": "nope", "prompt": "x"})).await;
    assert_eq!(resp.status(), 404);
}

/// A gateway where `gpt-3.5-turbo-instruct` (a completions model, inferred from its name) is
/// served by an OpenAI-compatible upstream and an Azure deployment (`azure-instruct`), a vLLM
/// style model that does both (`open-model`), chat models on chat upstreams, and a
/// completions-only model under an Anthropic provider, which has no such endpoint.
async fn forwarding(extra: &str) -> Harness {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = format!("http://{}", mock.addr());
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
{extra}
providers:
  - {{name: openai, kind: openai-compatible, base-url: '{base}/v1', api-keys: [{UPSTREAM_KEY}], models: [{{name: gpt-3.5-turbo-instruct}}, {{name: gpt-3.5-turbo-instruct-0914, alias: open-model, capabilities: [chat, completion]}}, {{name: mock-chat-model, alias: via-chat}}]}}
  - {{name: azure, kind: azure-openai, base-url: '{base}', api-keys: [azure-key], api-version: 2024-10-21, models: [{{name: gpt-35-turbo-instruct, alias: azure-instruct, deployment: instruct-dep}}]}}
  - {{name: claude, kind: anthropic, base-url: '{base}', api-keys: [{UPSTREAM_KEY}], models: [{{name: claude-mock, alias: via-anthropic}}, {{name: claude-instruct, capabilities: [completion]}}]}}
"
    );
    Harness::from_yaml(mock, &yaml).await
}

/// Nano-dollars of `gpt-3.5-turbo-instruct` tokens at the built-in price ($1.50 / $2.00 per
/// million tokens in / out).
fn instruct_cost(input: u64, output: u64) -> i64 {
    i64::try_from(input * 1500 + output * 2000).unwrap()
}

#[tokio::test]
async fn completions_models_are_forwarded_as_is_with_the_upstreams_usage() {
    let h = forwarding("").await;
    // What only the real endpoint can do: echo, several choices, several prompts, logprobs.
    let asked = json!({"model": "gpt-3.5-turbo-instruct", "prompt": ["Say hello", "Say bye"],
        "max_tokens": 50, "n": 2, "echo": true, "logprobs": 1, "stop": ["\n\n"], "x_unknown_to_sluice": null});
    let resp = complete(&h, asked.clone()).await;
    assert_eq!(
        resp.status(),
        400,
        "the upstream refuses what OpenAI refuses"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Unrecognized request argument supplied: x_unknown_to_sluice"
    );
    let mut asked = asked;
    asked.as_object_mut().unwrap().remove("x_unknown_to_sluice");
    let resp = complete(&h, asked.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-provider"], "openai");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "text_completion");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"), "{body}");
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 4, "n = 2 for each of 2 prompts");
    assert_eq!(
        choices[0]["text"],
        "Say helloHello from sluice-mock! You said: Say hello"
    );
    assert_eq!(
        choices[3]["text"],
        "Say byeHello from sluice-mock! You said: Say bye"
    );
    assert!(choices[0]["logprobs"]["tokens"].is_array());
    // The upstream received the client's request as it was.
    let sent = &h.mock.requests()[1];
    assert_eq!(sent.path, "/v1/completions");
    assert_eq!(serde_json::from_str::<Value>(&sent.body).unwrap(), asked);
    let (input, output) = (
        body["usage"]["prompt_tokens"].as_u64().unwrap(),
        body["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    let records = h.records().await;
    let record = &records[1];
    assert_eq!(record.endpoint, "openai.completions");
    assert_eq!(record.status, 200);
    assert_eq!(
        (record.usage.input_tokens, record.usage.output_tokens),
        (input, output)
    );
    assert!(!record.estimated);
    assert_eq!(record.cost_nanos, instruct_cost(input, output));
    assert_eq!(
        record.model_served.as_deref(),
        Some("gpt-3.5-turbo-instruct")
    );
}

#[tokio::test]
async fn forwarded_streams_are_relayed_unchanged_and_read_for_usage() {
    let h = forwarding("").await;
    let resp = complete(
        &h,
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello", "stream": true,
            "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (chunks, text) = completion_stream(resp).await;
    assert_eq!(text, REPLY);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));
    let sent: Value = serde_json::from_str(&h.mock.requests()[0].body).unwrap();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));

    // Without `include_usage` the stream carries no usage: counted locally, marked estimated.
    let resp = complete(
        &h,
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello", "stream": true}),
    )
    .await;
    let events = sse_data(&resp.text().await.unwrap());
    assert!(
        events.iter().all(|e| !e.contains("\"usage\"")),
        "{events:?}"
    );
    let sent: Value = serde_json::from_str(&h.mock.requests()[1].body).unwrap();
    assert!(
        sent.get("stream_options").is_none(),
        "nothing added: {sent}"
    );

    let records = h.records().await;
    let (reported, counted) = (&records[0], &records[1]);
    assert!(reported.stream && !reported.estimated);
    assert_eq!(
        reported.usage.input_tokens,
        usage["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        reported.usage.output_tokens,
        usage["completion_tokens"].as_u64().unwrap()
    );
    assert!(reported.cost_nanos > 0);
    assert!(counted.estimated, "{counted:?}");
    assert!(counted.usage.input_tokens > 0 && counted.usage.output_tokens > 0);
}

#[tokio::test]
async fn azure_deployments_and_both_capable_models_are_forwarded() {
    let h = forwarding("").await;
    let resp = complete(
        &h,
        json!({"model": "azure-instruct", "prompt": "Say hello", "max_tokens": 3}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["text"], "Hello from sluice-mock! ");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let sent = &h.mock.requests()[0];
    assert_eq!(sent.path, "/openai/deployments/instruct-dep/completions");
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.header("api-key"), Some("azure-key"));

    // A model that does both: completions forwarded (the alias renamed), chat through chat.
    let resp = complete(&h, json!({"model": "open-model", "prompt": "Say hello"})).await;
    assert_eq!(resp.status(), 200);
    let sent = &h.mock.requests()[1];
    assert_eq!(sent.path, "/v1/completions");
    let sent: Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(sent["model"], "gpt-3.5-turbo-instruct-0914");
    assert_eq!(sent["prompt"], "Say hello");
}

#[tokio::test]
async fn forwarded_completions_fail_over_before_the_first_byte() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = format!("http://{}/v1", mock.addr());
    mock.faults().set_for_key("busy-key", "status=429");
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: busy, kind: openai-compatible, priority: 10, base-url: '{base}', api-keys: [busy-key], models: [{{name: gpt-3.5-turbo-instruct}}]}}
  - {{name: spare, kind: openai-compatible, base-url: '{base}', api-keys: [spare-key], models: [{{name: gpt-3.5-turbo-instruct}}]}}
"
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    for stream in [false, true] {
        let resp = complete(
            &h,
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello", "stream": stream}),
        )
        .await;
        assert_eq!(resp.status(), 200, "stream: {stream}");
        assert_eq!(resp.headers()["x-sluice-provider"], "spare");
        assert!(resp.text().await.unwrap().contains("sluice-mock"));
    }
    let records = h.records().await;
    assert_eq!(records.len(), 2);
    let first = &records[0];
    assert_eq!(first.provider.as_deref(), Some("spare"));
    assert_eq!(first.failed_attempts.len(), 1, "{first:?}");
    assert_eq!(first.failed_attempts[0].provider, "busy");
    assert_eq!(first.failed_attempts[0].status, 429);
    // The busy credential cooled down: the second request went straight to the spare.
    assert_eq!(h.mock.requests_with_key("busy-key"), 1);
    assert_eq!(h.mock.requests_with_key("spare-key"), 2);
}

#[tokio::test]
async fn upstream_refusals_reach_the_client_in_openais_shape() {
    let h = forwarding("").await;
    let resp = complete(
        &h,
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "x", "logprobs": 9}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["param"], "logprobs", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let resp = complete(&h, json!({"model": "gpt-3.5-turbo-instruct"})).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_required_parameter");
    assert_eq!(body["error"]["param"], "prompt");
    assert_eq!(h.mock.requests().len(), 2);
    let records = h.records().await;
    assert!(records.iter().all(|r| r.status == 400), "{records:?}");
}

#[tokio::test]
async fn completion_only_models_never_reach_a_chat_upstream() {
    let h = forwarding("").await;
    // Under a provider without the endpoint: refused before any upstream call.
    let resp = complete(&h, json!({"model": "claude-instruct", "prompt": "x"})).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_supported", "{body}");
    // Nor is a completions model sent to chat.
    let resp = h
        .chat(json!({"model": "gpt-3.5-turbo-instruct", "messages": user("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_supported", "{body}");
    assert!(h.mock.requests().is_empty());
    // Chat models keep the chat path, with its refusals, beside the forwarded ones.
    let resp = complete(&h, json!({"model": "via-anthropic", "prompt": "Say hello"})).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["text"], REPLY);
    assert_eq!(h.mock.requests()[0].path, "/v1/messages");
    let resp = complete(
        &h,
        json!({"model": "via-chat", "prompt": "x", "echo": true}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let resp = complete(
        &h,
        json!({"model": "open-model", "prompt": "x", "echo": true}),
    )
    .await;
    assert_eq!(resp.status(), 200, "forwarded: the upstream decides");
}

#[tokio::test]
async fn models_list_says_which_models_complete() {
    let h = forwarding("").await;
    let resp = h
        .http
        .get(h.url("/v1/models"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let capabilities = |id: &str| {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["capabilities"].clone())
            .unwrap()
    };
    assert_eq!(
        capabilities("gpt-3.5-turbo-instruct"),
        json!(["completion"])
    );
    assert_eq!(capabilities("open-model"), json!(["chat", "completion"]));
    assert_eq!(capabilities("via-chat"), json!(["chat"]));
}

#[tokio::test]
async fn key_limits_and_quotas_hold_on_forwarded_completions() {
    let h = forwarding(
        "auth: {admin: {username: root, password: root-password}}
prices: {gpt-3.5-turbo-instruct: {input: 0, output: 100000}}",
    )
    .await;
    let login: Value = h
        .http
        .post(h.url("/api/auth/login"))
        .json(&json!({"username": "root", "password": "root-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = login["data"]["token"].as_str().unwrap().to_string();
    let key = |limits: Value| {
        let (h, admin) = (&h, admin.clone());
        async move {
            let created: Value = h
                .http
                .post(h.url("/api/api-keys"))
                .bearer_auth(admin)
                .json(&limits)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            created["data"]["key"].as_str().unwrap().to_string()
        }
    };
    let send = |key: String, body: Value| {
        let h = &h;
        async move {
            let resp = h
                .http
                .post(h.url("/v1/completions"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let hello = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "hi"});

    let one = key(json!({"name": "one", "rate_limit": 1})).await;
    assert_eq!(send(one.clone(), hello.clone()).await.0, 200);
    let (status, body) = send(one, hello.clone()).await;
    assert_eq!(status, 429, "{body}");

    // $0.50 buys one answer of six words ($0.10 a word); the next is refused.
    let quota = key(json!({"name": "quota", "monthly_quota": 0.5})).await;
    assert_eq!(send(quota.clone(), hello.clone()).await.0, 200);
    let (status, body) = send(quota, hello).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (429, &json!("monthly_quota_exceeded")),
        "{body}"
    );
    assert_eq!(
        h.mock.requests().len(),
        2,
        "only admitted calls went upstream"
    );
    let records = h.records().await;
    let charged: Vec<_> = records.iter().filter(|r| r.status == 200).collect();
    assert_eq!(charged[1].cost_nanos, 600_000_000, "{:?}", charged[1]);
}

#[tokio::test]
async fn a_stalled_forwarded_stream_ends_with_openais_error_chunk_and_cools_its_credential() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = format!("http://{}/v1", mock.addr());
    mock.faults().set_for_key("key-a", "stall_after=2");
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
cooldown: {{server-error-threshold: 1, server-error: 30s}}
providers:
  - {{name: openai, kind: openai-compatible, base-url: '{base}', api-keys: [key-a, key-b], timeouts: {{idle: 300ms}}, models: [{{name: gpt-3.5-turbo-instruct}}]}}
"
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    let started = std::time::Instant::now();
    let stream = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello", "stream": true});
    let resp = complete(&h, stream.clone()).await;
    assert_eq!(resp.status(), 200);
    let events = sse_data(&resp.text().await.unwrap());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(events.len(), 3, "{events:?}");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["object"], "text_completion");
    let last: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(last["error"]["code"], "upstream_idle_timeout", "{last}");
    let records = h.wait_records(1).await;
    assert_eq!(records[0].status, 502);
    assert_eq!(records[0].error.as_deref(), Some("upstream_idle_timeout"));
    // Not retried (the client had bytes), but key-a now cools down: key-b serves.
    for _ in 0..3 {
        let (_, text) = completion_stream(complete(&h, stream.clone()).await).await;
        assert_eq!(text, REPLY);
    }
    assert_eq!(h.mock.requests_with_key("key-a"), 1);
}
