//! Pools, routing and failover end to end: a real Sluice in front of the fake upstream, with
//! faults injected per upstream key. Cooldown windows are ended by advancing the router's
//! clock, never by sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sluice_mock::{MockConfig, MockServer};

/// A gateway with one provider `p` (keys `key-a`, `key-b`) serving `m`; `extra` goes at the
/// top level, `provider_extra` into the provider.
async fn pool(extra: &str, provider_extra: &str) -> Harness {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
{extra}
providers:
  - name: p
    kind: openai-compatible
    base-url: {base}
    api-keys: [key-a, key-b]
    models: [{{name: m}}]
{provider_extra}
",
        base = mock.base_url()
    );
    Harness::from_yaml(mock, &yaml).await
}

fn advance(h: &Harness, by: Duration) {
    h.server.state.runtime.load().router.clock.advance(by);
}

async fn ask(h: &Harness, model: &str) -> reqwest::Response {
    h.chat(json!({"model": model, "messages": user("hi")}))
        .send()
        .await
        .unwrap()
}

async fn credentials(h: &Harness) -> Value {
    h.http
        .get(h.url("/v0/management/credentials"))
        .header("x-management-key", MGMT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn credential<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {status}"))
}

#[tokio::test]
async fn a_429_moves_traffic_to_the_next_credential_and_the_first_returns_after_the_window() {
    let h = pool("", "").await;
    h.mock
        .faults()
        .set_for_key("key-a", "status=429 retry_after=30");
    let first = ask(&h, "m").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-sluice-attempts"], "2");
    assert_eq!(first.headers()["x-sluice-provider"], "p");
    for _ in 0..6 {
        let resp = ask(&h, "m").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-sluice-attempts"], "1");
    }
    assert_eq!(h.mock.requests_with_key("key-a"), 1, "key-a is cooling");
    assert_eq!(h.mock.requests_with_key("key-b"), 7);

    let status = credentials(&h).await;
    let a = credential(&status, "p#0");
    assert_eq!(a["status"], "cooling");
    assert_eq!(a["models"][0]["reason"], "quota");
    let left = a["models"][0]["remaining_ms"].as_u64().unwrap();
    assert!(left > 25_000 && left <= 30_000, "{left}");
    assert_eq!(credential(&status, "p#1")["status"], "active");

    // The upstream recovers; the window ends; the next requests probe key-a and it is back.
    h.mock.faults().clear_key("key-a");
    advance(&h, Duration::from_secs(30));
    for _ in 0..4 {
        assert_eq!(ask(&h, "m").await.status(), 200);
    }
    assert_eq!(h.mock.requests_with_key("key-a"), 3);
    assert_eq!(
        credential(&credentials(&h).await, "p#0")["status"],
        "active"
    );

    let records = h.records().await;
    assert_eq!(records[0].attempts, 2);
    assert_eq!(records[0].credential.as_deref(), Some("p#1"));
    assert_eq!(records[0].failed_attempts.len(), 1);
    assert_eq!(records[0].failed_attempts[0].credential, "p#0");
    assert_eq!(records[0].failed_attempts[0].status, 429);
}

#[tokio::test]
async fn a_credential_that_always_fails_gets_nothing_but_its_probes() {
    let h = pool(
        "cooldown: {server-error-threshold: 1, server-error: 10s}",
        "",
    )
    .await;
    h.mock.faults().set_for_key("key-a", "status=500");
    for _ in 0..20 {
        assert_eq!(ask(&h, "m").await.status(), 200);
    }
    assert_eq!(h.mock.requests_with_key("key-a"), 1);
    for round in 2..5 {
        advance(&h, Duration::from_secs(10));
        for _ in 0..20 {
            assert_eq!(ask(&h, "m").await.status(), 200);
        }
        assert_eq!(
            h.mock.requests_with_key("key-a"),
            round,
            "one probe per window"
        );
    }
}

#[tokio::test]
async fn every_credential_cooling_is_a_429_with_retry_after_and_no_upstream_call() {
    let h = pool("", "").await;
    for key in ["key-a", "key-b"] {
        h.mock
            .faults()
            .set_for_key(key, "status=429 retry_after=20");
    }
    let resp = ask(&h, "m").await;
    assert_eq!(resp.status(), 429, "the last attempt's answer");
    assert_eq!(resp.headers()["x-sluice-attempts"], "2");
    let calls = h.mock.requests().len();
    let resp = ask(&h, "m").await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((19..=20).contains(&retry), "{retry}");
    assert!(!resp.headers().contains_key("x-sluice-attempts"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "credentials_cooling_down");
    assert_eq!(
        h.mock.requests().len(),
        calls,
        "no upstream call while cooling"
    );
}

#[tokio::test]
async fn a_mid_stream_cut_is_not_retried() {
    let h = pool("", "").await;
    let resp = h
        .chat(json!({"model": "m", "messages": user("mock:chunk_delay_ms=5 mock:cut_after=2"), "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-attempts"], "1");
    let body = resp.text().await.unwrap();
    let last: Value = serde_json::from_str(sse_data(&body).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_broken");
    assert_eq!(h.mock.requests().len(), 1, "streaming began: no retry");
}

#[tokio::test]
async fn the_callers_own_mistakes_are_never_retried() {
    let h = pool("", "").await;
    h.mock.faults().set_for_key("key-a", "status=400");
    h.mock.faults().set_for_key("key-b", "status=400");
    let resp = ask(&h, "m").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["x-sluice-attempts"], "1");
    assert_eq!(h.mock.requests().len(), 1);
    // The credential is not blamed for the caller's request.
    assert_eq!(
        credential(&credentials(&h).await, "p#0")["status"],
        "active"
    );
}

#[tokio::test]
async fn switch_project_off_returns_the_quota_error() {
    let h = pool("quota-exceeded: {switch-project: false}", "").await;
    h.mock.faults().set_for_key("key-a", "status=429");
    let resp = ask(&h, "m").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(h.mock.requests().len(), 1);
    // It still cooled: the next request goes to key-b.
    assert_eq!(ask(&h, "m").await.status(), 200);
    assert_eq!(h.mock.requests_with_key("key-b"), 1);
}

#[tokio::test]
async fn unauthorized_credentials_are_disabled_with_the_reason() {
    let h = pool("", "").await;
    h.mock.faults().set_for_key("key-a", "status=401");
    for _ in 0..5 {
        assert_eq!(ask(&h, "m").await.status(), 200);
    }
    assert_eq!(h.mock.requests_with_key("key-a"), 1);
    let status = credentials(&h).await;
    let a = credential(&status, "p#0");
    assert_eq!(a["status"], "disabled");
    let reason = a["disabled"].as_str().unwrap();
    assert!(reason.contains("401"), "{reason}");
    assert!(
        !reason.contains("key-a"),
        "no secret in the reason: {reason}"
    );
    // Disabled is not a window: it stays until a reload.
    advance(&h, Duration::from_secs(86_400));
    assert_eq!(
        credential(&credentials(&h).await, "p#0")["status"],
        "disabled"
    );
}

/// Two providers of one model in two tiers, the first failing.
#[tokio::test]
async fn failover_crosses_providers_and_request_retry_bounds_it() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let yaml = |retry: u32| {
        format!(
            "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
request-retry: {retry}
providers:
  - {{name: main, kind: openai-compatible, base-url: '{base}', api-keys: [main-1, main-2], priority: 10, models: [{{name: m}}]}}
  - {{name: spare, kind: openai-compatible, base-url: '{base}', api-keys: [spare-1], models: [{{name: m}}]}}
"
        )
    };
    mock.faults().set_for_key("main-1", "status=503");
    mock.faults().set_for_key("main-2", "status=503");
    let h = Harness::from_yaml(mock, &yaml(3)).await;
    let resp = ask(&h, "m").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-sluice-provider"], "spare");
    assert_eq!(resp.headers()["x-sluice-attempts"], "3");
    let r = &h.records().await[0];
    let tried: Vec<&str> = r
        .failed_attempts
        .iter()
        .map(|a| a.credential.as_str())
        .collect();
    assert_eq!(tried.len(), 2);
    assert!(
        tried.contains(&"main#0") && tried.contains(&"main#1"),
        "{tried:?}"
    );
    assert_eq!(r.credential.as_deref(), Some("spare#0"));

    // request-retry: 1 allows one extra attempt only: both go to `main`, the client gets 503.
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    mock.faults().set_for_key("main-1", "status=503");
    mock.faults().set_for_key("main-2", "status=503");
    let yaml = yaml(1).replace(&base, &mock.base_url());
    let h = Harness::from_yaml(mock, &yaml).await;
    let resp = ask(&h, "m").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-sluice-attempts"], "2");
    assert_eq!(h.mock.requests_with_key("spare-1"), 0);
}

#[tokio::test]
async fn exhausted_models_fall_back_to_their_preview_model() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - {{name: a, kind: openai-compatible, base-url: '{base}', api-keys: [key-a], models: [{{name: pro, preview-model: pro-preview}}]}}
  - {{name: b, kind: openai-compatible, base-url: '{base}', api-keys: [key-b], models: [{{name: pro-preview}}]}}
"
    );
    mock.faults()
        .set_for_key("key-a", "status=429 retry_after=60");
    let h = Harness::from_yaml(mock, &yaml).await;
    for attempts in ["2", "1"] {
        let resp = ask(&h, "pro").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-sluice-provider"], "b");
        assert_eq!(resp.headers()["x-sluice-attempts"], attempts);
        let body: Value = resp.json().await.unwrap();
        assert!(body["choices"][0]["message"]["content"].is_string());
    }
    let sent: Vec<Value> = h
        .mock
        .requests()
        .iter()
        .map(|r| r.json().unwrap())
        .collect();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1]["model"], "pro-preview");
    let records = h.records().await;
    assert_eq!(records[1].model_requested.as_deref(), Some("pro"));
    assert_eq!(records[1].model_served.as_deref(), Some("pro-preview"));
}

async fn distribution(
    strategy: &str,
    weights: [u32; 2],
    requests: usize,
) -> HashMap<String, usize> {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
routing: {{strategy: {strategy}}}
providers:
  - {{name: a, kind: openai-compatible, base-url: '{base}', api-keys: [a-1, a-2], weight: {}, models: [{{name: m}}]}}
  - {{name: b, kind: openai-compatible, base-url: '{base}', api-keys: [b-1], weight: {}, models: [{{name: m}}]}}
",
        weights[0], weights[1]
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    for _ in 0..requests {
        assert_eq!(ask(&h, "m").await.status(), 200);
    }
    ["a-1", "a-2", "b-1"]
        .into_iter()
        .map(|k| (k.to_string(), h.mock.requests_with_key(k)))
        .collect()
}

/// Shares under each strategy. The strategies are deterministic, so the tolerance stated by
/// these assertions is zero requests.
#[tokio::test]
async fn strategies_spread_requests_as_configured() {
    let rr = distribution("round-robin", [1, 1], 30).await;
    assert_eq!((rr["a-1"], rr["a-2"], rr["b-1"]), (10, 10, 10));
    let weighted = distribution("weighted", [3, 1], 40).await;
    assert_eq!(weighted["a-1"] + weighted["a-2"], 30);
    assert_eq!((weighted["a-1"], weighted["b-1"]), (15, 10));
    let fill = distribution("fill-first", [1, 1], 12).await;
    assert_eq!((fill["a-1"], fill["a-2"], fill["b-1"]), (12, 0, 0));
}

#[tokio::test]
async fn sticky_sessions_hold_and_release() {
    let h = pool("routing: {sticky-sessions: true, sticky-ttl: 10m}", "").await;
    let session = |id: &'static str| {
        h.chat(json!({"model": "m", "messages": user("hi")}))
            .header("x-session-id", id)
    };
    for _ in 0..6 {
        assert_eq!(session("s-1").send().await.unwrap().status(), 200);
    }
    let (a, b) = (
        h.mock.requests_with_key("key-a"),
        h.mock.requests_with_key("key-b"),
    );
    assert!(a == 6 || b == 6, "one session, one credential: {a}/{b}");
    let (bound, other) = if a == 6 {
        ("key-a", "key-b")
    } else {
        ("key-b", "key-a")
    };
    // Without a session, round-robin as usual.
    for _ in 0..2 {
        ask(&h, "m").await;
    }
    assert_eq!(h.mock.requests_with_key(other), 1);

    // The bound credential cools: the session moves, and stays moved after the window.
    h.mock
        .faults()
        .set_for_key(bound, "status=429 retry_after=5");
    let moved = session("s-1").send().await.unwrap();
    assert_eq!(moved.status(), 200);
    h.mock.faults().clear_key(bound);
    advance(&h, Duration::from_secs(5));
    let before = h.mock.requests_with_key(other);
    for _ in 0..4 {
        assert_eq!(session("s-1").send().await.unwrap().status(), 200);
    }
    assert_eq!(h.mock.requests_with_key(other), before + 4);
    assert_eq!(credentials(&h).await["sticky_sessions"], 1);
}

/// The done-criterion: 200 requests against two providers, one failing half its calls with
/// 429/500, reach the client without a single error, and every attempt is accounted to the
/// credential it went to.
#[tokio::test]
async fn two_hundred_requests_one_provider_failing_half_zero_client_errors() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let base = mock.base_url();
    let yaml = format!(
        "listen: 127.0.0.1:0
api-keys: [{CLIENT_KEY}]
providers:
  - name: flaky
    kind: openai-compatible
    base-url: '{base}'
    api-keys: [flaky-1, flaky-2]
    headers: {{x-mock: 'cycle=429.200.500.200'}}
    models: [{{name: m}}]
  - {{name: steady, kind: openai-compatible, base-url: '{base}', api-keys: [steady-1], models: [{{name: m}}]}}
"
    );
    let h = Harness::from_yaml(mock, &yaml).await;
    let h = std::sync::Arc::new(h);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..25 {
                let stream = (worker + i) % 2 == 0;
                let resp = h
                    .chat(json!({"model": "m", "messages": user("hi"), "stream": stream}))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap();
                assert!(!body.contains("\"error\""), "client saw an error: {body}");
                statuses.push(status);
            }
            statuses
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap().iter().filter(|s| **s == 200).count();
    }
    assert_eq!(ok, 200, "zero client-visible errors");

    let records = h.wait_records(200).await;
    assert_eq!(records.len(), 200);
    let mut accounted: HashMap<String, usize> = HashMap::new();
    let mut failed = 0;
    for r in &records {
        assert_eq!(r.status, 200);
        assert_eq!(r.error, None);
        *accounted.entry(r.credential.clone().unwrap()).or_default() += 1;
        for a in &r.failed_attempts {
            assert!(a.credential.starts_with("flaky#"), "{a:?}");
            assert!(a.status == 429 || a.status == 500, "{a:?}");
            *accounted.entry(a.credential.clone()).or_default() += 1;
            failed += 1;
        }
        assert_eq!(r.attempts as usize, 1 + r.failed_attempts.len());
    }
    assert!(failed > 0, "the flaky provider did fail");
    for (key, id) in [
        ("flaky-1", "flaky#0"),
        ("flaky-2", "flaky#1"),
        ("steady-1", "steady#0"),
    ] {
        assert_eq!(
            h.mock.requests_with_key(key),
            accounted.get(id).copied().unwrap_or(0),
            "attempts on {id} = upstream calls with its key"
        );
    }
}

#[tokio::test]
async fn a_stream_that_stalls_counts_against_its_credential() {
    let h = pool(
        "cooldown: {server-error-threshold: 1, server-error: 30s}",
        "    timeouts: {idle: 200ms}",
    )
    .await;
    h.mock.faults().set_for_key("key-a", "stall_after=2");
    let body = h
        .chat(json!({"model": "m", "messages": user("hi"), "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let last: Value = serde_json::from_str(sse_data(&body).last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_idle_timeout");
    // Not retried (the client had bytes), but key-a now cools down.
    assert_eq!(h.mock.requests().len(), 1);
    let status = credentials(&h).await;
    assert_eq!(credential(&status, "p#0")["status"], "cooling");
    assert_eq!(
        credential(&status, "p#0")["models"][0]["reason"],
        "server_error"
    );
    for _ in 0..3 {
        assert_eq!(ask(&h, "m").await.status(), 200);
    }
    assert_eq!(h.mock.requests_with_key("key-a"), 1);
}

async fn manage(h: &Harness, action: &str, body: Value) -> (u16, Value) {
    let resp = h
        .http
        .post(h.url(&format!("/v0/management/credentials/{action}")))
        .header("x-management-key", MGMT_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The management plane's credential actions (the dashboard's buttons, for remote operators):
/// clear a cooldown, disable with a reason, enable, and test now — a real request to the
/// upstream that is recorded as a probe and never as usage.
#[tokio::test]
async fn the_management_api_clears_disables_enables_and_tests_credentials() {
    let h = pool("", "").await;
    h.mock
        .faults()
        .set_for_key("key-a", "status=429 retry_after=30");
    assert_eq!(ask(&h, "m").await.status(), 200);
    assert_eq!(
        credential(&credentials(&h).await, "p#0")["status"],
        "cooling"
    );
    h.mock.faults().clear_key("key-a");

    // Clear: the window ends now, without waiting for the clock.
    let (status, body) = manage(&h, "clear", json!({"credential": "p#0"})).await;
    assert_eq!((status, &body), (200, &json!({"status": "ok"})));
    assert_eq!(
        credential(&credentials(&h).await, "p#0")["status"],
        "active"
    );

    // Disable: out of rotation with the operator's words; no request reaches key-a.
    let (status, _) = manage(
        &h,
        "disable",
        json!({"credential": "p#0", "reason": "rotating the key"}),
    )
    .await;
    assert_eq!(status, 200);
    let a = credential(&credentials(&h).await, "p#0").clone();
    assert_eq!(a["status"], "disabled");
    assert!(
        a["disabled"].as_str().unwrap().contains("rotating the key"),
        "{a}"
    );
    let before = h.mock.requests_with_key("key-a");
    for _ in 0..4 {
        assert_eq!(ask(&h, "m").await.status(), 200);
    }
    assert_eq!(h.mock.requests_with_key("key-a"), before);

    // Enable: back in rotation.
    let (status, _) = manage(&h, "enable", json!({"credential": "p#0"})).await;
    assert_eq!(status, 200);
    assert_eq!(
        credential(&credentials(&h).await, "p#0")["status"],
        "active"
    );

    // Test now: the upstream's answer, latency and first byte; a probe, not a usage record.
    let records = h.records().await.len();
    let to_b = h.mock.requests_with_key("key-b");
    let (status, probe) = manage(&h, "test", json!({"credential": "p#1"})).await;
    assert_eq!(status, 200, "{probe}");
    assert_eq!(probe["credential"], "p#1");
    assert_eq!(probe["provider"], "p");
    assert_eq!(probe["model"], "m");
    assert_eq!(probe["status"], 200);
    assert!(probe["latency_ms"].as_f64().unwrap() > 0.0, "{probe}");
    assert!(probe["id"].as_str().unwrap().starts_with("probe-"));
    assert_eq!(h.mock.requests_with_key("key-b"), to_b + 1);
    assert_eq!(h.records().await.len(), records, "a probe is never usage");
    let probes = h
        .server
        .state
        .accounts
        .store
        .ui()
        .probes_of("p#1", 10)
        .await
        .unwrap();
    assert!(probes.iter().any(|p| p.id == probe["id"]), "{probes:?}");

    // The upstream's refusal is reported in its words, still not billed.
    h.mock.faults().set_for_key("key-b", "status=401");
    let (status, probe) = manage(&h, "test", json!({"credential": "p#1", "model": "m"})).await;
    assert_eq!(status, 200);
    assert_eq!(probe["status"], 401);
    assert!(probe["error"].is_string(), "{probe}");
    assert_eq!(h.records().await.len(), records);

    // Mistakes: unknown credential, unserved model, bad bodies, no key.
    let (status, body) = manage(&h, "disable", json!({"credential": "q#9", "reason": "x"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("item not found"))
    );
    let (status, body) = manage(&h, "test", json!({"credential": "p#1", "model": "other"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid body"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("`other`"),
        "{body}"
    );
    let (status, body) = manage(&h, "disable", json!({"credential": "p#0"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid body"))
    );
    let (status, _) = manage(&h, "clear", json!({"credential": " "})).await;
    assert_eq!(status, 400);
    let (status, _) = manage(&h, "enable", json!({"credential": "p#0", "extra": 1})).await;
    assert_eq!(status, 400);
    let anonymous = h
        .http
        .post(h.url("/v0/management/credentials/enable"))
        .json(&json!({"credential": "p#0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
